package policy

import (
	"fmt"
	"slices"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/resolver"
)

// AuditRules are the rules Audit reports, in the order the explorer offers them as filters.
func AuditRules() []pb.Rule {
	return []pb.Rule{
		pb.Rule_RULE_LABEL_BLOCKS_GUESTS, pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE, pb.Rule_RULE_NESTED_GROUP_UNLABELED,
		pb.Rule_RULE_NESTED_GROUP_LESS_RESTRICTIVE, pb.Rule_RULE_ROLE_GROUP_NO_NESTING, pb.Rule_RULE_ROLE_GROUP_DYNAMIC,
		pb.Rule_RULE_DYNAMIC_MEMBERSHIP, pb.Rule_RULE_NESTING_CYCLE, pb.Rule_RULE_ROLE_GROUP_LIMIT,
	}
}

// Audit emits today's violations in the directory (drift), group by group in the order groups were created
// (GroupFindings), then tenant-wide findings: nesting cycles (each once, CycleFinding) and more role-assignable
// groups than the limit (LimitFinding). The live findings evaluator (package findings) calls the same three
// functions on the part of the directory a revision changed, so there is one copy of each rule.
func (e *Engine) Audit(dir *directory.Directory, rules []pb.Rule, emit func(*pb.Finding) error) error {
	want := WantRules(rules)
	view := e.resolver.At(dir)
	for g := range dir.Groups() {
		if err := GroupFindings(dir, view, g, want, emit); err != nil {
			return err
		}
	}
	if want(pb.Rule_RULE_NESTING_CYCLE) {
		for _, comp := range NestingCycles(dir) {
			if err := emit(CycleFinding(dir, comp)); err != nil {
				return err
			}
		}
	}
	if f := LimitFinding(dir); f != nil && want(f.GetRule()) {
		if err := emit(f); err != nil {
			return err
		}
	}
	return nil
}

// WantRules is Audit's rule filter: every rule when rules is empty.
func WantRules(rules []pb.Rule) func(pb.Rule) bool {
	return func(r pb.Rule) bool { return len(rules) == 0 || slices.Contains(rules, r) }
}

// GroupFindings emits the findings about group g that want admits: a guest among its effective members while its
// label disallows guests (one path, the shortest); each direct child group that is unlabelled or less restrictive
// than its label; each direct child group of a role-assignable group; a role-assignable group with dynamic
// membership; a label on a dynamic group. They depend on g's attributes, its label, its direct children's
// labels, and, for guests, everything below g.
func GroupFindings(dir *directory.Directory, view resolver.View, g *directory.Node, want func(pb.Rule) bool, emit func(*pb.Finding) error) error {
	send := func(rule pb.Rule, path []string, format string, args ...any) error {
		if !want(rule) {
			return nil
		}
		return emit(&pb.Finding{Rule: rule, GroupId: g.ID(), Path: path, Message: fmt.Sprintf(format, args...)})
	}
	attrs := g.Group()
	l, labelled := dir.Label(attrs.GetLabelId())
	if labelled && !l.GetGuestsAllowed() && (want(pb.Rule_RULE_LABEL_BLOCKS_GUESTS) || want(pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE)) {
		if path, ok := view.GuestPath(g.Ref()); ok {
			if f := guestFinding(dir, g, l, path); want(f.GetRule()) {
				if err := emit(f); err != nil {
					return err
				}
			}
		}
	}
	for _, m := range g.Members() {
		child := dir.Node(m)
		if child == nil || !child.IsGroup() {
			continue
		}
		if labelled {
			if f := nestedFinding(dir, g, l, child); f != nil && want(f.GetRule()) {
				if err := emit(f); err != nil {
					return err
				}
			}
		}
		if attrs.GetIsAssignableToRole() {
			if err := send(pb.Rule_RULE_ROLE_GROUP_NO_NESTING, []string{g.ID(), child.ID()},
				"role-assignable group %s contains group %s", name(g), name(child)); err != nil {
				return err
			}
		}
	}
	if attrs.GetIsAssignableToRole() && attrs.GetMembership() == pb.Membership_MEMBERSHIP_DYNAMIC {
		if err := send(pb.Rule_RULE_ROLE_GROUP_DYNAMIC, []string{g.ID()}, "role-assignable group %s has dynamic membership", name(g)); err != nil {
			return err
		}
	}
	if labelled && attrs.GetMembership() == pb.Membership_MEMBERSHIP_DYNAMIC {
		if err := send(pb.Rule_RULE_DYNAMIC_MEMBERSHIP, []string{g.ID(), l.GetId()},
			"dynamic group %s carries %s, whose policy Entra does not enforce on dynamic groups", name(g), labelName(l)); err != nil {
			return err
		}
	}
	return nil
}

// CycleFinding is what Audit says of a nesting cycle: comp is a strongly connected component of the group graph
// with more than one group, sorted by ref; the evidence is the shortest loop from its first group back to itself.
func CycleFinding(dir *directory.Directory, comp []directory.Ref) *pb.Finding {
	loop := loopWithin(dir, comp)
	return &pb.Finding{Rule: pb.Rule_RULE_NESTING_CYCLE, GroupId: dir.Node(loop[0]).ID(), Path: dir.IDs(loop),
		Message: fmt.Sprintf("nesting cycle: %s", pathNames(dir, loop))}
}

// LimitFinding is what Audit says when the tenant has more role-assignable groups than its limit; nil otherwise.
func LimitFinding(dir *directory.Directory) *pb.Finding {
	n, limit := dir.Counts().RoleAssignableGroups, dir.RoleAssignableGroupLimit()
	if n <= limit {
		return nil
	}
	return &pb.Finding{Rule: pb.Rule_RULE_ROLE_GROUP_LIMIT,
		Message: fmt.Sprintf("the tenant has %d role-assignable groups, more than its limit of %d", n, limit)}
}

