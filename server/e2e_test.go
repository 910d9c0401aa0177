package server_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestHealthIsServing(t *testing.T) {
	srv := servertest.Start(t)
	for _, service := range []string{"", "groupgate.v1.DecisionService", "groupgate.v1.DirectoryService"} {
		resp, err := srv.Client.Health.Check(ctx(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health %q: %v", service, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %v, want SERVING", service, resp.GetStatus())
		}
	}
}

func TestReflectionListsBothServices(t *testing.T) {
	srv := servertest.Start(t)
	stream, err := reflectionpb.NewServerReflectionClient(srv.Client.Conn()).ServerReflectionInfo(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"groupgate.v1.DecisionService", "groupgate.v1.DirectoryService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

// badRequestFields returns the fields of an INVALID_ARGUMENT error's BadRequest detail.
func badRequestFields(t *testing.T, err error) []string {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if len(fields) == 0 {
		t.Fatalf("InvalidArgument without BadRequest field violations: %v", err)
	}
	return fields
}

func TestMalformedRequestsNameTheField(t *testing.T) {
	srv := servertest.Start(t)
	d := srv.Client.Decisions
	tests := []struct {
		name  string
		call  func(context.Context) error
		field string
	}{
		{"bad group id", func(c context.Context) error {
			_, err := d.CanAddMember(c, &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp finance", MemberId: "u-dave", ActorId: "u-gary"})
			return err
		}, "group_id"},
		{"missing actor", func(c context.Context) error {
			_, err := d.CanAddMember(c, &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-finance", MemberId: "u-dave"})
			return err
		}, "actor_id"},
		{"missing tenant", func(c context.Context) error {
			_, err := d.CheckMembership(c, &pb.CheckMembershipRequest{GroupId: "grp-finance", PrincipalId: "u-dave"})
			return err
		}, "tenant_id"},
		{"id too long", func(c context.Context) error {
			_, err := d.CheckMembership(c, &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: strings.Repeat("g", 257), PrincipalId: "u-dave"})
			return err
		}, "group_id"},
		{"unspecified action", func(c context.Context) error {
			_, err := d.CanModifyUser(c, &pb.CanModifyUserRequest{TenantId: "contoso", TargetUserId: "u-erin", ActorId: "u-helen"})
			return err
		}, "action"},
		{"unknown enum value", func(c context.Context) error {
			_, err := d.CanModifyUser(c, &pb.CanModifyUserRequest{TenantId: "contoso", TargetUserId: "u-erin", ActorId: "u-helen", Action: 99})
			return err
		}, "action"},
		{"negative min_revision", func(c context.Context) error {
			_, err := d.CheckMembership(c, &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: "grp-finance", PrincipalId: "u-dave", Consistency: &pb.Consistency{MinRevision: -1}})
			return err
		}, "consistency.min_revision"},
		{"role group spec without kind", func(c context.Context) error {
			_, err := d.CanCreateRoleGroup(c, &pb.CanCreateRoleGroupRequest{TenantId: "contoso", ActorId: "u-priya", Group: &pb.Group{Membership: pb.Membership_MEMBERSHIP_ASSIGNED}})
			return err
		}, "group.kind"},
		{"batch too large", func(c context.Context) error {
			checks := make([]*pb.CheckBatchItem, 1001)
			_, err := d.CheckBatch(c, &pb.CheckBatchRequest{TenantId: "contoso", Checks: checks})
			return err
		}, "checks"},
		{"page size too large", func(c context.Context) error {
			s, err := d.EffectiveMembers(c, &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-finance", PageSize: 10_001})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, "page_size"},
		{"empty write", func(c context.Context) error {
			_, err := srv.Client.Directory.WriteChanges(c, &pb.WriteChangesRequest{TenantId: "contoso"})
			return err
		}, "changes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := badRequestFields(t, tt.call(ctx(t)))
			if !slices.Contains(fields, tt.field) {
				t.Errorf("field violations %v, want one for %q", fields, tt.field)
			}
		})
	}
}

func TestUnknownObjectsAreNotFound(t *testing.T) {
	srv := servertest.Start(t)
	d := srv.Client.Decisions
	tests := []struct {
		name         string
		call         func(context.Context) error
		resourceType string
		resourceName string
	}{
		{"unknown tenant", func(c context.Context) error {
			_, err := d.CheckMembership(c, &pb.CheckMembershipRequest{TenantId: "fabrikam", GroupId: "grp-finance", PrincipalId: "u-dave"})
			return err
		}, "tenant", "fabrikam"},
		{"unknown group", func(c context.Context) error {
			_, err := d.CheckMembership(c, &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: "grp-nope", PrincipalId: "u-dave"})
			return err
		}, "group", "grp-nope"},
		{"unknown principal", func(c context.Context) error {
			_, err := d.CheckMembership(c, &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: "grp-finance", PrincipalId: "u-nobody"})
			return err
		}, "principal", "u-nobody"},
		{"unknown tenant on status", func(c context.Context) error {
			_, err := srv.Client.Directory.GetStatus(c, &pb.GetStatusRequest{TenantId: "fabrikam"})
			return err
		}, "tenant", "fabrikam"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(tt.call(ctx(t)))
			if st.Code() != codes.NotFound {
				t.Fatalf("got %v, want NotFound", st.Err())
			}
			var info *errdetails.ResourceInfo
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.ResourceInfo); ok {
					info = ri
				}
			}
			if info.GetResourceType() != tt.resourceType || info.GetResourceName() != tt.resourceName {
				t.Errorf("ResourceInfo = %v, want %s %s", info, tt.resourceType, tt.resourceName)
			}
		})
	}
}

