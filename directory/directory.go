// Package directory holds the tenant model: an immutable, revisioned copy of one Entra tenant's directory.
//
// A *Directory never changes once built. Writes (Apply) build a new Directory that shares everything it did not
// touch with the old one, so readers hold a consistent revision for as long as they like without locks, and a
// one-edge write on a million-user tenant costs microseconds, not a copy of the tenant.
//
// Principals (users, groups, service principals) are interned to dense integer Refs, stable for the life of a
// tenant, so that the resolver can use bitsets and arrays instead of string maps.
package directory

import (
	"iter"
	"slices"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// Ref is the dense index of a principal within one tenant. A ref is never reused for another id.
type Ref uint32

// Kind is the kind of a principal.
type Kind uint8

const (
	KindUser Kind = iota + 1
	KindGroup
	KindServicePrincipal
)

func (k Kind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindGroup:
		return "group"
	case KindServicePrincipal:
		return "service principal"
	}
	return "object"
}

// Node is one principal with its direct relationships. Nodes are shared between revisions: never modify one, nor
// the slices its methods return.
type Node struct {
	id   string
	ref  Ref
	kind Kind
	// Users are a million objects on a large tenant, so their attributes live here rather than in a *pb.User
	// each: one object and four pointers less per user for the garbage collector to trace on every cycle.
	userType        pb.UserType
	userDisplayName string
	userRoles       []string
	group           *pb.Group // Members and Owners are always nil here: the ref slices below hold them
	sp              *pb.ServicePrincipal

	members  []Ref // groups only: direct members, in the order they were added
	owners   []Ref // groups only
	memberOf []Ref // groups this principal is a direct member of
	ownerOf  []Ref // groups this principal owns
}

func (n *Node) ID() string    { return n.id }
func (n *Node) Ref() Ref      { return n.ref }
func (n *Node) Kind() Kind    { return n.kind }
func (n *Node) IsGroup() bool { return n.kind == KindGroup }

// User is a copy of the user's attributes, or nil when the node is not a user.
func (n *Node) User() *pb.User {
	if n.kind != KindUser {
		return nil
	}
	return &pb.User{Id: n.id, DisplayName: n.userDisplayName, UserType: n.userType, DirectoryRoles: slices.Clone(n.userRoles)}
}

// Group is the group's attributes, or nil. Its Members and Owners fields are empty: use Members and Owners.
func (n *Node) Group() *pb.Group { return n.group }

// ServicePrincipal is the service principal's attributes, or nil.
func (n *Node) ServicePrincipal() *pb.ServicePrincipal { return n.sp }

// IsGuest reports whether the node is a guest user.
func (n *Node) IsGuest() bool {
	return n.userType == pb.UserType_USER_TYPE_GUEST
}

// UserType is the user's type, or USER_TYPE_UNSPECIFIED when the node is not a user.
func (n *Node) UserType() pb.UserType { return n.userType }

// DisplayName is the object's display name.
func (n *Node) DisplayName() string {
	switch {
	case n.kind == KindUser:
		return n.userDisplayName
	case n.group != nil:
		return n.group.GetDisplayName()
	case n.sp != nil:
		return n.sp.GetDisplayName()
	}
	return ""
}

// DirectoryRoles are the roles assigned to the principal itself (not those inherited through groups).
func (n *Node) DirectoryRoles() []string {
	switch {
	case n.kind == KindUser:
		return n.userRoles
	case n.group != nil:
		return n.group.GetDirectoryRoles()
	case n.sp != nil:
		return n.sp.GetDirectoryRoles()
	}
	return nil
}

// Members are a group's direct members.
func (n *Node) Members() []Ref { return n.members }

// Owners are a group's owners.
func (n *Node) Owners() []Ref { return n.owners }

// MemberOf are the groups the principal is a direct member of.
func (n *Node) MemberOf() []Ref { return n.memberOf }

// OwnerOf are the groups the principal owns.
func (n *Node) OwnerOf() []Ref { return n.ownerOf }

