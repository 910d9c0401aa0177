package directory

import "strings"

// Built-in role definitions that a snapshot does not carry come from this table (SPEC §18), so hand-written
// snapshots naming roles by display name (directory_roles) keep working. Ids are the role template ids and
// actions are the microsoft.directory actions on users and groups that the rules ask about, both as Entra's
// permissions reference lists them: MicrosoftDocs/entra-docs docs/identity/role-based-access-control/
// permissions-reference.md ("All roles" table for the ids) and its includes/<role>.md files for the actions
// (read 2026-01). Actions of other resources (devices, applications, Exchange …) are left out: no rule asks
// about them. A sync carries the real definitions (roleManagement/directory/roleDefinitions), which win.
var builtInRoles = []*RoleDef{
	// includes/global-administrator.md: groups/allProperties/allTasks, users/allProperties/allTasks,
	// groupsAssignableToRoles/allProperties/update.
	builtIn("62e90394-69f5-4237-9190-012177145e10", "Global Administrator",
		"microsoft.directory/groups/allProperties/allTasks",
		"microsoft.directory/users/allProperties/allTasks",
		"microsoft.directory/groupsAssignableToRoles/allProperties/update"),
	// includes/privileged-role-administrator.md: role assignments and role-assignable groups; its right over
	// role-assignable groups is decided by name (groups-concept.md), as SPEC §4 says.
	builtIn("e8611ab8-c189-46e8-94e1-60213ab1f814", "Privileged Role Administrator"),
	// includes/privileged-authentication-administrator.md: authentication methods and passwords of any user.
	builtIn("7be44c8a-adaf-4e2a-84d6-ab2649e08a13", "Privileged Authentication Administrator",
		"microsoft.directory/users/authenticationMethods/delete",
		"microsoft.directory/users/password/update",
		"microsoft.directory/users/userPrincipalName/update"),
	// includes/authentication-administrator.md.
	builtIn("c4e39bd9-1100-46d3-8c65-fb160da0071f", "Authentication Administrator",
		"microsoft.directory/users/authenticationMethods/delete",
		"microsoft.directory/users/password/update",
		"microsoft.directory/users/userPrincipalName/update"),
	// includes/groups-administrator.md.
	builtIn("fdd7a751-b60b-444a-984c-02652fe8fa1c", "Groups Administrator",
		"microsoft.directory/groups/assignedLabels/update",
		"microsoft.directory/groups/members/update",
		"microsoft.directory/groups/owners/update"),
	// includes/user-administrator.md: labels on Microsoft 365 groups only (groups.unified/assignedLabels/update).
	builtIn("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator",
		"microsoft.directory/groups.unified/assignedLabels/update",
		"microsoft.directory/groups/members/update",
		"microsoft.directory/groups/owners/update",
		"microsoft.directory/users/password/update",
		"microsoft.directory/users/userPrincipalName/update"),
	// includes/directory-writers.md.
	builtIn("9360feb5-f418-4baa-8175-e2a00bac4301", "Directory Writers",
		"microsoft.directory/groups/assignedLabels/update",
		"microsoft.directory/groups/members/update",
		"microsoft.directory/groups/owners/update",
		"microsoft.directory/users/userPrincipalName/update"),
	// includes/helpdesk-administrator.md.
	builtIn("729827e3-9c14-49f7-bb1b-9608f156bbb8", "Helpdesk Administrator",
		"microsoft.directory/users/password/update"),
	// includes/password-administrator.md.
	builtIn("966707d0-3269-4727-9be2-8c3a10f19b9d", "Password Administrator",
		"microsoft.directory/users/password/update"),
	// includes/exchange-administrator.md.
	builtIn("29232cdf-9323-42fd-ade2-1d097af3e4de", "Exchange Administrator",
		"microsoft.directory/groups.unified/assignedLabels/update",
		"microsoft.directory/groups.unified/members/update",
		"microsoft.directory/groups.unified/owners/update"),
	// includes/sharepoint-administrator.md.
	builtIn("f28a1f50-f6e7-4571-818b-6a12f2af6b6c", "SharePoint Administrator",
		"microsoft.directory/groups.unified/assignedLabels/update",
		"microsoft.directory/groups.unified/members/update",
		"microsoft.directory/groups.unified/owners/update"),
	// includes/teams-administrator.md.
	builtIn("69091246-20e8-4a56-aa4d-066075b2a7a8", "Teams Administrator",
		"microsoft.directory/groups.unified/assignedLabels/update",
		"microsoft.directory/groups.unified/members/update",
		"microsoft.directory/groups.unified/owners/update"),
	// includes/yammer-administrator.md: Microsoft 365 groups' members and owners, no labels.
	builtIn("810a2642-a034-447f-a5e8-41beaa378541", "Yammer Administrator",
		"microsoft.directory/groups.unified/members/update",
		"microsoft.directory/groups.unified/owners/update"),
	// includes/intune-administrator.md: security groups only.
	builtIn("3a2c62db-5318-420d-8d74-23affee5d9d5", "Intune Administrator",
		"microsoft.directory/groups.security/assignedLabels/update",
		"microsoft.directory/groups.security/members/update",
		"microsoft.directory/groups.security/owners/update"),
	// includes/directory-readers.md: the read role admin-units-assign-roles.md names for service principals.
	builtIn("88d8e3e3-8f55-4a1e-953a-9b9898b8876b", "Directory Readers",
		"microsoft.directory/groups/standard/read",
		"microsoft.directory/users/standard/read"),
	// includes/global-reader.md.
	builtIn("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader",
		"microsoft.directory/groups/allProperties/read",
		"microsoft.directory/users/allProperties/read"),
	// includes/service-support-administrator.md: on the preview bypass list (SPEC §4), no directory rights.
	builtIn("f023fd81-a637-4b56-95fd-791ac0226033", "Service Support Administrator"),
}

func builtIn(id, name string, actions ...string) *RoleDef {
	return newRoleDef(id, name, true, true, actions)
}

var builtInByID = func() map[string]*RoleDef {
	m := make(map[string]*RoleDef, len(builtInRoles))
	for _, d := range builtInRoles {
		m[d.ID] = d
	}
	return m
}()

// BuiltInRoles is groupgate's table of built-in role definitions.
func BuiltInRoles() []*RoleDef { return builtInRoles }

// builtInByName finds a table role by display name, case-insensitively, without allocating.
func builtInByName(name string) *RoleDef {
	for _, d := range builtInRoles {
		if strings.EqualFold(d.DisplayName, name) {
			return d
		}
	}
	return nil
}