func TestCheckMembershipShortestPath(t *testing.T) {
	srv := servertest.Start(t)
	tests := []struct {
		group, principal string
		member           bool
		path             []string
	}{
		{"grp-finance", "u-erin", true, []string{"grp-finance", "grp-finance-emea", "u-erin"}},
		{"grp-finance", "u-dave", true, []string{"grp-finance", "u-dave"}},
		{"grp-engineering", "u-frank", true, []string{"grp-engineering", "grp-eng-contractors", "u-frank"}},
		{"grp-finance", "u-frank", false, nil},
		{"grp-cycle-a", "grp-cycle-b", true, []string{"grp-cycle-a", "grp-cycle-b"}},
	}
	for _, tt := range tests {
		resp, err := srv.Client.CheckMembership(ctx(t), "contoso", tt.group, tt.principal)
		if err != nil {
			t.Fatalf("%s ∋ %s: %v", tt.group, tt.principal, err)
		}
		if resp.GetIsMember() != tt.member || !slices.Equal(resp.GetPath(), tt.path) {
			t.Errorf("%s ∋ %s = %v %v, want %v %v", tt.group, tt.principal, resp.GetIsMember(), resp.GetPath(), tt.member, tt.path)
		}
		if resp.GetRevision() != 1 {
			t.Errorf("revision = %d, want 1", resp.GetRevision())
		}
	}
}

func TestCheckMembershipOfANonGroupIsInvalid(t *testing.T) {
	srv := servertest.Start(t)
	_, err := srv.Client.CheckMembership(ctx(t), "contoso", "u-dave", "u-erin")
	if fields := badRequestFields(t, err); !slices.Contains(fields, "group_id") {
		t.Errorf("fields %v, want group_id", fields)
	}
}

