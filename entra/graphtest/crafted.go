package graphtest

import (
	"slices"

	"github.com/groupgate/groupgate/directory"
)

// Object ids of the crafted tenant. Real Graph ids are GUIDs; readable ids keep the tests legible and are
// equally valid groupgate ids.
const (
	UserAlice   = "u-alice" // Groups Administrator, tenant-wide: bypasses label enforcement
	UserBob     = "u-bob"   // Groups Administrator scoped to administrative unit UnitEMEA and to GroupM365 alone
	UserGina    = "u-gina"  // a guest
	UserOscar   = "u-oscar" // owns the labelled group
	UserErin    = "u-erin"  // member of the role-assignable group
	UserPriya   = "u-priya" // Privileged Role Administrator
	SPApp       = "sp-provisioning"
	GroupConf   = "g-confidential" // security, labelled Confidential (no guests), 6 members: split across entries
	GroupRole   = "g-tier0"        // role-assignable, holds Helpdesk Administrator
	GroupDyn    = "g-dynamic"
	GroupMail   = "g-mail-security"
	GroupDL     = "g-distribution"
	GroupOnPrem = "g-onprem"
	GroupM365   = "g-m365"
	GroupVault  = "g-vault"  // security, in the restricted management unit UnitVault
	UnitEMEA    = "au-emea"  // holds GroupConf, u-m3 and the device
	UnitVault   = "au-vault" // restricted management: holds GroupVault and u-m4
	LabelConf   = "lbl-confidential"
	Device      = "d-laptop" // a device member: not in groupgate's model
)

// LabelsJSON defines the crafted tenant's label, as a --labels file holds it.
const LabelsJSON = `[{"id": "lbl-confidential", "displayName": "Confidential", "priority": 10, "groupsScope": true,
  "synced": true, "guestsAllowed": false, "publishedTo": ["*"]}]`

// Crafted is a small tenant exercising every mapping of SPEC §10.
func Crafted() *Tenant {
	t := NewTenant()
	user := func(id, name, typ string) { t.Users[id] = &User{DisplayName: name, UserType: typ} }
	user(UserAlice, "Alice Groups Admin", "Member")
	user(UserBob, "Bob Scoped Admin", "Member")
	user(UserGina, "Gina (Northwind guest)", "Guest")
	user(UserOscar, "Oscar Owner", "Member")
	user(UserErin, "Erin Tier0", "Member")
	user(UserPriya, "Priya Privileged Roles", "Member")
	for _, id := range []string{"u-m1", "u-m2", "u-m3", "u-m4"} {
		user(id, "Member "+id, "Member")
	}
	u := func(id string) Ref { return Ref{Type: "#microsoft.graph.user", ID: id} }
	t.ServicePrincipals[SPApp] = "Provisioning app"

	conf := &Group{DisplayName: "Confidential Project", SecurityEnabled: true, LabelID: LabelConf, LabelName: "Confidential",
		Members: []Ref{u(UserOscar), u("u-m1"), u("u-m2"), u("u-m3"), u("u-m4"), {Type: "#microsoft.graph.device", ID: Device}},
		Owners:  []Ref{u(UserOscar)}}
	conf.SetOnPremises(false)
	t.Groups[GroupConf] = conf
	role := &Group{DisplayName: "Tier 0 Admins", SecurityEnabled: true, Members: []Ref{u(UserErin)}}
	role.SetRoleAssignable(true)
	t.Groups[GroupRole] = role
	t.Groups[GroupDyn] = &Group{DisplayName: "All Staff (dynamic)", SecurityEnabled: true, GroupTypes: []string{"DynamicMembership"}}
	t.Groups[GroupMail] = &Group{DisplayName: "Mail-enabled Security", SecurityEnabled: true, MailEnabled: true}
	t.Groups[GroupDL] = &Group{DisplayName: "Newsletter", MailEnabled: true}
	onprem := &Group{DisplayName: "AD Synced", SecurityEnabled: true}
	onprem.SetOnPremises(true)
	t.Groups[GroupOnPrem] = onprem
	t.Groups[GroupM365] = &Group{DisplayName: "Project M365", GroupTypes: []string{"Unified"}, MailEnabled: true,
		Members: []Ref{u(UserOscar), {Type: "#microsoft.graph.servicePrincipal", ID: SPApp}}, Owners: []Ref{u(UserOscar)}}

	t.Groups[GroupVault] = &Group{DisplayName: "Vault Admins", SecurityEnabled: true}
	t.Units[UnitEMEA] = &Unit{DisplayName: "EMEA", Members: []Ref{{Type: "#microsoft.graph.group", ID: GroupConf}, u("u-m3"),
		{Type: "#microsoft.graph.device", ID: Device}}}
	t.Units[UnitVault] = &Unit{DisplayName: "Vault", IsMemberManagementRestricted: true,
		Members: []Ref{{Type: "#microsoft.graph.group", ID: GroupVault}, u("u-m4")}}

	t.RoleDefinitions["rd-groups"] = "Groups Administrator"
	t.RoleDefinitions["rd-helpdesk"] = "Helpdesk Administrator"
	t.RoleDefinitions["rd-pra"] = "Privileged Role Administrator"
	// Built-in roles come with their actions, as Graph lists them (here: groupgate's table of them).
	for _, r := range directory.BuiltInRoles() {
		for id, name := range t.RoleDefinitions {
			if r.DisplayName == name {
				t.RoleActions[id] = slices.Clone(r.Actions)
			}
		}
	}
	t.RoleDefinitions["custom-groups"] = "Groups Administrator" // a custom role named like a built-in one
	t.RoleActions["custom-groups"] = []string{"microsoft.directory/groups.security/members/update", "microsoft.directory/groups/basic/read"}
	t.RoleAssignments = []RoleAssignment{
		{PrincipalID: UserAlice, RoleDefinitionID: "rd-groups", DirectoryScopeID: "/"},
		{PrincipalID: UserBob, RoleDefinitionID: "rd-groups", DirectoryScopeID: "/administrativeUnits/" + UnitEMEA},
		{PrincipalID: UserBob, RoleDefinitionID: "rd-groups", DirectoryScopeID: "/" + GroupM365}, // one object
		{PrincipalID: GroupRole, RoleDefinitionID: "rd-helpdesk", DirectoryScopeID: "/"},
		{PrincipalID: GroupRole, RoleDefinitionID: "rd-helpdesk", DirectoryScopeID: "/administrativeUnits/" + UnitVault}, // a group principal at unit scope
		{PrincipalID: UserPriya, RoleDefinitionID: "rd-pra", DirectoryScopeID: "/"},
		{PrincipalID: UserOscar, RoleDefinitionID: "custom-groups", DirectoryScopeID: "/"},
	}
	t.GraphAppRoles["ar-groupmember-rw"] = "GroupMember.ReadWrite.All"
	t.GraphAppRoles["ar-group-rw"] = "Group.ReadWrite.All"
	t.AppRoleAssignedTo = []AppRoleAssignment{{AppRoleID: "ar-groupmember-rw", PrincipalID: SPApp, PrincipalType: "ServicePrincipal"}}
	t.Settings["Group.Unified"] = map[string]string{"EnableMIPLabels": "true", "AllowToAddGuests": "true"}
	t.Settings["Group.Security"] = map[string]string{"EnableMIPLabels": "True"}
	t.ServicePlans = [][2]string{{"AAD_PREMIUM", "Success"}, {"AAD_PREMIUM_P2", "Disabled"}, {"EXCHANGE_S_ENTERPRISE", "Success"}}
	return t
}
