package resolver

import "github.com/groupgate/groupgate/directory"

// CountMembers counts group's transitive members, stopping once it has seen more than budget of them: the
// explorer shows a count beside every sub-group, and a page of sub-groups of a million-member group must not cost
// a walk of the whole tenant per row. exact is false when the walk stopped early; count is then budget, a lower
// bound.
func (v View) CountMembers(group directory.Ref, budget int) (count int, exact bool) {
	for range v.Members(group) {
		if count == budget {
			return budget, false
		}
		count++
	}
	return count, true
}