func collectMembers(t *testing.T, srv *servertest.Server, req *pb.EffectiveMembersRequest) (members []*pb.EffectiveMember, messages int, revisions map[int64]bool) {
	t.Helper()
	revisions = map[int64]bool{}
	err := srv.Client.EachMember(ctx(t), req, func(r *pb.EffectiveMembersResponse) error {
		messages++
		revisions[r.GetRevision()] = true
		members = append(members, r.GetMembers()...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return members, messages, revisions
}

func TestEffectiveMembersStreamsPagesOnOneRevision(t *testing.T) {
	srv := servertest.Start(t)
	members, messages, revisions := collectMembers(t, srv, &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-engineering", PageSize: 2})
	got := map[string]int32{}
	for _, m := range members {
		got[m.GetId()] = m.GetDepth()
	}
	want := map[string]int32{"u-dave": 1, "u-mallory": 1, "grp-eng-contractors": 1, "u-frank": 2}
	for id, depth := range want {
		if got[id] != depth {
			t.Errorf("member %s depth %d, want %d (all: %v)", id, got[id], depth, got)
		}
	}
	if len(members) != len(want) {
		t.Errorf("%d members, want %d: %v", len(members), len(want), got)
	}
	if messages != 2 {
		t.Errorf("%d messages for %d members with page_size 2, want 2", messages, len(members))
	}
	if len(revisions) != 1 || !revisions[1] {
		t.Errorf("revisions %v, want only 1", revisions)
	}
}

func TestEffectiveMembersTypeFilter(t *testing.T) {
	srv := servertest.Start(t)
	members, _, _ := collectMembers(t, srv, &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-engineering", Types: []pb.MemberType{pb.MemberType_MEMBER_TYPE_GUEST}})
	if len(members) != 1 || members[0].GetId() != "u-frank" || members[0].GetUserType() != pb.UserType_USER_TYPE_GUEST {
		t.Errorf("guests of grp-engineering = %v, want only u-frank", members)
	}
	members, _, _ = collectMembers(t, srv, &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-engineering", Types: []pb.MemberType{pb.MemberType_MEMBER_TYPE_GROUP}})
	if len(members) != 1 || members[0].GetKind() != pb.ObjectKind_OBJECT_KIND_GROUP {
		t.Errorf("groups in grp-engineering = %v, want grp-eng-contractors", members)
	}
}

func TestEffectiveMembersOfAnEmptyGroupAnswersOnce(t *testing.T) {
	srv := servertest.Start(t)
	members, messages, revisions := collectMembers(t, srv, &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-newsletter"})
	if len(members) != 0 || messages != 1 || !revisions[1] {
		t.Errorf("empty group: %d members in %d messages (revisions %v), want 0 in 1 at revision 1", len(members), messages, revisions)
	}
}

func TestImportRefusesADanglingSnapshotNamingTheID(t *testing.T) {
	srv := servertest.Start(t)
	snap := demo.Snapshot()
	snap.Groups[0].Members = append(snap.Groups[0].Members, "u-ghost")
	stream, err := srv.Client.Directory.ImportSnapshot(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.ImportSnapshotRequest{TenantId: "contoso", Snapshot: snap}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.CloseAndRecv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "u-ghost") {
		t.Fatalf("import of a dangling snapshot: %v, want InvalidArgument naming u-ghost", err)
	}
	// Nothing changed.
	st, err := srv.Client.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	if err != nil || st.GetRevision() != 1 {
		t.Fatalf("after a refused import: revision %d, %v; want 1", st.GetRevision(), err)
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	srv := servertest.Start(t)
	c := srv.Client.Directory
	export := func(tenant string) *pb.Snapshot {
		stream, err := c.ExportSnapshot(ctx(t), &pb.ExportSnapshotRequest{TenantId: tenant})
		if err != nil {
			t.Fatal(err)
		}
		merged := &pb.Snapshot{}
		for {
			part, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return merged
			}
			if err != nil {
				t.Fatal(err)
			}
			proto.Merge(merged, part.GetSnapshot())
		}
	}
	exported := export("contoso")
	if !proto.Equal(exported, sortedLabels(demo.Snapshot())) {
		t.Fatalf("export differs from the demo snapshot")
	}
	// Import it, in two parts, as a new tenant.
	users := exported.Users
	first := proto.CloneOf(exported)
	first.Users, first.TenantId = nil, ""
	stream, err := c.ImportSnapshot(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.ImportSnapshotRequest{TenantId: "contoso-copy", Snapshot: first}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.ImportSnapshotRequest{Snapshot: &pb.Snapshot{Users: users}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetRevision() != 1 {
		t.Fatalf("import: revision %d, %v", resp.GetRevision(), err)
	}
	copied := export("contoso-copy")
	copied.TenantId = "contoso"
	if !proto.Equal(copied, sortedLabels(demo.Snapshot())) {
		t.Errorf("imported copy differs from the demo snapshot")
	}
}

// sortedLabels orders a snapshot's labels by id, as exports list them.
func sortedLabels(s *pb.Snapshot) *pb.Snapshot {
	slices.SortFunc(s.Labels, func(a, b *pb.Label) int { return strings.Compare(a.GetId(), b.GetId()) })
	return s
}

func TestGetStatusCounts(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := srv.Client.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	if err != nil {
		t.Fatal(err)
	}
	snap := demo.Snapshot()
	var guests, edges int64
	for _, u := range snap.GetUsers() {
		if u.GetUserType() == pb.UserType_USER_TYPE_GUEST {
			guests++
		}
	}
	for _, g := range snap.GetGroups() {
		edges += int64(len(g.GetMembers()))
	}
	c := resp.GetCounts()
	if c.GetUsers() != int64(len(snap.GetUsers())) || c.GetGuests() != guests || c.GetGroups() != int64(len(snap.GetGroups())) ||
		c.GetLabels() != int64(len(snap.GetLabels())) || c.GetServicePrincipals() != int64(len(snap.GetServicePrincipals())) || c.GetMemberships() != edges {
		t.Errorf("counts %v disagree with the demo snapshot", c)
	}
	if resp.GetStore() != "memory" || resp.GetRevision() != 1 || resp.GetStoreRevision() != 1 {
		t.Errorf("status %v, want store memory at revision 1", resp)
	}
}

// expectCancelFreesTheStream opens a stream with open, reads its first message and cancels it: the server must
// end the call with CANCELED, free its streaming slot (shortCall, another stream, is admitted again within 2 s on
// a server with one slot) and leave no goroutine behind. shortCall runs once first, so that the connection's own
// goroutines are in the baseline.
func expectCancelFreesTheStream(t *testing.T, shortCall func() error, open func(context.Context) (recv func() error, err error)) {
	t.Helper()
	if err := shortCall(); err != nil {
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()

	cctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	recv, err := open(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	for {
		if err := recv(); err != nil {
			if status.Code(err) != codes.Canceled {
				t.Fatalf("after cancel: %v, want CANCELED", err)
			}
			break
		}
	}
	// The slot is free once the handler has returned: a second stream is admitted.
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := shortCall()
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("the cancelled stream still holds its slot after 2 s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > baseline; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the streams ended, %d before", runtime.NumGoroutine(), baseline)
		}
	}
}

// TestEffectiveMembersStopsWhenTheClientCancels cancels a stream of a 20k-member group after its first message:
// the server must end the call (its only streaming slot frees up at once) and leave no goroutine behind.
func TestEffectiveMembersStopsWhenTheClientCancels(t *testing.T) {
	p, _ := workload.Preset("small")
	d, err := directory.FromSnapshot(workload.Generate(p), 1)
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.StartWith(t, servertest.Options{Limits: server.Limits{MaxConcurrentStreams: 1}}, d)
	req := &pb.EffectiveMembersRequest{TenantId: d.TenantID(), GroupId: workload.TopGroupID, PageSize: 10}
	leaf := &pb.EffectiveMembersRequest{TenantId: d.TenantID(), GroupId: workload.GroupID(p.Groups - 1)}
	countMembers := func() error {
		return srv.Client.EachMember(ctx(t), leaf, func(*pb.EffectiveMembersResponse) error { return nil })
	}
	expectCancelFreesTheStream(t, countMembers, func(cctx context.Context) (func() error, error) {
		stream, err := srv.Client.Decisions.EffectiveMembers(cctx, req)
		if err != nil {
			return nil, err
		}
		return func() error { _, err := stream.Recv(); return err }, nil
	})
}
