package resolver

import "github.com/groupgate/groupgate/directory"

// CountMembers counts group's transitive members (group itself excluded, as in Members), examining at most
// budget membership edges: the explorer shows a count beside every sub-group, and opening a million-member group
// must cost a bounded walk, not one of the whole tenant per row. The cost of a walk is its edges (a user in ten
// groups is reached ten times), so that is what the budget bounds. exact is false when the walk stopped early;
// count is then a lower bound. used is the number of edges examined, for callers sharing one budget.
func (v View) CountMembers(group directory.Ref, budget int) (count int, exact bool, used int) {
	g := v.dir.Node(group)
	if g == nil {
		return 0, true, 0
	}
	s := v.r.scratch(v.dir.RefLimit())
	defer v.r.release(s)
	s.visit(group, group)
	s.queue = append(s.queue, group)
	for i := 0; i < len(s.queue); i++ {
		members := v.dir.Node(s.queue[i]).Members()
		if used+len(members) > budget {
			return count, false, used
		}
		used += len(members)
		for _, m := range members {
			if !s.visit(m, m) {
				continue
			}
			count++
			if v.dir.Node(m).IsGroup() {
				s.queue = append(s.queue, m)
			}
		}
	}
	return count, true, used
}
