package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func summaryIDs(objs []*pb.ObjectSummary) []string {
	ids := make([]string, len(objs))
	for i, o := range objs {
		ids[i] = o.GetId()
	}
	return ids
}

func TestListTenants(t *testing.T) {
	a, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	snap := demo.Snapshot()
	snap.TenantId = "fabrikam"
	snap.Users = snap.Users[:3]
	snap.Groups = nil
	snap.AdministrativeUnits, snap.RoleAssignments = nil, nil // they name objects this copy lacks
	snap.Labels[2].PublishedTo = []string{"*"}                // it named a group this copy lacks
	b, err := directory.FromSnapshot(snap, 7)
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, a, b)
	resp, err := srv.Client.Decisions.ListTenants(ctx(t), &pb.ListTenantsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []*pb.TenantInfo{
		{TenantId: "contoso", Revision: 1, Users: 18, Groups: 20},
		{TenantId: "fabrikam", Revision: 7, Users: 3},
	}
	if len(resp.GetTenants()) != len(want) {
		t.Fatalf("tenants %v, want %v", resp.GetTenants(), want)
	}
	for i := range want {
		if !proto.Equal(resp.GetTenants()[i], want[i]) {
			t.Errorf("tenant %d = %v, want %v", i, resp.GetTenants()[i], want[i])
		}
	}
}

