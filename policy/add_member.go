package policy

import (
	"slices"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

const (
	groupKindSecurity    = pb.GroupKind_GROUP_KIND_SECURITY
	groupKindM365        = pb.GroupKind_GROUP_KIND_MICROSOFT_365
	groupKindMailEnabled = pb.GroupKind_GROUP_KIND_MAIL_ENABLED_SECURITY
	groupKindDL          = pb.GroupKind_GROUP_KIND_DISTRIBUTION
)

// CanAddMember decides whether actor may make member a direct member of group (SPEC §4, CanAddMember).
func (e *Engine) CanAddMember(dir *directory.Directory, req *pb.CanAddMemberRequest) (*pb.Decision, error) {
	g, err := group(dir, "group_id", req.GetGroupId())
	if err != nil {
		return nil, err
	}
	m, ok := dir.Lookup(req.GetMemberId())
	if !ok {
		return nil, &directory.NotFoundError{Kind: "member", ID: req.GetMemberId()}
	}
	a, err := actor(dir, "actor_id", req.GetActorId())
	if err != nil {
		return nil, err
	}
	d := newDecision(dir)
	e.addMember(d, g, m, newPrincipal(dir, a))
	return d.result(), nil
}

// addMember applies every CanAddMember rule to adding m to g.
func (e *Engine) addMember(d *decision, g, m *directory.Node, a principal) {
	dir := d.dir
	view := e.at(dir)
	attrs := g.Group()
	gid, mid := g.ID(), m.ID()

	if m.Ref() == g.Ref() {
		d.violate(pb.Rule_RULE_SELF_MEMBERSHIP, true, []string{gid}, "%s cannot be a member of itself", name(g))
	} else if slices.Contains(g.Members(), m.Ref()) {
		d.violate(pb.Rule_RULE_ALREADY_MEMBER, true, []string{gid, mid}, "%s is already a direct member of %s", name(m), name(g))
	}
	if m.IsGroup() && m.Ref() != g.Ref() {
		if loop, ok := view.CyclePath(g.Ref(), m.Ref()); ok {
			// The evidence is the loop the new edge would close: group → member → … → group.
			path := append([]directory.Ref{g.Ref()}, loop...)
			d.violate(pb.Rule_RULE_NESTING_CYCLE, false, dir.IDs(path),
				"adding %s to %s would close a nesting cycle: %s (Entra does not document a check for indirect cycles; groupgate refuses them)",
				name(m), name(g), pathNames(dir, path))
		}
	}
	if attrs.GetMembership() == pb.Membership_MEMBERSHIP_DYNAMIC {
		d.violate(pb.Rule_RULE_DYNAMIC_MEMBERSHIP, true, []string{gid}, "%s has dynamic membership: its members come from its rule and cannot be added by hand", name(g))
	}
	if attrs.GetOnPremisesSynced() {
		d.violate(pb.Rule_RULE_ON_PREMISES_SYNCED, true, []string{gid}, "%s is synced from on-premises Active Directory: change its membership there", name(g))
	}
	if k := attrs.GetKind(); k == groupKindMailEnabled || k == groupKindDL {
		d.violate(pb.Rule_RULE_MAIL_ENABLED_GROUP, true, []string{gid}, "%s is a %s, managed in Exchange Online: change its membership there", name(g), kindName(k))
	}
	if m.IsGroup() && attrs.GetKind() == groupKindM365 {
		d.violate(pb.Rule_RULE_NESTING_NOT_SUPPORTED, true, []string{gid, mid}, "%s is a Microsoft 365 group, which cannot have groups as members (%s is a group)", name(g), name(m))
	}
	if attrs.GetIsAssignableToRole() {
		if m.IsGroup() {
			d.violate(pb.Rule_RULE_ROLE_GROUP_NO_NESTING, true, []string{gid, mid}, "%s is role-assignable and cannot have groups as members (%s is a group)", name(g), name(m))
		}
	}
	e.membershipPrivilege(d, g, a)
	if m.IsGuest() && !dir.GuestsAllowed() {
		d.violate(pb.Rule_RULE_TENANT_BLOCKS_GUESTS, true, []string{mid}, "%s is a guest and the tenant does not allow guests in groups (AllowToAddGuests is off)", name(m))
	}
	e.addMemberLabelRules(d, g, m, a)
}

// addMemberLabelRules applies the sensitivity-label rules of CanAddMember. Entra enforces them only where a label
// is really in force on the group, and not for actors that bypass label enforcement during the preview.
func (e *Engine) addMemberLabelRules(d *decision, g, m *directory.Node, a principal) {
	dir := d.dir
	l, labelled := dir.Label(g.Group().GetLabelId())
	if !labelled {
		return
	}
	enforcedHere, why := labelInForce(dir, g, l)
	bypassHeld, bypassed := a.bypass(g)
	bypassBy := bypassHeld.describe()
	enforced := enforcedHere && !bypassed
	suffix := ""
	switch {
	case !enforcedHere:
		suffix = " (Entra does not enforce it here: " + why + ")"
	case bypassed:
		suffix = " (Entra lets it through: " + name(a.node) + " bypasses label enforcement with " + bypassBy + ")"
	}
	gid, mid := g.ID(), m.ID()
	var bypassedRules []pb.Rule

	if !l.GetGuestsAllowed() {
		if m.IsGuest() {
			d.violate(pb.Rule_RULE_LABEL_BLOCKS_GUESTS, enforced, []string{gid, mid},
				"%s is a guest and label %s on %s does not allow guests%s", name(m), labelName(l), name(g), suffix)
			bypassedRules = append(bypassedRules, pb.Rule_RULE_LABEL_BLOCKS_GUESTS)
		} else if m.IsGroup() {
			if path, ok := e.at(dir).GuestPath(m.Ref()); ok {
				guest := dir.Node(path[len(path)-1])
				d.violate(pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE, false, dir.IDs(path),
					"%s contains guest %s (nesting: %s); label %s on %s does not allow guests, and Entra checks only direct guests",
					name(m), name(guest), pathNames(dir, path), labelName(l), name(g))
			}
		}
	}
	if m.IsGroup() {
		ml, childLabelled := dir.Label(m.Group().GetLabelId())
		switch {
		case !childLabelled:
			d.violate(pb.Rule_RULE_NESTED_GROUP_UNLABELED, enforced, []string{mid, gid},
				"%s has no sensitivity label and %s carries %s: a labelled group may only contain labelled groups%s", name(m), name(g), labelName(l), suffix)
			bypassedRules = append(bypassedRules, pb.Rule_RULE_NESTED_GROUP_UNLABELED)
		case ml.GetPriority() < l.GetPriority():
			d.violate(pb.Rule_RULE_NESTED_GROUP_LESS_RESTRICTIVE, enforced, []string{mid, gid},
				"%s carries %s, less restrictive than %s on %s: a nested group's label must be equally or more restrictive%s",
				name(m), labelName(ml), labelName(l), name(g), suffix)
			bypassedRules = append(bypassedRules, pb.Rule_RULE_NESTED_GROUP_LESS_RESTRICTIVE)
		}
	}
	if enforcedHere && bypassed && len(bypassedRules) > 0 {
		d.warn(pb.Rule_RULE_PREVIEW_BYPASS, []string{a.node.ID()},
			"Entra does not enforce %s for %s: holding %s bypasses sensitivity-label enforcement during the preview",
			ruleList(bypassedRules), name(a.node), bypassBy)
	}
}

// labelInForce reports whether Entra enforces a group's label policy, and if not, why.
func labelInForce(dir *directory.Directory, g *directory.Node, l *pb.Label) (bool, string) {
	attrs := g.Group()
	switch {
	case !dir.HasPremiumLicense():
		return false, "the tenant has no Entra ID P1 or P2 licence"
	case attrs.GetKind() == groupKindSecurity && !dir.Settings().GetSecurityGroupLabelsEnabled():
		return false, "labels are not enabled for security groups (EnableMIPLabels)"
	case attrs.GetKind() == groupKindM365 && !dir.Settings().GetUnifiedGroupLabelsEnabled():
		return false, "labels are not enabled for Microsoft 365 groups (EnableMIPLabels)"
	case attrs.GetKind() != groupKindSecurity && attrs.GetKind() != groupKindM365:
		return false, "labels are not supported on " + kindName(attrs.GetKind()) + "s"
	case attrs.GetMembership() == pb.Membership_MEMBERSHIP_DYNAMIC:
		return false, "a label on a dynamic group is not enforced"
	case !l.GetSynced():
		return false, "the label is not synchronised to Entra"
	}
	return true, ""
}

func kindName(k pb.GroupKind) string {
	switch k {
	case groupKindSecurity:
		return "security group"
	case groupKindM365:
		return "Microsoft 365 group"
	case groupKindMailEnabled:
		return "mail-enabled security group"
	case groupKindDL:
		return "distribution list"
	}
	return "group"
}

func ruleList(rules []pb.Rule) string {
	s := ""
	for i, r := range rules {
		if i > 0 {
			s += ", "
		}
		s += r.String()
	}
	return s
}
