package graphtest

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/groupgate/groupgate/directory"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// FromSnapshot is the Graph tenant a groupgate snapshot describes (for benchmarks on generated tenants), with
// the --labels file that defines its labels. Directory roles become tenant-wide role assignments, application
// permissions app role assignments on Microsoft Graph's service principal, settings and licences the
// directory settings and service plans that map back to them.
func FromSnapshot(s *pb.Snapshot) (*Tenant, []byte, error) {
	t := NewTenant()
	types := map[string]string{}
	roleDef := map[string]string{}
	assign := func(principal string, roles []string) {
		for _, r := range roles {
			id, ok := roleDef[r]
			if !ok {
				id = fmt.Sprintf("rd-%d", len(roleDef))
				roleDef[r] = id
				t.RoleDefinitions[id] = r
			}
			t.RoleAssignments = append(t.RoleAssignments, RoleAssignment{PrincipalID: principal, RoleDefinitionID: id, DirectoryScopeID: "/"})
		}
	}
	for _, u := range s.GetUsers() {
		typ := "Member"
		if u.GetUserType() == pb.UserType_USER_TYPE_GUEST {
			typ = "Guest"
		}
		t.Users[u.GetId()] = &User{DisplayName: u.GetDisplayName(), UserType: typ}
		types[u.GetId()] = "#microsoft.graph.user"
		assign(u.GetId(), u.GetDirectoryRoles())
	}
	appRole := map[string]string{}
	for _, sp := range s.GetServicePrincipals() {
		t.ServicePrincipals[sp.GetId()] = sp.GetDisplayName()
		types[sp.GetId()] = "#microsoft.graph.servicePrincipal"
		assign(sp.GetId(), sp.GetDirectoryRoles())
		for _, p := range sp.GetAppPermissions() {
			id, ok := appRole[p]
			if !ok {
				id = fmt.Sprintf("ar-%d", len(appRole))
				appRole[p] = id
				t.GraphAppRoles[id] = p
			}
			t.AppRoleAssignedTo = append(t.AppRoleAssignedTo, AppRoleAssignment{AppRoleID: id, PrincipalID: sp.GetId(), PrincipalType: "ServicePrincipal"})
		}
	}
	for _, g := range s.GetGroups() {
		types[g.GetId()] = "#microsoft.graph.group"
	}
	for _, g := range s.GetGroups() {
		gg := &Group{DisplayName: g.GetDisplayName(), LabelID: g.GetLabelId()}
		switch g.GetKind() {
		case pb.GroupKind_GROUP_KIND_MICROSOFT_365:
			gg.GroupTypes, gg.MailEnabled = []string{"Unified"}, true
		case pb.GroupKind_GROUP_KIND_MAIL_ENABLED_SECURITY:
			gg.MailEnabled, gg.SecurityEnabled = true, true
		case pb.GroupKind_GROUP_KIND_DISTRIBUTION:
			gg.MailEnabled = true
		default:
			gg.SecurityEnabled = true
		}
		if g.GetMembership() == pb.Membership_MEMBERSHIP_DYNAMIC {
			gg.GroupTypes = append(gg.GroupTypes, "DynamicMembership")
		}
		if g.GetOnPremisesSynced() {
			gg.SetOnPremises(true)
		}
		if g.GetIsAssignableToRole() {
			gg.SetRoleAssignable(true)
			assign(g.GetId(), g.GetDirectoryRoles())
		}
		gg.Members = make([]Ref, 0, len(g.GetMembers()))
		for _, m := range g.GetMembers() {
			gg.Members = append(gg.Members, Ref{Type: types[m], ID: m})
		}
		for _, o := range g.GetOwners() {
			gg.Owners = append(gg.Owners, Ref{Type: types[o], ID: o})
		}
		t.Groups[g.GetId()] = gg
	}
	for _, u := range s.GetAdministrativeUnits() {
		gu := &Unit{DisplayName: u.GetDisplayName(), IsMemberManagementRestricted: u.GetIsMemberManagementRestricted()}
		for _, m := range u.GetMembers() {
			gu.Members = append(gu.Members, Ref{Type: types[m], ID: m})
		}
		t.Units[u.GetId()] = gu
	}
	// Role definitions and assignments as they are; a built-in role an assignment names that the snapshot does
	// not carry is listed as groupgate's table has it (Graph lists every built-in role).
	for _, d := range s.GetRoleDefinitions() {
		id := d.GetId()
		if !d.GetIsBuiltIn() {
			if t.CustomRoles == nil {
				t.CustomRoles = map[string]bool{}
			}
			t.CustomRoles[id] = true
		}
		t.RoleDefinitions[id] = d.GetDisplayName()
		t.RoleActions[id] = slices.Clone(d.GetAllowedResourceActions())
	}
	for _, a := range s.GetRoleAssignments() {
		id := a.GetRoleDefinitionId()
		if _, ok := t.RoleDefinitions[id]; !ok {
			if i := slices.IndexFunc(directory.BuiltInRoles(), func(r *directory.RoleDef) bool { return r.ID == id }); i >= 0 {
				r := directory.BuiltInRoles()[i]
				t.RoleDefinitions[id] = r.DisplayName
				t.RoleActions[id] = slices.Clone(r.Actions)
			}
		}
		t.RoleAssignments = append(t.RoleAssignments, RoleAssignment{PrincipalID: a.GetPrincipalId(), RoleDefinitionID: id, DirectoryScopeID: a.GetDirectoryScopeId()})
	}
	st := s.GetSettings()
	t.Settings["Group.Security"] = map[string]string{"EnableMIPLabels": fmt.Sprint(st.GetSecurityGroupLabelsEnabled())}
	t.Settings["Group.Unified"] = map[string]string{"EnableMIPLabels": fmt.Sprint(st.GetUnifiedGroupLabelsEnabled())}
	if st.AllowGuestsInGroups != nil {
		t.Settings["Group.Unified"]["AllowToAddGuests"] = fmt.Sprint(st.GetAllowGuestsInGroups())
	}
	for _, l := range st.GetLicenses() {
		plan := map[string]string{"ENTRA_ID_P1": "AAD_PREMIUM", "ENTRA_ID_P2": "AAD_PREMIUM_P2"}[l]
		if plan != "" {
			t.ServicePlans = append(t.ServicePlans, [2]string{plan, "Success"})
		}
	}
	var labels []json.RawMessage
	for _, l := range s.GetLabels() {
		b, err := protojson.Marshal(l)
		if err != nil {
			return nil, nil, err
		}
		labels = append(labels, b)
	}
	lj, err := json.Marshal(labels)
	return t, lj, err
}
