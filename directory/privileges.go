package directory

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// Privileges as Entra computes them (SPEC §18): role definitions, role assignments at a scope, and
// administrative units. The facts are kept as the snapshot states them; when a directory is built, they are
// indexed by principal (its grants) and by object (the units it is a direct member of), so that a decision
// finds an actor's rights over an object with a few slice walks and no allocation.

const (
	kindSecurity       = pb.GroupKind_GROUP_KIND_SECURITY
	kindUnified        = pb.GroupKind_GROUP_KIND_MICROSOFT_365
	membershipAssigned = pb.Membership_MEMBERSHIP_ASSIGNED
)

// ScopeKind is what a role assignment's directoryScopeId names (unifiedroleassignment.md: "/" for the tenant,
// "/administrativeUnits/{id}" for an administrative unit, "/{objectId}" for one object).
type ScopeKind uint8

const (
	ScopeTenant ScopeKind = iota + 1
	ScopeUnit
	ScopeObject
)

// ScopeTenantID is the directoryScopeId of a tenant-wide assignment.
const ScopeTenantID = "/"

const unitScopePrefix = "/administrativeUnits/"

// UnitScopeID is the directoryScopeId of an administrative unit.
func UnitScopeID(unitID string) string { return unitScopePrefix + unitID }

// parseScope splits a directoryScopeId; ok is false for a malformed one.
func parseScope(s string) (kind ScopeKind, id string, ok bool) {
	switch {
	case s == ScopeTenantID:
		return ScopeTenant, "", true
	case strings.HasPrefix(s, unitScopePrefix):
		id = s[len(unitScopePrefix):]
		return ScopeUnit, id, ValidID(id)
	case strings.HasPrefix(s, "/"):
		id = s[1:]
		return ScopeObject, id, ValidID(id)
	}
	return 0, "", false
}

// Unit is an administrative unit as indexed in one directory.
type Unit struct {
	ID          string
	DisplayName string
	Restricted  bool
	// Members are the direct members, in the order listed.
	Members []Ref
}

// Grant is one role a principal holds at one scope.
type Grant struct {
	// Role is the definition; nil for a directory_roles name that neither the snapshot nor the table defines.
	Role     *RoleDef
	RoleName string
	// ScopeID is the directoryScopeId as written.
	ScopeID string
	Scope   ScopeKind
	Unit    *Unit // ScopeUnit
	Object  Ref   // ScopeObject
}

// Covers reports whether the grant's scope covers object n: the tenant, an administrative unit n is a direct
// member of, or n itself — never n's members (SPEC §18; administrative-units.md: a role at unit scope applies
// to the unit's members; assign-roles-different-scopes.md for single objects).
func (g *Grant) Covers(d *Directory, n *Node) bool { return g.CoversIn(n, d.priv.unitsOf[n.ref]) }

// CoversIn is Covers with n's units (UnitsOf) looked up once by the caller, for loops over many grants.
func (g *Grant) CoversIn(n *Node, units []*Unit) bool {
	switch g.Scope {
	case ScopeTenant:
		return true
	case ScopeUnit:
		return slices.Contains(units, g.Unit)
	case ScopeObject:
		return g.Object == n.ref
	}
	return false
}

// privileges are one directory's role and unit facts and their indexes. Shared between revisions until a write
// touches them; never modified once a directory holds them.
type privileges struct {
	defs        map[string]*RoleDef // carried by the snapshot, by id
	unitProtos  map[string]*pb.AdministrativeUnit
	assignments []*pb.RoleAssignment

	// Derived when the directory is built.
	defsByName map[string]*RoleDef // carried definitions by exact display name
	units      map[string]*Unit
	grants     map[Ref][]Grant // by principal, from role assignments
	unitsOf    map[Ref][]*Unit // by direct member
	restricted map[Ref]bool    // direct members of a restricted management unit
}

func emptyPrivileges() *privileges {
	return &privileges{
		defs: map[string]*RoleDef{}, unitProtos: map[string]*pb.AdministrativeUnit{},
		defsByName: map[string]*RoleDef{}, units: map[string]*Unit{},
		grants: map[Ref][]Grant{}, unitsOf: map[Ref][]*Unit{}, restricted: map[Ref]bool{},
	}
}

func (p *privileges) clone() *privileges {
	return &privileges{
		defs:        maps.Clone(p.defs),
		unitProtos:  maps.Clone(p.unitProtos),
		assignments: slices.Clone(p.assignments),
	}
}

