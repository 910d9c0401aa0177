package entra

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// The JSON shapes below are Microsoft Graph's, as its documentation gives them (file names are in
// github.com/microsoftgraph/microsoft-graph-docs-contrib). Delta rounds return every selected property of a
// changed object unless "Prefer: return=minimal" is sent, which this package never does, so each entry is the
// object's full state (api-reference/v1.0/api/user-delta.md, "Default: return the same properties as initial
// delta request"); a property that was never set is absent and reads as its zero value.

// removed is the "@removed" annotation of a deleted object or member (concepts/delta-query-overview.md,
// "Resource representation in the delta query response"): reason "changed" (restorable) or "deleted".
type removed struct {
	Reason string `json:"reason"`
}

// deltaUser is one entry of users/delta (api-reference/v1.0/api/user-delta.md).
type deltaUser struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	UserType    string   `json:"userType"`
	Removed     *removed `json:"@removed"`
}

// deltaRef is one entry of members@delta or owners@delta: only the id and @odata.type of the related object,
// with @removed when it left (concepts/delta-query-groups.md, "deltaLink response").
type deltaRef struct {
	Type    string   `json:"@odata.type"`
	ID      string   `json:"id"`
	Removed *removed `json:"@removed"`
}

// assignedLabel is a sensitivity label on a group (api-reference/v1.0/resources/assignedlabel.md).
type assignedLabel struct {
	LabelID     string `json:"labelId"`
	DisplayName string `json:"displayName"`
}

// deltaGroup is one entry of groups/delta (api-reference/v1.0/api/group-delta.md). A group with many members
// comes in several entries, on the same page or on later ones, each repeating the group's properties and
// carrying a part of members@delta (concepts/delta-query-groups.md, "Paging through members in a large group").
type deltaGroup struct {
	ID                    string          `json:"id"`
	DisplayName           string          `json:"displayName"`
	GroupTypes            []string        `json:"groupTypes"`
	MailEnabled           bool            `json:"mailEnabled"`
	SecurityEnabled       bool            `json:"securityEnabled"`
	OnPremisesSyncEnabled *bool           `json:"onPremisesSyncEnabled"`
	IsAssignableToRole    *bool           `json:"isAssignableToRole"`
	AssignedLabels        []assignedLabel `json:"assignedLabels"`
	Members               []deltaRef      `json:"members@delta"`
	Owners                []deltaRef      `json:"owners@delta"`
	Removed               *removed        `json:"@removed"`
}

// deltaUnit is one entry of administrativeUnits/delta (api-reference/v1.0/api/administrativeunit-delta.md):
// members (users, groups, devices) come as members@delta like a group's. isMemberManagementRestricted is read
// from v1.0: Graph's v1.0 metadata carries it (the v1.0 PowerShell module, generated from it, has
// New-MgDirectoryAdministrativeUnit -IsMemberManagementRestricted), although older copies of
// api-reference/v1.0/resources/administrativeunit.md list only description, displayName, id and visibility;
// api-reference/beta/resources/administrativeunit.md documents it. Absent reads as false (not restricted).
type deltaUnit struct {
	ID                           string     `json:"id"`
	DisplayName                  string     `json:"displayName"`
	IsMemberManagementRestricted *bool      `json:"isMemberManagementRestricted"`
	Members                      []deltaRef `json:"members@delta"`
	Removed                      *removed   `json:"@removed"`
}

// Delta query selections. The query travels inside the nextLink and deltaLink Graph returns, so it is sent on
// the first request of a full round only (api-reference/v1.0/api/group-delta.md, "Query parameters").
const (
	usersDeltaPath  = "/v1.0/users/delta?$select=id,displayName,userType"
	groupsDeltaPath = "/v1.0/groups/delta?$select=id,displayName,groupTypes,mailEnabled,securityEnabled," +
		"onPremisesSyncEnabled,isAssignableToRole,assignedLabels,members,owners"
	// v1.0 serves units under /directory: "GET /directory/administrativeUnits/delta"
	// (api-reference/v1.0/api/administrativeunit-delta.md, "HTTP request"; api-reference/beta/resources/
	// administrativeunit.md: "/administrativeUnits in the beta endpoint but /directory/administrativeUnits in the
	// v1.0 endpoint").
	unitsDeltaPath = "/v1.0/directory/administrativeUnits/delta?$select=id,displayName,isMemberManagementRestricted,members"
)