// guestFinding is what Audit says of guest path[len(path)-1] in labelled group g, whose label l does not allow
// guests: path runs from g down to the guest.
func guestFinding(dir *directory.Directory, g *directory.Node, l *pb.Label, path []directory.Ref) *pb.Finding {
	rule := pb.Rule_RULE_LABEL_BLOCKS_GUESTS
	if len(path) > 2 {
		rule = pb.Rule_RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE
	}
	return &pb.Finding{Rule: rule, GroupId: g.ID(), Path: dir.IDs(path), Message: fmt.Sprintf(
		"%s carries %s, which does not allow guests, but guest %s is a member: %s",
		name(g), labelName(l), name(dir.Node(path[len(path)-1])), pathNames(dir, path))}
}

// nestedFinding is what Audit says of group child directly in group g, which carries label l: nil when child's
// own label is at least as restrictive.
func nestedFinding(dir *directory.Directory, g *directory.Node, l *pb.Label, child *directory.Node) *pb.Finding {
	cl, childLabelled := dir.Label(child.Group().GetLabelId())
	switch {
	case !childLabelled:
		return &pb.Finding{Rule: pb.Rule_RULE_NESTED_GROUP_UNLABELED, GroupId: g.ID(), Path: []string{child.ID(), g.ID()},
			Message: fmt.Sprintf("%s carries %s but contains unlabelled group %s", name(g), labelName(l), name(child))}
	case cl.GetPriority() < l.GetPriority():
		return &pb.Finding{Rule: pb.Rule_RULE_NESTED_GROUP_LESS_RESTRICTIVE, GroupId: g.ID(), Path: []string{child.ID(), g.ID()},
			Message: fmt.Sprintf("%s carries %s but contains %s with less restrictive %s", name(g), labelName(l), name(child), labelName(cl))}
	}
	return nil
}

// MemberFindings is what Audit says of member where it stands in a nesting tree: chain holds the groups from the
// tree's root down to member's direct parent. A guest is judged against the outermost group of the chain whose
// label does not allow guests (the path from that group down to the guest is the evidence), a group against
// its parent's label. Audit reports one guest path per group; a tree shows every guest where it is.
func MemberFindings(dir *directory.Directory, chain []*directory.Node, member *directory.Node) []*pb.Finding {
	if len(chain) == 0 || member == nil {
		return nil
	}
	var out []*pb.Finding
	if member.UserType() == pb.UserType_USER_TYPE_GUEST {
		for i, g := range chain {
			if l, ok := dir.Label(g.Group().GetLabelId()); ok && !l.GetGuestsAllowed() {
				path := make([]directory.Ref, 0, len(chain)-i+1)
				for _, a := range chain[i:] {
					path = append(path, a.Ref())
				}
				out = append(out, guestFinding(dir, g, l, append(path, member.Ref())))
				break
			}
		}
	}
	if parent := chain[len(chain)-1]; member.IsGroup() {
		if l, ok := dir.Label(parent.Group().GetLabelId()); ok {
			if f := nestedFinding(dir, parent, l, member); f != nil {
				out = append(out, f)
			}
		}
	}
	return out
}

// NestingCycles finds the strongly connected components of the group graph with more than one group (Tarjan's
// algorithm, iterative so deep nesting cannot overflow the stack), each sorted by ref, ordered by first ref.
func NestingCycles(dir *directory.Directory) [][]directory.Ref {
	n := dir.RefLimit()
	index := make([]int32, n) // 0: unvisited; else visit order + 1
	low := make([]int32, n)
	onStack := make([]bool, n)
	var stack []directory.Ref
	var comps [][]directory.Ref
	next := int32(1)
	type frame struct {
		v directory.Ref
		i int
	}
	for root := range dir.Groups() {
		if index[root.Ref()] != 0 {
			continue
		}
		call := []frame{{v: root.Ref()}}
		index[root.Ref()], low[root.Ref()] = next, next
		next++
		stack = append(stack, root.Ref())
		onStack[root.Ref()] = true
		for len(call) > 0 {
			f := &call[len(call)-1]
			members := dir.Node(f.v).Members()
			if f.i < len(members) {
				w := members[f.i]
				f.i++
				wn := dir.Node(w)
				if wn == nil || !wn.IsGroup() {
					continue
				}
				if index[w] == 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					call = append(call, frame{v: w})
				} else if onStack[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				var comp []directory.Ref
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				if len(comp) > 1 {
					comps = append(comps, comp)
				}
			}
		}
	}
	for _, comp := range comps {
		slices.Sort(comp)
	}
	slices.SortFunc(comps, func(a, b []directory.Ref) int { return int(a[0]) - int(b[0]) })
	return comps
}

// loopWithin returns the shortest loop from the component's first group back to itself, staying inside it.
func loopWithin(dir *directory.Directory, comp []directory.Ref) []directory.Ref {
	start := comp[0]
	in := make(map[directory.Ref]bool, len(comp))
	for _, r := range comp {
		in[r] = true
	}
	parent := map[directory.Ref]directory.Ref{}
	frontier := []directory.Ref{start}
	for len(frontier) > 0 {
		var nxt []directory.Ref
		for _, v := range frontier {
			for _, w := range dir.Node(v).Members() {
				if !in[w] {
					continue
				}
				if w == start {
					path := []directory.Ref{start}
					for x := v; x != start; x = parent[x] {
						path = append(path, x)
					}
					path = append(path, start)
					slices.Reverse(path[1 : len(path)-1])
					return path
				}
				if _, seen := parent[w]; !seen {
					parent[w] = v
					nxt = append(nxt, w)
				}
			}
		}
		frontier = nxt
	}
	return comp // unreachable for a strongly connected component
}
