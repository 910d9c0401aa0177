package directory

import (
	"errors"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// fuzzBase is a small tenant that change batches are applied to.
func fuzzBase(t testing.TB) *Directory {
	d, err := FromSnapshot(&pb.Snapshot{
		TenantId: "t",
		Labels:   []*pb.Label{{Id: "l1", PublishedTo: []string{"*", "u1"}}},
		Users:    []*pb.User{{Id: "u1", UserType: pb.UserType_USER_TYPE_MEMBER}, {Id: "u2", UserType: pb.UserType_USER_TYPE_GUEST}},
		Groups: []*pb.Group{
			{Id: "g1", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, LabelId: "l1", Members: []string{"u1", "g2"}, Owners: []string{"u1"}},
			{Id: "g2", Kind: pb.GroupKind_GROUP_KIND_MICROSOFT_365, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, Members: []string{"u2"}},
		},
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// FuzzApply applies arbitrary change batches: Apply must never panic, must refuse with a *ValidationError or
// *NotFoundError or accept, must never change the base revision, and an accepted result must survive an export
// and reload unchanged (so it holds no dangling reference or broken reverse edge).
func FuzzApply(f *testing.F) {
	seeds := []*pb.WriteChangesRequest{
		{Changes: []*pb.Change{{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: "g2", MemberId: "u1"}}}}},
		{Changes: []*pb.Change{{Change: &pb.Change_DeleteObject{DeleteObject: &pb.DeleteObject{Id: "g2"}}}}},
		{Changes: []*pb.Change{{Change: &pb.Change_DeleteObject{DeleteObject: &pb.DeleteObject{Id: "l1"}}}}},
		{Changes: []*pb.Change{
			{Change: &pb.Change_UpsertGroup{UpsertGroup: &pb.Group{Id: "g3", Kind: 1, Membership: 1, Members: []string{"u3", "g1"}}}},
			{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: "u3", UserType: 2}}},
			{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: "g2", MemberId: "g3"}}},
		}},
		{Changes: []*pb.Change{{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: "g1", UserType: 1}}}}},
		{Changes: []*pb.Change{{Change: &pb.Change_RemoveOwner{RemoveOwner: &pb.OwnerChange{GroupId: "g1", OwnerId: "u1"}}}, {}}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	base := fuzzBase(f)
	before, err := proto.Marshal(base.Snapshot())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &pb.WriteChangesRequest{}
		if proto.Unmarshal(data, req) != nil || len(req.GetChanges()) > 64 {
			return
		}
		next, _, err := base.Apply(req.GetChanges(), 2)
		after, _ := proto.Marshal(base.Snapshot())
		if !proto.Equal(mustSnapshot(t, before), mustSnapshot(t, after)) {
			t.Fatal("Apply changed the base revision")
		}
		if err != nil {
			var invalid *ValidationError
			var notFound *NotFoundError
			if !errors.As(err, &invalid) && !errors.As(err, &notFound) {
				t.Fatalf("Apply refused with %T: %v", err, err)
			}
			return
		}
		exported := next.Snapshot()
		reloaded, err := FromSnapshot(exported, 2)
		if err != nil {
			t.Fatalf("an accepted batch left a state that does not reload: %v", err)
		}
		if !proto.Equal(reloaded.Snapshot(), exported) || reloaded.Counts() != next.Counts() {
			t.Fatalf("reloaded state differs: counts %+v vs %+v", reloaded.Counts(), next.Counts())
		}
	})
}

func mustSnapshot(t *testing.T, b []byte) *pb.Snapshot {
	s := &pb.Snapshot{}
	if err := proto.Unmarshal(b, s); err != nil {
		t.Fatal(err)
	}
	return s
}
