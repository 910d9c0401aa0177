// Package graphtest is a Microsoft Graph stand-in for tests: an httptest server holding a small tenant and
// answering the requests groupgate sync makes with the response shapes Microsoft Graph documents (each shape
// names its page in github.com/microsoftgraph/microsoft-graph-docs-contrib). It pages every collection,
// splits large groups across entries and pages, tracks changes for delta queries, and can be told to throttle,
// fail, refuse a permission or expire its delta links.
package graphtest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ref is a member or owner: an object id and its @odata.type ("#microsoft.graph.user", ".group",
// ".servicePrincipal", ".device", …).
type Ref struct{ Type, ID string }

// User is a user's tracked properties.
type User struct{ DisplayName, UserType string }

// Group is a group's tracked properties and relationships.
type Group struct {
	DisplayName                 string
	GroupTypes                  []string
	MailEnabled                 bool
	SecurityEnabled             bool
	OnPremisesSyncEnabled       bool
	IsAssignableToRole          bool
	LabelID, LabelName          string
	Members, Owners             []Ref
	setOnPremises, setRoleGroup bool // a never-set property is absent from Graph's answers
}

// SetOnPremises and SetRoleAssignable set the boolean properties Graph leaves out while unset.
func (g *Group) SetOnPremises(v bool)     { g.OnPremisesSyncEnabled, g.setOnPremises = v, true }
func (g *Group) SetRoleAssignable(v bool) { g.IsAssignableToRole, g.setRoleGroup = v, true }

// Unit is an administrativeUnit (api-reference/v1.0/resources/administrativeunit.md) with its members.
type Unit struct {
	DisplayName                  string
	IsMemberManagementRestricted bool
	Members                      []Ref
}

// RoleAssignment is a unifiedRoleAssignment.
type RoleAssignment struct{ PrincipalID, RoleDefinitionID, DirectoryScopeID string }

// AppRoleAssignment is an appRoleAssignment on the Microsoft Graph service principal.
type AppRoleAssignment struct{ AppRoleID, PrincipalID, PrincipalType string }

// Tenant is the stand-in's directory.
type Tenant struct {
	Users             map[string]*User
	Groups            map[string]*Group
	ServicePrincipals map[string]string   // id -> displayName (Microsoft Graph's own is added by New)
	RoleDefinitions   map[string]string   // id -> displayName; ids starting "custom-" are custom roles
	RoleActions       map[string][]string // role definition id -> rolePermissions' allowedResourceActions
	CustomRoles       map[string]bool     // role definition ids of custom roles, beside those starting "custom-"
	RoleAssignments   []RoleAssignment
	Units             map[string]*Unit
	GraphAppRoles     map[string]string // appRole id -> value
	AppRoleAssignedTo []AppRoleAssignment
	// Settings by displayName ("Group.Unified", "Group.Security"): name -> value.
	Settings map[string]map[string]string
	// ServicePlans are (servicePlanName, provisioningStatus) pairs of one subscribed SKU.
	ServicePlans [][2]string
}

// NewTenant is an empty tenant.
func NewTenant() *Tenant {
	return &Tenant{Users: map[string]*User{}, Groups: map[string]*Group{}, ServicePrincipals: map[string]string{},
		Units: map[string]*Unit{}, RoleDefinitions: map[string]string{}, RoleActions: map[string][]string{}, GraphAppRoles: map[string]string{}, Settings: map[string]map[string]string{}}
}

func (t *Tenant) clone() *Tenant {
	c := *t
	c.Users = make(map[string]*User, len(t.Users))
	for id, u := range t.Users {
		v := *u
		c.Users[id] = &v
	}
	c.Groups = make(map[string]*Group, len(t.Groups))
	for id, g := range t.Groups {
		v := *g
		v.Members, v.Owners, v.GroupTypes = slices.Clone(g.Members), slices.Clone(g.Owners), slices.Clone(g.GroupTypes)
		c.Groups[id] = &v
	}
	c.ServicePrincipals = maps.Clone(t.ServicePrincipals)
	c.Units = make(map[string]*Unit, len(t.Units))
	for id, u := range t.Units {
		v := *u
		v.Members = slices.Clone(u.Members)
		c.Units[id] = &v
	}
	c.RoleDefinitions = maps.Clone(t.RoleDefinitions)
	c.RoleActions = maps.Clone(t.RoleActions)
	c.CustomRoles = maps.Clone(t.CustomRoles)
	c.RoleAssignments = slices.Clone(t.RoleAssignments)
	c.GraphAppRoles = maps.Clone(t.GraphAppRoles)
	c.AppRoleAssignedTo = slices.Clone(t.AppRoleAssignedTo)
	c.Settings = make(map[string]map[string]string, len(t.Settings))
	for name, values := range t.Settings {
		c.Settings[name] = maps.Clone(values)
	}
	c.ServicePlans = slices.Clone(t.ServicePlans)
	return &c
}

// GraphSPID is the object id of Microsoft Graph's service principal in the stand-in.
const GraphSPID = "9a1f0000-0000-4000-8000-00000000a001"

// Fault makes requests whose path starts with Path fail Times times with Status (and Retry-After when set).
type Fault struct {
	Path       string
	Status     int
	RetryAfter string
	Code       string
	// Body, when set, is sent as is (e.g. a page that does not parse) instead of Graph's error JSON.
	Body  string
	Times int
}

// Server is the stand-in.
type Server struct {
	*httptest.Server
	// Token is the bearer token it accepts.
	Token string
	// UserPage and GroupPage are the entries per page of users/delta and groups/delta; OtherPage of the other
	// collections; MembersPerEntry splits a group with more members into several entries (as Graph does for
	// large groups). Defaults: 2, 2, 2, 3.
	UserPage, GroupPage, OtherPage, MembersPerEntry int
	// Shuffle makes the delta queries answer as Graph may but the stand-in otherwise never does: a first page
	// with no entries and a nextLink ("This is true even if the current response may contain an empty
	// result", concepts/delta-query-overview.md, "Use delta query to track changes in a resource
	// collection"; concepts/paging.md: "A page of results may contain zero or more results"), entries out of
	// order so that a large group's entries are not consecutive ("Assume that the same group could show up
	// anywhere in the nextLink sequence", concepts/delta-query-groups.md, "Paging through members in a large
	// group"), and one entry sent twice ("Replays", concepts/delta-query-overview.md).
	Shuffle bool

	mu       sync.Mutex
	versions []*Tenant // versions[v] is the tenant at version v; the last is current
	expired  int       // delta tokens of versions below this answer 410 Gone
	cursors  map[string]*cursor
	nextCur  int
	faults   []*Fault
	denied   map[string]string // path prefix -> missing permission named in the 403 message
	requests []string
	busy     time.Duration
}

type cursor struct {
	entries []any
	last    string // the deltaLink (or "") once the entries are exhausted
	size    int
	// query is what the first request asked besides paging, repeated in every nextLink of a list that is not a
	// delta query (concepts/paging.md); a delta query's links carry it inside their tokens instead.
	query url.Values
	// empty makes the next page hold no entries (with a nextLink), as Shuffle asks.
	empty bool
}

// New starts a stand-in serving t (which it copies).
func New(t *Tenant) *Server {
	s := &Server{Token: "graph-test-token", UserPage: 2, GroupPage: 2, OtherPage: 2, MembersPerEntry: 3,
		cursors: map[string]*cursor{}, denied: map[string]string{}}
	t = t.clone()
	t.ServicePrincipals[GraphSPID] = "Microsoft Graph"
	s.versions = []*Tenant{t}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Update changes the tenant as one step of Graph's change tracking.
func (s *Server) Update(fn func(t *Tenant)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.versions[len(s.versions)-1].clone()
	fn(t)
	t.ServicePrincipals[GraphSPID] = "Microsoft Graph"
	s.versions = append(s.versions, t)
}

// ForgetHistory drops every version but the current one, so that a long benchmark on a large tenant does not
// hold a copy of it per Update; delta links to the dropped versions answer 410 Gone, as expired ones do.
func (s *Server) ForgetHistory() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range len(s.versions) - 1 {
		s.versions[i] = nil
	}
	s.expired = len(s.versions) - 1
}

// ExpireDeltaLinks makes every delta link handed out so far answer 410 Gone.
func (s *Server) ExpireDeltaLinks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expired = len(s.versions)
}

