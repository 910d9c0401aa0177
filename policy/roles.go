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

// principal is an actor as the rules see it. It is a small value built without allocating: its roles are
// read from the directory's per-principal index (directory.Grants), its directory_roles shorthand and the
// role-assignable groups it is a direct member of, each time a rule asks (privilege.go).
type principal struct {
	dir   *directory.Directory
	node  *directory.Node
	perms []string // application permissions (service principals)
}

func newPrincipal(dir *directory.Directory, n *directory.Node) principal {
	p := principal{dir: dir, node: n}
	if sp := n.ServicePrincipal(); sp != nil {
		p.perms = sp.GetAppPermissions()
	}
	return p
}

func (p principal) isServicePrincipal() bool { return p.node.Kind() == directory.KindServicePrincipal }

func (p principal) hasPermission(perm string) bool {
	for _, x := range p.perms {
		if strings.EqualFold(x, perm) {
			return true
		}
	}
	return false
}

func (p principal) anyPermission(perms ...string) (string, bool) {
	for _, want := range perms {
		if p.hasPermission(want) {
			return want, true
		}
	}
	return "", false
}

func (p principal) owns(g *directory.Node) bool { return slices.Contains(g.Owners(), p.node.Ref()) }

// EffectiveRoles are the roles a principal acts with, by display name: its own (directory_roles and role
// assignments at any scope) and those of the role-assignable groups it is a direct member of.
func EffectiveRoles(dir *directory.Directory, n *directory.Node) []string {
	var out []string
	add := func(name string) {
		if name != "" && !slices.ContainsFunc(out, func(r string) bool { return strings.EqualFold(r, name) }) {
			out = append(out, name)
		}
	}
	p := newPrincipal(dir, n)
	for h := range p.grants() {
		add(h.grant.RoleName)
	}
	return out
}
