package directory

import (
	"errors"
	"slices"
	"strings"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

const groupsAdminID = "fdd7a751-b60b-444a-984c-02652fe8fa1c"

// withPrivileges is base() plus a custom role, a restricted unit holding g2 and u1, and assignments at each
// kind of scope.
func withPrivileges() *pb.Snapshot {
	s := base()
	s.RoleDefinitions = []*pb.RoleDefinition{{Id: "r-custom", DisplayName: "Member Manager", AllowedResourceActions: []string{"microsoft.directory/groups.security/members/update"}}}
	s.AdministrativeUnits = []*pb.AdministrativeUnit{{Id: "au1", DisplayName: "EMEA", IsMemberManagementRestricted: true, Members: []string{"g2", "u1"}}}
	s.RoleAssignments = []*pb.RoleAssignment{
		{PrincipalId: "u1", RoleDefinitionId: groupsAdminID, DirectoryScopeId: "/administrativeUnits/au1"},
		{PrincipalId: "sp1", RoleDefinitionId: "r-custom", DirectoryScopeId: "/g1"},
		{PrincipalId: "u2", RoleDefinitionId: "r-custom", DirectoryScopeId: "/"},
	}
	return s
}

func TestPrivilegesLoadIndexAndExport(t *testing.T) {
	d, err := FromSnapshot(withPrivileges(), 1)
	if err != nil {
		t.Fatal(err)
	}
	u1, _ := d.Lookup("u1")
	g1, _ := d.Lookup("g1")
	g2, _ := d.Lookup("g2")
	gr := d.Grants(u1)
	if len(gr) != 1 || gr[0].Role.DisplayName != "Groups Administrator" || gr[0].Scope != ScopeUnit || gr[0].Unit.ID != "au1" {
		t.Fatalf("u1's grants = %+v, want Groups Administrator at au1", gr)
	}
	if !gr[0].Covers(d, g2) || gr[0].Covers(d, g1) {
		t.Fatalf("an au1 grant must cover g2 (a member) and not g1")
	}
	if !d.InRestrictedUnit(g2) || d.InRestrictedUnit(g1) {
		t.Fatalf("g2 is in restricted au1, g1 in none")
	}
	sp, _ := d.Lookup("sp1")
	if g := d.Grants(sp); len(g) != 1 || !g[0].Covers(d, g1) || g[0].Covers(d, g2) {
		t.Fatalf("an object-scoped grant covers that object only: %+v", g)
	}
	if !d.Grants(sp)[0].Role.Caps().Has(ResGroupsSecurity, TaskMembers) {
		t.Fatalf("the custom role must compile groups.security/members/update")
	}
	out := d.Snapshot()
	if !proto.Equal(&pb.Snapshot{RoleDefinitions: out.RoleDefinitions, RoleAssignments: out.RoleAssignments, AdministrativeUnits: out.AdministrativeUnits},
		&pb.Snapshot{RoleDefinitions: withPrivileges().RoleDefinitions, RoleAssignments: withPrivileges().RoleAssignments, AdministrativeUnits: withPrivileges().AdministrativeUnits}) {
		t.Fatalf("export lost privileges: %v", out)
	}
	if d.RoleByName("groups administrator").ID != groupsAdminID {
		t.Fatalf("directory_roles names resolve through the built-in table, case-insensitively")
	}
}

func TestPrivilegesValidation(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(s *pb.Snapshot)
		field  string
	}{
		{"unknown role definition", func(s *pb.Snapshot) { s.RoleAssignments[0].RoleDefinitionId = "r-nope" }, "role_assignments[0].role_definition_id"},
		{"scope names a missing unit", func(s *pb.Snapshot) { s.RoleAssignments[0].DirectoryScopeId = "/administrativeUnits/au9" }, "role_assignments[0].directory_scope_id"},
		{"scope names a missing object", func(s *pb.Snapshot) { s.RoleAssignments[1].DirectoryScopeId = "/g9" }, "role_assignments[1].directory_scope_id"},
		{"malformed scope", func(s *pb.Snapshot) { s.RoleAssignments[1].DirectoryScopeId = "tenant" }, "role_assignments[1].directory_scope_id"},
		{"missing principal", func(s *pb.Snapshot) { s.RoleAssignments[1].PrincipalId = "u9" }, "role_assignments[1].principal_id"},
		{"unit member missing", func(s *pb.Snapshot) {
			s.AdministrativeUnits[0].Members = append(s.AdministrativeUnits[0].Members, "u9")
		}, "administrative_units[0].members[2]"},
		{"service principal in a unit", func(s *pb.Snapshot) {
			s.AdministrativeUnits[0].Members = append(s.AdministrativeUnits[0].Members, "sp1")
		}, "administrative_units[0].members[2]"},
		{"unit id taken by a user", func(s *pb.Snapshot) { s.AdministrativeUnits[0].Id = "u2"; s.RoleAssignments = s.RoleAssignments[1:] }, "administrative_units[0].id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := withPrivileges()
			tt.break_(s)
			_, err := FromSnapshot(s, 1)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want a ValidationError, got %v", err)
			}
			if !slices.ContainsFunc(ve.Problems, func(p Problem) bool { return p.Field == tt.field }) {
				t.Fatalf("want a problem on %s, got %v", tt.field, err)
			}
		})
	}
}