// Least-privileged application permissions of each read (the "Permissions" tables of each page), named in
// 401/403 errors.
const (
	needUsers    = "User.Read.All"
	needGroups   = "GroupMember.Read.All"
	needRoles    = "RoleManagement.Read.Directory"
	needUnits    = "AdministrativeUnit.Read.All"
	needApps     = "Application.Read.All"
	needSettings = "GroupSettings.Read.All (or Directory.Read.All)"
	needSkus     = "Organization.Read.All"
)

// readUsers pages users/delta from link (empty: a full read) and calls fn for every entry.
func readUsers(ctx context.Context, c *Client, link string, fn func(deltaUser) error) (string, error) {
	if link == "" {
		link = c.url(usersDeltaPath)
	}
	return each(ctx, c, link, needUsers, fn)
}

// readGroups pages groups/delta from link (empty: a full read) and calls fn for every entry.
func readGroups(ctx context.Context, c *Client, link string, fn func(deltaGroup) error) (string, error) {
	if link == "" {
		link = c.url(groupsDeltaPath)
	}
	return each(ctx, c, link, needGroups, fn)
}

// readUnits pages administrativeUnits/delta from link (empty: a full read) and calls fn for every entry.
func readUnits(ctx context.Context, c *Client, link string, fn func(deltaUnit) error) (string, error) {
	if link == "" {
		link = c.url(unitsDeltaPath)
	}
	return each(ctx, c, link, needUnits, fn)
}

// Graph's object types in @odata.type.
const (
	typeUser             = "#microsoft.graph.user"
	typeGroup            = "#microsoft.graph.group"
	typeServicePrincipal = "#microsoft.graph.servicePrincipal"
)

// Overlay is what each round reads whole, beside the delta-tracked users and groups: directory roles,
// service principals and their Graph application permissions, group settings, licences.
type Overlay struct {
	// Roles are the tenant-wide directory roles (display names, sorted) of users, service principals and
	// role-assignable groups, by principal id.
	Roles map[string][]string `json:"roles,omitempty"`
	// ServicePrincipals by id.
	ServicePrincipals map[string]ServicePrincipal `json:"servicePrincipals,omitempty"`
	Settings          Settings                    `json:"settings"`
	// Assignments are the role assignments Roles does not hold (SPEC §18): those scoped to an administrative
	// unit or one object, and tenant-wide ones of custom roles. A tenant-wide assignment of a built-in role
	// stays in Roles (directory_roles, the model's shorthand), so no assignment is counted twice.
	Assignments []Assignment `json:"assignments,omitempty"`
	// Definitions are every role definition Graph listed, by id.
	Definitions map[string]RoleDef `json:"definitions,omitempty"`
}

// Assignment is one role assignment (unifiedRoleAssignment).
type Assignment struct {
	Principal string `json:"p"`
	Role      string `json:"r"`
	Scope     string `json:"s"`
}

// RoleDef is one role definition (unifiedRoleDefinition) with its allowed resource actions.
type RoleDef struct {
	Name    string   `json:"n,omitempty"`
	BuiltIn bool     `json:"b,omitempty"`
	Actions []string `json:"a,omitempty"`
}

