package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func collectGroups(t *testing.T, c *client.Client, req *pb.EffectiveGroupsRequest) (groups []string, messages int, revisions map[int64]bool) {
	t.Helper()
	revisions = map[int64]bool{}
	err := c.EachGroup(ctx(t), req, func(r *pb.EffectiveGroupsResponse) error {
		messages++
		revisions[r.GetRevision()] = true
		for _, g := range r.GetGroups() {
			groups = append(groups, fmt.Sprintf("%s:%d:%s:%v", g.GetId(), g.GetDepth(), g.GetLabelId(), g.GetIsAssignableToRole()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return groups, messages, revisions
}

// TestEffectiveGroupsOnTheDemoTenant asks the reverse question on contoso: which groups does a principal reach.
func TestEffectiveGroupsOnTheDemoTenant(t *testing.T) {
	srv := servertest.Start(t)
	tests := []struct {
		name string
		req  *pb.EffectiveGroupsRequest
		want []string // id:depth:label:role-assignable, in the order streamed
	}{
		{"the guest Frank, two levels up to Engineering", &pb.EffectiveGroupsRequest{PrincipalId: "u-frank"},
			[]string{"grp-eng-contractors:1:lbl-general:false", "grp-board:1:lbl-highly-confidential:false", "grp-engineering:2::false"}},
		{"Frank's labelled groups only", &pb.EffectiveGroupsRequest{PrincipalId: "u-frank", LabelledOnly: true},
			[]string{"grp-eng-contractors:1:lbl-general:false", "grp-board:1:lbl-highly-confidential:false"}},
		{"Erin's role-assignable groups", &pb.EffectiveGroupsRequest{PrincipalId: "u-erin", RoleAssignableOnly: true},
			[]string{"grp-tier0-admins:1::true"}},
		{"Erin, everything", &pb.EffectiveGroupsRequest{PrincipalId: "u-erin"},
			[]string{"grp-finance-emea:1:lbl-confidential:false", "grp-all-staff:1::false", "grp-tier0-admins:1::true", "grp-finance:2:lbl-confidential:false"}},
		{"a group: Partner Contacts sits in Vendors", &pb.EffectiveGroupsRequest{PrincipalId: "grp-partners"},
			[]string{"grp-vendors:1:lbl-general:false"}},
		{"a group in a cycle", &pb.EffectiveGroupsRequest{PrincipalId: "grp-cycle-a"}, []string{"grp-cycle-b:1::false"}},
		{"a service principal in no group", &pb.EffectiveGroupsRequest{PrincipalId: "sp-hr-provisioning"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.TenantId = "contoso"
			got, messages, revisions := collectGroups(t, srv.Client, tt.req)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if messages != 1 || len(revisions) != 1 || !revisions[1] {
				t.Errorf("%d messages on revisions %v, want 1 on revision 1", messages, revisions)
			}
		})
	}
}

// chainTenant has a user at the bottom of a chain of n groups: g0 ∋ g1 ∋ … ∋ g(n-1) ∋ u.
func chainTenant(t *testing.T, n int) *directory.Directory {
	t.Helper()
	s := &pb.Snapshot{TenantId: "chain", Users: []*pb.User{{Id: "u", UserType: pb.UserType_USER_TYPE_MEMBER}}}
	for i := 0; i < n; i++ {
		next := "u"
		if i+1 < n {
			next = fmt.Sprintf("g%d", i+1)
		}
		s.Groups = append(s.Groups, &pb.Group{Id: fmt.Sprintf("g%d", i), Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, Members: []string{next}})
	}
	d, err := directory.FromSnapshot(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestEffectiveGroupsStaysOnItsRevision deletes the group a stream will send last while the stream is under way:
// every message still carries the stream's first revision and the stream still ends with that group, while a new
// call sees the write.
func TestEffectiveGroupsStaysOnItsRevision(t *testing.T) {
	const n = 50
	srv := servertest.Start(t, chainTenant(t, n))
	req := &pb.EffectiveGroupsRequest{TenantId: "chain", PrincipalId: "u", PageSize: 1}
	stream, err := srv.Client.Decisions.EffectiveGroups(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	w, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "chain", Changes: []*pb.Change{
		{Change: &pb.Change_DeleteObject{DeleteObject: &pb.DeleteObject{Id: "g0"}}},
	}})
	if err != nil || w.GetRevision() != 2 {
		t.Fatalf("write: revision %d, %v", w.GetRevision(), err)
	}
	got := []*pb.EffectiveGroup{}
	revisions := map[int64]int{}
	for resp := first; ; {
		revisions[resp.GetRevision()]++
		got = append(got, resp.GetGroups()...)
		if resp, err = stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if len(revisions) != 1 || revisions[1] != n {
		t.Errorf("messages by revision %v, want all %d on revision 1", revisions, n)
	}
	if len(got) != n || got[n-1].GetId() != "g0" || got[n-1].GetDepth() != n {
		t.Errorf("%d groups ending with %v, want %d ending with g0 at depth %d", len(got), got[len(got)-1], n, n)
	}
	after, _, revs := collectGroups(t, srv.Client, &pb.EffectiveGroupsRequest{TenantId: "chain", PrincipalId: "u"})
	if len(after) != n-1 || !revs[2] {
		t.Errorf("after the write: %d groups on revisions %v, want %d on revision 2", len(after), revs, n-1)
	}
}

func TestEffectiveGroupsPages(t *testing.T) {
	srv := servertest.Start(t, chainTenant(t, 250))
	// The first message holds at most 100 groups (so the caller can start at once), the others page_size.
	tests := []struct {
		pageSize int32
		messages int
	}{
		{0, 2},    // 100 + 150 (default page size 1,000)
		{7, 36},   // 250 / 7, rounded up
		{100, 3},  // 100 + 100 + 50
		{1000, 2}, // 100 + 150
	}
	for _, tt := range tests {
		groups, messages, revisions := collectGroups(t, srv.Client, &pb.EffectiveGroupsRequest{TenantId: "chain", PrincipalId: "u", PageSize: tt.pageSize})
		if len(groups) != 250 || messages != tt.messages || len(revisions) != 1 {
			t.Errorf("page_size %d: %d groups in %d messages on revisions %v, want 250 in %d", tt.pageSize, len(groups), messages, revisions, tt.messages)
		}
	}
}

func TestEffectiveGroupsRefusals(t *testing.T) {
	srv := servertest.Start(t)
	call := func(req *pb.EffectiveGroupsRequest) error {
		return srv.Client.EachGroup(ctx(t), req, func(*pb.EffectiveGroupsResponse) error { return nil })
	}
	invalid := []struct {
		name  string
		req   *pb.EffectiveGroupsRequest
		field string
	}{
		{"malformed principal", &pb.EffectiveGroupsRequest{TenantId: "contoso", PrincipalId: "u frank"}, "principal_id"},
		{"missing principal", &pb.EffectiveGroupsRequest{TenantId: "contoso"}, "principal_id"},
		{"missing tenant", &pb.EffectiveGroupsRequest{PrincipalId: "u-frank"}, "tenant_id"},
		{"page size too large", &pb.EffectiveGroupsRequest{TenantId: "contoso", PrincipalId: "u-frank", PageSize: 10_001}, "page_size"},
		{"negative page size", &pb.EffectiveGroupsRequest{TenantId: "contoso", PrincipalId: "u-frank", PageSize: -1}, "page_size"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			if fields := badRequestFields(t, call(tt.req)); !slices.Equal(fields, []string{tt.field}) {
				t.Errorf("fields %v, want [%s]", fields, tt.field)
			}
		})
	}
	notFound := []struct {
		name           string
		req            *pb.EffectiveGroupsRequest
		kind, resource string
	}{
		{"unknown principal", &pb.EffectiveGroupsRequest{TenantId: "contoso", PrincipalId: "u-nobody"}, "principal", "u-nobody"},
		{"unknown tenant", &pb.EffectiveGroupsRequest{TenantId: "fabrikam", PrincipalId: "u-frank"}, "tenant", "fabrikam"},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(call(tt.req))
			if st.Code() != codes.NotFound {
				t.Fatalf("got %v, want NotFound", st.Err())
			}
			var info *errdetails.ResourceInfo
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.ResourceInfo); ok {
					info = ri
				}
			}
			if info.GetResourceType() != tt.kind || info.GetResourceName() != tt.resource {
				t.Errorf("ResourceInfo = %v, want %s %s", info, tt.kind, tt.resource)
			}
		})
	}
	t.Run("min_revision not reached", func(t *testing.T) {
		c, cancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
		defer cancel()
		err := srv.Client.EachGroup(c, &pb.EffectiveGroupsRequest{TenantId: "contoso", PrincipalId: "u-frank", Consistency: &pb.Consistency{MinRevision: 9}}, func(*pb.EffectiveGroupsResponse) error { return nil })
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("got %v, want DeadlineExceeded", err)
		}
	})
}

// TestEffectiveGroupsStopsWhenTheClientCancels cancels a stream of 20,000 groups after its first message: the
// server must end the call (its only streaming slot frees up at once) and leave no goroutine behind.
func TestEffectiveGroupsStopsWhenTheClientCancels(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{Limits: server.Limits{MaxConcurrentStreams: 1}}, chainTenant(t, 20_000))
	short := &pb.EffectiveGroupsRequest{TenantId: "chain", PrincipalId: "g1"}
	shortCall := func() error {
		return srv.Client.EachGroup(ctx(t), short, func(*pb.EffectiveGroupsResponse) error { return nil })
	}
	expectCancelFreesTheStream(t, shortCall, func(cctx context.Context) (func() error, error) {
		stream, err := srv.Client.Decisions.EffectiveGroups(cctx, &pb.EffectiveGroupsRequest{TenantId: "chain", PrincipalId: "u", PageSize: 10})
		if err != nil {
			return nil, err
		}
		return func() error { _, err := stream.Recv(); return err }, nil
	})
}

