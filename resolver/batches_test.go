package resolver_test

import (
	"testing"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/resolver"
)

// TestMemberBatchesKeepBreadthFirstOrder: MemberBatches, whose batches gather several groups' new members, yields
// exactly the breadth-first order EffectiveMembers promises (each level's groups in the order they were found,
// each group's direct members in their order, every member once at its first depth), in non-empty batches of one
// depth each.
func TestMemberBatchesKeepBreadthFirstOrder(t *testing.T) {
	d, _ := benchtenant.Load(t, "small")
	top, _ := d.Lookup(workload.TopGroupID)
	type member struct {
		ref   directory.Ref
		depth int
	}
	var want []member
	seen := map[directory.Ref]bool{top.Ref(): true}
	for frontier, depth := []directory.Ref{top.Ref()}, 1; len(frontier) > 0; depth++ {
		var next []directory.Ref
		for _, g := range frontier {
			for _, m := range d.Node(g).Members() {
				if !seen[m] {
					seen[m] = true
					want = append(want, member{m, depth})
					if d.Node(m).IsGroup() {
						next = append(next, m)
					}
				}
			}
		}
		frontier = next
	}
	var got []member
	batches, large := 0, 0
	for batch, depth := range resolver.New(resolver.Options{}).At(d).MemberBatches(top.Ref()) {
		if len(batch) == 0 {
			t.Fatalf("an empty batch at depth %d", depth)
		}
		batches++
		if len(batch) >= 256 {
			large++
		}
		for _, m := range batch {
			got = append(got, member{m, depth})
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d members in %d batches, want %d", len(got), batches, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("member %d is %s at depth %d, want %s at depth %d", i, d.Node(got[i].ref).ID(), got[i].depth, d.Node(want[i].ref).ID(), want[i].depth)
		}
	}
	if large == 0 {
		t.Errorf("%d batches, none of 256 members or more: want batches gathered across groups", batches)
	}
}
