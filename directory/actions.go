package directory

import "strings"

// Resource actions (SPEC §18). Entra grants rights as resource-action strings such as
// "microsoft.directory/groups.security/members/update"; a role definition is a list of them. The rules ask a few
// questions only (may this principal update the members of this group, its labels, its owners; reset this
// user's password …), so each definition is compiled once, when a directory is built, into a bit set of
// (resource, task) pairs, and a decision tests bits: no string work, no allocation.

// Task is what a rule asks a principal to be able to do.
type Task uint8

const (
	// TaskMembers: "…/members/update" (custom-group-permissions.md, "Update group information").
	TaskMembers Task = iota
	// TaskOwners: "…/owners/update".
	TaskOwners
	// TaskLabels: "…/assignedLabels/update" (permissions-reference.md, Groups Administrator:
	// microsoft.directory/groups/assignedLabels/update).
	TaskLabels
	// TaskPassword: "microsoft.directory/users/password/update" (custom-user-permissions.md).
	TaskPassword
	// TaskAuthMethods: "microsoft.directory/users/authenticationMethods/delete" — an MFA reset deletes the
	// registered methods (custom-user-permissions.md; Authentication Administrator in permissions-reference.md).
	TaskAuthMethods
	// TaskSensitive: "microsoft.directory/users/userPrincipalName/update", the sensitive attribute
	// permissions-reference.md marks privileged for User and Authentication Administrators.
	TaskSensitive
	// TaskRead: "…/standard/read" or "…/allProperties/read": reading the object, which service principals and
	// guests need at tenant scope before an administrative-unit role works for them (admin-units-assign-roles.md,
	// "Service principals and guest users").
	TaskRead
	numTasks
)

func (t Task) String() string {
	switch t {
	case TaskMembers:
		return "members/update"
	case TaskOwners:
		return "owners/update"
	case TaskLabels:
		return "assignedLabels/update"
	case TaskPassword:
		return "password/update"
	case TaskAuthMethods:
		return "authenticationMethods/delete"
	case TaskSensitive:
		return "userPrincipalName/update"
	case TaskRead:
		return "standard/read"
	}
	return "?"
}

// Resource is a resource type of an action: the group subtypes of custom-group-permissions.md ("How to
// interpret group management permissions"), users, and role-assignable groups.
type Resource uint8

const (
	// ResGroups: "groups" — security and Microsoft 365 groups, excluding role-assignable groups.
	ResGroups Resource = iota
	// ResGroupsSecurity: "groups.security" — security groups of dynamic and assigned membership.
	ResGroupsSecurity
	// ResGroupsSecurityAssigned: "groups.security.assignedMembership" — assigned security groups only.
	ResGroupsSecurityAssigned
	// ResGroupsUnified: "groups.unified" — Microsoft 365 groups of dynamic and assigned membership.
	ResGroupsUnified
	// ResGroupsUnifiedAssigned: "groups.unified.assignedMembership".
	ResGroupsUnifiedAssigned
	// ResUsers: "users".
	ResUsers
	// ResRoleAssignableGroups: "groupsAssignableToRoles" (permissions-reference.md, Global Administrator:
	// microsoft.directory/groupsAssignableToRoles/allProperties/update).
	ResRoleAssignableGroups
	numResources
)

var resourceNames = [numResources]string{
	"groups", "groups.security", "groups.security.assignedMembership", "groups.unified",
	"groups.unified.assignedMembership", "users", "groupsAssignableToRoles",
}

func (r Resource) String() string {
	if r < numResources {
		return resourceNames[r]
	}
	return "?"
}

// nCaps is the number of (resource, task) pairs.
const nCaps = int(numResources) * int(numTasks)

// Caps is a compiled set of (resource, task) rights.
type Caps uint64

func bit(r Resource, t Task) Caps { return 1 << (uint(r)*uint(numTasks) + uint(t)) }

// Has reports whether the set holds task t on resource r.
func (c Caps) Has(r Resource, t Task) bool { return c&bit(r, t) != 0 }

const directoryPrefix = "microsoft.directory/"

