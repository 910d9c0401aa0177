package directory

import (
	"errors"
	"slices"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzFromSnapshot decodes arbitrary bytes as a binary snapshot and loads it: loading must never panic, must
// refuse only with a *ValidationError, and an accepted tenant must export and reload to the same snapshot. The
// wire decoder (LoadFile's road for .pb files) must accept only what FromSnapshot accepts, building the same tenant.
func FuzzFromSnapshot(f *testing.F) {
	dup := base()
	dup.Groups = append(dup.Groups, &pb.Group{Id: "g1", Kind: 1, Membership: 1, Members: []string{"u1", "u2", "g2"}})
	for _, s := range []*pb.Snapshot{base(), dup, {TenantId: "t"}, {}} {
		b, _ := proto.Marshal(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, fastErr := fromWire(data, 1)
		if fastErr != nil && !errors.Is(fastErr, errNotFast) {
			t.Fatalf("the wire decoder failed with %v, want a tenant or errNotFast", fastErr)
		}
		s := &pb.Snapshot{}
		if proto.Unmarshal(data, s) != nil {
			if fastErr == nil {
				t.Fatal("the wire decoder accepted bytes proto.Unmarshal refuses")
			}
			return
		}
		d, err := FromSnapshot(s, 1)
		if fastErr == nil {
			// What the wire decoder accepts, FromSnapshot accepts, with the same tenant.
			if err != nil {
				t.Fatalf("the wire decoder accepted a snapshot FromSnapshot refuses: %v", err)
			}
			if !proto.Equal(fast.Snapshot(), d.Snapshot()) || fast.Counts() != d.Counts() || fast.RefLimit() != d.RefLimit() {
				t.Fatal("the wire decoder's tenant differs from FromSnapshot's")
			}
			for n := range d.Nodes() {
				m := fast.Node(n.Ref())
				if m == nil || m.ID() != n.ID() || !slices.Equal(m.MemberOf(), n.MemberOf()) || !slices.Equal(m.OwnerOf(), n.OwnerOf()) {
					t.Fatalf("ref %d (%s) differs between the decoders", n.Ref(), n.ID())
				}
			}
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("refused with %T: %v", err, err)
			}
			return
		}
		again, err := FromSnapshot(d.Snapshot(), 1)
		if err != nil || !proto.Equal(again.Snapshot(), d.Snapshot()) || again.Counts() != d.Counts() {
			t.Fatalf("an accepted snapshot does not survive export and reload: %v", err)
		}
	})
}
