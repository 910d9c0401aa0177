package entra

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// Mirror is groupgate's copy of the delta-tracked part of a tenant: users and groups as Graph last described
// them, with every member and owner reference Graph gave, even to objects groupgate has not seen yet.
type Mirror struct {
	Users  map[string]User   `json:"users"`
	Groups map[string]*Group `json:"groups"`
	// Units are the administrative units (SPEC §18).
	Units map[string]*Unit `json:"units,omitempty"`
}

// Unit is an administrative unit as administrativeUnits/delta describes it.
type Unit struct {
	Name       string `json:"n,omitempty"`
	Restricted bool   `json:"r,omitempty"`
	// Members are the direct members; devices are left out, service principals kept as Graph gave them (build
	// drops them: units hold users and groups).
	Members refsJSON `json:"m"`
}

// User is a user as users/delta describes it.
type User struct {
	Name  string `json:"n,omitempty"`
	Guest bool   `json:"g,omitempty"`
}

// Group is a group as groups/delta describes it, mapped to groupgate's attributes (SPEC §10). It is kept in
// the state file as groupJSON.
type Group struct {
	Name           string
	Kind           pb.GroupKind
	Dynamic        bool
	OnPremises     bool
	RoleAssignable bool
	Label          string
	// Members and Owners map ids to their kind ('u', 'g', 's').
	Members map[string]byte
	Owners  map[string]byte
}

func newMirror() *Mirror {
	return &Mirror{Users: map[string]User{}, Groups: map[string]*Group{}, Units: map[string]*Unit{}}
}

// working is a copy-on-write view of a mirror for one round: the maps are copied, groups only when changed, so
// a failed round leaves the committed mirror untouched at the cost of one map copy.
type working struct {
	*Mirror
	owned   map[string]bool // groups copied for this round
	touched map[string]bool // users and groups a delta entry named
	units   map[string]bool // units a delta entry named
	// track is set on a delta read (not a full one, where the sets would hold every membership of the tenant).
	track bool
	// members and owners are, per group, the ids its members@delta and owners@delta named: the only ones
	// whose membership the round can have changed; a nil set for a group present means every id (the group
	// was removed, then came back).
	members, owners map[string]map[string]bool
	// ids holds one copy of every id the round's entries named, while it reads them (see intern).
	ids map[string]string
}

// intern returns the round's copy of id. Decoding gives every reference a string of its own, so without it a
// full read of the large preset keeps 10.1M member ids beside the 1.1M distinct ones (16 bytes each there, 48
// with Entra's 36-character object ids: 160 MB and 480 MB of the mirror).
func (w *working) intern(id string) string {
	if w.ids == nil {
		w.ids = map[string]string{}
	}
	if c, ok := w.ids[id]; ok {
		return c
	}
	w.ids[id] = id
	return id
}

// delta lists what the round changed from the mirror it forked (from).
func (w *working) delta(from *State) *Delta {
	d := &Delta{From: from, Units: sortedKeys(w.units), members: w.members, owners: w.owners}
	for _, id := range sortedKeys(w.touched) {
		_, u := w.Users[id]
		_, wasU := from.Mirror.Users[id]
		_, g := w.Groups[id]
		_, wasG := from.Mirror.Groups[id]
		if u || wasU {
			d.Users = append(d.Users, id)
		}
		if g || wasG {
			d.Groups = append(d.Groups, id)
		}
	}
	return d
}

func (m *Mirror) fork() *working {
	units := maps.Clone(m.Units)
	if units == nil {
		units = map[string]*Unit{}
	}
	return &working{Mirror: &Mirror{Users: maps.Clone(m.Users), Groups: maps.Clone(m.Groups), Units: units}, owned: map[string]bool{}, touched: map[string]bool{}, units: map[string]bool{},
		members: map[string]map[string]bool{}, owners: map[string]map[string]bool{}}
}

