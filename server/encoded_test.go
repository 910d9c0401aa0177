package server

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// setEffectiveMember fills an EffectiveMember from a node as EffectiveMembers did before it encoded its pages
// itself: the reference the encoded bytes are checked against.
func setEffectiveMember(m *pb.EffectiveMember, n *directory.Node, depth int) {
	m.Id, m.Depth = n.ID(), int32(depth)
	switch n.Kind() {
	case directory.KindUser:
		m.Kind = pb.ObjectKind_OBJECT_KIND_USER
		m.UserType = n.UserType()
	case directory.KindGroup:
		m.Kind = pb.ObjectKind_OBJECT_KIND_GROUP
	case directory.KindServicePrincipal:
		m.Kind = pb.ObjectKind_OBJECT_KIND_SERVICE_PRINCIPAL
	}
}

// TestEncodedMembersMatchMarshal: an EffectiveMembers page encoded from the nodes is, byte for byte, what
// proto.Marshal writes for the same message, for every kind of object (members and guests, groups, service
// principals), one- and multi-byte depths and revisions, and the empty last message.
func TestEncodedMembersMatchMarshal(t *testing.T) {
	d, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	// Ids on both sides of the one-byte lengths (an id under 100 bytes takes the short path), up to the longest.
	long := &pb.Snapshot{TenantId: "long-ids"}
	for _, n := range []int{1, 99, 100, 125, 126, 127, 128, 256} {
		long.Users = append(long.Users, &pb.User{Id: "u" + strings.Repeat("x", n-1), UserType: pb.UserType_USER_TYPE_GUEST})
		long.Groups = append(long.Groups, &pb.Group{Id: "g" + strings.Repeat("y", n-1), Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED})
		long.ServicePrincipals = append(long.ServicePrincipals, &pb.ServicePrincipal{Id: "s" + strings.Repeat("z", n-1)})
	}
	longIDs, err := directory.FromSnapshot(long, 1)
	if err != nil {
		t.Fatal(err)
	}
	nodes := slices.Collect(d.Nodes())
	nodes = append(nodes, slices.Collect(longIDs.Nodes())...)
	kinds := map[directory.Kind]bool{}
	guests := 0
	for _, revision := range []int64{0, 1, 300, 1 << 40} {
		var encoded []byte
		want := &pb.EffectiveMembersResponse{Revision: revision}
		for _, n := range nodes {
			for _, depth := range []int{0, 1, 2, 127, 128, 70_000} {
				encoded = appendEffectiveMember(encoded, n, depth)
				m := &pb.EffectiveMember{}
				setEffectiveMember(m, n, depth)
				want.Members = append(want.Members, m)
			}
			kinds[n.Kind()] = true
			if n.IsGuest() {
				guests++
			}
		}
		encoded = appendRevision(encoded, revision)
		wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encoded, wantBytes) {
			got := &pb.EffectiveMembersResponse{}
			uerr := proto.Unmarshal(encoded, got)
			t.Fatalf("revision %d: encoded %d bytes, proto.Marshal %d (decoded: %v, equal messages %v): want the same bytes",
				revision, len(encoded), len(wantBytes), uerr, proto.Equal(got, want))
		}
		empty, _ := proto.Marshal(&pb.EffectiveMembersResponse{Revision: revision})
		if got := appendRevision(nil, revision); !bytes.Equal(got, empty) {
			t.Errorf("revision %d: the empty answer is %x, want %x", revision, got, empty)
		}
	}
	if len(kinds) != 3 || guests == 0 {
		t.Fatalf("the demo tenant gave kinds %v and %d guests: want users, groups, service principals and guests", kinds, guests)
	}
}

// TestEncodedMessageThroughInProcessStream: the HTTP/JSON gateway's in-process stream hands over the decoded
// message of a pre-encoded page.
func TestEncodedMessageThroughInProcessStream(t *testing.T) {
	want := &pb.EffectiveMembersResponse{Members: []*pb.EffectiveMember{{Id: "u-a", Kind: pb.ObjectKind_OBJECT_KIND_USER, Depth: 2}}, Revision: 7}
	b, _ := proto.Marshal(want)
	m, err := (&encodedMessage{data: b, decoded: func() proto.Message { return &pb.EffectiveMembersResponse{} }}).message()
	if err != nil || !proto.Equal(m, want) {
		t.Fatalf("decoded %v (%v), want %v", m, err, want)
	}
	if _, err := (&encodedMessage{data: []byte{0xff}, decoded: func() proto.Message { return &pb.EffectiveMembersResponse{} }}).message(); err == nil {
		t.Fatal("decoding garbage: no error")
	}
}

// recordingPool is a mem.BufferPool that records what is put back.
type recordingPool struct{ put [][]byte }

func (p *recordingPool) Get(length int) *[]byte { b := make([]byte, length); return &b }
func (p *recordingPool) Put(b *[]byte)          { p.put = append(p.put, *b) }

// TestPooledPageGoesBackWhenFreed: the codec hands a pooled page to gRPC as is, and gRPC's Free (once the
// transport has written it) puts that same page back into its pool; an unpooled one is never put anywhere.
func TestPooledPageGoesBackWhenFreed(t *testing.T) {
	pool := &recordingPool{}
	page := (*pool.Get(4096))[:0]
	page = appendRevision(append(page, 0x0a, 0x00), 7)
	data, err := newCodec().Marshal(&encodedMessage{data: page, pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	if got := data.Materialize(); !bytes.Equal(got, page) {
		t.Fatalf("marshalled %x, want the page's bytes %x", got, page)
	}
	if len(pool.put) != 0 {
		t.Fatalf("put back before it was freed: %d buffers", len(pool.put))
	}
	data.Free()
	if len(pool.put) != 1 || &pool.put[0][:1][0] != &page[:1][0] || cap(pool.put[0]) != 4096 {
		t.Fatalf("after Free the pool got %d buffers, want the page itself with its capacity (4096)", len(pool.put))
	}
	unpooled, _ := newCodec().Marshal(&encodedMessage{data: bytes.Repeat([]byte{1}, 4096)})
	unpooled.Free()
	if len(pool.put) != 1 {
		t.Fatalf("an unpooled page reached the pool")
	}
}