// AddFault queues a fault.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults drops the faults still queued.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Deny answers 403 to requests under path. The code is Graph's (concepts/errors.md, 403 Forbidden;
// Authorization_RequestDenied is what directory APIs answer); the "Required permissions: X." ending is the
// stand-in's, so that the client's naming of a permission found in the message is tested.
func (s *Server) Deny(path, permission string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[path] = permission
}

// Requests lists the request URIs served so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// graphError writes Graph's error body (concepts/errors.md, "Error resource type").
func graphError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": code, "message": message,
		"innerError": map[string]any{"date": "2026-11-27T00:00:00", "request-id": "00000000-0000-0000-0000-000000000000"},
	}})
}

// Busy is the time spent answering so far: what a client waited for the stand-in, to subtract from its own
// timings where Graph's latency is not what is measured.
func (s *Server) Busy() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	defer func() { s.busy += time.Since(start) }()
	s.requests = append(s.requests, r.URL.RequestURI())
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		// A token for another audience or a wrong one: 401 (concepts/errors.md, 401 Unauthorized) with the code
		// Graph gives a token it cannot validate, InvalidAuthenticationToken.
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return
	}
	path := r.URL.Path
	for i, f := range s.faults {
		if f.Times > 0 && strings.HasPrefix(path, f.Path) {
			f.Times--
			if f.Times == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
			if f.RetryAfter != "" {
				// concepts/throttling.md: 429 with Retry-After in seconds, fractional in its example ("2.128");
				// 503 may carry one too (concepts/errors.md).
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			if f.Body != "" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(f.Status)
				_, _ = w.Write([]byte(f.Body))
				return
			}
			code := f.Code
			if code == "" {
				// TooManyRequests: concepts/throttling.md, "Sample response"; serviceNotAvailable:
				// concepts/errors.md, "Code property".
				code = map[int]string{429: "TooManyRequests", 503: "serviceNotAvailable"}[f.Status]
			}
			graphError(w, f.Status, code, http.StatusText(f.Status))
			return
		}
	}
	for prefix, perm := range s.denied {
		if strings.HasPrefix(path, prefix) {
			graphError(w, http.StatusForbidden, "Authorization_RequestDenied",
				"Insufficient privileges to complete the operation. Required permissions: "+perm+".")
			return
		}
	}
	q := r.URL.Query()
	if tok := q.Get("$skiptoken"); tok != "" {
		c, ok := s.cursors[tok]
		if !ok {
			// Not Graph's wording: the stand-in's own refusal of a token it never gave out.
			graphError(w, http.StatusBadRequest, "invalidRequest", "unknown $skiptoken")
			return
		}
		if c.last != "" && len(q) > 1 {
			// concepts/delta-query-overview.md, "Optional query parameters": "Delta queries with both $select and
			// $skipToken will not be supported": a delta query's nextLink is followed as it is.
			graphError(w, http.StatusBadRequest, "invalidRequest", "a delta query's nextLink takes no other query parameters")
			return
		}
		delete(s.cursors, tok)
		s.writePage(w, r, c)
		return
	}
	cur := s.versions[len(s.versions)-1]
	switch {
	case path == "/v1.0/users/delta", path == "/v1.0/groups/delta", path == unitsDelta:
		s.serveDelta(w, r, cur)
	case path == "/v1.0/roleManagement/directory/roleDefinitions":
		var out []any
		for _, id := range sortedKeys(cur.RoleDefinitions) {
			// api-reference/v1.0/api/rbacapplication-list-roledefinitions.md; rolePermissions is a list of
			// unifiedRolePermission (api-reference/v1.0/resources/unifiedroledefinition.md,
			// api-reference/v1.0/resources/unifiedrolepermission.md).
			builtIn := !strings.HasPrefix(id, "custom-") && !cur.CustomRoles[id]
			actions := cur.RoleActions[id]
			if actions == nil {
				actions = []string{}
			}
			out = append(out, map[string]any{"id": id, "description": "…", "displayName": cur.RoleDefinitions[id], "isBuiltIn": builtIn,
				"isEnabled": true, "resourceScopes": []string{"/"}, "templateId": id, "version": "1",
				"rolePermissions": []any{map[string]any{"allowedResourceActions": actions, "condition": nil}}})
		}
		s.writeList(w, r, out, "", s.OtherPage)
	case path == "/v1.0/roleManagement/directory/roleAssignments":
		var out []any
		for i, a := range cur.RoleAssignments {
			// api-reference/v1.0/api/rbacapplication-list-roleassignments.md, Example 2
			out = append(out, map[string]any{"id": fmt.Sprintf("ra-%d", i), "principalId": a.PrincipalID, "resourceScope": a.DirectoryScopeID,
				"directoryScopeId": a.DirectoryScopeID, "roleDefinitionId": a.RoleDefinitionID})
		}
		s.writeList(w, r, out, "", s.OtherPage)
	case path == "/v1.0/servicePrincipals":
		var out []any
		for _, id := range sortedKeys(cur.ServicePrincipals) {
			// api-reference/v1.0/api/serviceprincipal-list.md
			app := "app-" + id
			if id == GraphSPID {
				app = "00000003-0000-0000-c000-000000000000"
			}
			out = append(out, map[string]any{"id": id, "appId": app, "displayName": cur.ServicePrincipals[id]})
		}
		s.writeList(w, r, out, "", s.OtherPage)
	case path == "/v1.0/servicePrincipals(appId='00000003-0000-0000-c000-000000000000')":
		// api-reference/v1.0/api/serviceprincipal-get.md: the appId form of "HTTP request", Example 2's shape
		var roles []any
		for _, id := range sortedKeys(cur.GraphAppRoles) {
			roles = append(roles, map[string]any{"allowedMemberTypes": []string{"Application"}, "description": "…",
				"displayName": cur.GraphAppRoles[id], "id": id, "isEnabled": true, "origin": "Application", "value": cur.GraphAppRoles[id]})
		}
		writeJSON(w, map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals(id,appId,displayName,appRoles)/$entity",
			"id": GraphSPID, "appId": "00000003-0000-0000-c000-000000000000", "displayName": "Microsoft Graph", "appRoles": roles})
	case path == "/v1.0/servicePrincipals/"+GraphSPID+"/appRoleAssignedTo":
		var out []any
		for i, a := range cur.AppRoleAssignedTo {
			// api-reference/v1.0/api/serviceprincipal-list-approleassignedto.md
			out = append(out, map[string]any{"id": fmt.Sprintf("ara-%d", i), "deletedDateTime": nil, "appRoleId": a.AppRoleID,
				"principalDisplayName": cur.ServicePrincipals[a.PrincipalID], "principalId": a.PrincipalID, "principalType": a.PrincipalType,
				"resourceDisplayName": "Microsoft Graph", "resourceId": GraphSPID})
		}
		s.writeList(w, r, out, "", s.OtherPage)
	case path == "/beta/settings":
		var out []any
		for _, name := range sortedKeys(cur.Settings) {
			// api-reference/beta/api/directorysetting-list.md: values are name/value strings.
			var values []any
			for _, k := range sortedKeys(cur.Settings[name]) {
				values = append(values, map[string]any{"name": k, "value": cur.Settings[name][k]})
			}
			out = append(out, map[string]any{"id": "setting-" + name, "displayName": name, "templateId": "template-" + name, "values": values})
		}
		s.writeList(w, r, out, "", s.OtherPage)
	case path == "/v1.0/subscribedSkus":
		// api-reference/v1.0/api/subscribedsku-list.md
		var plans []any
		for _, p := range cur.ServicePlans {
			plans = append(plans, map[string]any{"servicePlanId": "plan-" + p[0], "servicePlanName": p[0], "provisioningStatus": p[1], "appliesTo": "User"})
		}
		out := []any{map[string]any{"accountName": "Contoso", "appliesTo": "User", "capabilityStatus": "Enabled", "consumedUnits": 14,
			"id": "sku-1", "skuId": "sku-1", "skuPartNumber": "ENTERPRISEPREMIUM", "servicePlans": plans}}
		s.writeList(w, r, out, "", s.OtherPage)
	default:
		// concepts/errors.md lists 404 Not Found; the code and message are Graph's for an unknown segment.
		graphError(w, http.StatusNotFound, "Request_ResourceNotFound", "Resource not found for the segment.")
	}
}