func (w *working) group(id string) *Group {
	g := w.Groups[id]
	if g == nil {
		g = &Group{}
	} else if !w.owned[id] {
		c := *g
		c.Members, c.Owners = maps.Clone(g.Members), maps.Clone(g.Owners)
		g = &c
	}
	if g.Members == nil {
		g.Members = map[string]byte{}
	}
	if g.Owners == nil {
		g.Owners = map[string]byte{}
	}
	w.Groups[id] = g
	w.owned[id] = true
	return g
}

func (w *working) applyUser(u deltaUser) {
	w.touched[u.ID] = true
	if u.Removed != nil {
		delete(w.Users, u.ID)
		return
	}
	w.Users[w.intern(u.ID)] = User{Name: u.DisplayName, Guest: strings.EqualFold(u.UserType, "Guest")}
}

// applyUnit merges one administrativeUnits/delta entry: properties replace the unit's, members@delta changes
// its members. The unit is copied, never changed in place (the committed mirror shares it).
func (w *working) applyUnit(e deltaUnit) {
	w.units[e.ID] = true
	if e.Removed != nil {
		delete(w.Units, e.ID)
		return
	}
	members := map[string]byte{}
	if old := w.Units[e.ID]; old != nil {
		members = old.Members.toMap()
	}
	for _, r := range e.Members {
		w.applyRef(members, r)
	}
	w.Units[e.ID] = &Unit{Name: e.DisplayName, Restricted: e.IsMemberManagementRestricted != nil && *e.IsMemberManagementRestricted,
		Members: toRefsJSON(members)}
}

func refKind(odataType string) byte {
	switch odataType {
	case typeUser:
		return 'u'
	case typeGroup:
		return 'g'
	case typeServicePrincipal:
		return 's'
	}
	return 0 // devices, organisational contacts: not in groupgate's model
}

// applyGroup merges one groups/delta entry: the properties replace the group's, members@delta and owners@delta
// are changes to its lists. A group split across entries is merged entry by entry.
func (w *working) applyGroup(e deltaGroup) {
	w.touched[e.ID] = true
	if e.Removed != nil {
		delete(w.Groups, e.ID)
		delete(w.owned, e.ID)
		// Should the id come back in this round, its lists start empty: every old member may be gone.
		w.members[e.ID], w.owners[e.ID] = nil, nil
		return
	}
	g := w.group(w.intern(e.ID))
	g.Name = e.DisplayName
	g.Kind = groupKind(e)
	g.Dynamic = slices.ContainsFunc(e.GroupTypes, func(t string) bool { return strings.EqualFold(t, "DynamicMembership") })
	g.OnPremises = e.OnPremisesSyncEnabled != nil && *e.OnPremisesSyncEnabled
	g.RoleAssignable = e.IsAssignableToRole != nil && *e.IsAssignableToRole
	g.Label = ""
	if len(e.AssignedLabels) > 0 {
		g.Label = e.AssignedLabels[0].LabelID
	}
	for _, r := range e.Members {
		w.applyRef(g.Members, r)
		if w.track {
			named(w.members, e.ID, r.ID)
		}
	}
	for _, r := range e.Owners {
		w.applyRef(g.Owners, r)
		if w.track {
			named(w.owners, e.ID, r.ID)
		}
	}
}

func named(sets map[string]map[string]bool, group, id string) {
	set, ok := sets[group]
	if ok && set == nil {
		return // removed earlier in the round: compared whole
	}
	if set == nil {
		set = map[string]bool{}
		sets[group] = set
	}
	set[id] = true
}

func (w *working) applyRef(set map[string]byte, r deltaRef) {
	if r.Removed != nil {
		delete(set, r.ID)
		return
	}
	if k := refKind(r.Type); k != 0 {
		set[w.intern(r.ID)] = k
	}
}

