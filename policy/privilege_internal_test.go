package policy

import (
	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// TestPrivilegeLookupAllocatesNothing: the hot path of every decision finds how an actor holds a right
// without allocating, whether the right comes from a unit-scoped assignment, a role-assignable group, the
// directory_roles shorthand, or is refused.
func TestPrivilegeLookupAllocatesNothing(t *testing.T) {
	d, err := directory.FromSnapshot(&pb.Snapshot{
		TenantId: "t",
		Users: []*pb.User{
			{Id: "u-unit", UserType: pb.UserType_USER_TYPE_MEMBER},
			{Id: "u-tenant", UserType: pb.UserType_USER_TYPE_MEMBER, DirectoryRoles: []string{"groups administrator"}},
			{Id: "u-none", UserType: pb.UserType_USER_TYPE_MEMBER},
		},
		Groups: []*pb.Group{
			{Id: "g", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED},
			{Id: "admins", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, IsAssignableToRole: true, Members: []string{"u-none"}},
		},
		AdministrativeUnits: []*pb.AdministrativeUnit{{Id: "au", Members: []string{"g"}}, {Id: "au2"}},
		RoleAssignments: []*pb.RoleAssignment{
			{PrincipalId: "u-unit", RoleDefinitionId: "fdd7a751-b60b-444a-984c-02652fe8fa1c", DirectoryScopeId: "/administrativeUnits/au2"},
			{PrincipalId: "u-unit", RoleDefinitionId: "fdd7a751-b60b-444a-984c-02652fe8fa1c", DirectoryScopeId: "/administrativeUnits/au"},
			{PrincipalId: "admins", RoleDefinitionId: "729827e3-9c14-49f7-bb1b-9608f156bbb8", DirectoryScopeId: "/"},
		},
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := d.Lookup("g")
	for _, tc := range []struct {
		actor string
		want  bool
	}{{"u-unit", true}, {"u-tenant", true}, {"u-none", false}} {
		n, _ := d.Lookup(tc.actor)
		p := newPrincipal(d, n)
		var ok bool
		allocs := testing.AllocsPerRun(100, func() { _, _, ok = p.privilege(g, rightMembers) })
		if ok != tc.want {
			t.Errorf("%s: privilege = %v, want %v", tc.actor, ok, tc.want)
		}
		if allocs != 0 {
			t.Errorf("%s: privilege allocates %.0f times per lookup, want 0", tc.actor, allocs)
		}
	}
}