// unitsDelta is where v1.0 serves administrativeUnits/delta: "GET /directory/administrativeUnits/delta"
// (api-reference/v1.0/api/administrativeunit-delta.md, "HTTP request"); "The URL endpoint for calling the
// administrativeUnits API is /administrativeUnits in the beta endpoint but /directory/administrativeUnits in the
// v1.0 endpoint" (api-reference/beta/resources/administrativeunit.md, "Methods").
const unitsDelta = "/v1.0/directory/administrativeUnits/delta"

// serveDelta answers users/delta and groups/delta: a full read (no token) or the changes since a deltaLink's
// version. The query of the first request ($select) travels inside the links, as Graph encodes it into its
// tokens (api-reference/v1.0/api/group-delta.md, "Query parameters").
func (s *Server) serveDelta(w http.ResponseWriter, r *http.Request, cur *Tenant) {
	if strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "return=minimal") {
		// With return=minimal Graph leaves unchanged properties out (api-reference/v1.0/api/user-delta.md,
		// "Alternative: return only the changed properties"); the sync reads every entry as the object's full
		// state, so it must never ask for that. The stand-in serves the default behaviour only.
		graphError(w, http.StatusBadRequest, "invalidRequest", "the stand-in does not serve Prefer: return=minimal")
		return
	}
	q := r.URL.Query()
	groups := r.URL.Path == "/v1.0/groups/delta"
	var since *Tenant
	sel := q.Get("$select")
	if tok := q.Get("$deltatoken"); tok != "" {
		v, selected, ok := strings.Cut(tok, ".")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n >= len(s.versions) {
			// Not Graph's wording: the stand-in refuses a token it never gave out.
			graphError(w, http.StatusBadRequest, "invalidRequest", "malformed $deltatoken")
			return
		}
		if n < s.expired {
			// concepts/delta-query-overview.md, "Synchronization reset": 410 and a Location header holding a
			// request URL with an empty $deltaToken, "same as the initial query" (so it keeps the $select).
			w.Header().Set("Location", s.URL+r.URL.Path+"?$select="+url.QueryEscape(selected)+"&$deltatoken=")
			// The code and message: concepts/errors.md, "Code property" (resyncRequired).
			graphError(w, http.StatusGone, "resyncRequired", "Resync required. Replace any local items with the server's version.")
			return
		}
		since = s.versions[n]
		sel = selected
	}
	selected := map[string]bool{"id": true}
	for _, f := range strings.Split(sel, ",") {
		selected[strings.TrimSpace(f)] = true
	}
	if sel == "" {
		// Not a Graph rule (Graph returns its default properties): the sync always selects, and a request
		// without one means the client lost its query.
		graphError(w, http.StatusBadRequest, "invalidRequest", "the stand-in wants $select on the first delta request")
		return
	}
	var entries []any
	size := s.UserPage
	switch {
	case groups:
		entries, size = s.groupEntries(since, cur, selected), s.GroupPage
	case r.URL.Path == unitsDelta:
		entries, size = unitEntries(since, cur, selected), s.GroupPage
	default:
		entries = userEntries(since, cur, selected)
	}
	delta := fmt.Sprintf("%s%s?$deltatoken=%s", s.URL, r.URL.Path, url.QueryEscape(fmt.Sprintf("%d.%s", len(s.versions)-1, sel)))
	c := &cursor{entries: entries, last: delta, size: max(size, 1)}
	if s.Shuffle {
		c.entries, c.empty = shuffled(entries), true
	}
	s.writePage(w, r, c)
}