func TestPrivilegeChanges(t *testing.T) {
	d, err := FromSnapshot(withPrivileges(), 1)
	if err != nil {
		t.Fatal(err)
	}
	// A batch refers forward: the unit and the assignment scoped to it arrive in one batch.
	d2, _, err := d.Apply([]*pb.Change{
		{Change: &pb.Change_AddRoleAssignment{AddRoleAssignment: &pb.RoleAssignment{PrincipalId: "u1", RoleDefinitionId: "r-custom", DirectoryScopeId: "/administrativeUnits/au2"}}},
		{Change: &pb.Change_UpsertAdministrativeUnit{UpsertAdministrativeUnit: &pb.AdministrativeUnit{Id: "au2", Members: []string{"g1"}}}},
	}, 2)
	if err != nil {
		t.Fatal(err)
	}
	u1, _ := d2.Lookup("u1")
	g1, _ := d2.Lookup("g1")
	if len(d2.Grants(u1)) != 2 || !d2.Grants(u1)[1].Covers(d2, g1) {
		t.Fatalf("u1 should hold the custom role over g1 through au2: %+v", d2.Grants(u1))
	}
	if len(d.Grants(u1)) != 1 {
		t.Fatalf("the old revision changed")
	}
	// Deleting a unit removes the assignments scoped to it; deleting a principal removes it from units and
	// assignments.
	d3, _, err := d2.Apply([]*pb.Change{
		{Change: &pb.Change_DeleteObject{DeleteObject: &pb.DeleteObject{Id: "au2"}}},
		{Change: &pb.Change_DeleteObject{DeleteObject: &pb.DeleteObject{Id: "g2"}}},
		{Change: &pb.Change_RemoveRoleAssignment{RemoveRoleAssignment: &pb.RoleAssignment{PrincipalId: "u2", RoleDefinitionId: "r-custom", DirectoryScopeId: "/"}}},
	}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(d3.RoleAssignments()); n != 2 {
		t.Fatalf("want 2 assignments left, got %v", d3.RoleAssignments())
	}
	if u, _ := d3.Unit("au1"); !slices.Equal(d3.Snapshot().AdministrativeUnits[0].Members, []string{"u1"}) || u == nil {
		t.Fatalf("g2 must leave au1: %v", d3.Snapshot().AdministrativeUnits)
	}
	_, _, err = d3.Apply([]*pb.Change{{Change: &pb.Change_AddRoleAssignment{AddRoleAssignment: &pb.RoleAssignment{PrincipalId: "u1", RoleDefinitionId: "nope", DirectoryScopeId: "/"}}}}, 4)
	if err == nil || !strings.Contains(err.Error(), "changes[0].add_role_assignment.role_definition_id") {
		t.Fatalf("an unknown role definition must be refused with its field, got %v", err)
	}
}
