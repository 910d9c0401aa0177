package entra_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"github.com/groupgate/groupgate/entra"
	"github.com/groupgate/groupgate/entra/graphtest"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const tenant = "contoso-sync"

// labelsFile loads label definitions the way --labels does, from a file.
func labelsFile(tb testing.TB, data []byte) []*pb.Label {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "labels.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	l, err := entra.LoadLabels(path)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// newSyncer returns a syncer on a fresh stand-in; its client never really sleeps and records the waits.
func newSyncer(t *testing.T, store entra.StateStore) (*entra.Syncer, *graphtest.Server, *[]time.Duration) {
	t.Helper()
	g := graphtest.New(graphtest.Crafted())
	t.Cleanup(g.Close)
	var waits []time.Duration
	c := &entra.Client{Endpoint: g.URL, Tokens: entra.StaticToken(g.Token), HTTP: g.Client(),
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	return &entra.Syncer{Tenant: tenant, Graph: c, Labels: labelsFile(t, []byte(graphtest.LabelsJSON)), Store: store}, g, &waits
}

// committedSyncer is a syncer that has read and committed its first, full round.
func committedSyncer(t *testing.T) (*entra.Syncer, *graphtest.Server) {
	t.Helper()
	s, g, _ := newSyncer(t, nil)
	first, err := s.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	return s, g
}

func find[T interface{ GetId() string }](list []T, id string) T {
	for _, x := range list {
		if x.GetId() == id {
			return x
		}
	}
	var zero T
	return zero
}

func TestFullSyncMapsEveryProperty(t *testing.T) {
	s, g, _ := newSyncer(t, nil)
	r, err := s.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Full || r.Prev != nil || len(r.Changes) != 0 {
		t.Errorf("first round: full %v, prev %v, %d changes; want a full round with nothing to diff against", r.Full, r.Prev != nil, len(r.Changes))
	}
	snap := r.Snapshot
	if _, err := directory.FromSnapshot(snap, 1); err != nil {
		t.Fatalf("the synced snapshot does not load: %v", err)
	}
	users := map[string]string{}
	for _, u := range snap.GetUsers() {
		users[u.GetId()] = fmt.Sprintf("%s %v %v", u.GetDisplayName(), u.GetUserType(), u.GetDirectoryRoles())
	}
	for id, want := range map[string]string{
		graphtest.UserAlice: "Alice Groups Admin USER_TYPE_MEMBER [Groups Administrator]",
		graphtest.UserBob:   "Bob Scoped Admin USER_TYPE_MEMBER []", // scoped roles: role assignments
		graphtest.UserGina:  "Gina (Northwind guest) USER_TYPE_GUEST []",
		graphtest.UserPriya: "Priya Privileged Roles USER_TYPE_MEMBER [Privileged Role Administrator]",
		graphtest.UserOscar: "Oscar Owner USER_TYPE_MEMBER []", // a custom role, named like a built-in one: a role assignment
	} {
		if users[id] != want {
			t.Errorf("user %s = %q, want %q", id, users[id], want)
		}
	}
	if len(users) != 10 {
		t.Errorf("%d users, want 10", len(users))
	}
	groups := map[string]string{}
	for _, g := range snap.GetGroups() {
		groups[g.GetId()] = fmt.Sprintf("%v %v onprem=%v label=%q role=%v roles=%v members=%v owners=%v", g.GetKind(), g.GetMembership(),
			g.GetOnPremisesSynced(), g.GetLabelId(), g.GetIsAssignableToRole(), g.GetDirectoryRoles(), g.GetMembers(), g.GetOwners())
	}
	for id, want := range map[string]string{
		// The device member is not in groupgate's model and is left out; the members came in two entries.
		graphtest.GroupConf:   `GROUP_KIND_SECURITY MEMBERSHIP_ASSIGNED onprem=false label="lbl-confidential" role=false roles=[] members=[u-m1 u-m2 u-m3 u-m4 u-oscar] owners=[u-oscar]`,
		graphtest.GroupRole:   `GROUP_KIND_SECURITY MEMBERSHIP_ASSIGNED onprem=false label="" role=true roles=[Helpdesk Administrator] members=[u-erin] owners=[]`,
		graphtest.GroupDyn:    `GROUP_KIND_SECURITY MEMBERSHIP_DYNAMIC onprem=false label="" role=false roles=[] members=[] owners=[]`,
		graphtest.GroupMail:   `GROUP_KIND_MAIL_ENABLED_SECURITY MEMBERSHIP_ASSIGNED onprem=false label="" role=false roles=[] members=[] owners=[]`,
		graphtest.GroupDL:     `GROUP_KIND_DISTRIBUTION MEMBERSHIP_ASSIGNED onprem=false label="" role=false roles=[] members=[] owners=[]`,
		graphtest.GroupOnPrem: `GROUP_KIND_SECURITY MEMBERSHIP_ASSIGNED onprem=true label="" role=false roles=[] members=[] owners=[]`,
		graphtest.GroupM365:   `GROUP_KIND_MICROSOFT_365 MEMBERSHIP_ASSIGNED onprem=false label="" role=false roles=[] members=[sp-provisioning u-oscar] owners=[u-oscar]`,
	} {
		if groups[id] != want {
			t.Errorf("group %s:\n got %s\nwant %s", id, groups[id], want)
		}
	}
	// Role assignments other than tenant-wide built-in roles (those are directory_roles above): Bob's Groups
	// Administrator over a unit and over one group, Oscar's custom role with its actions; the definitions they
	// use.
	var roles []string
	for _, a := range snap.GetRoleAssignments() {
		roles = append(roles, a.GetPrincipalId()+" "+a.GetRoleDefinitionId()+" "+a.GetDirectoryScopeId())
	}
	for _, d := range snap.GetRoleDefinitions() {
		roles = append(roles, fmt.Sprintf("def %s %q builtin=%v %v", d.GetId(), d.GetDisplayName(), d.GetIsBuiltIn(), d.GetAllowedResourceActions()))
	}
	if want := []string{
		graphtest.GroupRole + " rd-helpdesk /administrativeUnits/" + graphtest.UnitVault, // the group is the principal
		"u-bob rd-groups /administrativeUnits/" + graphtest.UnitEMEA,
		"u-bob rd-groups /" + graphtest.GroupM365,
		"u-oscar custom-groups /",
		`def custom-groups "Groups Administrator" builtin=false [microsoft.directory/groups.security/members/update microsoft.directory/groups/basic/read]`,
		`def rd-groups "Groups Administrator" builtin=true [microsoft.directory/groups/assignedLabels/update microsoft.directory/groups/members/update microsoft.directory/groups/owners/update]`,
		`def rd-helpdesk "Helpdesk Administrator" builtin=true [microsoft.directory/users/password/update]`,
	}; !slices.Equal(roles, want) {
		t.Errorf("roles:\n got %q\nwant %q", roles, want)
	}
	// Administrative units: users and groups (the device is left out), restricted management as Graph says.
	var units []string
	for _, u := range snap.GetAdministrativeUnits() {
		units = append(units, fmt.Sprintf("%s %q restricted=%v %v", u.GetId(), u.GetDisplayName(), u.GetIsMemberManagementRestricted(), u.GetMembers()))
	}
	if want := []string{
		`au-emea "EMEA" restricted=false [g-confidential u-m3]`,
		`au-vault "Vault" restricted=true [g-vault u-m4]`,
	}; !slices.Equal(units, want) {
		t.Errorf("units:\n got %q\nwant %q", units, want)
	}
	sp := find(snap.GetServicePrincipals(), graphtest.SPApp)
	if sp == nil || !slices.Equal(sp.GetAppPermissions(), []string{"GroupMember.ReadWrite.All"}) || sp.GetDisplayName() != "Provisioning app" {
		t.Errorf("service principal %s = %v, want Provisioning app with GroupMember.ReadWrite.All", graphtest.SPApp, sp)
	}
	if find(snap.GetServicePrincipals(), graphtest.GraphSPID) == nil {
		t.Errorf("Microsoft Graph's own service principal is missing")
	}
	st := snap.GetSettings()
	if !slices.Equal(st.GetLicenses(), []string{"ENTRA_ID_P1"}) || !st.GetSecurityGroupLabelsEnabled() || !st.GetUnifiedGroupLabelsEnabled() ||
		st.AllowGuestsInGroups == nil || !st.GetAllowGuestsInGroups() {
		t.Errorf("settings = %v; want P1 only (P2's plan is not provisioned), labels on for both kinds, guests allowed", st)
	}
	if l := find(snap.GetLabels(), graphtest.LabelConf); l == nil || l.GetGuestsAllowed() || l.GetPriority() != 10 {
		t.Errorf("label = %v", l)
	}

	// The first request of each delta query carries the $select; every later one only the link Graph gave.
	var selects, links int
	for _, req := range g.Requests() {
		if strings.HasPrefix(req, "/v1.0/groups/delta") || strings.HasPrefix(req, "/v1.0/users/delta") {
			switch {
			case strings.Contains(req, "select"):
				selects++
			case strings.Contains(req, "skiptoken"):
				links++
			}
		}
	}
	if selects != 2 || links < 5 {
		t.Errorf("%d delta requests with $select (want 2) and %d through nextLinks (want >= 5: 2 objects a page)", selects, links)
	}
}

func changeStrings(cs []*pb.Change) []string {
	var out []string
	for _, c := range cs {
		b, _ := protojson.Marshal(c)
		var compact bytes.Buffer
		_ = json.Compact(&compact, b) // protojson varies its spacing on purpose
		out = append(out, compact.String())
	}
	slices.Sort(out)
	return out
}

func TestDeltaRoundWritesTheSmallestChanges(t *testing.T) {
	ctx := context.Background()
	s, g := committedSyncer(t)
	g.Update(func(t *graphtest.Tenant) {
		m365 := t.Groups[graphtest.GroupM365]
		m365.Members = append(m365.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: graphtest.UserGina})
		conf := t.Groups[graphtest.GroupConf]
		conf.Members = slices.DeleteFunc(conf.Members, func(r graphtest.Ref) bool { return r.ID == "u-m1" })
		delete(t.Users, "u-m2")
		conf.Members = slices.DeleteFunc(conf.Members, func(r graphtest.Ref) bool { return r.ID == "u-m2" })
		t.Users["u-new"] = &graphtest.User{DisplayName: "New Hire", UserType: "Member"}
		conf.Members = append(conf.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: "u-new"})
		delete(t.Groups, graphtest.GroupDL)
		t.Groups[graphtest.GroupDyn].DisplayName = "Everyone (dynamic)"
		t.RoleAssignments = append(t.RoleAssignments, graphtest.RoleAssignment{PrincipalID: graphtest.UserBob, RoleDefinitionID: "rd-helpdesk", DirectoryScopeID: "/"})
		t.Settings["Group.Security"]["EnableMIPLabels"] = "false"
		// A unit gains a member; Bob loses his role over one group.
		emea := t.Units[graphtest.UnitEMEA]
		emea.Members = append(emea.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: "u-m1"})
		t.RoleAssignments = slices.DeleteFunc(t.RoleAssignments, func(a graphtest.RoleAssignment) bool {
			return a.PrincipalID == graphtest.UserBob && a.DirectoryScopeID == "/"+graphtest.GroupM365
		})
		t.ServicePrincipals["sp-new"] = "New app"
		t.AppRoleAssignedTo = append(t.AppRoleAssignedTo, graphtest.AppRoleAssignment{AppRoleID: "ar-group-rw", PrincipalID: "sp-new", PrincipalType: "ServicePrincipal"})
	})
	r, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Full {
		t.Error("second round was full; want a delta round")
	}
	want := []string{
		`{"addMember":{"groupId":"g-confidential","memberId":"u-new"}}`,
		`{"addMember":{"groupId":"g-m365","memberId":"u-gina"}}`,
		`{"deleteObject":{"id":"g-distribution"}}`,
		`{"deleteObject":{"id":"u-m2"}}`,
		`{"removeMember":{"groupId":"g-confidential","memberId":"u-m1"}}`,
		`{"removeMember":{"groupId":"g-confidential","memberId":"u-m2"}}`,
		`{"removeRoleAssignment":{"principalId":"u-bob","roleDefinitionId":"rd-groups","directoryScopeId":"/g-m365"}}`,
		`{"updateSettings":{"licenses":["ENTRA_ID_P1"],"unifiedGroupLabelsEnabled":true,"allowGuestsInGroups":true}}`,
		`{"upsertAdministrativeUnit":{"id":"au-emea","displayName":"EMEA","members":["g-confidential","u-m1","u-m3"]}}`,
		`{"upsertGroup":{"id":"g-dynamic","displayName":"Everyone (dynamic)","kind":"GROUP_KIND_SECURITY","membership":"MEMBERSHIP_DYNAMIC"}}`,
		`{"upsertServicePrincipal":{"id":"sp-new","displayName":"New app","appPermissions":["Group.ReadWrite.All"]}}`,
		`{"upsertUser":{"id":"u-bob","displayName":"Bob Scoped Admin","userType":"USER_TYPE_MEMBER","directoryRoles":["Helpdesk Administrator"]}}`,
		`{"upsertUser":{"id":"u-new","displayName":"New Hire","userType":"USER_TYPE_MEMBER"}}`,
	}
	if got := changeStrings(r.Changes); !slices.Equal(got, want) {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The changes applied to the previous snapshot give the new one.
	prev, err := directory.FromSnapshot(r.Prev, 1)
	if err != nil {
		t.Fatal(err)
	}
	applied, _, err := prev.Apply(r.Changes, 2)
	if err != nil {
		t.Fatalf("the round's changes do not apply: %v", err)
	}
	if got, want := applied.Counts(), mustLoad(t, r.Snapshot).Counts(); got != want {
		t.Errorf("applied counts %+v, snapshot counts %+v", got, want)
	}
	if err := s.Commit(ctx, r); err != nil {
		t.Fatal(err)
	}
	again, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Changes) != 0 {
		t.Errorf("a round without changes in Graph gave %v", changeStrings(again.Changes))
	}
	if again.RequestID == r.RequestID {
		t.Error("two rounds from different delta links share a request id")
	}
}

