package directory

import (
	"errors"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzFromSnapshot decodes arbitrary bytes as a binary snapshot and loads it: loading must never panic, must
// refuse only with a *ValidationError, and an accepted tenant must export and reload to the same snapshot.
func FuzzFromSnapshot(f *testing.F) {
	dup := base()
	dup.Groups = append(dup.Groups, &pb.Group{Id: "g1", Kind: 1, Membership: 1, Members: []string{"u1", "u2", "g2"}})
	for _, s := range []*pb.Snapshot{base(), dup, {TenantId: "t"}, {}} {
		b, _ := proto.Marshal(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &pb.Snapshot{}
		if proto.Unmarshal(data, s) != nil {
			return
		}
		d, err := FromSnapshot(s, 1)
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