// TestEffectiveGroupsForCheckersAndInMetrics: a checker token may ask (it is a DecisionService question), a
// caller without one may not, and the calls are counted per code.
func TestEffectiveGroupsForCheckersAndInMetrics(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{Tokens: tokens(t), Metrics: true})
	dial := func(token string) *client.Client {
		c, err := client.Dial(srv.Addr, client.Options{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	req := &pb.EffectiveGroupsRequest{TenantId: "contoso", PrincipalId: "u-frank"}
	noop := func(*pb.EffectiveGroupsResponse) error { return nil }
	if err := dial(checkerToken).EachGroup(ctx(t), req, noop); err != nil {
		t.Errorf("checker: %v, want OK", err)
	}
	if err := dial("").EachGroup(ctx(t), req, noop); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
	_ = dial(checkerToken).EachGroup(ctx(t), &pb.EffectiveGroupsRequest{TenantId: "contoso", PrincipalId: "u-nobody"}, noop)
	web := httptest.NewServer(srv.Metrics.Handler())
	defer web.Close()
	resp, err := http.Get(web.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="EffectiveGroups",grpc_service="groupgate.v1.DecisionService",grpc_type="server_stream"} 1`,
		`grpc_server_handled_total{grpc_code="NotFound",grpc_method="EffectiveGroups",grpc_service="groupgate.v1.DecisionService",grpc_type="server_stream"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// TestEffectiveGroupsPathsAgreeWithCheckMembership: with include_paths, every group of every demo principal comes
// with the path CheckMembership gives for that group and principal, of length depth + 1; without it, no paths.
func TestEffectiveGroupsPathsAgreeWithCheckMembership(t *testing.T) {
	srv := servertest.Start(t)
	principals := []string{"u-frank", "u-gina", "u-erin", "u-dave", "u-mallory", "grp-eng-contractors", "grp-cycle-a", "grp-partners"}
	for _, p := range principals {
		var groups []*pb.EffectiveGroup
		err := srv.Client.EachGroup(ctx(t), &pb.EffectiveGroupsRequest{TenantId: "contoso", PrincipalId: p, IncludePaths: true}, func(r *pb.EffectiveGroupsResponse) error {
			groups = append(groups, r.GetGroups()...)
			return nil
		})
		if err != nil || len(groups) == 0 {
			t.Fatalf("%s: %d groups, %v", p, len(groups), err)
		}
		for _, g := range groups {
			m, err := srv.Client.CheckMembership(ctx(t), "contoso", g.GetId(), p)
			if err != nil {
				t.Fatal(err)
			}
			if !m.GetIsMember() || !slices.Equal(g.GetPath(), m.GetPath()) || len(g.GetPath()) != int(g.GetDepth())+1 {
				t.Errorf("%s in %s: path %v at depth %d, CheckMembership says %v %v", p, g.GetId(), g.GetPath(), g.GetDepth(), m.GetIsMember(), m.GetPath())
			}
		}
	}
	err := srv.Client.EachGroup(ctx(t), &pb.EffectiveGroupsRequest{TenantId: "contoso", PrincipalId: "u-frank"}, func(r *pb.EffectiveGroupsResponse) error {
		for _, g := range r.GetGroups() {
			if len(g.GetPath()) > 0 {
				t.Errorf("%s has a path %v without include_paths", g.GetId(), g.GetPath())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