// ServicePrincipal is an application identity and the Microsoft Graph application permissions it holds.
type ServicePrincipal struct {
	Name        string   `json:"name,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
}

// Settings are the tenant switches read from Graph.
type Settings struct {
	Licenses                   []string `json:"licenses,omitempty"`
	SecurityGroupLabelsEnabled bool     `json:"securityGroupLabelsEnabled,omitempty"`
	UnifiedGroupLabelsEnabled  bool     `json:"unifiedGroupLabelsEnabled,omitempty"`
	// AllowGuests is AllowToAddGuests; nil when no setting says it (Entra's default: allowed).
	AllowGuests *bool `json:"allowGuests,omitempty"`
}

// roleDefinition is api-reference/v1.0/resources/unifiedroledefinition.md, from
// api-reference/v1.0/api/rbacapplication-list-roledefinitions.md.
type roleDefinition struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	IsBuiltIn   bool   `json:"isBuiltIn"`
	// RolePermissions is api-reference/v1.0/resources/unifiedrolepermission.md: the actions a role grants.
	RolePermissions []struct {
		AllowedResourceActions []string `json:"allowedResourceActions"`
	} `json:"rolePermissions"`
}

// roleAssignment is api-reference/v1.0/resources/unifiedroleassignment.md, from
// api-reference/v1.0/api/rbacapplication-list-roleassignments.md (Example 2's shape).
type roleAssignment struct {
	PrincipalID      string `json:"principalId"`
	RoleDefinitionID string `json:"roleDefinitionId"`
	DirectoryScopeID string `json:"directoryScopeId"`
}

// servicePrincipal is api-reference/v1.0/resources/serviceprincipal.md; appRoles only on Microsoft Graph's
// own service principal (api-reference/v1.0/api/serviceprincipal-get.md, Example 2).
type servicePrincipal struct {
	ID          string    `json:"id"`
	AppID       string    `json:"appId"`
	DisplayName string    `json:"displayName"`
	AppRoles    []appRole `json:"appRoles"`
}

type appRole struct {
	ID                 string   `json:"id"`
	Value              string   `json:"value"`
	AllowedMemberTypes []string `json:"allowedMemberTypes"`
}

// appRoleAssignment is api-reference/v1.0/resources/approleassignment.md, from
// api-reference/v1.0/api/serviceprincipal-list-approleassignedto.md.
type appRoleAssignment struct {
	AppRoleID     string `json:"appRoleId"`
	PrincipalID   string `json:"principalId"`
	PrincipalType string `json:"principalType"`
}

// directorySetting is api-reference/beta/resources/directorysetting.md, from
// api-reference/beta/api/directorysetting-list.md: values are strings.
type directorySetting struct {
	DisplayName string `json:"displayName"`
	Values      []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"values"`
}

// subscribedSku is api-reference/v1.0/resources/subscribedsku.md, from
// api-reference/v1.0/api/subscribedsku-list.md.
type subscribedSku struct {
	SkuPartNumber string `json:"skuPartNumber"`
	ServicePlans  []struct {
		ServicePlanName    string `json:"servicePlanName"`
		ProvisioningStatus string `json:"provisioningStatus"`
	} `json:"servicePlans"`
}

func compareAssignments(a, b Assignment) int {
	return cmp.Or(strings.Compare(a.Principal, b.Principal), strings.Compare(a.Role, b.Role), strings.Compare(a.Scope, b.Scope))
}

// graphAppID is the appId of Microsoft Graph's service principal in every tenant.
const graphAppID = "00000003-0000-0000-c000-000000000000"