// compileActions turns allowedResourceActions into rights, remembering for each right the action string that
// grants it (the evidence a decision names). Actions outside microsoft.directory, or on resources and tasks no
// rule asks about, are kept in the definition but compile to nothing.
//
// Supersets (custom-group-permissions.md and permissions-reference.md use both): "…/allProperties/allTasks"
// grants every task on its resource; "…/allProperties/update" every update task; "…/allProperties/read" reading.
func compileActions(actions []string) (Caps, [nCaps]string) {
	var caps Caps
	var src [nCaps]string
	grant := func(r Resource, t Task, action string) {
		b := bit(r, t)
		if caps&b == 0 {
			caps |= b
			src[uint(r)*uint(numTasks)+uint(t)] = action
		}
	}
	for _, a := range actions {
		lower := strings.ToLower(a)
		rest, ok := strings.CutPrefix(lower, directoryPrefix)
		if !ok {
			continue
		}
		resName, task, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		res := Resource(numResources)
		for i, n := range resourceNames {
			if strings.EqualFold(n, resName) {
				res = Resource(i)
			}
		}
		if res == numResources {
			continue
		}
		switch task {
		case "allproperties/alltasks":
			for t := Task(0); t < numTasks; t++ {
				grant(res, t, a)
			}
		case "allproperties/update":
			for _, t := range []Task{TaskMembers, TaskOwners, TaskLabels, TaskPassword, TaskAuthMethods, TaskSensitive} {
				grant(res, t, a)
			}
		case "allproperties/read", "standard/read":
			grant(res, TaskRead, a)
		case "members/update":
			grant(res, TaskMembers, a)
		case "owners/update":
			grant(res, TaskOwners, a)
		case "assignedlabels/update":
			grant(res, TaskLabels, a)
		case "password/update":
			grant(res, TaskPassword, a)
		case "authenticationmethods/delete":
			grant(res, TaskAuthMethods, a)
		case "userprincipalname/update":
			grant(res, TaskSensitive, a)
		}
	}
	return caps, src
}

// RoleDef is a compiled role definition, shared by every directory that holds it. Never modify one.
type RoleDef struct {
	ID          string
	DisplayName string
	BuiltIn     bool
	// FromTable: the definition is groupgate's table (the snapshot did not carry it).
	FromTable bool
	Actions   []string
	caps      Caps
	source    [nCaps]string
}

func newRoleDef(id, name string, builtIn, fromTable bool, actions []string) *RoleDef {
	d := &RoleDef{ID: id, DisplayName: name, BuiltIn: builtIn, FromTable: fromTable, Actions: actions}
	d.caps, d.source = compileActions(actions)
	return d
}

// Caps are the rights the definition grants.
func (d *RoleDef) Caps() Caps {
	if d == nil {
		return 0
	}
	return d.caps
}

// Action is the action string that grants task t on resource r, or "".
func (d *RoleDef) Action(r Resource, t Task) string {
	if d == nil || !d.caps.Has(r, t) {
		return ""
	}
	return d.source[uint(r)*uint(numTasks)+uint(t)]
}

// GroupResources are the resource types whose actions apply to a group, most specific last. A role-assignable
// group has only its own resource type: the "groups" actions all exclude role-assignable groups
// (custom-group-permissions.md).
func GroupResources(g *Node) []Resource {
	a := g.group
	if a.GetIsAssignableToRole() {
		return resRoleAssignable
	}
	assigned := a.GetMembership() == membershipAssigned
	switch a.GetKind() {
	case kindSecurity:
		if assigned {
			return resSecurityAssigned
		}
		return resSecurity
	case kindUnified:
		if assigned {
			return resUnifiedAssigned
		}
		return resUnified
	}
	return resGroupsOnly
}

var (
	resRoleAssignable   = []Resource{ResRoleAssignableGroups}
	resSecurityAssigned = []Resource{ResGroups, ResGroupsSecurity, ResGroupsSecurityAssigned}
	resSecurity         = []Resource{ResGroups, ResGroupsSecurity}
	resUnifiedAssigned  = []Resource{ResGroups, ResGroupsUnified, ResGroupsUnifiedAssigned}
	resUnified          = []Resource{ResGroups, ResGroupsUnified}
	resGroupsOnly       = []Resource{ResGroups}
	resUsers            = []Resource{ResUsers}
)

// ObjectResources are the resource types whose actions apply to a user or group.
func ObjectResources(n *Node) []Resource {
	if n.kind == KindGroup {
		return GroupResources(n)
	}
	return resUsers
}
