package resolver

import (
	"math/rand/v2"
	"testing"

	"github.com/groupgate/groupgate/directory"
)

// edgesBelow counts the membership edges a full walk from g examines: the direct member lists of g and of every
// group below it.
func edgesBelow(d *directory.Directory, v View, g directory.Ref) int {
	n := len(d.Node(g).Members())
	for m := range v.Members(g) {
		if d.Node(m).IsGroup() && m != g {
			n += len(d.Node(m).Members())
		}
	}
	return n
}

// TestCountMembersMatchesNaiveBFS compares counts with every budget against the naive closure of random
// tenants, cycles included: with enough budget the count is exact, with less it is a lower bound marked inexact.
func TestCountMembersMatchesNaiveBFS(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	r := New(Options{})
	for i := 0; i < 300; i++ {
		s := randomTenant(rng, 1+rng.IntN(8), rng.IntN(8), 0.1+rng.Float64()*0.3)
		d, err := directory.FromSnapshot(s, 1)
		if err != nil {
			t.Fatal(err)
		}
		n := newNaive(s)
		v := r.At(d)
		for _, g := range s.GetGroups() {
			want := len(withoutSelf(n.distances(g.GetId()), g.GetId())) // a group in a cycle is not its own member
			node, _ := d.Lookup(g.GetId())
			edges := edgesBelow(d, v, node.Ref())
			for budget := 0; budget <= edges+1; budget++ {
				count, exact, used := v.CountMembers(node.Ref(), budget)
				if used > budget {
					t.Fatalf("%s budget %d: examined %d edges", g.GetId(), budget, used)
				}
				if budget >= edges {
					if count != want || !exact || used != edges {
						t.Fatalf("%s (%d members, %d edges), budget %d: %d exact=%v used %d", g.GetId(), want, edges, budget, count, exact, used)
					}
				} else if exact || count > want {
					t.Fatalf("%s (%d members, %d edges), budget %d: %d exact=%v, want a lower bound", g.GetId(), want, edges, budget, count, exact)
				}
			}
		}
	}
}

func TestCountMembersOfADeepChain(t *testing.T) {
	d := chain(t, 5000)
	g0, _ := d.Lookup("g0")
	count, exact, used := New(Options{}).At(d).CountMembers(g0.Ref(), 1_000_000)
	if count != 5000 || !exact || used != 5000 {
		t.Errorf("g0 of a 5000-deep chain: %d exact=%v used %d, want 4999 groups + 1 guest = 5000 over 5000 edges", count, exact, used)
	}
}