// shuffled is entries with those at even positions first, then those at odd ones (which separates the
// consecutive entries of a group split across entries), and the middle one sent again at the end. Within one
// answer the stand-in names an object either as present or as removed and a member either as added or as
// removed, so neither the order nor the replay changes what the entries mean.
func shuffled(entries []any) []any {
	if len(entries) < 2 {
		return entries
	}
	out := make([]any, 0, len(entries)+1)
	for _, odd := range []int{0, 1} {
		for i := odd; i < len(entries); i += 2 {
			out = append(out, entries[i])
		}
	}
	return append(out, entries[len(entries)/2])
}

func pick(selected map[string]bool, m map[string]any) map[string]any {
	for k := range m {
		if !selected[k] {
			delete(m, k)
		}
	}
	return m
}

// userEntries: every user on a full read; new, changed and removed users since a version otherwise, each with
// all selected properties (api-reference/v1.0/api/user-delta.md, "Default: return the same properties as
// initial delta request"); removed ones as id and @removed with reason "changed": a deleted user is soft-deleted
// first (concepts/delta-query-users.md, "deltaLink response").
func userEntries(since, cur *Tenant, selected map[string]bool) []any {
	var out []any
	for _, id := range sortedKeys(cur.Users) {
		u := cur.Users[id]
		if since != nil {
			if old, ok := since.Users[id]; ok && *old == *u {
				continue
			}
		}
		e := map[string]any{"id": id, "displayName": u.DisplayName}
		if u.UserType != "" {
			e["userType"] = u.UserType
		}
		out = append(out, pick(selected, e))
	}
	if since != nil {
		for _, id := range sortedKeys(since.Users) {
			if _, ok := cur.Users[id]; !ok {
				out = append(out, map[string]any{"id": id, "@removed": map[string]any{"reason": "changed"}})
			}
		}
	}
	return out
}