// readOverlay reads roles, service principals, application permissions, settings and licences, counting the
// entries read in count. Roles are kept by principal id whatever the principal; build gives a group its roles
// only when it is role-assignable (Entra assigns roles to no other group).
func readOverlay(ctx context.Context, c *Client, count *int) (*Overlay, error) {
	o := &Overlay{Roles: map[string][]string{}, ServicePrincipals: map[string]ServicePrincipal{}}

	o.Definitions = map[string]RoleDef{}
	if _, err := each(ctx, c, c.url("/v1.0/roleManagement/directory/roleDefinitions?$select=id,displayName,isBuiltIn,rolePermissions"), needRoles,
		func(d roleDefinition) error {
			*count++
			rd := RoleDef{Name: d.DisplayName, BuiltIn: d.IsBuiltIn}
			for _, p := range d.RolePermissions {
				for _, a := range p.AllowedResourceActions {
					if !slices.Contains(rd.Actions, a) {
						rd.Actions = append(rd.Actions, a)
					}
				}
			}
			slices.Sort(rd.Actions)
			o.Definitions[d.ID] = rd
			return nil
		}); err != nil {
		return nil, err
	}
	if _, err := each(ctx, c, c.url("/v1.0/roleManagement/directory/roleAssignments?$select=principalId,roleDefinitionId,directoryScopeId"), needRoles,
		func(a roleAssignment) error {
			*count++
			d, ok := o.Definitions[a.RoleDefinitionID]
			if !ok {
				return fmt.Errorf("role assignment of %s names role definition %s, which roleDefinitions did not list", a.PrincipalID, a.RoleDefinitionID)
			}
			// A tenant-wide built-in role keeps its shorthand (directory_roles by display name); every other
			// assignment is kept as it is, with its scope (SPEC §18).
			if a.DirectoryScopeID == "/" && d.BuiltIn {
				if !slices.Contains(o.Roles[a.PrincipalID], d.Name) {
					o.Roles[a.PrincipalID] = append(o.Roles[a.PrincipalID], d.Name)
				}
				return nil
			}
			as := Assignment{Principal: a.PrincipalID, Role: a.RoleDefinitionID, Scope: a.DirectoryScopeID}
			if !slices.Contains(o.Assignments, as) {
				o.Assignments = append(o.Assignments, as)
			}
			return nil
		}); err != nil {
		return nil, err
	}
	slices.SortFunc(o.Assignments, compareAssignments)
	for _, r := range o.Roles {
		slices.Sort(r)
	}

	if _, err := each(ctx, c, c.url("/v1.0/servicePrincipals?$select=id,appId,displayName"), needApps,
		func(sp servicePrincipal) error {
			*count++
			o.ServicePrincipals[sp.ID] = ServicePrincipal{Name: sp.DisplayName}
			return nil
		}); err != nil {
		return nil, err
	}
	var graphSP servicePrincipal
	if err := c.get(ctx, c.url("/v1.0/servicePrincipals(appId='"+graphAppID+"')?$select=id,appId,displayName,appRoles"), needApps, &graphSP); err != nil {
		return nil, err
	}
	permission := map[string]string{}
	for _, r := range graphSP.AppRoles {
		permission[r.ID] = r.Value
	}
	perms := map[string][]string{}
	if _, err := each(ctx, c, c.url("/v1.0/servicePrincipals/"+url.PathEscape(graphSP.ID)+"/appRoleAssignedTo?$select=appRoleId,principalId,principalType"), needApps,
		func(a appRoleAssignment) error {
			*count++
			if a.PrincipalType != "ServicePrincipal" {
				return nil // users and groups hold delegated-style app roles, not application permissions
			}
			if p, ok := permission[a.AppRoleID]; ok && !slices.Contains(perms[a.PrincipalID], p) {
				perms[a.PrincipalID] = append(perms[a.PrincipalID], p)
			}
			return nil
		}); err != nil {
		return nil, err
	}
	for id, p := range perms {
		sp, ok := o.ServicePrincipals[id]
		if !ok {
			continue // created after the list was read: next round
		}
		slices.Sort(p)
		sp.Permissions = p
		o.ServicePrincipals[id] = sp
	}

	// beta/settings: Group.Unified and Group.Security; an absent setting means labels off, guests allowed.
	if _, err := each(ctx, c, c.url("/beta/settings"), needSettings, func(s directorySetting) error {
		*count++
		for _, v := range s.Values {
			on := strings.EqualFold(v.Value, "true")
			switch {
			case strings.EqualFold(s.DisplayName, "Group.Unified") && v.Name == "EnableMIPLabels":
				o.Settings.UnifiedGroupLabelsEnabled = on
			case strings.EqualFold(s.DisplayName, "Group.Security") && v.Name == "EnableMIPLabels":
				o.Settings.SecurityGroupLabelsEnabled = on
			case v.Name == "AllowToAddGuests" && (strings.EqualFold(s.DisplayName, "Group.Unified") || strings.EqualFold(s.DisplayName, "Group.Security")):
				// Either setting saying no keeps guests out.
				if o.Settings.AllowGuests == nil || !on {
					o.Settings.AllowGuests = &on
				}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}

	if _, err := each(ctx, c, c.url("/v1.0/subscribedSkus?$select=skuPartNumber,servicePlans"), needSkus, func(s subscribedSku) error {
		*count++
		for _, p := range s.ServicePlans {
			if p.ProvisioningStatus != "Success" {
				continue
			}
			var lic string
			switch p.ServicePlanName {
			case "AAD_PREMIUM":
				lic = "ENTRA_ID_P1"
			case "AAD_PREMIUM_P2":
				lic = "ENTRA_ID_P2"
			}
			if lic != "" && !slices.Contains(o.Settings.Licenses, lic) {
				o.Settings.Licenses = append(o.Settings.Licenses, lic)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	slices.Sort(o.Settings.Licenses)
	return o, nil
}