// TestDeltaAnswersInAnyOrder: Graph may answer a delta query with an empty first page, a large group's entries
// apart from each other, and replays (graphtest.Server.Shuffle cites each); the sync then reads the same tenant
// and the same changes as from the stand-in's plain order.
func TestDeltaAnswersInAnyOrder(t *testing.T) {
	ctx := context.Background()
	plain, pg, _ := newSyncer(t, nil)
	shuffled, sg, _ := newSyncer(t, nil)
	sg.Shuffle = true
	for _, g := range []*graphtest.Server{pg, sg} {
		g.MembersPerEntry = 2 // g-confidential's 6 members in 3 entries
	}
	round := func(s *entra.Syncer) *entra.Round { return commitRound(t, ctx, s) }
	a, b := round(plain), round(shuffled)
	if b.ObjectsRead <= a.ObjectsRead {
		t.Errorf("the shuffled stand-in sent %d entries, the plain one %d: no replay", b.ObjectsRead, a.ObjectsRead)
	}
	if !proto.Equal(a.Snapshot, b.Snapshot) {
		t.Errorf("full read differs:\n%s", strings.Join(changeStrings(entra.Diff(a.Snapshot, b.Snapshot)), "\n"))
	}
	for _, g := range []*graphtest.Server{pg, sg} {
		g.Update(func(t *graphtest.Tenant) {
			conf := t.Groups[graphtest.GroupConf]
			conf.Members = slices.DeleteFunc(conf.Members, func(r graphtest.Ref) bool { return r.ID == "u-m1" || r.ID == "u-m3" })
			t.Users["u-new"] = &graphtest.User{DisplayName: "New Hire", UserType: "Member"}
			conf.Members = append(conf.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: "u-new"},
				graphtest.Ref{Type: "#microsoft.graph.user", ID: graphtest.UserGina}, graphtest.Ref{Type: "#microsoft.graph.user", ID: graphtest.UserBob})
			delete(t.Groups, graphtest.GroupDL)
			delete(t.Users, "u-m2")
			t.Groups[graphtest.GroupDyn].DisplayName = "Everyone (dynamic)"
		})
	}
	a, b = round(plain), round(shuffled)
	if got, want := changeStrings(b.Changes), changeStrings(a.Changes); !slices.Equal(got, want) || len(want) == 0 {
		t.Errorf("delta round changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !proto.Equal(a.Snapshot, b.Snapshot) {
		t.Errorf("delta round differs:\n%s", strings.Join(changeStrings(entra.Diff(a.Snapshot, b.Snapshot)), "\n"))
	}
}