// groupKind maps groupTypes, mailEnabled and securityEnabled (SPEC §10).
func groupKind(e deltaGroup) pb.GroupKind {
	switch {
	case slices.ContainsFunc(e.GroupTypes, func(t string) bool { return strings.EqualFold(t, "Unified") }):
		return pb.GroupKind_GROUP_KIND_MICROSOFT_365
	case e.SecurityEnabled && e.MailEnabled:
		return pb.GroupKind_GROUP_KIND_MAIL_ENABLED_SECURITY
	case e.MailEnabled:
		return pb.GroupKind_GROUP_KIND_DISTRIBUTION
	default:
		// securityEnabled only; a group that is neither (not creatable in Entra) is treated as the most
		// governed cloud kind rather than dropped.
		return pb.GroupKind_GROUP_KIND_SECURITY
	}
}

// UnknownLabelError stops a round: a group carries a label the --labels file does not define, and a decision
// on a label whose policy is unknown would be a guess.
type UnknownLabelError struct{ Label, Group string }

func (e *UnknownLabelError) Error() string {
	return fmt.Sprintf("group %s carries sensitivity label %s, which the --labels file does not define: add it (see docs/sync.md)", e.Group, e.Label)
}

// built indexes a built snapshot, so that the next build can reuse the objects a round did not change: a
// delta round on a large tenant then allocates and compares only what changed.
type built struct {
	kind map[string]byte
	// users and groups are the snapshot's, sorted by id; a delta round walks them beside its own sorted ids
	// instead of looking each object up (a million map lookups and inserts a round at 1M users).
	users  []*pb.User
	groups []*pb.Group
	sps    []string // service principal ids in kind
}

