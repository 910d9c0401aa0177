package policy

import (
	"fmt"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// CanCreateRoleGroup decides whether actor may create the role-assignable group described by req.Group
// (SPEC §4, CanCreateRoleGroup), label rules included when the group would carry a label.
func (e *Engine) CanCreateRoleGroup(dir *directory.Directory, req *pb.CanCreateRoleGroupRequest) (*pb.Decision, error) {
	spec := req.GetGroup()
	if spec == nil {
		return nil, invalid("group", "required: the group as it would be created")
	}
	a, err := actor(dir, "actor_id", req.GetActorId())
	if err != nil {
		return nil, err
	}
	if id := spec.GetId(); id != "" {
		if _, exists := dir.Lookup(id); exists {
			return nil, invalid("group.id", "%q already exists: use CanChangeLabel or a plan to change an existing group", id)
		}
		if _, exists := dir.Label(id); exists {
			return nil, invalid("group.id", "%q is already a label's id", id)
		}
	}
	members, err := lookupAll(dir, "member", spec.GetMembers())
	if err != nil {
		return nil, err
	}
	owners, err := lookupAll(dir, "owner", spec.GetOwners())
	if err != nil {
		return nil, err
	}
	var l *pb.Label
	if spec.GetLabelId() != "" {
		if l, err = label(dir, spec.GetLabelId()); err != nil {
			return nil, err
		}
	}
	d := newDecision(dir)
	e.createRoleGroup(d, spec, members, owners, l, newPrincipal(dir, a))
	return d.result(), nil
}

func lookupAll(dir *directory.Directory, kind string, ids []string) ([]*directory.Node, error) {
	out := make([]*directory.Node, 0, len(ids))
	for _, id := range ids {
		n, ok := dir.Lookup(id)
		if !ok {
			return nil, &directory.NotFoundError{Kind: kind, ID: id}
		}
		out = append(out, n)
	}
	return out, nil
}

func (e *Engine) createRoleGroup(d *decision, spec *pb.Group, members, owners []*directory.Node, l *pb.Label, a principal) {
	dir := d.dir
	title := "the new role-assignable group"
	if spec.GetDisplayName() != "" || spec.GetId() != "" {
		title = fmt.Sprintf("role-assignable group %s", describeSpec(spec))
	}
	if !dir.HasPremiumLicense() {
		d.violateOnce(pb.Rule_RULE_LICENSE_REQUIRED, true, nil, "role-assignable groups need an Entra ID P1 or P2 licence, which the tenant does not have")
	}
	if _, ok := a.tenantRole(globalAdmin, privilegedRoleAdmin); !ok {
		if _, ok := a.anyPermission(roleManagementWrite); !ok {
			need := "a Privileged Role Administrator or a Global Administrator"
			if a.isServicePrincipal() {
				need = "an application with " + roleManagementWrite + " (Group.ReadWrite.All is not enough)"
			}
			d.violate(pb.Rule_RULE_ROLE_GROUP_PRIVILEGE, true, []string{a.node.ID()}, "only %s may create %s, and %s is not", need, title, name(a.node))
		}
	}
	if spec.GetMembership() == pb.Membership_MEMBERSHIP_DYNAMIC {
		d.violate(pb.Rule_RULE_ROLE_GROUP_DYNAMIC, true, nil, "%s cannot have dynamic membership", title)
	}
	if n, limit := dir.Counts().RoleAssignableGroups, dir.RoleAssignableGroupLimit(); n >= limit {
		d.violate(pb.Rule_RULE_ROLE_GROUP_LIMIT, true, nil, "the tenant already has %d role-assignable groups, its limit is %d", n, limit)
	}
	for _, m := range members {
		if m.IsGroup() {
			d.violate(pb.Rule_RULE_ROLE_GROUP_NO_NESTING, true, []string{m.ID()}, "%s cannot have groups as members, and %s is a group", title, name(m))
		}
	}
	switch k := spec.GetKind(); {
	case k == groupKindMailEnabled || k == groupKindDL:
		d.violate(pb.Rule_RULE_UNSUPPORTED_GROUP_KIND, true, nil, "%s would be a %s: role-assignable groups are security or Microsoft 365 groups", title, kindName(k))
	case spec.GetOnPremisesSynced():
		d.violate(pb.Rule_RULE_UNSUPPORTED_GROUP_KIND, true, nil, "%s would be synced from on-premises Active Directory: role-assignable groups are cloud-only", title)
	}
	for _, o := range owners {
		if o.IsGroup() {
			d.violate(pb.Rule_RULE_UNSUPPORTED_GROUP_KIND, true, []string{o.ID()}, "group %s cannot own a group: owners are users or service principals", name(o))
		}
	}
	if l != nil {
		e.newGroupLabelRules(d, spec, members, l, a, true)
	}
}

// newGroupLabelRules are the label checks of CanApplyLabel for a group that does not exist yet: its members are
// the initial ones, and it has no parents. checkGuests judges guests among the initial members here; plans that
// create an ordinary group judge each initial member as an addition instead (bypass included).
func (e *Engine) newGroupLabelRules(d *decision, spec *pb.Group, members []*directory.Node, l *pb.Label, a principal, checkGuests bool) {
	dir := d.dir
	if !dir.HasPremiumLicense() {
		d.violateOnce(pb.Rule_RULE_LICENSE_REQUIRED, true, nil, "sensitivity labels on groups need an Entra ID P1 or P2 licence, which the tenant does not have")
	}
	switch spec.GetKind() {
	case groupKindSecurity:
		if !dir.Settings().GetSecurityGroupLabelsEnabled() {
			d.violate(pb.Rule_RULE_LABELS_NOT_ENABLED, true, nil, "labels are not enabled for security groups: EnableMIPLabels is off in the Group.Security directory settings")
		}
	case groupKindM365:
		if !dir.Settings().GetUnifiedGroupLabelsEnabled() {
			d.violate(pb.Rule_RULE_LABELS_NOT_ENABLED, true, nil, "labels are not enabled for Microsoft 365 groups: EnableMIPLabels is off in the Group.Unified directory settings")
		}
	}
	if !l.GetGroupsScope() {
		d.violate(pb.Rule_RULE_LABEL_NOT_GROUP_SCOPED, true, []string{l.GetId()}, "label %s is not scoped to Groups & Sites", labelName(l))
	}
	if !l.GetSynced() {
		d.violate(pb.Rule_RULE_LABEL_NOT_SYNCED, true, []string{l.GetId()}, "label %s is not synchronised to Entra yet (Execute-AzureADLabelSync)", labelName(l))
	}
	if !a.isServicePrincipal() && !e.publishedTo(dir, l, a.node) {
		d.violate(pb.Rule_RULE_LABEL_NOT_PUBLISHED_TO_ACTOR, true, []string{l.GetId(), a.node.ID()},
			"label %s is not published to %s, directly or through a group", labelName(l), name(a.node))
	}
	if spec.GetMembership() == pb.Membership_MEMBERSHIP_DYNAMIC {
		d.violateOnce(pb.Rule_RULE_DYNAMIC_MEMBERSHIP, true, nil, "labels cannot be applied to dynamic groups")
	}
	if checkGuests && !l.GetGuestsAllowed() {
		for _, m := range members {
			if m.IsGuest() {
				d.violate(pb.Rule_RULE_LABEL_BLOCKS_GUESTS, true, []string{m.ID()},
					"label %s does not allow guests, and initial member %s is a guest", labelName(l), name(m))
			}
		}
	}
}

func describeSpec(g *pb.Group) string {
	switch {
	case g.GetDisplayName() != "" && g.GetId() != "":
		return fmt.Sprintf("%s (%s)", g.GetDisplayName(), g.GetId())
	case g.GetDisplayName() != "":
		return g.GetDisplayName()
	}
	return g.GetId()
}