// groupEntries: like userEntries, with members@delta and owners@delta holding every member on a full read and
// the additions and removals (with @removed) since a version otherwise; a group with more than MembersPerEntry
// member changes comes as several entries, each repeating the group's properties
// (concepts/delta-query-groups.md, "Paging through members in a large group").
func (s *Server) groupEntries(since, cur *Tenant, selected map[string]bool) []any {
	var out []any
	for _, id := range sortedKeys(cur.Groups) {
		g := cur.Groups[id]
		var old *Group
		if since != nil {
			old = since.Groups[id]
		}
		if old != nil && sameProps(old, g) && slices.Equal(old.Members, g.Members) && slices.Equal(old.Owners, g.Owners) {
			continue // the common case, without building sets
		}
		members, owners := refDelta(old, g, true), refDelta(old, g, false)
		if old != nil && len(members) == 0 && len(owners) == 0 && sameProps(old, g) {
			continue
		}
		// A relationship comes as name@delta only when selected (api-reference/v1.0/api/group-delta.md,
		// "OData query parameters").
		if !selected["members"] {
			members = nil
		}
		if !selected["owners"] {
			owners = nil
		}
		props := func() map[string]any {
			e := map[string]any{"id": id, "displayName": g.DisplayName, "groupTypes": nonNil(g.GroupTypes),
				"mailEnabled": g.MailEnabled, "securityEnabled": g.SecurityEnabled, "assignedLabels": []any{}}
			if g.setOnPremises {
				e["onPremisesSyncEnabled"] = g.OnPremisesSyncEnabled
			}
			if g.setRoleGroup {
				e["isAssignableToRole"] = g.IsAssignableToRole
			}
			if g.LabelID != "" {
				e["assignedLabels"] = []any{map[string]any{"labelId": g.LabelID, "displayName": g.LabelName}}
			}
			return pick(selected, e)
		}
		per := max(s.MembersPerEntry, 1)
		for first := true; first || len(members) > 0 || len(owners) > 0; first = false {
			e := props()
			if len(members) > 0 {
				n := min(per, len(members))
				e["members@delta"], members = members[:n], members[n:]
			}
			if len(owners) > 0 {
				n := min(per, len(owners))
				e["owners@delta"], owners = owners[:n], owners[n:]
			}
			out = append(out, e)
		}
	}
	if since != nil {
		for _, id := range sortedKeys(since.Groups) {
			if _, ok := cur.Groups[id]; !ok {
				// concepts/delta-query-groups.md: a security group is deleted for good ("deleted"); a Microsoft
				// 365 group goes to the deleted items first ("changed").
				reason := "deleted"
				if slices.Contains(since.Groups[id].GroupTypes, "Unified") {
					reason = "changed"
				}
				out = append(out, map[string]any{"id": id, "@removed": map[string]any{"reason": reason}})
			}
		}
	}
	return out
}

