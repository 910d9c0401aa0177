package policy

import (
	"fmt"
	"iter"
	"strings"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// Every rule that asks "may this actor …" goes through privilege (SPEC §18): it answers how the actor holds
// the right over one object — ownership, an application permission, or a role assignment (role, scope, custom
// or built in, the action that grants it, possibly through a role-assignable group) — or why nothing covers
// the object. It allocates nothing: grants come from the directory's per-principal index.
//
// Entra's documentation, file by file (MicrosoftDocs/entra-docs, docs/identity/role-based-access-control/):
//   - administrative-units.md, admin-units-assign-roles.md: a role at administrative-unit scope applies to the
//     unit's direct members only; service principals and guests need a tenant-wide read role to use one.
//   - admin-units-restricted-management.md: objects in a restricted management unit change only through a role
//     assigned at the scope of a restricted unit containing them; tenant-wide roles (Global Administrator
//     included), other scopes, owners and application permissions are refused.
//   - custom-group-permissions.md: the groups / groups.security / groups.unified subtypes, .assignedMembership
//     (not dynamic groups), and no group action covers a role-assignable group.
//   - custom-user-permissions.md and permissions-reference.md: user actions and the built-in roles' actions
//     (the table in directory/builtin_roles.go).

type holdKind uint8

const (
	holdRole holdKind = iota + 1
	holdOwner
	holdPermission
)

// holding is how an actor holds a right over an object.
type holding struct {
	kind   holdKind
	grant  directory.Grant
	via    *directory.Node // the role-assignable group a role comes through
	action string          // the resource action that grants it
	perm   string          // the application permission
}

// refusal is why no privilege of the actor covers an object.
type refusal struct {
	// restricted is set when the object is in a restricted management unit; blocked is then what would have
	// granted the right outside it (a tenant-wide role, ownership, an application permission …), if anything.
	restricted *directory.Unit
	blocked    holding
	// uncovered is a role that grants the action, assigned at a scope that does not contain the object.
	uncovered holding
	// noRead is a unit-scoped role that a service principal or guest cannot use without a tenant-wide read role.
	noRead holding
}

// right is what a rule asks for over an object.
type right struct {
	task  directory.Task
	perms []string // application permissions that grant it
	owner bool     // ownership grants it
}

var (
	rightMembers = right{task: directory.TaskMembers, perms: []string{groupMemberReadWrite, groupReadWriteAll, directoryReadWriteAll}, owner: true}
	// Labels: GroupMember.ReadWrite.All covers membership only.
	rightLabels = right{task: directory.TaskLabels, perms: []string{groupReadWriteAll, directoryReadWriteAll}, owner: true}
	rightOwners = right{task: directory.TaskOwners, perms: []string{groupReadWriteAll, directoryReadWriteAll}, owner: true}
)

type heldGrant struct {
	grant directory.Grant
	via   *directory.Node
}

// grants yields every role the principal holds: its role assignments, its directory_roles (tenant-wide
// shorthand), and the same of each role-assignable group it is a direct member of (Entra passes roles to a
// role-assignable group's direct members only; such groups cannot nest).
func (p principal) grants() iter.Seq[heldGrant] {
	return func(yield func(heldGrant) bool) {
		if !p.eachGrant(p.node, nil, yield) {
			return
		}
		for _, g := range p.node.MemberOf() {
			gn := p.dir.Node(g)
			if gn == nil || !gn.Group().GetIsAssignableToRole() {
				continue
			}
			if !p.eachGrant(gn, gn, yield) {
				return
			}
		}
	}
}

func (p principal) eachGrant(n, via *directory.Node, yield func(heldGrant) bool) bool {
	for _, g := range p.dir.Grants(n) {
		if !yield(heldGrant{g, via}) {
			return false
		}
	}
	for _, name := range n.DirectoryRoles() {
		g := directory.Grant{Role: p.dir.RoleByName(name), RoleName: name, ScopeID: directory.ScopeTenantID, Scope: directory.ScopeTenant}
		if !yield(heldGrant{g, via}) {
			return false
		}
	}
	return true
}

// grantAction is the action of g's role that grants task on one of obj's resource types, or "".
func grantAction(g *directory.Grant, obj *directory.Node, task directory.Task) string {
	caps := g.Role.Caps()
	if caps == 0 {
		return ""
	}
	for _, r := range directory.ObjectResources(obj) {
		if caps.Has(r, task) {
			return g.Role.Action(r, task)
		}
	}
	return ""
}

// mustReadFirst: service principals and guests cannot use a unit-scoped role without read permissions at
// tenant scope (admin-units-assign-roles.md, "Service principals and guest users").
func (p principal) mustReadFirst() bool { return p.isServicePrincipal() || p.node.IsGuest() }

// readsTenantWide reports whether the principal holds a tenant-wide role that reads objects like obj.
func (p principal) readsTenantWide(obj *directory.Node) bool {
	for h := range p.grants() {
		if h.grant.Scope == directory.ScopeTenant && grantAction(&h.grant, obj, directory.TaskRead) != "" {
			return true
		}
	}
	return false
}

// restrictedUnit is a restricted management unit obj is a direct member of, or nil.
func restrictedUnit(dir *directory.Directory, obj *directory.Node) *directory.Unit {
	if !dir.InRestrictedUnit(obj) {
		return nil
	}
	for _, u := range dir.UnitsOf(obj) {
		if u.Restricted {
			return u
		}
	}
	return nil
}

// privilege answers whether and how the principal holds right r over obj (a group that is not role-assignable,
// or a user).
func (p principal) privilege(obj *directory.Node, r right) (holding, refusal, bool) {
	var why refusal
	why.restricted = restrictedUnit(p.dir, obj)
	if why.restricted == nil && r.owner && obj.IsGroup() && p.owns(obj) {
		return holding{kind: holdOwner}, why, true
	}
	units := p.dir.UnitsOf(obj)
	for h := range p.grants() {
		// Scope first: it is the cheaper test, and a unit-scoped admin's other units' grants fail it. The
		// action of a grant that does not cover obj is looked up only for the first one, the refusal's evidence.
		if !h.grant.CoversIn(obj, units) {
			if why.uncovered.kind == 0 {
				if action := grantAction(&h.grant, obj, r.task); action != "" {
					why.uncovered = holding{kind: holdRole, grant: h.grant, via: h.via, action: action}
				}
			}
			continue
		}
		action := grantAction(&h.grant, obj, r.task)
		if action == "" {
			continue
		}
		held := holding{kind: holdRole, grant: h.grant, via: h.via, action: action}
		if h.grant.Scope == directory.ScopeUnit && p.mustReadFirst() && !p.readsTenantWide(obj) {
			if why.noRead.kind == 0 {
				why.noRead = held
			}
			continue
		}
		if why.restricted != nil && !(h.grant.Scope == directory.ScopeUnit && h.grant.Unit.Restricted) {
			if why.blocked.kind == 0 {
				why.blocked = held
			}
			continue
		}
		return held, why, true
	}
	if why.restricted != nil && why.blocked.kind == 0 && r.owner && obj.IsGroup() && p.owns(obj) {
		why.blocked = holding{kind: holdOwner}
	}
	if perm, ok := p.anyPermission(r.perms...); ok {
		held := holding{kind: holdPermission, perm: perm}
		if why.restricted == nil {
			return held, why, true
		}
		if why.blocked.kind == 0 {
			why.blocked = held
		}
	}
	return holding{}, why, false
}

// tenantRole returns a tenant-wide assignment of one of the built-in roles named, if the principal holds one.
func (p principal) tenantRole(names ...string) (holding, bool) {
	for h := range p.grants() {
		if h.grant.Scope != directory.ScopeTenant || (h.grant.Role != nil && !h.grant.Role.BuiltIn) {
			continue
		}
		for _, n := range names {
			if strings.EqualFold(h.grant.RoleName, n) {
				return holding{kind: holdRole, grant: h.grant, via: h.via}, true
			}
		}
	}
	return holding{}, false
}

// privilegeRoleAssignable answers for a role-assignable group (SPEC §4, RULE_ROLE_GROUP_PRIVILEGE): owners,
// tenant-wide Global or Privileged Role Administrators, applications with RoleManagement.ReadWrite.Directory.
// Unit-scoped and custom roles never manage these groups (custom-group-permissions.md: every group action
// excludes role-assignable groups). In a restricted management unit, admin-units-restricted-management.md
// ("Limitations") says owners may not manage them and only Global and Privileged Role Administrators can
// modify their membership: owners and applications are refused there (RULE_RESTRICTED_ADMINISTRATIVE_UNIT).
func (p principal) privilegeRoleAssignable(g *directory.Node) (holding, refusal, bool) {
	var why refusal
	why.restricted = restrictedUnit(p.dir, g)
	if h, ok := p.tenantRole(globalAdmin, privilegedRoleAdmin); ok {
		h.action = "(" + h.grant.RoleName + " manages role-assignable groups)"
		return h, why, true
	}
	var held holding
	if p.owns(g) {
		held = holding{kind: holdOwner}
	} else if perm, ok := p.anyPermission(roleManagementWrite); ok {
		held = holding{kind: holdPermission, perm: perm}
	}
	if held.kind == 0 {
		return held, why, false
	}
	if why.restricted != nil {
		why.blocked = held
		return holding{}, why, false
	}
	return held, why, true
}

// bypass returns how the principal bypasses label enforcement on g during the preview, if it does: a bypass
// role whose assignment covers g (at any scope: see the README's design note), or a bypass permission.
func (p principal) bypass(g *directory.Node) (holding, bool) {
	for h := range p.grants() {
		if h.grant.Role != nil && !h.grant.Role.BuiltIn {
			continue
		}
		for _, b := range bypassRoles {
			if strings.EqualFold(h.grant.RoleName, b) && h.grant.Covers(p.dir, g) {
				return holding{kind: holdRole, grant: h.grant, via: h.via}, true
			}
		}
	}
	if perm, ok := p.anyPermission(bypassPermissions...); ok {
		return holding{kind: holdPermission, perm: perm}, true
	}
	return holding{}, false
}

// describe says how a right is held, for a person: `role Groups Administrator at /administrativeUnits/au-emea
// (microsoft.directory/groups/members/update)`.
func (h holding) describe() string {
	switch h.kind {
	case holdOwner:
		return "owner"
	case holdPermission:
		return "application permission " + h.perm
	case holdRole:
		s := "role " + h.grant.RoleName
		if h.grant.Role != nil && !h.grant.Role.BuiltIn {
			s = "custom role " + h.grant.RoleName
		}
		if h.grant.Scope != directory.ScopeTenant {
			s += " at scope " + h.grant.ScopeID
		}
		if h.via != nil {
			s += " through role-assignable group " + name(h.via)
		}
		if h.action != "" && (h.grant.Scope != directory.ScopeTenant || (h.grant.Role != nil && !h.grant.Role.BuiltIn)) {
			s += " (" + h.action + ")"
		}
		return s
	}
	return "nothing"
}

// why says why nothing covers the object, beyond "no role": the roles that would, elsewhere.
func (r refusal) why(obj *directory.Node) string {
	switch {
	case r.noRead.kind != 0:
		return fmt.Sprintf("; %s covers %s, but a service principal or guest needs a tenant-wide directory read role to use a role scoped to an administrative unit", r.noRead.describe(), obj.ID())
	case r.uncovered.kind != 0:
		return fmt.Sprintf("; %s does not cover %s (a scope covers the tenant, a unit's direct members or one object)", r.uncovered.describe(), obj.ID())
	}
	return ""
}

// evidence is the id path of a refusal: the object and actor, then the scope that fell short.
func (r refusal) evidence(obj, actor *directory.Node) []string {
	path := []string{obj.ID(), actor.ID()}
	for _, h := range []holding{r.noRead, r.uncovered} {
		if h.kind != holdRole {
			continue
		}
		switch h.grant.Scope {
		case directory.ScopeUnit:
			return append(path, h.grant.Unit.ID)
		case directory.ScopeObject:
			return append(path, strings.TrimPrefix(h.grant.ScopeID, "/"))
		}
	}
	return path
}

// restrict records RULE_RESTRICTED_ADMINISTRATIVE_UNIT when obj is in a restricted management unit and the
// actor's right does not come from a role scoped to a restricted unit containing it.
func (d *decision) restrict(obj *directory.Node, a principal, why refusal, what string) {
	if why.restricted == nil {
		return
	}
	how := ""
	if why.blocked.kind != 0 {
		how = " (" + why.blocked.describe() + " does not count there)"
	}
	d.violateOnce(pb.Rule_RULE_RESTRICTED_ADMINISTRATIVE_UNIT, true, []string{obj.ID(), why.restricted.ID, a.node.ID()},
		"%s is in restricted management administrative unit %s: only a role assigned at the scope of a restricted unit that contains it may %s it, and %s holds none%s",
		name(obj), unitName(why.restricted), what, name(a.node), how)
}

func unitName(u *directory.Unit) string {
	if u.DisplayName != "" {
		return fmt.Sprintf("%s (%s)", u.DisplayName, u.ID)
	}
	return u.ID
}

// hold records the evidence of a right a decision relied on.
func (d *decision) hold(a principal, obj *directory.Node, h holding) {
	pv := &pb.Privilege{ActorId: a.node.ID(), ObjectId: obj.ID()}
	switch h.kind {
	case holdOwner:
		pv.Owner = true
	case holdPermission:
		pv.AppPermission = h.perm
	case holdRole:
		pv.Action = h.action
		pv.Role = h.grant.RoleName
		pv.DirectoryScopeId = h.grant.ScopeID
		if h.grant.Role != nil {
			pv.RoleDefinitionId = h.grant.Role.ID
			pv.CustomRole = !h.grant.Role.BuiltIn
		}
		if h.via != nil {
			pv.ViaGroupId = h.via.ID()
		}
	default:
		return
	}
	d.privileges = append(d.privileges, pv)
}