func TestSearchObjects(t *testing.T) {
	srv := servertest.Start(t)
	tests := []struct {
		name      string
		req       *pb.SearchObjectsRequest
		want      []string
		truncated bool
	}{
		{"id", &pb.SearchObjectsRequest{Query: "grp-finance"}, []string{"grp-finance", "grp-finance-emea", "grp-finance-interns"}, false},
		{"display name", &pb.SearchObjectsRequest{Query: "frank"}, []string{"u-frank"}, false},
		{"kinds", &pb.SearchObjectsRequest{Query: "engineering", Kinds: []pb.ObjectKind{pb.ObjectKind_OBJECT_KIND_USER}}, nil, false},
		{"limit", &pb.SearchObjectsRequest{Query: "g", Limit: 2}, []string{"grp-all-staff", "grp-berlin"}, true},
		{"service principals", &pb.SearchObjectsRequest{Query: "provisioning", Kinds: []pb.ObjectKind{pb.ObjectKind_OBJECT_KIND_SERVICE_PRINCIPAL}}, []string{"sp-hr-provisioning"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.TenantId = "contoso"
			resp, err := srv.Client.Decisions.SearchObjects(ctx(t), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := summaryIDs(resp.GetObjects()); !slices.Equal(got, tt.want) || resp.GetTruncated() != tt.truncated || resp.GetRevision() != 1 {
				t.Errorf("found %v truncated=%v revision %d, want %v truncated=%v revision 1", got, resp.GetTruncated(), resp.GetRevision(), tt.want, tt.truncated)
			}
		})
	}
	// A summary carries what a list shows.
	resp, err := srv.Client.Decisions.SearchObjects(ctx(t), &pb.SearchObjectsRequest{TenantId: "contoso", Query: "grp-tier0-admins", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := &pb.ObjectSummary{Id: "grp-tier0-admins", Kind: pb.ObjectKind_OBJECT_KIND_GROUP, DisplayName: "Tier 0 Admins",
		GroupKind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, IsAssignableToRole: true}
	if len(resp.GetObjects()) != 1 || !proto.Equal(resp.GetObjects()[0], want) {
		t.Errorf("summary %v, want %v", resp.GetObjects(), want)
	}
}

func TestLookupObjects(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := srv.Client.Decisions.LookupObjects(ctx(t), &pb.LookupObjectsRequest{TenantId: "contoso",
		Ids: []string{"grp-engineering", "u-frank", "lbl-confidential", "grp-engineering", "sp-reporting"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := summaryIDs(resp.GetObjects()); !slices.Equal(got, []string{"grp-engineering", "u-frank", "sp-reporting"}) {
		t.Errorf("objects %v", got)
	}
	if !slices.Equal(resp.GetNotFound(), []string{"lbl-confidential"}) {
		t.Errorf("not found %v, want the label id", resp.GetNotFound())
	}
	if f := resp.GetObjects()[1]; f.GetDisplayName() != "Frank (Fabrikam guest)" || f.GetUserType() != pb.UserType_USER_TYPE_GUEST {
		t.Errorf("u-frank summary %v", f)
	}
}

func TestListLabels(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := srv.Client.Decisions.ListLabels(ctx(t), &pb.ListLabelsRequest{TenantId: "contoso"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range resp.GetLabels() {
		ids = append(ids, l.GetId())
	}
	want := []string{"lbl-general", "lbl-docs-only", "lbl-confidential", "lbl-draft", "lbl-highly-confidential"}
	if !slices.Equal(ids, want) {
		t.Errorf("labels %v, want by priority %v", ids, want)
	}
}

func TestDescribeGroup(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := srv.Client.Decisions.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: "grp-finance"})
	if err != nil {
		t.Fatal(err)
	}
	g := resp.GetGroup()
	if g.GetLabel().GetId() != "lbl-confidential" || g.GetLabel().GetGuestsAllowed() || g.GetKind() != pb.GroupKind_GROUP_KIND_SECURITY {
		t.Errorf("label/kind: %v", g)
	}
	if got := summaryIDs(g.GetOwners()); !slices.Equal(got, []string{"u-oscar"}) {
		t.Errorf("owners %v", got)
	}
	// u-dave; grp-finance-emea (u-erin); grp-finance-interns (u-mallory) = 5 transitive members.
	if g.GetDirectMemberCount() != 3 || g.GetEffectiveMemberCount() != 5 || !g.GetEffectiveMemberCountExact() || g.GetNextPageToken() != "" {
		t.Errorf("counts: direct %d effective %d exact %v next %q", g.GetDirectMemberCount(), g.GetEffectiveMemberCount(), g.GetEffectiveMemberCountExact(), g.GetNextPageToken())
	}
	var rows []string
	for _, m := range g.GetMembers() {
		rows = append(rows, fmt.Sprintf("%s:%d/%d:%v:%v", m.GetObject().GetId(), m.GetDirectMemberCount(), m.GetEffectiveMemberCount(), m.GetEffectiveMemberCountExact(), m.GetContainsGuest()))
	}
	wantRows := []string{"u-dave:0/0:false:false", "grp-finance-emea:1/1:true:false", "grp-finance-interns:1/1:true:false"}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("members %v, want %v", rows, wantRows)
	}
	if len(g.GetMemberLabels()) != 1 || g.GetMemberLabels()[0].GetId() != "lbl-confidential" {
		t.Errorf("member labels %v, want grp-finance-emea's", g.GetMemberLabels())
	}

	// Engineering: the contractors' sub-group holds the guest.
	resp, err = srv.Client.Decisions.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: "grp-engineering"})
	if err != nil {
		t.Fatal(err)
	}
	sub := resp.GetGroup().GetMembers()[2]
	if sub.GetObject().GetId() != "grp-eng-contractors" || !sub.GetContainsGuest() || sub.GetObject().GetLabelId() != "lbl-general" {
		t.Errorf("grp-eng-contractors row: %v", sub)
	}
}

// TestDescribeGroupPages walks a big group's direct members page by page, and checks that counts beyond the
// server's budget are reported as lower bounds rather than walked.
func TestDescribeGroupPages(t *testing.T) {
	snap := &pb.Snapshot{TenantId: "big"}
	top := &pb.Group{Id: "top", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED}
	for i := range 2500 {
		id := fmt.Sprintf("u%04d", i)
		snap.Users = append(snap.Users, &pb.User{Id: id, UserType: pb.UserType_USER_TYPE_MEMBER})
		top.Members = append(top.Members, id)
	}
	snap.Groups = []*pb.Group{top}
	d, err := directory.FromSnapshot(snap, 1)
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, d)
	var all []string
	token := ""
	for page := 0; ; page++ {
		resp, err := srv.Client.Decisions.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "big", Id: "top", PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range resp.GetGroup().GetMembers() {
			all = append(all, m.GetObject().GetId())
		}
		token = resp.GetGroup().GetNextPageToken()
		if token == "" {
			if page != 2 {
				t.Errorf("%d pages, want 3", page+1)
			}
			break
		}
	}
	if len(all) != 2500 || all[0] != "u0000" || all[2499] != "u2499" {
		t.Errorf("%d members across pages, first %s last %s", len(all), all[0], all[len(all)-1])
	}
}

func TestDescribeUser(t *testing.T) {
	srv := servertest.Start(t)
	resp, err := srv.Client.Decisions.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: "u-erin"})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetPrincipal()
	// Erin holds no role herself; Tier 0 Admins (role-assignable, she is a direct member) gives her Groups Administrator.
	if len(p.GetDirectoryRoles()) != 0 || !slices.Equal(p.GetEffectiveRoles(), []string{"Groups Administrator"}) || p.GetDirectGroupCount() != 3 {
		t.Errorf("u-erin: %v", p)
	}
	resp, err = srv.Client.Decisions.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: "sp-role-manager"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(resp.GetPrincipal().GetAppPermissions(), "RoleManagement.ReadWrite.Directory") {
		t.Errorf("sp-role-manager: %v", resp.GetPrincipal())
	}
}