// Counts counts a tenant's objects.
type Counts struct {
	Users, Guests, Groups, ServicePrincipals, Labels int64
	// Memberships counts direct membership edges.
	Memberships int64
	// RoleAssignableGroups counts groups with is_assignable_to_role.
	RoleAssignableGroups int64
}

// Directory is one tenant at one revision. It is immutable.
type Directory struct {
	tenantID string
	lineage  uint64 // see Lineage
	revision int64
	settings *pb.TenantSettings
	labels   map[string]*pb.Label
	index    idIndex
	nodes    nodeVector
	counts   Counts
	priv     *privileges // role definitions, assignments, administrative units and their indexes
}

func (d *Directory) TenantID() string { return d.tenantID }
func (d *Directory) Revision() int64  { return d.revision }

// Lineage identifies the chain of revisions a directory belongs to: Apply keeps it, while FromSnapshot and Empty
// start a new one (refs of one lineage mean nothing in another). Caches key on it together with refs.
func (d *Directory) Lineage() uint64 { return d.lineage }

// Settings are the tenant settings; never nil.
func (d *Directory) Settings() *pb.TenantSettings { return d.settings }

// Counts are the tenant's object counts.
func (d *Directory) Counts() Counts { return d.counts }

// RefLimit is one more than the largest ref in use: the size for arrays and bitsets indexed by Ref.
func (d *Directory) RefLimit() int { return d.nodes.length }

// Node is the principal with ref r, or nil when r was deleted or never allocated.
func (d *Directory) Node(r Ref) *Node {
	n := d.nodes.get(r)
	if n == nil || n.kind == 0 {
		return nil
	}
	return n
}

// Lookup finds a principal by id.
func (d *Directory) Lookup(id string) (*Node, bool) {
	r, ok := d.index.lookup(id)
	if !ok {
		return nil, false
	}
	n := d.Node(r)
	return n, n != nil
}

// Label finds a label by id.
func (d *Directory) Label(id string) (*pb.Label, bool) {
	l, ok := d.labels[id]
	return l, ok
}

// Labels are every label, sorted by id.
func (d *Directory) Labels() []*pb.Label {
	out := make([]*pb.Label, 0, len(d.labels))
	for _, l := range d.labels {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *pb.Label) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// Nodes yields every principal in ref order.
func (d *Directory) Nodes() iter.Seq[*Node] {
	return func(yield func(*Node) bool) {
		for ci, c := range d.nodes.chunks {
			for i, n := range c {
				if ci*chunkSize+i >= d.nodes.length {
					return
				}
				if n != nil && n.kind != 0 && !yield(n) {
					return
				}
			}
		}
	}
}

// Groups yields every group in ref order.
func (d *Directory) Groups() iter.Seq[*Node] {
	return func(yield func(*Node) bool) {
		for n := range d.Nodes() {
			if n.kind == KindGroup && !yield(n) {
				return
			}
		}
	}
}

// IDs maps refs to ids, e.g. to turn a resolver path into evidence.
func (d *Directory) IDs(refs []Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		if n := d.nodes.get(r); n != nil {
			out[i] = n.id
		}
	}
	return out
}

// HasLicense reports whether the tenant holds an Entra ID P1 or P2 licence.
func (d *Directory) HasPremiumLicense() bool {
	for _, l := range d.settings.GetLicenses() {
		switch strings.ToUpper(l) {
		case "ENTRA_ID_P1", "ENTRA_ID_P2", "AAD_PREMIUM", "AAD_PREMIUM_P2":
			return true
		}
	}
	return false
}

// GuestsAllowed is the tenant's AllowToAddGuests setting (unset means true).
func (d *Directory) GuestsAllowed() bool {
	return d.settings.AllowGuestsInGroups == nil || d.settings.GetAllowGuestsInGroups()
}

// DefaultRoleAssignableGroupLimit is Entra's limit on role-assignable groups per tenant.
const DefaultRoleAssignableGroupLimit = 500

// RoleAssignableGroupLimit is the tenant's limit, defaulted.
func (d *Directory) RoleAssignableGroupLimit() int64 {
	if l := d.settings.GetRoleAssignableGroupLimit(); l > 0 {
		return int64(l)
	}
	return DefaultRoleAssignableGroupLimit
}