// TestSoftDeletedUserKeepsItsMemberships: a deleted user comes in users/delta with @removed "changed"
// (concepts/delta-query-users.md); groups/delta names no membership change, since "users that have been temporary
// deleted keep their group memberships and won't appear in the delta result until they're permanently deleted"
// (concepts/delta-query-groups.md, "deltaLink response"). The snapshot drops the user and its memberships; a
// restore (the user back with no annotation) brings both back although no group entry named them.
func TestSoftDeletedUserKeepsItsMemberships(t *testing.T) {
	ctx := context.Background()
	s, g := committedSyncer(t)
	var saved *graphtest.User
	g.Update(func(t *graphtest.Tenant) { saved = t.Users["u-m1"]; delete(t.Users, "u-m1") })
	next := func() *entra.Round { return commitRound(t, ctx, s) }
	r := next()
	want := []string{`{"deleteObject":{"id":"u-m1"}}`, `{"removeMember":{"groupId":"g-confidential","memberId":"u-m1"}}`}
	if got := changeStrings(r.Changes); !slices.Equal(got, want) {
		t.Errorf("soft delete: changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	g.Update(func(t *graphtest.Tenant) { t.Users["u-m1"] = saved })
	r = next()
	want = []string{`{"addMember":{"groupId":"g-confidential","memberId":"u-m1"}}`,
		`{"upsertUser":{"id":"u-m1","displayName":"Member u-m1","userType":"USER_TYPE_MEMBER"}}`}
	if got := changeStrings(r.Changes); !slices.Equal(got, want) {
		t.Errorf("restore: changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A member leaving a unit (members@delta with @removed) and a unit deleted (@removed): the unit's new member
// list, the unit's deletion and the assignment scoped to it, which Graph drops with the unit and the build
// leaves out as soon as the unit is gone. A custom role assigned anew arrives with its definition.
func TestDeltaRoundRemovesUnitMembersAndUnits(t *testing.T) {
	ctx := context.Background()
	s, g := committedSyncer(t)
	g.Update(func(t *graphtest.Tenant) {
		vault := t.Units[graphtest.UnitVault]
		vault.Members = slices.DeleteFunc(vault.Members, func(r graphtest.Ref) bool { return r.ID == "u-m4" })
		delete(t.Units, graphtest.UnitEMEA)
		t.RoleAssignments = slices.DeleteFunc(t.RoleAssignments, func(a graphtest.RoleAssignment) bool {
			return a.DirectoryScopeID == "/administrativeUnits/"+graphtest.UnitEMEA
		})
		t.RoleDefinitions["custom-helpdesk"] = "Vault helpdesk"
		t.RoleActions["custom-helpdesk"] = []string{"microsoft.directory/users/password/update"}
		t.RoleAssignments = append(t.RoleAssignments, graphtest.RoleAssignment{PrincipalID: graphtest.UserErin,
			RoleDefinitionID: "custom-helpdesk", DirectoryScopeID: "/administrativeUnits/" + graphtest.UnitVault})
	})
	r, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"addRoleAssignment":{"principalId":"u-erin","roleDefinitionId":"custom-helpdesk","directoryScopeId":"/administrativeUnits/au-vault"}}`,
		`{"deleteObject":{"id":"au-emea"}}`,
		`{"removeRoleAssignment":{"principalId":"u-bob","roleDefinitionId":"rd-groups","directoryScopeId":"/administrativeUnits/au-emea"}}`,
		`{"upsertAdministrativeUnit":{"id":"au-vault","displayName":"Vault","isMemberManagementRestricted":true,"members":["g-vault"]}}`,
		`{"upsertRoleDefinition":{"id":"custom-helpdesk","displayName":"Vault helpdesk","allowedResourceActions":["microsoft.directory/users/password/update"]}}`,
	}
	if r.Full || !slices.Equal(changeStrings(r.Changes), want) {
		t.Errorf("full %v, changes:\n%s\nwant:\n%s", r.Full, strings.Join(changeStrings(r.Changes), "\n"), strings.Join(want, "\n"))
	}
	prev := mustLoad(t, r.Prev)
	applied, _, err := prev.Apply(r.Changes, 2)
	if err != nil {
		t.Fatalf("the round's changes do not apply: %v", err)
	}
	if got, want := len(applied.RoleAssignments()), len(r.Snapshot.GetRoleAssignments()); got != want {
		t.Errorf("applied: %d role assignments, snapshot %d", got, want)
	}
	if _, ok := applied.Unit(graphtest.UnitEMEA); ok {
		t.Error("the deleted unit survived the changes")
	}
}

func mustLoad(t *testing.T, s *pb.Snapshot) *directory.Directory {
	t.Helper()
	d, err := directory.FromSnapshot(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGoneDeltaLinkResyncsEverything(t *testing.T) {
	ctx := context.Background()
	s, g := committedSyncer(t)
	g.ExpireDeltaLinks()
	g.Update(func(t *graphtest.Tenant) { t.Users[graphtest.UserGina].DisplayName = "Gina G." })
	r, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("a 410 Gone must start a full resync, not fail: %v", err)
	}
	if !r.Resynced || !r.Full {
		t.Errorf("resynced %v full %v, want both", r.Resynced, r.Full)
	}
	if got := changeStrings(r.Changes); len(got) != 1 || !strings.Contains(got[0], "Gina G.") {
		t.Errorf("after a resync the changes are still only what changed; got %v", got)
	}
	gone := 0
	for _, req := range g.Requests() {
		if strings.Contains(req, "deltatoken") {
			gone++
		}
	}
	if gone == 0 {
		t.Error("the second round never used its delta link")
	}
}

// TestExpiredTokenCodeResyncs: besides 410, Graph answers an expired delta token with "a 40X-series error with
// error codes such as syncStateNotFound" (concepts/delta-query-overview.md, "Token duration"): that too starts a
// full resync.
func TestExpiredTokenCodeResyncs(t *testing.T) {
	s, g := committedSyncer(t)
	g.AddFault(graphtest.Fault{Path: "/v1.0/users/delta", Status: http.StatusBadRequest, Code: "syncStateNotFound", Times: 1})
	r, err := s.Next(context.Background())
	if err != nil {
		t.Fatalf("a 400 syncStateNotFound must start a full resync, not fail: %v", err)
	}
	if !r.Resynced || !r.Full {
		t.Errorf("resynced %v full %v, want both", r.Resynced, r.Full)
	}
}

// TestNestedInnerErrorCodeResyncs: an innererror "might recursively contain more innererror objects" and apps
// "must loop over the innererror objects, looking for the error codes" they expect (concepts/errors.md, "Code
// property"): a syncStateNotFound two levels down starts a full resync too.
func TestNestedInnerErrorCodeResyncs(t *testing.T) {
	s, g := committedSyncer(t)
	g.AddFault(graphtest.Fault{Path: "/v1.0/groups/delta", Status: http.StatusBadRequest, Times: 1,
		Body: `{"error": {"code": "invalidRequest", "message": "The request is malformed or incorrect.", "innerError": {"code": "badRequest",
  "innerError": {"code": "syncStateNotFound", "message": "The sync state generation is not found."}, "date": "2026-11-27T00:00:00"}}}`})
	r, err := s.Next(context.Background())
	if err != nil {
		t.Fatalf("a syncStateNotFound nested in innererror must start a full resync, not fail: %v", err)
	}
	if !r.Resynced || !r.Full {
		t.Errorf("resynced %v full %v, want both", r.Resynced, r.Full)
	}
}

func TestThrottlingIsRetriedAfterRetryAfter(t *testing.T) {
	s, g, waits := newSyncer(t, nil)
	s.Graph.Backoff = 40 * time.Millisecond
	g.AddFault(graphtest.Fault{Path: "/v1.0/users/delta", Status: 429, RetryAfter: "3", Times: 2})
	g.AddFault(graphtest.Fault{Path: "/v1.0/groups/delta", Status: 503, RetryAfter: "1", Times: 1})
	g.AddFault(graphtest.Fault{Path: "/v1.0/subscribedSkus", Status: 503, Times: 2}) // no Retry-After: backoff
	r, err := s.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w := *waits
	if len(w) != 5 || w[0] != 3*time.Second || w[1] != 3*time.Second || w[2] != time.Second {
		t.Fatalf("waits %v; want 3s, 3s (Retry-After of the 429s), 1s (of the 503), then two backoffs", w)
	}
	if w[3] <= 0 || w[3] > 41*time.Millisecond || w[4] <= 0 || w[4] > 81*time.Millisecond {
		t.Errorf("backoffs %v, %v: want jittered within 40ms then 80ms", w[3], w[4])
	}
	if len(r.Snapshot.GetUsers()) != 10 {
		t.Errorf("after the retries %d users, want 10", len(r.Snapshot.GetUsers()))
	}
}

// TestGatewayTimeoutIsRetried: 504 Gateway Timeout "may occur together with 503" (concepts/errors.md, "HTTP status
// codes"), and Microsoft's own Graph SDK retry handler retries 429, 503 and 504 alike (concepts/throttling.md:
// "Microsoft Graph SDKs already implement handlers that rely on the Retry-After header or default to an
// exponential backoff"). One 504 in the middle of a million-user read must not throw the read away.
func TestGatewayTimeoutIsRetried(t *testing.T) {
	s, g, waits := newSyncer(t, nil)
	s.Graph.Backoff = 40 * time.Millisecond
	g.AddFault(graphtest.Fault{Path: "/v1.0/groups/delta", Status: http.StatusGatewayTimeout, Times: 1})
	g.AddFault(graphtest.Fault{Path: "/v1.0/users/delta", Status: http.StatusGatewayTimeout, RetryAfter: "2", Times: 1})
	if _, err := s.Next(context.Background()); err != nil {
		t.Fatalf("a 504 must be retried: %v", err)
	}
	if w := *waits; len(w) != 2 || w[0] != 2*time.Second || w[1] <= 0 || w[1] > 41*time.Millisecond {
		t.Fatalf("waits %v; want 2s (its Retry-After), then a backoff within 40ms", w)
	}
}

// TestFractionalRetryAfter: Graph's throttling example (concepts/throttling.md) answers "Retry-After: 2.128";
// the wait is those 2.128 s, not a backoff that would retry early.
func TestFractionalRetryAfter(t *testing.T) {
	s, g, waits := newSyncer(t, nil)
	s.Graph.Backoff = 40 * time.Millisecond
	g.AddFault(graphtest.Fault{Path: "/v1.0/users/delta", Status: 429, RetryAfter: "2.128", Times: 1})
	if _, err := s.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := *waits; len(w) != 1 || w[0] != 2128*time.Millisecond {
		t.Fatalf("waits %v; want [2.128s]", w)
	}
}

func TestFailuresNameTheURLAndThePermission(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*entra.Syncer, *graphtest.Server)
		want  []string
	}{
		{"wrong token", func(s *entra.Syncer, _ *graphtest.Server) { s.Graph.Tokens = entra.StaticToken("not-the-token") },
			[]string{"/v1.0/users/delta", "HTTP 401", "InvalidAuthenticationToken", "User.Read.All"}},
		{"permission Graph names", func(_ *entra.Syncer, g *graphtest.Server) {
			g.Deny("/v1.0/roleManagement", "RoleManagement.Read.Directory")
		}, []string{"/v1.0/roleManagement/directory/roleDefinitions", "HTTP 403", "Authorization_RequestDenied", "Graph names the missing permission: RoleManagement.Read.Directory"}},
		{"permission Graph does not name", func(_ *entra.Syncer, g *graphtest.Server) {
			g.AddFault(graphtest.Fault{Path: "/v1.0/subscribedSkus", Status: 403, Code: "Authorization_RequestDenied", Times: 1})
		}, []string{"/v1.0/subscribedSkus", "HTTP 403", "needs the Graph application permission Organization.Read.All"}},
		{"administrative units without their permission", func(_ *entra.Syncer, g *graphtest.Server) {
			g.AddFault(graphtest.Fault{Path: "/v1.0/directory/administrativeUnits/delta", Status: 403, Code: "Authorization_RequestDenied", Times: 1})
		}, []string{"/v1.0/directory/administrativeUnits/delta", "HTTP 403", "needs the Graph application permission AdministrativeUnit.Read.All"}},
		{"link to another host", func(_ *entra.Syncer, g *graphtest.Server) {
			g.AddFault(graphtest.Fault{Path: "/v1.0/users/delta", Status: 200, Times: 1,
				Body: `{"value": [], "@odata.nextLink": "https://elsewhere.example/v1.0/users/delta?$skiptoken=abc"}`})
		}, []string{"https://elsewhere.example/v1.0/users/delta?$skiptoken=…", "leaves the Graph endpoint"}},
		{"throttled for good", func(_ *entra.Syncer, g *graphtest.Server) {
			g.AddFault(graphtest.Fault{Path: "/beta/settings", Status: 429, RetryAfter: "1", Times: 100})
		}, []string{"/beta/settings", "HTTP 429", "gave up after 6 attempts"}},
		{"page does not parse", func(_ *entra.Syncer, g *graphtest.Server) {
			g.AddFault(graphtest.Fault{Path: "/v1.0/subscribedSkus", Status: 200, Body: `{"value": [{"skuPartNumber": `, Times: 1})
		}, []string{"/v1.0/subscribedSkus", "does not parse"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, g, _ := newSyncer(t, nil)
			tc.setup(s, g)
			_, err := s.Next(context.Background())
			if err == nil {
				t.Fatal("round succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), g.Token) || strings.Contains(err.Error(), "not-the-token") {
				t.Errorf("error %q shows a token", err)
			}
		})
	}
}

func TestUnknownLabelStopsTheRound(t *testing.T) {
	s, _, _ := newSyncer(t, nil)
	s.Labels = nil
	_, err := s.Next(context.Background())
	var ule *entra.UnknownLabelError
	if !errors.As(err, &ule) || ule.Label != graphtest.LabelConf || ule.Group != graphtest.GroupConf {
		t.Fatalf("err = %v; want an UnknownLabelError naming %s on %s", err, graphtest.LabelConf, graphtest.GroupConf)
	}
}

// recorder is a destination that keeps what it was given, failing when told to.
type recorder struct {
	rounds []*entra.Round
	fail   error
}

func (r *recorder) Write(_ context.Context, round *entra.Round) (string, error) {
	if r.fail != nil {
		return "", r.fail
	}
	r.rounds = append(r.rounds, round)
	return "recorded", nil
}

func TestFailedRoundLeavesStateAndDestinationUntouched(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json.gz")
	s, g, _ := newSyncer(t, &entra.FileState{Path: path})
	dest := &recorder{}
	if err := s.RunRound(ctx, dest); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g.Update(func(t *graphtest.Tenant) { delete(t.Users, graphtest.UserGina) })

	// Graph fails half-way (after the deltas were read), then the destination fails.
	g.AddFault(graphtest.Fault{Path: "/v1.0/subscribedSkus", Status: 500, Times: 1})
	if err := s.RunRound(ctx, dest); err == nil || !strings.Contains(err.Error(), "/v1.0/subscribedSkus") {
		t.Fatalf("round with a failing page: %v", err)
	}
	dest.fail = errors.New("server down")
	if err := s.RunRound(ctx, dest); err == nil {
		t.Fatal("round with a failing destination succeeded")
	}
	if now, _ := os.ReadFile(path); string(now) != string(saved) || len(dest.rounds) != 1 {
		t.Fatalf("failed rounds changed the state file or reached the destination (%d rounds)", len(dest.rounds))
	}

	// A new process resumes from the state file with deltas: the guest's removal is still to come, once.
	dest.fail = nil
	resumed := &entra.Syncer{Tenant: tenant, Graph: s.Graph, Labels: s.Labels, Store: &entra.FileState{Path: path}}
	if err := resumed.RunRound(ctx, dest); err != nil {
		t.Fatal(err)
	}
	last := dest.rounds[len(dest.rounds)-1]
	if last.Full || !slices.Equal(changeStrings(last.Changes), []string{`{"deleteObject":{"id":"u-gina"}}`}) {
		t.Errorf("resumed round: full %v, changes %v; want a delta deleting u-gina", last.Full, changeStrings(last.Changes))
	}
}

// TestDemoTenantRoundTrips serves the demo tenant through the stand-in and syncs it back: every object and
// attribute must come back as it was, which holds each mapping of SPEC §10 to its inverse.
func TestDemoTenantRoundTrips(t *testing.T) {
	want := demo.Snapshot()
	tenantG, labelsJSON, err := graphtest.FromSnapshot(want)
	if err != nil {
		t.Fatal(err)
	}
	g := graphtest.New(tenantG)
	defer g.Close()
	l := labelsFile(t, labelsJSON)
	s := &entra.Syncer{Tenant: want.GetTenantId(), Graph: &entra.Client{Endpoint: g.URL, Tokens: entra.StaticToken(g.Token), HTTP: g.Client()}, Labels: l}
	r, err := s.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Microsoft Graph's own service principal is in every tenant; the demo does not list it.
	got := r.Snapshot
	got.ServicePrincipals = slices.DeleteFunc(got.ServicePrincipals, func(sp *pb.ServicePrincipal) bool { return sp.GetId() == graphtest.GraphSPID })
	// The role-assignable group limit is not a Graph setting; the demo spells out Entra's default, 0 means it.
	if want.GetSettings().GetRoleAssignableGroupLimit() != 500 {
		t.Fatalf("demo limit %d", want.GetSettings().GetRoleAssignableGroupLimit())
	}
	want.Settings.RoleAssignableGroupLimit = 0
	// Graph lists every built-in role and the sync carries those its assignments use, as Graph defines them;
	// the demo leaves them to groupgate's table, from which the stand-in served them.
	got.RoleDefinitions = slices.DeleteFunc(got.RoleDefinitions, func(d *pb.RoleDefinition) bool {
		i := slices.IndexFunc(directory.BuiltInRoles(), func(r *directory.RoleDef) bool { return r.ID == d.GetId() })
		return d.GetIsBuiltIn() && i >= 0 && slices.Equal(d.GetAllowedResourceActions(), directory.BuiltInRoles()[i].Actions) &&
			!slices.ContainsFunc(want.GetRoleDefinitions(), func(w *pb.RoleDefinition) bool { return w.GetId() == d.GetId() })
	})
	if diff := changeStrings(entra.Diff(sorted(want), got)); len(diff) > 0 {
		t.Errorf("the demo tenant did not survive the trip through Graph; differences:\n%s", strings.Join(diff, "\n"))
	}
}

// sorted orders a snapshot's objects, lists and roles as a sync builds them.
func sorted(s *pb.Snapshot) *pb.Snapshot {
	s = proto.CloneOf(s)
	byID := func(a, b interface{ GetId() string }) int { return strings.Compare(a.GetId(), b.GetId()) }
	slices.SortFunc(s.Labels, func(a, b *pb.Label) int { return byID(a, b) })
	slices.SortFunc(s.Users, func(a, b *pb.User) int { return byID(a, b) })
	slices.SortFunc(s.ServicePrincipals, func(a, b *pb.ServicePrincipal) int { return byID(a, b) })
	slices.SortFunc(s.Groups, func(a, b *pb.Group) int { return byID(a, b) })
	for _, u := range s.Users {
		slices.Sort(u.DirectoryRoles)
	}
	for _, sp := range s.ServicePrincipals {
		slices.Sort(sp.DirectoryRoles)
		slices.Sort(sp.AppPermissions)
	}
	for _, g := range s.Groups {
		slices.Sort(g.Members)
		slices.Sort(g.Owners)
		slices.Sort(g.DirectoryRoles)
	}
	slices.SortFunc(s.RoleDefinitions, func(a, b *pb.RoleDefinition) int { return byID(a, b) })
	for _, d := range s.RoleDefinitions {
		slices.Sort(d.AllowedResourceActions)
	}
	slices.SortFunc(s.AdministrativeUnits, func(a, b *pb.AdministrativeUnit) int { return byID(a, b) })
	for _, u := range s.AdministrativeUnits {
		slices.Sort(u.Members)
	}
	slices.SortFunc(s.RoleAssignments, func(a, b *pb.RoleAssignment) int {
		return cmp.Or(strings.Compare(a.GetPrincipalId(), b.GetPrincipalId()), strings.Compare(a.GetRoleDefinitionId(), b.GetRoleDefinitionId()),
			strings.Compare(a.GetDirectoryScopeId(), b.GetDirectoryScopeId()))
	})
	return s
}

// commitRound reads the next round and commits it.
func commitRound(t *testing.T, ctx context.Context, s *entra.Syncer) *entra.Round {
	t.Helper()
	r, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, r); err != nil {
		t.Fatal(err)
	}
	return r
}
