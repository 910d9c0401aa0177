package policy

import (
	"slices"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// EvaluatePlan decides each step on the state left by the allowed steps before it. A denied step, or one that
// cannot be evaluated, is not applied, so later steps do not see it. Nothing is written: the intermediate states
// are private, immutable directories.
//
// Changes map to questions: add_member is CanAddMember; upsert_group of a new role-assignable group is
// CanCreateRoleGroup; upsert_group of an existing group is judged for its label change (CanApplyLabel or
// CanChangeLabel), its added members (CanAddMember each) and RULE_ROLE_ASSIGNABLE_IMMUTABLE when it flips
// is_assignable_to_role; a new ordinary group for its label and members; remove_member needs the right to manage
// the group's membership; add_owner/remove_owner the right to manage its properties. Other changes (users,
// service principals, labels, settings, deletions) are governed by no rule of SPEC §4 and are allowed.
func (e *Engine) EvaluatePlan(dir *directory.Directory, req *pb.EvaluatePlanRequest) ([]StepResult, error) {
	// Hypothetical states share refs and a revision number with the real one, so the resolver's cache must not
	// see them: plans use an uncached resolver.
	pe := &Engine{resolver: e.planResolver, probe: e.probe}
	results := make([]StepResult, len(req.GetSteps()))
	cur := dir
	for i, step := range req.GetSteps() {
		actorID := step.GetActorId()
		if actorID == "" {
			actorID = req.GetActorId()
		}
		dec, err := pe.step(cur, step.GetChange(), actorID)
		if err != nil {
			results[i] = StepResult{Err: err}
			continue
		}
		results[i].Decision = dec
		if dec.GetVerdict() != pb.Verdict_VERDICT_ALLOW {
			continue
		}
		next, _, err := cur.Apply([]*pb.Change{step.GetChange()}, cur.Revision())
		if err != nil {
			results[i] = StepResult{Err: err}
			continue
		}
		cur = next
		results[i].Applied = true
	}
	return results, nil
}

func (e *Engine) step(dir *directory.Directory, c *pb.Change, actorID string) (*pb.Decision, error) {
	d := newDecision(dir)
	switch ch := c.GetChange().(type) {
	case *pb.Change_AddMember:
		return e.CanAddMember(dir, &pb.CanAddMemberRequest{GroupId: ch.AddMember.GetGroupId(), MemberId: ch.AddMember.GetMemberId(), ActorId: actorID})
	case *pb.Change_RemoveMember:
		g, a, err := groupAndActor(dir, ch.RemoveMember.GetGroupId(), actorID)
		if err != nil {
			return nil, err
		}
		e.membershipPrivilege(d, g, a)
	case *pb.Change_AddOwner:
		g, a, err := groupAndActor(dir, ch.AddOwner.GetGroupId(), actorID)
		if err != nil {
			return nil, err
		}
		e.ownersPrivilege(d, g, a)
	case *pb.Change_RemoveOwner:
		g, a, err := groupAndActor(dir, ch.RemoveOwner.GetGroupId(), actorID)
		if err != nil {
			return nil, err
		}
		e.ownersPrivilege(d, g, a)
	case *pb.Change_UpsertGroup:
		if err := e.upsertGroup(d, ch.UpsertGroup, actorID); err != nil {
			return nil, err
		}
	case nil:
		return nil, invalid("change", "required: one of the Change fields")
	}
	return d.result(), nil
}

func groupAndActor(dir *directory.Directory, groupID, actorID string) (*directory.Node, principal, error) {
	g, err := group(dir, "group_id", groupID)
	if err != nil {
		return nil, principal{}, err
	}
	a, err := actor(dir, "actor_id", actorID)
	if err != nil {
		return nil, principal{}, err
	}
	return g, newPrincipal(dir, a), nil
}

// membershipPrivilege: may a change g's membership? Role-assignable groups follow RULE_ROLE_GROUP_PRIVILEGE,
// other groups need a covering members/update action, ownership or an application permission; a group in a
// restricted management unit only a role scoped to a restricted unit containing it.
func (e *Engine) membershipPrivilege(d *decision, g *directory.Node, a principal) {
	if g.Group().GetIsAssignableToRole() {
		h, why, ok := a.privilegeRoleAssignable(g)
		switch {
		case ok:
			d.hold(a, g, h)
		case why.blocked.kind == 0:
			need := "a Privileged Role Administrator, a Global Administrator or an owner of the group"
			if a.isServicePrincipal() {
				need = "an application with " + roleManagementWrite + " (Group.ReadWrite.All is not enough) or an owner of the group"
			}
			d.violate(pb.Rule_RULE_ROLE_GROUP_PRIVILEGE, true, []string{g.ID(), a.node.ID()},
				"%s is role-assignable: only %s may change its membership, and %s is not (roles scoped to administrative units or objects, and custom roles, never manage role-assignable groups)", name(g), need, name(a.node))
			d.restrict(g, a, why, "change the membership of")
		default:
			d.restrict(g, a, why, "change the membership of")
		}
		return
	}
	h, why, ok := a.privilege(g, rightMembers)
	switch {
	case ok:
		d.hold(a, g, h)
	case why.blocked.kind == 0:
		d.violate(pb.Rule_RULE_INSUFFICIENT_PRIVILEGE, true, why.evidence(g, a.node),
			"%s may not manage the membership of %s: not an owner, and holds no group-management role or permission that covers it%s", name(a.node), name(g), why.why(g))
		d.restrict(g, a, why, "change the membership of")
	default:
		d.restrict(g, a, why, "change the membership of")
	}
}

// ownersPrivilege: may a change g's owners? Like membership, with owners/update actions.
func (e *Engine) ownersPrivilege(d *decision, g *directory.Node, a principal) {
	if g.Group().GetIsAssignableToRole() {
		e.membershipPrivilege(d, g, a)
		return
	}
	h, why, ok := a.privilege(g, rightOwners)
	switch {
	case ok:
		d.hold(a, g, h)
	case why.blocked.kind == 0:
		d.violate(pb.Rule_RULE_INSUFFICIENT_PRIVILEGE, true, why.evidence(g, a.node),
			"%s may not change the owners of %s: not an owner, and holds no role or permission that covers it%s", name(a.node), name(g), why.why(g))
		d.restrict(g, a, why, "change the owners of")
	default:
		d.restrict(g, a, why, "change the owners of")
	}
}

// upsertGroup judges creating or replacing a group.
func (e *Engine) upsertGroup(d *decision, spec *pb.Group, actorID string) error {
	dir := d.dir
	an, err := actor(dir, "actor_id", actorID)
	if err != nil {
		return err
	}
	a := newPrincipal(dir, an)
	old, exists := dir.Lookup(spec.GetId())
	if exists && !old.IsGroup() {
		return invalid("change.upsert_group.id", "%q is a %s, not a group", spec.GetId(), old.Kind())
	}
	if !exists {
		members, err := lookupAll(dir, "member", spec.GetMembers())
		if err != nil {
			return err
		}
		owners, err := lookupAll(dir, "owner", spec.GetOwners())
		if err != nil {
			return err
		}
		var l *pb.Label
		if spec.GetLabelId() != "" {
			if l, err = label(dir, spec.GetLabelId()); err != nil {
				return err
			}
		}
		if spec.GetIsAssignableToRole() {
			e.createRoleGroup(d, spec, members, owners, l, a)
			return nil
		}
		if l != nil {
			e.newGroupLabelRules(d, spec, members, l, a, false)
		}
		// Judge the initial members as additions to the group as created without them.
		empty := &pb.Group{Id: spec.GetId(), DisplayName: spec.GetDisplayName(), Kind: spec.GetKind(), Membership: spec.GetMembership(),
			OnPremisesSynced: spec.GetOnPremisesSynced(), LabelId: spec.GetLabelId(), Owners: spec.GetOwners()}
		created, _, err := dir.Apply([]*pb.Change{{Change: &pb.Change_UpsertGroup{UpsertGroup: empty}}}, dir.Revision())
		if err != nil {
			return err
		}
		e.judgeAdditions(d, created, spec.GetId(), members, a.node)
		return nil
	}
	attrs := old.Group()
	if attrs.GetIsAssignableToRole() != spec.GetIsAssignableToRole() {
		d.violate(pb.Rule_RULE_ROLE_ASSIGNABLE_IMMUTABLE, true, []string{old.ID()},
			"is_assignable_to_role of %s is set when a group is created and can never change (it is %v)", name(old), attrs.GetIsAssignableToRole())
	}
	if spec.GetLabelId() != attrs.GetLabelId() {
		var dec *pb.Decision
		var err error
		if attrs.GetLabelId() == "" {
			dec, err = e.CanApplyLabel(dir, &pb.CanApplyLabelRequest{GroupId: old.ID(), LabelId: spec.GetLabelId(), ActorId: actorID})
		} else {
			dec, err = e.CanChangeLabel(dir, &pb.CanChangeLabelRequest{GroupId: old.ID(), LabelId: spec.GetLabelId(), ActorId: actorID})
		}
		if err != nil {
			return err
		}
		d.merge(dec)
	}
	members, err := lookupAll(dir, "member", spec.GetMembers())
	if err != nil {
		return err
	}
	var added []*directory.Node
	for _, m := range members {
		if !slices.Contains(old.Members(), m.Ref()) {
			added = append(added, m)
		}
	}
	e.judgeAdditions(d, dir, old.ID(), added, an)
	return nil
}

// judgeAdditions merges the CanAddMember decisions of adding each member to the group.
func (e *Engine) judgeAdditions(d *decision, dir *directory.Directory, groupID string, members []*directory.Node, actor *directory.Node) {
	g, _ := dir.Lookup(groupID)
	a := newPrincipal(dir, actor)
	for _, m := range members {
		sub := newDecision(dir)
		e.addMember(sub, g, m, a)
		d.merge(sub.result())
	}
}

// merge adds another decision's violations and warnings to this one.
func (d *decision) merge(other *pb.Decision) {
	for _, v := range other.GetViolations() {
		d.seen[v.GetRule()] = true
		d.violations = append(d.violations, v)
	}
	d.warnings = append(d.warnings, other.GetWarnings()...)
}
