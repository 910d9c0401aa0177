package resolver

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// randomTenant builds a tenant of nGroups groups and nUsers users (some guests) with random nesting, cycles
// allowed.
func randomTenant(rng *rand.Rand, nGroups, nUsers int, edgeProb float64) *pb.Snapshot {
	s := &pb.Snapshot{TenantId: "t", Labels: []*pb.Label{{Id: "lbl", DisplayName: "Label", GroupsScope: true}}}
	for u := 0; u < nUsers; u++ {
		t := pb.UserType_USER_TYPE_MEMBER
		if rng.IntN(6) == 0 {
			t = pb.UserType_USER_TYPE_GUEST
		}
		s.Users = append(s.Users, &pb.User{Id: fmt.Sprintf("u%d", u), UserType: t})
	}
	for g := 0; g < nGroups; g++ {
		grp := &pb.Group{Id: fmt.Sprintf("g%d", g), Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED,
			IsAssignableToRole: rng.IntN(3) == 0}
		if rng.IntN(2) == 0 {
			grp.LabelId = "lbl"
		}
		for h := 0; h < nGroups; h++ {
			if h != g && rng.Float64() < edgeProb {
				grp.Members = append(grp.Members, fmt.Sprintf("g%d", h))
			}
		}
		for u := 0; u < nUsers; u++ {
			if rng.Float64() < edgeProb {
				grp.Members = append(grp.Members, fmt.Sprintf("u%d", u))
			}
		}
		s.Groups = append(s.Groups, grp)
	}
	return s
}

// naive answers with plain maps and breadth-first search over the snapshot's id lists.
type naive struct {
	members map[string][]string
	guest   map[string]bool
	groups  map[string]*pb.Group
}

func newNaive(s *pb.Snapshot) *naive {
	n := &naive{members: map[string][]string{}, guest: map[string]bool{}, groups: map[string]*pb.Group{}}
	for _, g := range s.GetGroups() {
		n.members[g.GetId()] = g.GetMembers()
		n.groups[g.GetId()] = g
	}
	for _, u := range s.GetUsers() {
		n.guest[u.GetId()] = u.GetUserType() == pb.UserType_USER_TYPE_GUEST
	}
	return n
}

// distances returns the BFS depth of every transitive member of g (g itself only if reached by a cycle).
func (n *naive) distances(g string) map[string]int {
	dist := map[string]int{}
	frontier := []string{g}
	for d := 1; len(frontier) > 0; d++ {
		var next []string
		for _, x := range frontier {
			for _, m := range n.members[x] {
				if _, seen := dist[m]; !seen {
					dist[m] = d
					next = append(next, m)
				}
			}
		}
		frontier = next
	}
	return dist
}

// checkPath verifies that path is a real nesting path from g to p of the shortest length.
func (n *naive) checkPath(t *testing.T, what string, path []string, from string, want int) {
	t.Helper()
	if len(path) != want+1 || path[0] != from {
		t.Fatalf("%s: path %v, want one of length %d from %s", what, path, want+1, from)
	}
	for i := 1; i < len(path); i++ {
		if !slices.Contains(n.members[path[i-1]], path[i]) {
			t.Fatalf("%s: path %v: %s is not a direct member of %s", what, path, path[i], path[i-1])
		}
	}
}

func ids(d *directory.Directory, refs []directory.Ref) []string { return d.IDs(refs) }

func compare(t *testing.T, r *Resolver, d *directory.Directory, s *pb.Snapshot) {
	t.Helper()
	n := newNaive(s)
	v := r.At(d)
	for _, g := range s.GetGroups() {
		gn, _ := d.Lookup(g.GetId())
		dist := n.distances(g.GetId())
		// Members: the same set with the same depths.
		got := map[string]int{}
		for m, depth := range v.Members(gn.Ref()) {
			got[d.Node(m).ID()] = depth
		}
		if fmt.Sprint(sortedMap(got)) != fmt.Sprint(sortedMap(withoutSelf(dist, g.GetId()))) {
			t.Fatalf("Members(%s) = %v, want %v", g.GetId(), got, dist)
		}
		// MemberPath for every principal.
		for id := range n.guest {
			check(t, n, v, d, g.GetId(), id, dist)
		}
		for _, h := range s.GetGroups() {
			check(t, n, v, d, g.GetId(), h.GetId(), dist)
		}
		// GuestPath: found iff some guest is reachable, of the shortest length.
		best := -1
		for m, depth := range dist {
			if n.guest[m] && (best < 0 || depth < best) {
				best = depth
			}
		}
		path, ok := v.GuestPath(gn.Ref())
		if ok != (best >= 0) {
			t.Fatalf("GuestPath(%s) found=%v, want %v", g.GetId(), ok, best >= 0)
		}
		if ok {
			p := ids(d, path)
			n.checkPath(t, "GuestPath("+g.GetId()+")", p, g.GetId(), best)
			if !n.guest[p[len(p)-1]] {
				t.Fatalf("GuestPath(%s) ends at %s, not a guest", g.GetId(), p[len(p)-1])
			}
		}
	}
}