// build turns the mirror, the overlay and the label definitions into a snapshot. References to objects the
// tenant does not hold (yet) are left out; they stay in the mirror and appear once the object does. prev, when
// set, is the previous build and touched the users and groups the round changed: every other object whose
// roles did not change and whose members and owners all kept their existence is reused as it was.
func build(tenant string, m *Mirror, o *Overlay, labels []*pb.Label, prev *built, touched map[string]bool) (*pb.Snapshot, *built, error) {
	if prev == nil || prev.kind == nil {
		prev = &built{}
	}
	// Objects that appeared, disappeared or changed kind: a group naming one of them must be built again.
	var kind map[string]byte
	var changed []string
	var userIDs, groupIDs []string
	if prev.kind != nil {
		kind, changed = nextKinds(m, o, prev, touched)
		userIDs, groupIDs = nextIDs(prev, m, touched)
	} else {
		kind = make(map[string]byte, len(m.Users)+len(m.Groups)+len(o.ServicePrincipals))
		for id := range m.Users {
			kind[id] = 'u'
		}
		for id := range m.Groups {
			kind[id] = 'g'
		}
		for id := range o.ServicePrincipals {
			if _, dup := kind[id]; !dup {
				kind[id] = 's'
			}
		}
		userIDs, groupIDs = sortedKeys(m.Users), sortedKeys(m.Groups)
	}
	next := &built{kind: kind, users: make([]*pb.User, 0, len(m.Users)), groups: make([]*pb.Group, 0, len(m.Groups))}
	for id := range o.ServicePrincipals {
		if kind[id] == 's' {
			next.sps = append(next.sps, id)
		}
	}
	existence := newChangedIDs(changed)
	labelIDs := map[string]bool{}
	s := &pb.Snapshot{TenantId: tenant, Settings: &pb.TenantSettings{
		Licenses:                   slices.Clone(o.Settings.Licenses),
		SecurityGroupLabelsEnabled: o.Settings.SecurityGroupLabelsEnabled,
		UnifiedGroupLabelsEnabled:  o.Settings.UnifiedGroupLabelsEnabled,
		AllowGuestsInGroups:        o.Settings.AllowGuests,
	}}
	for _, l := range labels {
		labelIDs[l.GetId()] = true
		c := &pb.Label{Id: l.GetId(), DisplayName: l.GetDisplayName(), Priority: l.GetPriority(), GroupsScope: l.GetGroupsScope(),
			Synced: l.GetSynced(), GuestsAllowed: l.GetGuestsAllowed()}
		for _, p := range l.GetPublishedTo() {
			// A label published to an object this tenant does not hold is published to nobody here: narrower
			// publishing can only make a verdict stricter.
			if k := kind[p]; p == directory.Everyone || k == 'u' || k == 'g' {
				c.PublishedTo = append(c.PublishedTo, p)
			}
		}
		s.Labels = append(s.Labels, c)
	}
	slices.SortFunc(s.Labels, func(a, b *pb.Label) int { return strings.Compare(a.GetId(), b.GetId()) })
	pi := 0 // walks prev.users beside the sorted ids
	for _, id := range userIDs {
		for pi < len(prev.users) && prev.users[pi].GetId() < id {
			pi++
		}
		if pi < len(prev.users) && prev.users[pi].GetId() == id {
			if pu := prev.users[pi]; !touched[id] && slices.Equal(pu.GetDirectoryRoles(), o.Roles[id]) {
				next.users = append(next.users, pu)
				continue
			}
		}
		u := m.Users[id]
		t := pb.UserType_USER_TYPE_MEMBER
		if u.Guest {
			t = pb.UserType_USER_TYPE_GUEST
		}
		next.users = append(next.users, &pb.User{Id: id, DisplayName: u.Name, UserType: t, DirectoryRoles: o.Roles[id]})
	}
	s.Users = next.users
	for _, id := range sortedKeys(o.ServicePrincipals) {
		if kind[id] != 's' {
			continue
		}
		sp := o.ServicePrincipals[id]
		s.ServicePrincipals = append(s.ServicePrincipals, &pb.ServicePrincipal{Id: id, DisplayName: sp.Name,
			AppPermissions: sp.Permissions, DirectoryRoles: o.Roles[id]})
	}
	pi = 0
	var keys []string
	for _, id := range groupIDs {
		g := m.Groups[id]
		if g.Label != "" && !labelIDs[g.Label] {
			return nil, nil, &UnknownLabelError{Label: g.Label, Group: id}
		}
		var roles []string
		if g.RoleAssignable {
			roles = o.Roles[id]
		}
		for pi < len(prev.groups) && prev.groups[pi].GetId() < id {
			pi++
		}
		if pi < len(prev.groups) && prev.groups[pi].GetId() == id {
			if pg := prev.groups[pi]; !touched[id] && slices.Equal(pg.GetDirectoryRoles(), roles) && !g.names(existence) {
				next.groups = append(next.groups, pg)
				continue
			}
		}
		membership := pb.Membership_MEMBERSHIP_ASSIGNED
		if g.Dynamic {
			membership = pb.Membership_MEMBERSHIP_DYNAMIC
		}
		pg := &pb.Group{Id: id, DisplayName: g.Name, Kind: g.Kind, Membership: membership, OnPremisesSynced: g.OnPremises,
			LabelId: g.Label, IsAssignableToRole: g.RoleAssignable, DirectoryRoles: roles}
		// One buffer sorts every group's ids (a list per group was 180 MB of garbage a full build of the large
		// preset), and the members get a list of their size, not of append's growth.
		keys = sortedKeysIn(keys, g.Members)
		if len(keys) > 0 {
			pg.Members = make([]string, 0, len(keys))
		}
		for _, mid := range keys {
			if k := kind[mid]; k != 0 && k == g.Members[mid] && mid != id {
				pg.Members = append(pg.Members, mid)
			}
		}
		keys = sortedKeysIn(keys, g.Owners)
		for _, oid := range keys {
			if k := kind[oid]; k != 0 && k != 'g' && k == g.Owners[oid] {
				pg.Owners = append(pg.Owners, oid)
			}
		}
		next.groups = append(next.groups, pg)
	}
	s.Groups = next.groups
	for _, id := range sortedKeys(m.Units) {
		u := m.Units[id]
		pu := &pb.AdministrativeUnit{Id: id, DisplayName: u.Name, IsMemberManagementRestricted: u.Restricted}
		members := u.Members.toMap()
		for _, mid := range sortedKeys(members) {
			// Users and groups the tenant holds; a unit's devices are not in groupgate's model.
			if k := kind[mid]; (k == 'u' || k == 'g') && members[mid] == k {
				pu.Members = append(pu.Members, mid)
			}
		}
		s.AdministrativeUnits = append(s.AdministrativeUnits, pu)
	}
	s.RoleAssignments, s.RoleDefinitions = buildRoles(o, m, kind)
	return s, next, nil
}

