package resolver

import (
	"math/rand/v2"
	"testing"

	"github.com/groupgate/groupgate/directory"
)

// TestCountMembersMatchesNaiveBFS compares counts with every budget against the naive closure of random
// tenants, cycles included.
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
		for _, g := range s.GetGroups() {
			want := len(withoutSelf(n.distances(g.GetId()), g.GetId())) // a group in a cycle is not counted as its own member
			node, _ := d.Lookup(g.GetId())
			for budget := 0; budget <= want+1; budget++ {
				count, exact := r.At(d).CountMembers(node.Ref(), budget)
				wantCount, wantExact := min(want, budget), want <= budget
				if count != wantCount || exact != wantExact {
					t.Fatalf("%s (%d members), budget %d: %d exact=%v, want %d exact=%v", g.GetId(), want, budget, count, exact, wantCount, wantExact)
				}
			}
		}
	}
}

func TestCountMembersOfADeepChain(t *testing.T) {
	d := chain(t, 5000)
	g0, _ := d.Lookup("g0")
	count, exact := New(Options{}).At(d).CountMembers(g0.Ref(), 1_000_000)
	if count != 5000 || !exact {
		t.Errorf("g0 of a 5000-deep chain: %d exact=%v, want 4999 groups + 1 guest = 5000", count, exact)
	}
}
