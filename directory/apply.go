package directory

import (
	"fmt"
	"sync/atomic"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// Apply returns the directory after changes, at the given revision, and what changed. The batch is
// all-or-nothing: the result is validated as a whole (dangling or duplicate ids, wrong kinds) and any problem
// returns a *ValidationError (or a *NotFoundError) and no directory. d itself is never modified.
//
// Semantics chosen for mirroring a change feed: upserts create or replace; add_member/add_owner of an existing
// edge and remove_member/remove_owner of an absent one are no-ops; delete_object of an unknown id is an error.
func (d *Directory) Apply(changes []*pb.Change, revision int64) (*Directory, *Delta, error) {
	b := newBuilder(d, subjectForTenant("change batch", d.tenantID))
	for i, c := range changes {
		b.apply(fmt.Sprintf("changes[%d]", i), c)
	}
	nd, err := b.finish(revision)
	if err != nil {
		return nil, nil, err
	}
	return nd, b.delta, nil
}

func (b *builder) apply(field string, c *pb.Change) {
	switch ch := c.GetChange().(type) {
	case *pb.Change_UpsertUser:
		b.upsertUser(field+".upsert_user", ch.UpsertUser)
	case *pb.Change_UpsertGroup:
		b.upsertGroup(field+".upsert_group", ch.UpsertGroup)
	case *pb.Change_UpsertLabel:
		b.upsertLabel(field+".upsert_label", ch.UpsertLabel)
	case *pb.Change_UpsertServicePrincipal:
		b.upsertServicePrincipal(field+".upsert_service_principal", ch.UpsertServicePrincipal)
	case *pb.Change_UpdateSettings:
		b.updateSettings(ch.UpdateSettings)
	case *pb.Change_DeleteObject:
		b.deleteObject(field+".delete_object.id", ch.DeleteObject.GetId())
	case *pb.Change_AddMember:
		b.addMember(field+".add_member", ch.AddMember)
	case *pb.Change_RemoveMember:
		b.removeMember(field+".remove_member", ch.RemoveMember)
	case *pb.Change_AddOwner:
		b.addOwner(field+".add_owner", ch.AddOwner)
	case *pb.Change_RemoveOwner:
		b.removeOwner(field+".remove_owner", ch.RemoveOwner)
	case *pb.Change_UpsertRoleDefinition:
		b.upsertRoleDefinition(field+".upsert_role_definition", ch.UpsertRoleDefinition)
	case *pb.Change_UpsertAdministrativeUnit:
		b.upsertUnit(field+".upsert_administrative_unit", ch.UpsertAdministrativeUnit)
	case *pb.Change_AddRoleAssignment:
		b.addRoleAssignment(field+".add_role_assignment", ch.AddRoleAssignment)
	case *pb.Change_RemoveRoleAssignment:
		b.removeRoleAssignment(field+".remove_role_assignment", ch.RemoveRoleAssignment)
	default:
		b.problem(field, "empty change: set one of upsert_user, upsert_group, upsert_label, upsert_service_principal, update_settings, delete_object, add_member, remove_member, add_owner, remove_owner, upsert_role_definition, upsert_administrative_unit, add_role_assignment, remove_role_assignment")
	}
}

// Empty is a tenant with no objects at revision 0, the base of a tenant's first write.
func Empty(tenantID string) *Directory {
	return &Directory{
		tenantID: tenantID,
		lineage:  lineages.Add(1),
		settings: &pb.TenantSettings{},
		labels:   map[string]*pb.Label{},
		index:    idIndex{base: map[string]Ref{}},
		priv:     emptyPrivileges(),
	}
}

// lineages numbers lineages process-wide.
var lineages atomic.Uint64