// compareGroups checks Groups of every principal, under every filter, against the naive downward distances:
// g is an effective group of p at depth k exactly when p is an effective member of g at depth k.
func compareGroups(t *testing.T, n *naive, v View, d *directory.Directory, s *pb.Snapshot) {
	t.Helper()
	dist := map[string]map[string]int{}
	for _, g := range s.GetGroups() {
		dist[g.GetId()] = withoutSelf(n.distances(g.GetId()), g.GetId())
	}
	var principals []string
	for _, u := range s.GetUsers() {
		principals = append(principals, u.GetId())
	}
	for _, g := range s.GetGroups() {
		principals = append(principals, g.GetId())
	}
	for _, f := range []GroupFilter{{}, {LabelledOnly: true}, {RoleAssignableOnly: true}, {LabelledOnly: true, RoleAssignableOnly: true}} {
		for _, p := range principals {
			want := map[string]int{}
			for g, members := range dist {
				grp := n.groups[g]
				if depth, ok := members[p]; ok && (!f.LabelledOnly || grp.GetLabelId() != "") && (!f.RoleAssignableOnly || grp.GetIsAssignableToRole()) {
					want[g] = depth
				}
			}
			pn, _ := d.Lookup(p)
			got, last := map[string]int{}, 0
			for g, depth := range v.Groups(pn.Ref(), f) {
				id := d.Node(g).ID()
				if _, dup := got[id]; dup {
					t.Fatalf("Groups(%s, %+v) yields %s twice", p, f, id)
				}
				if depth < last {
					t.Fatalf("Groups(%s, %+v) yields %s at depth %d after depth %d: not breadth-first", p, f, id, depth, last)
				}
				got[id], last = depth, depth
			}
			if fmt.Sprint(sortedMap(got)) != fmt.Sprint(sortedMap(want)) {
				t.Fatalf("Groups(%s, %+v) = %v, want %v", p, f, sortedMap(got), sortedMap(want))
			}
			// GroupPaths: the same groups, each with a real nesting path down to p of the shortest length.
			withPaths := map[string]int{}
			for g, path := range v.GroupPaths(pn.Ref(), f) {
				id, ids := d.Node(g).ID(), d.IDs(path)
				n.checkPath(t, fmt.Sprintf("GroupPaths(%s, %+v) to %s", p, f, id), ids, id, want[id])
				if ids[len(ids)-1] != p {
					t.Fatalf("GroupPaths(%s, %+v): path %v does not end at %s", p, f, ids, p)
				}
				withPaths[id] = len(path) - 1
			}
			if fmt.Sprint(sortedMap(withPaths)) != fmt.Sprint(sortedMap(want)) {
				t.Fatalf("GroupPaths(%s, %+v) = %v, want %v", p, f, sortedMap(withPaths), sortedMap(want))
			}
		}
	}
}

func check(t *testing.T, n *naive, v View, d *directory.Directory, g, p string, dist map[string]int) {
	t.Helper()
	gn, _ := d.Lookup(g)
	pn, _ := d.Lookup(p)
	path, ok := v.MemberPath(gn.Ref(), pn.Ref())
	want, member := dist[p]
	if ok != member {
		t.Fatalf("MemberPath(%s, %s) = %v, want member=%v", g, p, ok, member)
	}
	if ok {
		n.checkPath(t, fmt.Sprintf("MemberPath(%s, %s)", g, p), ids(d, path), g, want)
	}
	// CyclePath(g, p) for group p: adding p under g closes a cycle iff g is a member of p (or p is g).
	if pn.IsGroup() {
		_, cyc := v.CyclePath(gn.Ref(), pn.Ref())
		_, gInP := n.distances(p)[g]
		if cyc != (gInP || g == p) {
			t.Fatalf("CyclePath(%s, %s) = %v, want %v", g, p, cyc, gInP || g == p)
		}
	}
}

func withoutSelf(m map[string]int, self string) map[string]int {
	// A group reached through a cycle is its own member; Members does not yield the group itself.
	out := map[string]int{}
	for k, v := range m {
		if k != self {
			out[k] = v
		}
	}
	return out
}