// unitEntries answers administrativeUnits/delta (api-reference/v1.0/api/administrativeunit-delta.md): changed
// units with all selected properties and members@delta (additions as {@odata.type, id}, removals with
// @removed, as for groups), removed units as id and @removed.
func unitEntries(since, cur *Tenant, selected map[string]bool) []any {
	var out []any
	for _, id := range sortedKeys(cur.Units) {
		u := cur.Units[id]
		var old *Unit
		if since != nil {
			old = since.Units[id]
		}
		var members []any
		if old == nil {
			members = refDelta(nil, &Group{Members: u.Members}, true)
		} else {
			members = refDelta(&Group{Members: old.Members}, &Group{Members: u.Members}, true)
			if len(members) == 0 && old.DisplayName == u.DisplayName && old.IsMemberManagementRestricted == u.IsMemberManagementRestricted {
				continue
			}
		}
		e := pick(selected, map[string]any{"id": id, "displayName": u.DisplayName, "description": nil, "visibility": nil,
			"isMemberManagementRestricted": u.IsMemberManagementRestricted})
		if selected["members"] {
			e["members@delta"] = nonNilAny(members)
		}
		out = append(out, e)
	}
	if since != nil {
		for _, id := range sortedKeys(since.Units) {
			if _, ok := cur.Units[id]; !ok {
				out = append(out, map[string]any{"id": id, "@removed": map[string]any{"reason": "deleted"}})
			}
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func sameProps(a, b *Group) bool {
	return a.DisplayName == b.DisplayName && slices.Equal(a.GroupTypes, b.GroupTypes) && a.MailEnabled == b.MailEnabled &&
		a.SecurityEnabled == b.SecurityEnabled && a.OnPremisesSyncEnabled == b.OnPremisesSyncEnabled &&
		a.IsAssignableToRole == b.IsAssignableToRole && a.LabelID == b.LabelID
}

// refDelta lists members@delta (or owners@delta) entries: additions as {@odata.type, id}, removals with
// "@removed": {"reason": "deleted"} (concepts/delta-query-groups.md, "deltaLink response").
func refDelta(old, g *Group, members bool) []any {
	list := func(x *Group) []Ref {
		if x == nil {
			return nil
		}
		if members {
			return x.Members
		}
		return x.Owners
	}
	was := map[string]bool{}
	for _, r := range list(old) {
		was[r.ID] = true
	}
	now := map[string]bool{}
	var out []any
	for _, r := range list(g) {
		now[r.ID] = true
		if !was[r.ID] {
			out = append(out, map[string]any{"@odata.type": r.Type, "id": r.ID})
		}
	}
	for _, r := range list(old) {
		if !now[r.ID] {
			out = append(out, map[string]any{"@odata.type": r.Type, "id": r.ID, "@removed": map[string]any{"reason": "deleted"}})
		}
	}
	return out
}

// writeList pages entries: the first page now, the rest behind @odata.nextLink; the last page carries
// deltaLink when there is one.
func (s *Server) writeList(w http.ResponseWriter, r *http.Request, entries []any, deltaLink string, size int) {
	s.writePage(w, r, &cursor{entries: entries, last: deltaLink, size: max(size, 1), query: r.URL.Query()})
}

func (s *Server) writePage(w http.ResponseWriter, r *http.Request, c *cursor) {
	n := min(c.size, len(c.entries))
	if c.empty {
		c.empty, n = false, 0
	}
	// "@odata.context": ".../v1.0/$metadata#groups" for groups/delta (concepts/delta-query-groups.md), under
	// beta for a beta collection.
	version, context, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	context = strings.TrimPrefix(strings.TrimSuffix(context, "/delta"), "directory/") // "#administrativeunits" in the units' page
	if rest, ok := strings.CutPrefix(context, "servicePrincipals/"); ok {
		// A navigation from one entity names it by key: "$metadata#servicePrincipals('…')/appRoleAssignedTo"
		// (api-reference/v1.0/api/serviceprincipal-list-approleassignedto.md).
		id, nav, _ := strings.Cut(rest, "/")
		context = "servicePrincipals('" + id + "')/" + nav
	}
	body := map[string]any{"@odata.context": "https://graph.microsoft.com/" + version + "/$metadata#" + context, "value": nonNilAny(c.entries[:n])}
	c.entries = c.entries[n:]
	if len(c.entries) > 0 {
		s.nextCur++
		tok := fmt.Sprintf("skip%d", s.nextCur)
		s.cursors[tok] = c
		next := url.Values{}
		if c.last == "" {
			// concepts/paging.md: "The URL also contains all the other query parameters present in the
			// original request."
			next = maps.Clone(c.query)
		}
		next.Set("$skiptoken", tok)
		body["@odata.nextLink"] = s.URL + r.URL.Path + "?" + strings.ReplaceAll(next.Encode(), "%24", "$")
	} else if c.last != "" {
		body["@odata.deltaLink"] = c.last
	}
	writeJSON(w, body)
}

func nonNilAny(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
