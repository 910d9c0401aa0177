package policy

import (
	"slices"
	"strings"

	"github.com/groupgate/groupgate/directory"
)

// Entra built-in role display names (compared case-insensitively) and Microsoft Graph application permissions.
const (
	globalAdmin           = "Global Administrator"
	privilegedRoleAdmin   = "Privileged Role Administrator"
	privilegedAuthAdmin   = "Privileged Authentication Administrator"
	authenticationAdmin   = "Authentication Administrator"
	groupsAdmin           = "Groups Administrator"
	userAdmin             = "User Administrator"
	directoryWriters      = "Directory Writers"
	helpdeskAdmin         = "Helpdesk Administrator"
	passwordAdmin         = "Password Administrator"
	exchangeAdmin         = "Exchange Administrator"
	sharePointAdmin       = "SharePoint Administrator"
	teamsAdmin            = "Teams Administrator"
	yammerAdmin           = "Yammer Administrator"
	intuneAdmin           = "Intune Administrator"
	roleManagementWrite   = "RoleManagement.ReadWrite.Directory"
	groupReadWriteAll     = "Group.ReadWrite.All"
	groupMemberReadWrite  = "GroupMember.ReadWrite.All"
	directoryReadWriteAll = "Directory.ReadWrite.All"
)

// bypassRoles and bypassPermissions bypass sensitivity-label enforcement on group membership during the
// preview (SPEC §4, from the seed document on labels for cloud security groups).
var (
	bypassRoles = []string{
		globalAdmin, userAdmin, groupsAdmin, directoryWriters, exchangeAdmin, sharePointAdmin,
		"SharePoint Advanced Management Administrator", teamsAdmin, yammerAdmin, helpdeskAdmin,
		"Service Support Administrator",
	}
	bypassPermissions = []string{groupReadWriteAll, directoryReadWriteAll, "Directory.ReadWriteAdvanced.All", groupMemberReadWrite}
)

// principal is an actor with its effective roles: its own roles and those of the role-assignable groups it is
// a direct member of (Entra does not pass roles down nested groups: role-assignable groups cannot nest).
type principal struct {
	node  *directory.Node
	roles []string // effective roles, as named in the directory
	perms []string // application permissions (service principals)
	// via names, for each effective role that comes from a group, the group it comes from.
	via map[string]*directory.Node
}

func newPrincipal(dir *directory.Directory, n *directory.Node) *principal {
	p := &principal{node: n, roles: slices.Clone(n.DirectoryRoles()), via: map[string]*directory.Node{}}
	if sp := n.ServicePrincipal(); sp != nil {
		p.perms = sp.GetAppPermissions()
	}
	for _, g := range n.MemberOf() {
		gn := dir.Node(g)
		if gn == nil || !gn.Group().GetIsAssignableToRole() {
			continue
		}
		for _, r := range gn.Group().GetDirectoryRoles() {
			if !p.hasRole(r) {
				p.roles = append(p.roles, r)
				p.via[strings.ToLower(r)] = gn
			}
		}
	}
	return p
}

func (p *principal) isServicePrincipal() bool { return p.node.Kind() == directory.KindServicePrincipal }

func (p *principal) hasRole(role string) bool {
	for _, r := range p.roles {
		if strings.EqualFold(r, role) {
			return true
		}
	}
	return false
}

// anyRole returns the first of roles the principal holds, and whether it holds one.
func (p *principal) anyRole(roles ...string) (string, bool) {
	for _, want := range roles {
		if p.hasRole(want) {
			return want, true
		}
	}
	return "", false
}

func (p *principal) hasPermission(perm string) bool {
	for _, x := range p.perms {
		if strings.EqualFold(x, perm) {
			return true
		}
	}
	return false
}

func (p *principal) anyPermission(perms ...string) (string, bool) {
	for _, want := range perms {
		if p.hasPermission(want) {
			return want, true
		}
	}
	return "", false
}

// describeRole says how the principal holds a role, e.g. `role "Groups Administrator" (through Tier 0 Admins
// (grp-tier0-admins))`.
func (p *principal) describeRole(role string) string {
	if g, ok := p.via[strings.ToLower(role)]; ok {
		return "role " + role + " through role-assignable group " + name(g)
	}
	return "role " + role
}

// bypass returns how the principal bypasses label enforcement during the preview, if it does.
func (p *principal) bypass() (string, bool) {
	if r, ok := p.anyRole(bypassRoles...); ok {
		return p.describeRole(r), true
	}
	if perm, ok := p.anyPermission(bypassPermissions...); ok {
		return "application permission " + perm, true
	}
	return "", false
}

func (p *principal) owns(g *directory.Node) bool { return slices.Contains(g.Owners(), p.node.Ref()) }

// canManageRoleAssignableGroup: Privileged Role Administrator, Global Administrator or an owner; applications
// need RoleManagement.ReadWrite.Directory (Group.ReadWrite.All is not enough) unless they own the group.
func (p *principal) canManageRoleAssignableGroup(g *directory.Node) (string, bool) {
	if p.owns(g) {
		return "owner", true
	}
	if r, ok := p.anyRole(globalAdmin, privilegedRoleAdmin); ok {
		return p.describeRole(r), true
	}
	if perm, ok := p.anyPermission(roleManagementWrite); ok {
		return "application permission " + perm, true
	}
	return "", false
}

// canManageMembership: owners, and the roles and application permissions that manage group membership. The
// workload administrators manage Microsoft 365 groups only; Intune Administrators manage security groups.
func (p *principal) canManageMembership(g *directory.Node) (string, bool) {
	if p.owns(g) {
		return "owner", true
	}
	roles := []string{globalAdmin, groupsAdmin, userAdmin, directoryWriters}
	switch g.Group().GetKind() {
	case groupKindM365:
		roles = append(roles, exchangeAdmin, sharePointAdmin, teamsAdmin, yammerAdmin)
	case groupKindSecurity:
		roles = append(roles, intuneAdmin)
	}
	if r, ok := p.anyRole(roles...); ok {
		return p.describeRole(r), true
	}
	if perm, ok := p.anyPermission(groupMemberReadWrite, groupReadWriteAll, directoryReadWriteAll); ok {
		return "application permission " + perm, true
	}
	return "", false
}

// canManageGroupProperties (labels among them): owners, at least Groups Administrator, or an application with
// group write permission (GroupMember.ReadWrite.All covers membership only).
func (p *principal) canManageGroupProperties(g *directory.Node) (string, bool) {
	if p.owns(g) {
		return "owner", true
	}
	roles := []string{globalAdmin, groupsAdmin, userAdmin, directoryWriters}
	if g.Group().GetKind() == groupKindM365 {
		roles = append(roles, exchangeAdmin, sharePointAdmin, teamsAdmin)
	}
	if r, ok := p.anyRole(roles...); ok {
		return p.describeRole(r), true
	}
	if perm, ok := p.anyPermission(groupReadWriteAll, directoryReadWriteAll); ok {
		return "application permission " + perm, true
	}
	return "", false
}

// EffectiveRoles are the roles a principal acts with: its own and those of the role-assignable groups it is a
// direct member of, as the rules see them.
func EffectiveRoles(dir *directory.Directory, n *directory.Node) []string {
	return newPrincipal(dir, n).roles
}