func TestExploreRefusals(t *testing.T) {
	srv := servertest.Start(t)
	c := srv.Client.Decisions
	many := make([]string, 1001)
	for i := range many {
		many[i] = "u-dave"
	}
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"empty query", func() error {
			_, err := c.SearchObjects(ctx(t), &pb.SearchObjectsRequest{TenantId: "contoso"})
			return err
		}, codes.InvalidArgument, "query"},
		{"limit above 50", func() error {
			_, err := c.SearchObjects(ctx(t), &pb.SearchObjectsRequest{TenantId: "contoso", Query: "a", Limit: 51})
			return err
		}, codes.InvalidArgument, "limit"},
		{"unknown kind", func() error {
			_, err := c.SearchObjects(ctx(t), &pb.SearchObjectsRequest{TenantId: "contoso", Query: "a", Kinds: []pb.ObjectKind{9}})
			return err
		}, codes.InvalidArgument, "kinds[0]"},
		{"unknown tenant", func() error {
			_, err := c.SearchObjects(ctx(t), &pb.SearchObjectsRequest{TenantId: "nowhere", Query: "a"})
			return err
		}, codes.NotFound, ""},
		{"too many ids", func() error {
			_, err := c.LookupObjects(ctx(t), &pb.LookupObjectsRequest{TenantId: "contoso", Ids: many})
			return err
		}, codes.InvalidArgument, "ids"},
		{"malformed id", func() error {
			_, err := c.LookupObjects(ctx(t), &pb.LookupObjectsRequest{TenantId: "contoso", Ids: []string{"u dave"}})
			return err
		}, codes.InvalidArgument, "ids[0]"},
		{"unknown object", func() error {
			_, err := c.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: "grp-nope"})
			return err
		}, codes.NotFound, ""},
		{"page size above 1000", func() error {
			_, err := c.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: "grp-finance", PageSize: 1001})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"forged page token", func() error {
			_, err := c.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: "grp-finance", PageToken: "-1"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"page token beyond the end", func() error {
			_, err := c.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: "grp-finance", PageToken: "99"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"labels of no tenant", func() error { _, err := c.ListLabels(ctx(t), &pb.ListLabelsRequest{}); return err }, codes.InvalidArgument, "tenant_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != tt.code {
				t.Fatalf("%v, want %v", err, tt.code)
			}
			switch tt.code {
			case codes.InvalidArgument:
				if fields := badRequestFields(t, err); !slices.Contains(fields, tt.field) {
					t.Errorf("fields %v, want %s", fields, tt.field)
				}
			case codes.NotFound:
				st, _ := status.FromError(err)
				if len(st.Details()) == 0 {
					t.Errorf("NOT_FOUND without ResourceInfo: %v", err)
				} else if _, ok := st.Details()[0].(*errdetails.ResourceInfo); !ok {
					t.Errorf("NOT_FOUND detail %T, want ResourceInfo", st.Details()[0])
				}
			}
		})
	}
}

