package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func addMember(group, member string) *pb.Change {
	return &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: group, MemberId: member}}}
}

func revisionOf(t *testing.T, srv *servertest.Server) int64 {
	t.Helper()
	st, err := srv.Client.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	if err != nil {
		t.Fatal(err)
	}
	return st.GetRevision()
}

func isMember(t *testing.T, srv *servertest.Server, group, principal string) bool {
	t.Helper()
	resp, err := srv.Client.CheckMembership(ctx(t), "contoso", group, principal)
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetIsMember()
}

func TestWriteIsVisibleAtItsRevision(t *testing.T) {
	srv := servertest.Start(t)
	if isMember(t, srv, "grp-finance", "u-ursula") {
		t.Fatal("u-ursula is in grp-finance before the write")
	}
	resp, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", Changes: []*pb.Change{addMember("grp-finance-emea", "u-ursula")}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevision() != 2 {
		t.Fatalf("revision %d, want 2", resp.GetRevision())
	}
	got, err := srv.Client.Decisions.CheckMembership(ctx(t), &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: "grp-finance", PrincipalId: "u-ursula", Consistency: &pb.Consistency{MinRevision: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetIsMember() || got.GetRevision() != 2 || strings.Join(got.GetPath(), ",") != "grp-finance,grp-finance-emea,u-ursula" {
		t.Errorf("after the write: %v, want member through grp-finance-emea at revision 2", got)
	}
}

func TestWriteBatchIsAllOrNothing(t *testing.T) {
	srv := servertest.Start(t)
	_, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", Changes: []*pb.Change{
		addMember("grp-finance-emea", "u-ursula"), // fine on its own
		addMember("grp-finance-emea", "u-ghost"),  // dangling
	}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "u-ghost") {
		t.Fatalf("got %v, want InvalidArgument naming u-ghost", err)
	}
	if rev := revisionOf(t, srv); rev != 1 {
		t.Errorf("revision %d after a refused batch, want 1", rev)
	}
	if isMember(t, srv, "grp-finance-emea", "u-ursula") {
		t.Error("the valid half of a refused batch was applied")
	}
}

func TestExpectedRevisionMismatchIsFailedPrecondition(t *testing.T) {
	srv := servertest.Start(t)
	stale := int64(7)
	_, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", ExpectedRevision: &stale, Changes: []*pb.Change{addMember("grp-finance-emea", "u-ursula")}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("got %v, want FailedPrecondition", err)
	}
	current := int64(1)
	if _, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", ExpectedRevision: &current, Changes: []*pb.Change{addMember("grp-finance-emea", "u-ursula")}}); err != nil {
		t.Fatalf("write at the expected revision: %v", err)
	}
}

func TestRetryWithSameRequestIDWritesOnce(t *testing.T) {
	srv := servertest.Start(t)
	req := &pb.WriteChangesRequest{TenantId: "contoso", RequestId: "ticket-4711", Changes: []*pb.Change{addMember("grp-finance-emea", "u-ursula")}}
	first, err := srv.Client.Directory.WriteChanges(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := srv.Client.Directory.WriteChanges(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if first.GetRevision() != second.GetRevision() {
		t.Errorf("retry answered revision %d, first answer %d", second.GetRevision(), first.GetRevision())
	}
	if rev := revisionOf(t, srv); rev != first.GetRevision() {
		t.Errorf("tenant at revision %d after a retry, want %d (written once)", rev, first.GetRevision())
	}
}

func TestMinRevisionWaitsForTheWrite(t *testing.T) {
	srv := servertest.Start(t)
	answered := make(chan *pb.CheckMembershipResponse, 1)
	go func() {
		resp, err := srv.Client.Decisions.CheckMembership(context.Background(), &pb.CheckMembershipRequest{
			TenantId: "contoso", GroupId: "grp-finance-emea", PrincipalId: "u-ursula", Consistency: &pb.Consistency{MinRevision: 2}})
		if err != nil {
			t.Error(err)
		}
		answered <- resp
	}()
	select {
	case resp := <-answered:
		t.Fatalf("answered %v before revision 2 existed", resp)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", Changes: []*pb.Change{addMember("grp-finance-emea", "u-ursula")}}); err != nil {
		t.Fatal(err)
	}
	resp := <-answered
	if !resp.GetIsMember() || resp.GetRevision() != 2 {
		t.Errorf("waiting read answered %v, want member at revision 2", resp)
	}
}

func TestMinRevisionNotReachedIsDeadlineExceeded(t *testing.T) {
	srv := servertest.Start(t)
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := srv.Client.Decisions.CheckMembership(c, &pb.CheckMembershipRequest{
		TenantId: "contoso", GroupId: "grp-finance", PrincipalId: "u-dave", Consistency: &pb.Consistency{MinRevision: 99}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

func TestWatchReplaysThenFollows(t *testing.T) {
	srv := servertest.Start(t)
	write := func(member string) int64 {
		resp, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", Changes: []*pb.Change{addMember("grp-finance-emea", member)}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetRevision()
	}
	write("u-ursula") // revision 2, before the watch starts
	stream, err := srv.Client.Directory.Watch(ctx(t), &pb.WatchRequest{TenantId: "contoso", AfterRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.GetRevision() != 2 || !proto.Equal(first.GetChanges()[0], addMember("grp-finance-emea", "u-ursula")) {
		t.Errorf("first watched revision %v, want revision 2 adding u-ursula", first)
	}
	write("u-gina") // revision 3, live
	second, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if second.GetRevision() != 3 || second.GetChanges()[0].GetAddMember().GetMemberId() != "u-gina" {
		t.Errorf("second watched revision %v, want revision 3 adding u-gina", second)
	}
}

func TestFirstWriteCreatesATenant(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "fabrikam", Changes: []*pb.Change{
		{Change: &pb.Change_UpsertGroup{UpsertGroup: &pb.Group{Id: "g1", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, Members: []string{"u1"}}}},
		{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: "u1", UserType: pb.UserType_USER_TYPE_MEMBER}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRevision() != 1 {
		t.Errorf("first revision of a new tenant = %d, want 1", resp.GetRevision())
	}
	m, err := srv.Client.CheckMembership(ctx(t), "fabrikam", "g1", "u1")
	if err != nil || !m.GetIsMember() {
		t.Errorf("new tenant: u1 in g1 = %v, %v", m, err)
	}
}
