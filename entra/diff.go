package entra

import (
	"slices"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/proto"
)

// Diff lists the changes that turn prev into next, fewest first: settings, labels, new or changed users and
// service principals, new or changed role definitions, new groups, changed groups (an upsert when an attribute
// changed, else one add/remove per member or owner), new or changed administrative units, each role
// assignment added or removed, then deletions (of objects, units and role definitions: a deletion also drops
// the assignments naming what it deletes). Both snapshots must list objects sorted by id, and role assignments
// by principal, role and scope, as build makes them. The server validates the batch as a whole, so a new
// group may name members created later in the same batch.
func Diff(prev, next *pb.Snapshot) []*pb.Change {
	var out []*pb.Change
	if !proto.Equal(prev.GetSettings(), next.GetSettings()) {
		out = append(out, &pb.Change{Change: &pb.Change_UpdateSettings{UpdateSettings: next.GetSettings()}})
	}
	var deletes []*pb.Change
	del := func(id string) {
		deletes = append(deletes, &pb.Change{Change: &pb.Change_DeleteObject{DeleteObject: &pb.DeleteObject{Id: id}}})
	}
	mergeByID(prev.GetLabels(), next.GetLabels(), (*pb.Label).GetId,
		func(p, n *pb.Label) {
			if p == nil || !proto.Equal(p, n) {
				out = append(out, &pb.Change{Change: &pb.Change_UpsertLabel{UpsertLabel: n}})
			}
		}, func(p *pb.Label) { del(p.GetId()) })
	var labelDeletes []*pb.Change
	labelDeletes, deletes = deletes, nil // labels go last: groups drop them first

	mergeByID(prev.GetUsers(), next.GetUsers(), (*pb.User).GetId,
		func(p, n *pb.User) {
			if p == n {
				return // reused by build: unchanged
			}
			if p == nil || p.GetDisplayName() != n.GetDisplayName() || p.GetUserType() != n.GetUserType() ||
				!slices.Equal(p.GetDirectoryRoles(), n.GetDirectoryRoles()) {
				out = append(out, &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: n}})
			}
		}, func(p *pb.User) { del(p.GetId()) })
	mergeByID(prev.GetServicePrincipals(), next.GetServicePrincipals(), (*pb.ServicePrincipal).GetId,
		func(p, n *pb.ServicePrincipal) {
			if p == nil || !proto.Equal(p, n) {
				out = append(out, &pb.Change{Change: &pb.Change_UpsertServicePrincipal{UpsertServicePrincipal: n}})
			}
		}, func(p *pb.ServicePrincipal) { del(p.GetId()) })

	mergeByID(prev.GetRoleDefinitions(), next.GetRoleDefinitions(), (*pb.RoleDefinition).GetId,
		func(p, n *pb.RoleDefinition) {
			if p == nil || !proto.Equal(p, n) {
				out = append(out, &pb.Change{Change: &pb.Change_UpsertRoleDefinition{UpsertRoleDefinition: n}})
			}
		}, func(p *pb.RoleDefinition) { del(p.GetId()) })

	var edges []*pb.Change
	mergeByID(prev.GetGroups(), next.GetGroups(), (*pb.Group).GetId,
		func(p, n *pb.Group) {
			if p == n {
				return
			}
			if p == nil || !sameGroupAttributes(p, n) {
				out = append(out, &pb.Change{Change: &pb.Change_UpsertGroup{UpsertGroup: n}})
				return
			}
			g := n.GetId()
			mergeSorted(p.GetMembers(), n.GetMembers(),
				func(m string) {
					edges = append(edges, &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: g, MemberId: m}}})
				}, func(m string) {
					edges = append(edges, &pb.Change{Change: &pb.Change_RemoveMember{RemoveMember: &pb.MemberChange{GroupId: g, MemberId: m}}})
				})
			mergeSorted(p.GetOwners(), n.GetOwners(),
				func(o string) {
					edges = append(edges, &pb.Change{Change: &pb.Change_AddOwner{AddOwner: &pb.OwnerChange{GroupId: g, OwnerId: o}}})
				}, func(o string) {
					edges = append(edges, &pb.Change{Change: &pb.Change_RemoveOwner{RemoveOwner: &pb.OwnerChange{GroupId: g, OwnerId: o}}})
				})
		}, func(p *pb.Group) { del(p.GetId()) })
	// An administrative unit's members change only through an upsert that replaces the list (the model has no
	// per-member change for units), so a unit that gained a member is one upsert.
	mergeByID(prev.GetAdministrativeUnits(), next.GetAdministrativeUnits(), (*pb.AdministrativeUnit).GetId,
		func(p, n *pb.AdministrativeUnit) {
			if p == nil || !proto.Equal(p, n) {
				out = append(out, &pb.Change{Change: &pb.Change_UpsertAdministrativeUnit{UpsertAdministrativeUnit: n}})
			}
		}, func(p *pb.AdministrativeUnit) { del(p.GetId()) })
	mergeByID(prev.GetRoleAssignments(), next.GetRoleAssignments(), assignmentKey,
		func(p, n *pb.RoleAssignment) {
			if p == nil {
				edges = append(edges, &pb.Change{Change: &pb.Change_AddRoleAssignment{AddRoleAssignment: n}})
			}
		}, func(p *pb.RoleAssignment) {
			edges = append(edges, &pb.Change{Change: &pb.Change_RemoveRoleAssignment{RemoveRoleAssignment: p}})
		})
	out = append(out, edges...)
	out = append(out, deletes...)
	return append(out, labelDeletes...)
}

// assignmentKey orders role assignments as build lists them: by principal, role and scope (none of which
// holds a NUL).
func assignmentKey(a *pb.RoleAssignment) string {
	return a.GetPrincipalId() + "\x00" + a.GetRoleDefinitionId() + "\x00" + a.GetDirectoryScopeId()
}

func sameGroupAttributes(a, b *pb.Group) bool {
	return a.GetDisplayName() == b.GetDisplayName() && a.GetKind() == b.GetKind() && a.GetMembership() == b.GetMembership() &&
		a.GetOnPremisesSynced() == b.GetOnPremisesSynced() && a.GetLabelId() == b.GetLabelId() &&
		a.GetIsAssignableToRole() == b.GetIsAssignableToRole() && slices.Equal(a.GetDirectoryRoles(), b.GetDirectoryRoles())
}

// mergeByID walks two id-sorted lists: both(nil, n) for a new object, both(p, n) for one in each, gone(p) for
// one only in prev.
func mergeByID[T any](prev, next []T, id func(T) string, both func(p, n T), gone func(p T)) {
	var zero T
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		switch {
		case j == len(next) || (i < len(prev) && id(prev[i]) < id(next[j])):
			gone(prev[i])
			i++
		case i == len(prev) || id(next[j]) < id(prev[i]):
			both(zero, next[j])
			j++
		default:
			both(prev[i], next[j])
			i++
			j++
		}
	}
}

// mergeSorted calls added for strings only in next and removed for strings only in prev.
func mergeSorted(prev, next []string, added, removed func(string)) {
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		switch {
		case j == len(next) || (i < len(prev) && prev[i] < next[j]):
			removed(prev[i])
			i++
		case i == len(prev) || next[j] < prev[i]:
			added(next[j])
			j++
		default:
			i++
			j++
		}
	}
}
