package policy

import (
	"fmt"
	"slices"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// CanApplyLabel decides whether actor may apply a label as a group's first label (SPEC §4, CanApplyLabel).
func (e *Engine) CanApplyLabel(dir *directory.Directory, req *pb.CanApplyLabelRequest) (*pb.Decision, error) {
	g, err := group(dir, "group_id", req.GetGroupId())
	if err != nil {
		return nil, err
	}
	l, err := label(dir, req.GetLabelId())
	if err != nil {
		return nil, err
	}
	a, err := actor(dir, "actor_id", req.GetActorId())
	if err != nil {
		return nil, err
	}
	d := newDecision(dir)
	p := newPrincipal(dir, a)
	if g.Group().GetKind() == groupKindSecurity && g.Group().GetLabelId() != "" {
		current, _ := dir.Label(g.Group().GetLabelId())
		d.violate(pb.Rule_RULE_LABEL_IMMUTABLE, true, []string{g.ID()},
			"%s already carries %s: during the preview a security group's label cannot be changed or removed", name(g), labelName(current))
	}
	e.labelRules(d, g, l, p)
	return d.result(), nil
}

// CanChangeLabel decides whether actor may change a group's label (an empty label_id removes it). On security
// groups any change is refused by Entra during the preview; on Microsoft 365 groups the new label is judged like
// a first label.
func (e *Engine) CanChangeLabel(dir *directory.Directory, req *pb.CanChangeLabelRequest) (*pb.Decision, error) {
	g, err := group(dir, "group_id", req.GetGroupId())
	if err != nil {
		return nil, err
	}
	var l *pb.Label
	if req.GetLabelId() != "" {
		if l, err = label(dir, req.GetLabelId()); err != nil {
			return nil, err
		}
	}
	a, err := actor(dir, "actor_id", req.GetActorId())
	if err != nil {
		return nil, err
	}
	d := newDecision(dir)
	p := newPrincipal(dir, a)
	attrs := g.Group()
	currentID := attrs.GetLabelId()
	switch {
	case currentID == req.GetLabelId():
		// Nothing changes; the actor must still be allowed to touch the group's properties.
		e.labelPrivilege(d, g, p)
	case attrs.GetKind() == groupKindSecurity && currentID != "":
		current, _ := dir.Label(currentID)
		what := "changed"
		if l == nil {
			what = "removed"
		}
		d.violate(pb.Rule_RULE_LABEL_IMMUTABLE, true, []string{g.ID()},
			"%s carries %s, which cannot be %s: during the preview a security group's label is immutable once applied", name(g), labelName(current), what)
		e.labelPrivilege(d, g, p)
	case l == nil:
		// Removing a Microsoft 365 group's label (or an unsupported kind's).
		e.unsupportedKind(d, g)
		e.labelPrivilege(d, g, p)
	default:
		e.labelRules(d, g, l, p)
	}
	return d.result(), nil
}

// labelRules are the checks of putting label l on group g (first label, or a new label on a Microsoft 365 group).
func (e *Engine) labelRules(d *decision, g *directory.Node, l *pb.Label, a principal) {
	dir := d.dir
	attrs := g.Group()
	gid := g.ID()
	if !dir.HasPremiumLicense() {
		d.violateOnce(pb.Rule_RULE_LICENSE_REQUIRED, true, nil, "sensitivity labels on groups need an Entra ID P1 or P2 licence, which the tenant does not have")
	}
	switch attrs.GetKind() {
	case groupKindSecurity:
		if !dir.Settings().GetSecurityGroupLabelsEnabled() {
			d.violate(pb.Rule_RULE_LABELS_NOT_ENABLED, true, []string{gid}, "labels are not enabled for security groups: EnableMIPLabels is off in the Group.Security directory settings")
		}
	case groupKindM365:
		if !dir.Settings().GetUnifiedGroupLabelsEnabled() {
			d.violate(pb.Rule_RULE_LABELS_NOT_ENABLED, true, []string{gid}, "labels are not enabled for Microsoft 365 groups: EnableMIPLabels is off in the Group.Unified directory settings")
		}
	}
	if !l.GetGroupsScope() {
		d.violate(pb.Rule_RULE_LABEL_NOT_GROUP_SCOPED, true, []string{l.GetId()}, "label %s is not scoped to Groups & Sites", labelName(l))
	}
	if !l.GetSynced() {
		d.violate(pb.Rule_RULE_LABEL_NOT_SYNCED, true, []string{l.GetId()}, "label %s is not synchronised to Entra yet (Execute-AzureADLabelSync)", labelName(l))
	}
	if !a.isServicePrincipal() {
		if !e.publishedTo(dir, l, a.node) {
			d.violate(pb.Rule_RULE_LABEL_NOT_PUBLISHED_TO_ACTOR, true, []string{l.GetId(), a.node.ID()},
				"label %s is not published to %s, directly or through a group", labelName(l), name(a.node))
		}
	}
	e.unsupportedKind(d, g)
	if attrs.GetMembership() == pb.Membership_MEMBERSHIP_DYNAMIC {
		d.violateOnce(pb.Rule_RULE_DYNAMIC_MEMBERSHIP, true, []string{gid}, "%s has dynamic membership: labels cannot be applied to dynamic groups (and where one is, its policy is not enforced)", name(g))
	}
	if attrs.GetKind() == groupKindSecurity {
		for _, m := range g.Members() {
			if mn := dir.Node(m); mn != nil && mn.IsGroup() {
				d.violate(pb.Rule_RULE_GROUP_HAS_NESTED_GROUPS, true, []string{gid, mn.ID()},
					"%s has group %s as a direct member: a label can only be applied to a security group without nested groups", name(g), name(mn))
				break
			}
		}
	}
	if !l.GetGuestsAllowed() {
		e.existingGuests(d, g, l)
	}
	e.lessRestrictiveThanParents(d, g, l)
	e.labelPrivilege(d, g, a)
}

// existingGuests judges guests already in g under a label that disallows them. On a security group Entra
// validates the existing members when the first label is applied; on a Microsoft 365 group it validates only
// later additions, so the guests stay (strict DENY, Entra ALLOW, and a warning naming them).
func (e *Engine) existingGuests(d *decision, g *directory.Node, l *pb.Label) {
	dir := d.dir
	var direct []*directory.Node
	for _, m := range g.Members() {
		if mn := dir.Node(m); mn != nil && mn.IsGuest() {
			direct = append(direct, mn)
		}
	}
	onSecurity := g.Group().GetKind() == groupKindSecurity
	if len(direct) > 0 {
		ids := []string{g.ID()}
		names := ""
		for i, mn := range direct {
			ids = append(ids, mn.ID())
			if i < 5 {
				if i > 0 {
					names += ", "
				}
				names += name(mn)
			}
		}
		if len(direct) > 5 {
			names += fmt.Sprintf(" and %d more", len(direct)-5)
		}
		d.violate(pb.Rule_RULE_LABEL_BLOCKS_GUESTS, onSecurity, ids,
			"label %s does not allow guests, and %s has %d guest member(s): %s", labelName(l), name(g), len(direct), names)
		if !onSecurity {
			d.warn(pb.Rule_RULE_EXISTING_MEMBERS_NOT_REVALIDATED, ids,
				"Entra validates only later additions on Microsoft 365 groups: %s would stay in %s after the label is applied", names, name(g))
		}
		return
	}
	if path, ok := e.at(dir).GuestPath(g.Ref()); ok {
		guest := dir.Node(path[len(path)-1])
		d.violate(pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE, false, dir.IDs(path),
			"label %s does not allow guests, and %s contains guest %s through nested groups: %s", labelName(l), name(g), name(guest), pathNames(dir, path))
	}
}

// maxParentViolations bounds how many labelled ancestors one decision names.
const maxParentViolations = 5

// lessRestrictiveThanParents: a group's label must be at least as restrictive as the label of every labelled
// group it is nested in, at any depth. Entra checks only the direct parent when a child is added; a child
// relabelled later, or a grandparent, escapes it, so this rule is strict only.
func (e *Engine) lessRestrictiveThanParents(d *decision, g *directory.Node, l *pb.Label) {
	dir := d.dir
	view := e.at(dir)
	found := 0
	for anc := range view.Ancestors(g.Ref()) {
		an := dir.Node(anc)
		pl, ok := dir.Label(an.Group().GetLabelId())
		if !ok || pl.GetPriority() <= l.GetPriority() {
			continue
		}
		found++
		if found > maxParentViolations {
			continue
		}
		path, _ := view.MemberPath(anc, g.Ref())
		d.violate(pb.Rule_RULE_LABEL_LESS_RESTRICTIVE_THAN_PARENT, false, dir.IDs(path),
			"%s is nested in %s, which carries %s; %s is less restrictive (nesting: %s)",
			name(g), name(an), labelName(pl), labelName(l), pathNames(dir, path))
	}
}

func (e *Engine) unsupportedKind(d *decision, g *directory.Node) {
	attrs := g.Group()
	switch {
	case attrs.GetKind() == groupKindMailEnabled || attrs.GetKind() == groupKindDL:
		d.violateOnce(pb.Rule_RULE_UNSUPPORTED_GROUP_KIND, true, []string{g.ID()}, "%s is a %s: sensitivity labels are supported on security and Microsoft 365 groups only", name(g), kindName(attrs.GetKind()))
	case attrs.GetOnPremisesSynced():
		d.violateOnce(pb.Rule_RULE_UNSUPPORTED_GROUP_KIND, true, []string{g.ID()}, "%s is synced from on-premises Active Directory: sensitivity labels are not supported on synced groups", name(g))
	}
}

// labelPrivilege: a covering assignedLabels/update (or allProperties) action, ownership, or an application with
// group write permission. Role-assignable groups: only roles whose actions name them (Global Administrator's
// groupsAssignableToRoles/allProperties/update) and owners.
func (e *Engine) labelPrivilege(d *decision, g *directory.Node, a principal) {
	r := rightLabels
	h, why, ok := a.privilege(g, r)
	switch {
	case ok:
		d.hold(a, g, h)
	case why.blocked.kind == 0:
		d.violateOnce(pb.Rule_RULE_INSUFFICIENT_PRIVILEGE, true, why.evidence(g, a.node),
			"%s may not change the label of %s: not an owner, nor holding a role whose assignedLabels/update action covers it, nor an application with group write permission%s", name(a.node), name(g), why.why(g))
		d.restrict(g, a, why, "change the label of")
	default:
		d.restrict(g, a, why, "change the label of")
	}
}

// publishedTo reports whether label l is published to the user: to everyone, to the user, or to a group the user
// is a member of at any depth.
func (e *Engine) publishedTo(dir *directory.Directory, l *pb.Label, user *directory.Node) bool {
	targets := l.GetPublishedTo()
	if slices.Contains(targets, directory.Everyone) || slices.Contains(targets, user.ID()) {
		return true
	}
	view := e.at(dir)
	for _, t := range targets {
		if tn, ok := dir.Lookup(t); ok && tn.IsGroup() {
			if _, member := view.MemberPath(tn.Ref(), user.Ref()); member {
				return true
			}
		}
	}
	return false
}