// buildRoles lists the overlay's role assignments (sorted by principal, role and scope) and the definitions
// they use (sorted by id). An assignment is left out while its principal or the unit or object it is scoped to
// is not in the tenant (a group principal must be role-assignable): leaving out a grant can only make a verdict
// stricter, and the next round adds it.
func buildRoles(o *Overlay, m *Mirror, kind map[string]byte) ([]*pb.RoleAssignment, []*pb.RoleDefinition) {
	var as []*pb.RoleAssignment
	used := map[string]bool{}
	for _, a := range o.Assignments {
		switch kind[a.Principal] {
		case 'u', 's':
		case 'g':
			if !m.Groups[a.Principal].RoleAssignable {
				continue
			}
		default:
			continue
		}
		if unit, ok := strings.CutPrefix(a.Scope, "/administrativeUnits/"); ok {
			if m.Units[unit] == nil {
				continue
			}
		} else if a.Scope != "/" {
			id, ok := strings.CutPrefix(a.Scope, "/")
			if !ok || strings.Contains(id, "/") || kind[id] == 0 {
				continue
			}
		}
		if _, ok := o.Definitions[a.Role]; !ok {
			continue
		}
		as = append(as, &pb.RoleAssignment{PrincipalId: a.Principal, RoleDefinitionId: a.Role, DirectoryScopeId: a.Scope})
		used[a.Role] = true
	}
	var ds []*pb.RoleDefinition
	for _, id := range sortedKeys(used) {
		d := o.Definitions[id]
		ds = append(ds, &pb.RoleDefinition{Id: id, DisplayName: d.Name, IsBuiltIn: d.BuiltIn, AllowedResourceActions: slices.Clone(d.Actions)})
	}
	return as, ds
}

// nextKinds is the kind of every object after a delta round, from the previous build's: only the users and
// groups a delta entry named and the service principals (read whole every round) can have appeared,
// disappeared or changed kind. It returns those that did. The map is a copy: a failed round leaves prev as it
// was.
func nextKinds(m *Mirror, o *Overlay, prev *built, touched map[string]bool) (map[string]byte, []string) {
	kind := maps.Clone(prev.kind)
	var changed []string
	update := func(id string) {
		var k byte
		if _, ok := m.Groups[id]; ok {
			k = 'g'
		} else if _, ok := m.Users[id]; ok {
			k = 'u'
		} else if _, ok := o.ServicePrincipals[id]; ok {
			k = 's'
		}
		if old, had := kind[id]; old == k && (had || k == 0) {
			return
		}
		if k == 0 {
			delete(kind, id)
		} else {
			kind[id] = k
		}
		changed = append(changed, id)
	}
	for id := range touched {
		update(id)
	}
	for _, id := range prev.sps {
		update(id)
	}
	for id := range o.ServicePrincipals {
		update(id)
	}
	slices.Sort(changed)
	return kind, slices.Compact(changed)
}

// nextIDs are the sorted user and group ids after a round: the previous build's without the users and groups
// a delta entry named, merged with those of them the mirror holds now.
func nextIDs(prev *built, m *Mirror, touched map[string]bool) (users, groups []string) {
	var addU, addG []string
	gone := touched
	for id := range touched {
		if _, ok := m.Users[id]; ok {
			addU = append(addU, id)
		}
		if _, ok := m.Groups[id]; ok {
			addG = append(addG, id)
		}
	}
	users = make([]string, 0, len(m.Users))
	for _, u := range prev.users {
		if !gone[u.GetId()] {
			users = append(users, u.GetId())
		}
	}
	groups = make([]string, 0, len(m.Groups))
	for _, g := range prev.groups {
		if !gone[g.GetId()] {
			groups = append(groups, g.GetId())
		}
	}
	slices.Sort(addU)
	slices.Sort(addG)
	return mergeIDs(users, addU), mergeIDs(groups, addG)
}