// TestExploreNeedsTheCheckerRole: the look-ups are DecisionService calls, open to checkers, closed to strangers.
func TestExploreNeedsTheCheckerRole(t *testing.T) {
	for token, want := range map[string]codes.Code{"": codes.Unauthenticated, "wrong-token-0123456789": codes.Unauthenticated, checkerToken: codes.OK} {
		srv := servertest.StartWith(t, servertest.Options{Tokens: tokens(t), Client: client.Options{Token: token}})
		_, err := srv.Client.Decisions.ListTenants(ctx(t), &pb.ListTenantsRequest{})
		if status.Code(err) != want {
			t.Errorf("ListTenants with token %q: %v, want %v", token, err, want)
		}
		_, err = srv.Client.Decisions.SearchObjects(ctx(t), &pb.SearchObjectsRequest{TenantId: "contoso", Query: "a"})
		if status.Code(err) != want {
			t.Errorf("SearchObjects with token %q: %v, want %v", token, err, want)
		}
	}
}

// TestDescribeMemberFindings: each direct member carries what Audit says of it where it stands in the caller's
// tree (ancestor_ids, then the group), in Audit's words, so that the explorer marks the tree from the server's
// policy; a chain that is not a nesting path is refused.
func TestDescribeMemberFindings(t *testing.T) {
	srv := servertest.Start(t)
	audit := map[string]string{} // rule|path -> message
	stream, err := srv.Client.Decisions.Audit(ctx(t), &pb.AuditRequest{TenantId: "contoso"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			break
		}
		for _, f := range r.GetFindings() {
			audit[f.GetRule().String()+"|"+strings.Join(f.GetPath(), ">")] = f.GetMessage()
		}
	}
	// Board (no guests allowed) also holds the contractors, whose member Frank is a guest: Audit names Frank once
	// (the shortest path), the tree shows him under the contractors too.
	if _, err := srv.Client.Directory.WriteChanges(ctx(t), &pb.WriteChangesRequest{TenantId: "contoso", Changes: []*pb.Change{
		{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: "grp-board", MemberId: "grp-eng-contractors"}}}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		group     string
		ancestors []string
		want      map[string][]string // member -> "RULE|path" of its findings
		fromAudit bool                // the findings are Audit's, word for word
	}{
		{"a direct guest", "grp-board", nil, map[string][]string{"u-frank": {"RULE_LABEL_BLOCKS_GUESTS|grp-board>u-frank"}, "u-alice": nil}, true},
		{"an unlabelled group in a labelled one", "grp-vendors", nil, map[string][]string{"grp-partners": {"RULE_NESTED_GROUP_UNLABELED|grp-partners>grp-vendors"}}, true},
		{"a guest deeper in the tree", "grp-eng-contractors", []string{"grp-board"},
			map[string][]string{"u-frank": {"RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE|grp-board>grp-eng-contractors>u-frank"}}, false},
		{"the same group opened on its own", "grp-eng-contractors", nil, map[string][]string{"u-frank": nil}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.Client.Decisions.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: tt.group, AncestorIds: tt.ancestors})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range resp.GetGroup().GetMembers() {
				want, listed := tt.want[m.GetObject().GetId()]
				if !listed {
					continue
				}
				var got []string
				for _, f := range m.GetFindings() {
					key := f.GetRule().String() + "|" + strings.Join(f.GetPath(), ">")
					got = append(got, key)
					if msg, ok := audit[key]; tt.fromAudit && (!ok || msg != f.GetMessage()) {
						t.Errorf("%s: message %q, Audit says %q", key, f.GetMessage(), msg)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: findings %v, want %v", m.GetObject().GetId(), got, want)
				}
			}
		})
	}
	for _, bad := range []struct {
		ancestors []string
		field     string
	}{
		{[]string{"grp-nope"}, "ancestor_ids[0]"},
		{[]string{"grp-finance"}, "ancestor_ids[0]"}, // the contractors are not in Finance
		{[]string{"grp-board", "grp-engineering"}, "ancestor_ids[0]"},
	} {
		_, err := srv.Client.Decisions.DescribeObject(ctx(t), &pb.DescribeObjectRequest{TenantId: "contoso", Id: "grp-eng-contractors", AncestorIds: bad.ancestors})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("ancestors %v: %v, want InvalidArgument naming %s", bad.ancestors, err, bad.field)
		}
	}
}