func sortedMap(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s:%d", k, v))
	}
	slices.Sort(out)
	return out
}

// TestResolverMatchesNaiveBFS compares every answer with a naive BFS on 2,000 random graphs (cycles included),
// then keeps comparing through random writes, with the cache on, so a cached answer that a write should have
// dropped is caught.
func TestResolverMatchesNaiveBFS(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	r := New(Options{})
	graphs := 2000
	if testing.Short() {
		graphs = 200
	}
	for i := 0; i < graphs; i++ {
		nGroups, nUsers := 1+rng.IntN(9), rng.IntN(8)
		s := randomTenant(rng, nGroups, nUsers, 0.1+rng.Float64()*0.3)
		d, err := directory.FromSnapshot(s, 1)
		if err != nil {
			t.Fatal(err)
		}
		compare(t, r, d, s)
		compareGroups(t, newNaive(s), r.At(d), d, s)
		// Writes: add or remove random edges, flip a user's type; compare after each.
		for w := 0; w < 3; w++ {
			var c *pb.Change
			g := fmt.Sprintf("g%d", rng.IntN(nGroups))
			switch k := rng.IntN(3); {
			case k == 0 && nUsers > 0:
				u := s.Users[rng.IntN(nUsers)]
				flipped := &pb.User{Id: u.GetId(), UserType: 3 - u.GetUserType()}
				c = &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: flipped}}
			case k == 1:
				m := fmt.Sprintf("g%d", rng.IntN(nGroups))
				if m == g {
					continue
				}
				c = &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: g, MemberId: m}}}
			default:
				gn, _ := d.Lookup(g)
				if len(gn.Members()) == 0 {
					continue
				}
				m := d.Node(gn.Members()[rng.IntN(len(gn.Members()))]).ID()
				c = &pb.Change{Change: &pb.Change_RemoveMember{RemoveMember: &pb.MemberChange{GroupId: g, MemberId: m}}}
			}
			next, delta, err := d.Apply([]*pb.Change{c}, d.Revision()+1)
			if err != nil {
				t.Fatal(err)
			}
			r.Invalidate(d, next, delta)
			r.WaitCache()
			d, s = next, next.Snapshot()
			compare(t, r, d, s)
			compareGroups(t, newNaive(s), r.At(d), d, s)
		}
	}
}