// mergeIDs merges two sorted lists of distinct ids.
func mergeIDs(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		if j == len(b) || (i < len(a) && a[i] < b[j]) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}

// changedIDs are the ids whose existence a round changed, as a list and, when long, as a set.
type changedIDs struct {
	list []string
	set  map[string]bool
}

func newChangedIDs(list []string) changedIDs {
	c := changedIDs{list: list}
	if len(list) > 64 {
		c.set = make(map[string]bool, len(list))
		for _, id := range list {
			c.set[id] = true
		}
	}
	return c
}

// names reports whether the group's members or owners include any of the ids, walking the shorter side: a
// round that created thousands of users must not cost thousands of lookups per group.
func (g *Group) names(c changedIDs) bool {
	if c.set == nil || len(c.list) <= len(g.Members)+len(g.Owners) {
		for _, id := range c.list {
			if _, ok := g.Members[id]; ok {
				return true
			}
			if _, ok := g.Owners[id]; ok {
				return true
			}
		}
		return false
	}
	for id := range g.Members {
		if c.set[id] {
			return true
		}
	}
	for id := range g.Owners {
		if c.set[id] {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	return sortedKeysIn(make([]string, 0, len(m)), m)
}

// sortedKeysIn is sortedKeys in buf's storage (buf's contents are dropped).
func sortedKeysIn[V any](buf []string, m map[string]V) []string {
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// groupJSON is how a group is kept in the state file: members and owners as one id list per kind, which
// encodes several times faster than a JSON object (encoding/json sorts object keys) on tenants with millions
// of memberships.
type groupJSON struct {
	Name           string       `json:"n,omitempty"`
	Kind           pb.GroupKind `json:"k"`
	Dynamic        bool         `json:"dyn,omitempty"`
	OnPremises     bool         `json:"onp,omitempty"`
	RoleAssignable bool         `json:"rag,omitempty"`
	Label          string       `json:"l,omitempty"`
	Members        refsJSON     `json:"m"`
	Owners         refsJSON     `json:"o"`
}

type refsJSON struct {
	Users             []string `json:"u,omitempty"`
	Groups            []string `json:"g,omitempty"`
	ServicePrincipals []string `json:"s,omitempty"`
}

func toRefsJSON(m map[string]byte) refsJSON {
	var r refsJSON
	for id, k := range m {
		switch k {
		case 'u':
			r.Users = append(r.Users, id)
		case 'g':
			r.Groups = append(r.Groups, id)
		case 's':
			r.ServicePrincipals = append(r.ServicePrincipals, id)
		}
	}
	return r
}

func (r refsJSON) toMap() map[string]byte {
	m := make(map[string]byte, len(r.Users)+len(r.Groups)+len(r.ServicePrincipals))
	for _, id := range r.Users {
		m[id] = 'u'
	}
	for _, id := range r.Groups {
		m[id] = 'g'
	}
	for _, id := range r.ServicePrincipals {
		m[id] = 's'
	}
	return m
}

func (g *Group) MarshalJSON() ([]byte, error) {
	return json.Marshal(groupJSON{Name: g.Name, Kind: g.Kind, Dynamic: g.Dynamic, OnPremises: g.OnPremises, RoleAssignable: g.RoleAssignable,
		Label: g.Label, Members: toRefsJSON(g.Members), Owners: toRefsJSON(g.Owners)})
}

func (g *Group) UnmarshalJSON(b []byte) error {
	var j groupJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*g = Group{Name: j.Name, Kind: j.Kind, Dynamic: j.Dynamic, OnPremises: j.OnPremises, RoleAssignable: j.RoleAssignable, Label: j.Label,
		Members: j.Members.toMap(), Owners: j.Owners.toMap()}
	return nil
}