// RoleDefinition finds a role definition by id: the snapshot's, else the built-in table's.
func (d *Directory) RoleDefinition(id string) (*RoleDef, bool) {
	if r, ok := d.priv.defs[id]; ok {
		return r, true
	}
	r, ok := builtInByID[id]
	return r, ok
}

// RoleByName finds a role definition by display name (case-insensitively): a built-in one the snapshot
// carries, else the table's; nil when neither knows the name. directory_roles entries are resolved this way.
func (d *Directory) RoleByName(name string) *RoleDef {
	if r, ok := d.priv.defsByName[name]; ok {
		return r
	}
	for _, r := range d.priv.defs {
		if r.BuiltIn && strings.EqualFold(r.DisplayName, name) {
			return r
		}
	}
	return builtInByName(name)
}

// RoleDefinitions are the definitions the snapshot carries, by id.
func (d *Directory) RoleDefinitions() []*RoleDef {
	out := slices.Collect(maps.Values(d.priv.defs))
	slices.SortFunc(out, func(a, b *RoleDef) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Grants are the roles assigned to principal n by role assignments (its directory_roles are not included).
func (d *Directory) Grants(n *Node) []Grant { return d.priv.grants[n.ref] }

// UnitsOf are the administrative units n is a direct member of.
func (d *Directory) UnitsOf(n *Node) []*Unit { return d.priv.unitsOf[n.ref] }

// InRestrictedUnit reports whether n is a direct member of a restricted management administrative unit.
func (d *Directory) InRestrictedUnit(n *Node) bool { return d.priv.restricted[n.ref] }

// Unit finds an administrative unit by id.
func (d *Directory) Unit(id string) (*Unit, bool) {
	u, ok := d.priv.units[id]
	return u, ok
}

// Units are every administrative unit, sorted by id.
func (d *Directory) Units() []*Unit {
	out := slices.Collect(maps.Values(d.priv.units))
	slices.SortFunc(out, func(a, b *Unit) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// RoleAssignments are every role assignment, in the order they were made.
func (d *Directory) RoleAssignments() []*pb.RoleAssignment { return d.priv.assignments }

// exportPrivileges adds the role and unit facts to a snapshot.
func (d *Directory) exportPrivileges(s *pb.Snapshot) {
	for _, r := range d.RoleDefinitions() {
		s.RoleDefinitions = append(s.RoleDefinitions, &pb.RoleDefinition{
			Id: r.ID, DisplayName: r.DisplayName, IsBuiltIn: r.BuiltIn, AllowedResourceActions: slices.Clone(r.Actions),
		})
	}
	for _, a := range d.priv.assignments {
		s.RoleAssignments = append(s.RoleAssignments, proto.CloneOf(a))
	}
	ids := slices.Sorted(maps.Keys(d.priv.unitProtos))
	for _, id := range ids {
		u := proto.CloneOf(d.priv.unitProtos[id])
		s.AdministrativeUnits = append(s.AdministrativeUnits, u)
	}
}

// privCheck is a fact to validate once the whole input is applied (references may point forward).
type privCheck struct {
	field      string
	assignment *pb.RoleAssignment
	unit       *pb.AdministrativeUnit
}

func (b *builder) mutablePriv() *privileges {
	if !b.ownPriv {
		b.priv = b.priv.clone()
		b.ownPriv = true
	}
	b.privDirty = true
	return b.priv
}

// isPrivID reports whether id is taken by an administrative unit.
func (b *builder) isUnitID(id string) bool {
	_, ok := b.priv.unitProtos[id]
	return ok
}

func (b *builder) upsertRoleDefinition(field string, r *pb.RoleDefinition) {
	if r == nil {
		b.problem(field, "missing role definition")
		return
	}
	if !b.checkID(field+".id", r.GetId()) {
		return
	}
	p := b.mutablePriv()
	if _, dup := p.defs[r.GetId()]; dup && b.loading {
		b.problem(field+".id", "duplicate role definition id %q", r.GetId())
		return
	}
	p.defs[r.GetId()] = newRoleDef(r.GetId(), r.GetDisplayName(), r.GetIsBuiltIn(), false, slices.Clone(r.GetAllowedResourceActions()))
}

func (b *builder) upsertUnit(field string, u *pb.AdministrativeUnit) {
	if u == nil {
		b.problem(field, "missing administrative unit")
		return
	}
	id := u.GetId()
	if !b.checkID(field+".id", id) {
		return
	}
	if n := b.existing(id); n != nil {
		b.problem(field+".id", "duplicate id %q: already used by a %s", id, n.kind)
		return
	}
	if _, isLabel := b.labels[id]; isLabel {
		b.problem(field+".id", "duplicate id %q: already used by a label", id)
		return
	}
	if b.isUnitID(id) && b.loading {
		b.problem(field+".id", "duplicate id %q: already used by an administrative unit", id)
		return
	}
	ok := true
	seen := make(map[string]bool, len(u.GetMembers()))
	for i, m := range u.GetMembers() {
		f := fmt.Sprintf("%s.members[%d]", field, i)
		if !b.checkID(f, m) {
			ok = false
			continue
		}
		if seen[m] {
			b.problem(f, "administrative unit %q lists %q twice", id, m)
			ok = false
		}
		seen[m] = true
	}
	if !ok {
		return
	}
	c := proto.CloneOf(u)
	b.mutablePriv().unitProtos[id] = c
	b.privChecks = append(b.privChecks, privCheck{field: field, unit: c})
}

func (b *builder) checkAssignmentFields(field string, a *pb.RoleAssignment) bool {
	if a == nil {
		b.problem(field, "missing role assignment")
		return false
	}
	ok := b.checkID(field+".principal_id", a.GetPrincipalId())
	ok = b.checkID(field+".role_definition_id", a.GetRoleDefinitionId()) && ok
	if _, _, good := parseScope(a.GetDirectoryScopeId()); !good {
		b.problem(field+".directory_scope_id", "invalid directory_scope_id %q: want \"/\", \"/administrativeUnits/{id}\" or \"/{objectId}\"", a.GetDirectoryScopeId())
		ok = false
	}
	return ok
}

func sameAssignment(a, b *pb.RoleAssignment) bool {
	return a.GetPrincipalId() == b.GetPrincipalId() && a.GetRoleDefinitionId() == b.GetRoleDefinitionId() &&
		a.GetDirectoryScopeId() == b.GetDirectoryScopeId()
}

func (b *builder) addRoleAssignment(field string, a *pb.RoleAssignment) {
	if !b.checkAssignmentFields(field, a) {
		return
	}
	for _, x := range b.priv.assignments {
		if sameAssignment(x, a) {
			if b.loading {
				b.problem(field, "duplicate role assignment of %q to %q at %q", a.GetRoleDefinitionId(), a.GetPrincipalId(), a.GetDirectoryScopeId())
			}
			return
		}
	}
	c := proto.CloneOf(a)
	p := b.mutablePriv()
	p.assignments = append(p.assignments, c)
	b.privChecks = append(b.privChecks, privCheck{field: field, assignment: c})
}

func (b *builder) removeRoleAssignment(field string, a *pb.RoleAssignment) {
	if !b.checkAssignmentFields(field, a) {
		return
	}
	if !slices.ContainsFunc(b.priv.assignments, func(x *pb.RoleAssignment) bool { return sameAssignment(x, a) }) {
		return
	}
	p := b.mutablePriv()
	p.assignments = slices.DeleteFunc(p.assignments, func(x *pb.RoleAssignment) bool { return sameAssignment(x, a) })
}

// deletePrivObject deletes a role definition or an administrative unit, with the assignments that use it
// (as Graph does when a unit is deleted), and reports whether id was one.
func (b *builder) deletePrivObject(id string) bool {
	if _, ok := b.priv.unitProtos[id]; ok {
		p := b.mutablePriv()
		delete(p.unitProtos, id)
		scope := UnitScopeID(id)
		p.assignments = slices.DeleteFunc(p.assignments, func(a *pb.RoleAssignment) bool { return a.GetDirectoryScopeId() == scope })
		return true
	}
	if _, ok := b.priv.defs[id]; ok {
		p := b.mutablePriv()
		delete(p.defs, id)
		p.assignments = slices.DeleteFunc(p.assignments, func(a *pb.RoleAssignment) bool { return a.GetRoleDefinitionId() == id })
		return true
	}
	return false
}

// forgetPrincipal removes a deleted principal from every unit and every assignment that names it.
func (b *builder) forgetPrincipal(id string) {
	scope := "/" + id
	names := func(a *pb.RoleAssignment) bool { return a.GetPrincipalId() == id || a.GetDirectoryScopeId() == scope }
	inUnit := false
	for _, u := range b.priv.unitProtos {
		if slices.Contains(u.GetMembers(), id) {
			inUnit = true
			break
		}
	}
	if !inUnit && !slices.ContainsFunc(b.priv.assignments, names) {
		return
	}
	p := b.mutablePriv()
	p.assignments = slices.DeleteFunc(p.assignments, names)
	for uid, u := range p.unitProtos {
		if slices.Contains(u.GetMembers(), id) {
			c := proto.CloneOf(u)
			c.Members = slices.DeleteFunc(c.Members, func(m string) bool { return m == id })
			p.unitProtos[uid] = c
		}
	}
}

// finishPrivileges validates the role and unit facts an input added and rebuilds the indexes when they changed.
func (b *builder) finishPrivileges() {
	if !b.privDirty {
		return
	}
	p := b.priv
	for _, c := range b.privChecks {
		switch {
		case c.unit != nil:
			if p.unitProtos[c.unit.GetId()] != c.unit {
				continue // replaced or deleted later in the batch
			}
			for i, m := range c.unit.GetMembers() {
				n := b.existing(m)
				switch {
				case n == nil:
					b.problem(fmt.Sprintf("%s.members[%d]", c.field, i), "administrative unit %q lists %q, which does not exist", c.unit.GetId(), m)
				case n.kind == KindServicePrincipal:
					b.problem(fmt.Sprintf("%s.members[%d]", c.field, i), "administrative unit %q lists service principal %q: members are users and groups", c.unit.GetId(), m)
				}
			}
		case c.assignment != nil:
			if !slices.Contains(p.assignments, c.assignment) {
				continue
			}
			a := c.assignment
			if n := b.existing(a.GetPrincipalId()); n == nil {
				b.problem(c.field+".principal_id", "role assignment names principal %q, which does not exist", a.GetPrincipalId())
			}
			if _, ok := p.defs[a.GetRoleDefinitionId()]; !ok {
				if _, ok := builtInByID[a.GetRoleDefinitionId()]; !ok {
					b.problem(c.field+".role_definition_id", "unknown role definition %q: neither in the snapshot's role_definitions nor a built-in role groupgate knows", a.GetRoleDefinitionId())
				}
			}
			switch kind, id, _ := parseScope(a.GetDirectoryScopeId()); kind {
			case ScopeUnit:
				if _, ok := p.unitProtos[id]; !ok {
					b.problem(c.field+".directory_scope_id", "scope %q names administrative unit %q, which does not exist", a.GetDirectoryScopeId(), id)
				}
			case ScopeObject:
				if b.existing(id) == nil {
					b.problem(c.field+".directory_scope_id", "scope %q names object %q, which does not exist", a.GetDirectoryScopeId(), id)
				}
			}
		}
	}
	if b.problems.orNil() != nil {
		return
	}
	p.defsByName = make(map[string]*RoleDef, len(p.defs))
	for _, r := range p.defs {
		if r.BuiltIn {
			p.defsByName[r.DisplayName] = r
		}
	}
	p.units = make(map[string]*Unit, len(p.unitProtos))
	p.unitsOf = map[Ref][]*Unit{}
	p.restricted = map[Ref]bool{}
	for _, id := range slices.Sorted(maps.Keys(p.unitProtos)) {
		up := p.unitProtos[id]
		u := &Unit{ID: id, DisplayName: up.GetDisplayName(), Restricted: up.GetIsMemberManagementRestricted(),
			Members: make([]Ref, 0, len(up.GetMembers()))}
		for _, m := range up.GetMembers() {
			r, _ := b.index.lookup(m)
			u.Members = append(u.Members, r)
			p.unitsOf[r] = append(p.unitsOf[r], u)
			if u.Restricted {
				p.restricted[r] = true
			}
		}
		p.units[id] = u
	}
	p.grants = map[Ref][]Grant{}
	for _, a := range p.assignments {
		r, _ := b.index.lookup(a.GetPrincipalId())
		def, ok := p.defs[a.GetRoleDefinitionId()]
		if !ok {
			def = builtInByID[a.GetRoleDefinitionId()]
		}
		g := Grant{Role: def, RoleName: def.DisplayName, ScopeID: a.GetDirectoryScopeId()}
		kind, id, _ := parseScope(a.GetDirectoryScopeId())
		g.Scope = kind
		switch kind {
		case ScopeUnit:
			g.Unit = p.units[id]
		case ScopeObject:
			g.Object, _ = b.index.lookup(id)
		}
		p.grants[r] = append(p.grants[r], g)
	}
}