// chain builds g0 → g1 → … → g(n-1) → guest.
func chain(t testing.TB, n int) *directory.Directory {
	s := &pb.Snapshot{TenantId: "t", Users: []*pb.User{{Id: "guest", UserType: pb.UserType_USER_TYPE_GUEST}}}
	for i := 0; i < n; i++ {
		next := "guest"
		if i+1 < n {
			next = fmt.Sprintf("g%d", i+1)
		}
		s.Groups = append(s.Groups, &pb.Group{Id: fmt.Sprintf("g%d", i), Kind: 1, Membership: 1, Members: []string{next}})
	}
	d, err := directory.FromSnapshot(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDeepChainsNeedNoStack(t *testing.T) {
	const depth = 100_000
	d := chain(t, depth)
	v := New(Options{}).At(d)
	top, _ := d.Lookup("g0")
	guest, _ := d.Lookup("guest")
	path, ok := v.GuestPath(top.Ref())
	if !ok || len(path) != depth+1 {
		t.Fatalf("GuestPath through %d levels: %d hops, %v", depth, len(path), ok)
	}
	if p, ok := v.MemberPath(top.Ref(), guest.Ref()); !ok || len(p) != depth+1 {
		t.Fatalf("MemberPath through %d levels: %d hops, %v", depth, len(p), ok)
	}
	bottom, _ := d.Lookup(fmt.Sprintf("g%d", depth-1))
	if p, ok := v.CyclePath(bottom.Ref(), top.Ref()); !ok || len(p) != depth {
		t.Fatalf("CyclePath closing %d levels: %d hops, %v", depth, len(p), ok)
	}
}

// TestWriteKeepsUnrelatedEntriesWarm writes in one subtree and checks that cached answers of another subtree
// are still served from the cache, while those above the write are recomputed and right.
func TestWriteKeepsUnrelatedEntriesWarm(t *testing.T) {
	s := &pb.Snapshot{TenantId: "t",
		Users: []*pb.User{{Id: "guest", UserType: pb.UserType_USER_TYPE_GUEST}, {Id: "member", UserType: pb.UserType_USER_TYPE_MEMBER}},
		Groups: []*pb.Group{
			{Id: "left-top", Kind: 1, Membership: 1, Members: []string{"left"}},
			{Id: "left", Kind: 1, Membership: 1, Members: []string{"member"}},
			{Id: "right-top", Kind: 1, Membership: 1, Members: []string{"right"}},
			{Id: "right", Kind: 1, Membership: 1, Members: []string{"guest"}},
		}}
	d, err := directory.FromSnapshot(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{})
	ref := func(id string) directory.Ref { n, _ := d.Lookup(id); return n.Ref() }
	for _, g := range []string{"left-top", "left", "right-top", "right"} {
		r.At(d).GuestPath(ref(g))
	}
	r.WaitCache()
	next, delta, err := d.Apply([]*pb.Change{{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: "left", MemberId: "guest"}}}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	r.Invalidate(d, next, delta)
	before := r.CacheStats()
	for _, g := range []string{"right-top", "right"} {
		if _, ok := r.At(next).GuestPath(ref(g)); !ok {
			t.Fatalf("%s lost its guest", g)
		}
	}
	after := r.CacheStats()
	if after.Hits-before.Hits != 2 {
		t.Errorf("unrelated groups: %d cache hits after the write, want 2 (stats %+v)", after.Hits-before.Hits, after)
	}
	for _, g := range []string{"left-top", "left"} {
		path, ok := r.At(next).GuestPath(ref(g))
		if !ok || next.IDs(path)[len(path)-1] != "guest" {
			t.Errorf("%s after the write: %v %v, want a path to the new guest", g, next.IDs(path), ok)
		}
	}
	if got := r.CacheStats(); got.Stale != 2 {
		t.Errorf("stale entries refused = %d, want 2 (left-top and left)", got.Stale)
	}
	// A reader still on revision 1 must not see revision 2's answer, nor keep it.
	if _, ok := r.At(d).GuestPath(ref("left")); ok {
		t.Error("a reader on revision 1 sees the guest added in revision 2")
	}
}

// TestProbeRecordsDepthReached: a probed view records each walk and the deepest level it reached, found or
// not, stopped early or not; a cached GuestPath counts as a cache hit with its walk's depth. On the chain
// g0 → g1 → g2 → g3 → g4 → guest, plus a group "lone" with no members and no parents.
func TestProbeRecordsDepthReached(t *testing.T) {
	d := chain(t, 5)
	ref := func(id string) directory.Ref {
		n, ok := d.Lookup(id)
		if !ok {
			t.Fatalf("no %s", id)
		}
		return n.Ref()
	}
	cases := []struct {
		name string
		walk func(v View)
		want Probe
	}{
		{"member path found at the bottom", func(v View) { v.MemberPath(ref("g0"), ref("guest")) }, Probe{Walks: 1, Depth: 5}},
		{"member path found midway", func(v View) { v.MemberPath(ref("g3"), ref("guest")) }, Probe{Walks: 1, Depth: 2}},
		{"member path not found: the whole ancestry walked", func(v View) { v.MemberPath(ref("g4"), ref("g2")) }, Probe{Walks: 1, Depth: 2}},
		{"member path from a node without parents", func(v View) { v.MemberPath(ref("g4"), ref("g0")) }, Probe{Walks: 1, Depth: 0}},
		{"guest path", func(v View) { v.GuestPath(ref("g1")) }, Probe{Walks: 1, Depth: 4}},
		{"ancestors stopped after the first", func(v View) {
			for range v.Ancestors(ref("guest")) {
				break
			}
		}, Probe{Walks: 1, Depth: 1}},
		{"members drained", func(v View) {
			for range v.Members(ref("g0")) {
			}
		}, Probe{Walks: 1, Depth: 5}},
		{"two walks: the deeper counts", func(v View) {
			v.MemberPath(ref("g3"), ref("guest"))
			v.GuestPath(ref("g0"))
		}, Probe{Walks: 2, Depth: 5}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p Probe
			c.walk(New(Options{CacheMaxBytes: -1}).At(d).Probe(&p))
			if p != c.want {
				t.Fatalf("probe %+v, want %+v", p, c.want)
			}
		})
	}
	t.Run("cached guest path", func(t *testing.T) {
		r := New(Options{})
		defer r.Close()
		r.At(d).GuestPath(ref("g2"))
		r.WaitCache()
		var p Probe
		if _, ok := r.At(d).Probe(&p).GuestPath(ref("g2")); !ok {
			t.Fatal("no guest below g2")
		}
		if want := (Probe{CacheHits: 1, Depth: 3}); p != want {
			t.Fatalf("probe %+v, want %+v", p, want)
		}
	})
	t.Run("unprobed views record nothing", func(t *testing.T) {
		New(Options{CacheMaxBytes: -1}).At(d).MemberPath(ref("g0"), ref("guest")) // must not panic on the nil probe
	})
}
