// Package resolver answers questions about nested group membership over one directory revision: is P a
// transitive member of G and by which shortest path, does G contain a guest at any depth, would nesting C under
// G close a cycle, who are G's effective members, which groups does P belong to. It knows nothing about policy.
//
// Every traversal is iterative (no recursion to overflow on deep nesting) and marks what it visited in a dense,
// epoch-stamped array indexed by Ref (pooled, never cleared), so cycles in the data end a walk instead of looping
// and no traversal allocates per node. Questions about a principal's ancestors walk *up* the reverse edges: a user
// is in a handful of groups, while a top group may hold a million members. Only GuestPath, the one question that
// must walk down, is cached (see package cache).
package resolver

import (
	"iter"
	"runtime"
	"slices"
	"sync"

	"github.com/groupgate/groupgate/cache"
	"github.com/groupgate/groupgate/directory"
)

// Resolver answers membership questions. It is safe for concurrent use; one Resolver serves every tenant and
// revision.
type Resolver struct {
	guests *cache.Cache[guestAnswer] // nil: no caching

	// free holds idle scratch space. Not a sync.Pool: that is emptied at every GC, and re-making two arrays of
	// RefLimit entries (8.8 MB on a 1.1M-node tenant) then shows up in the tail latency of the smallest question.
	mu   sync.Mutex
	free []*scratch
}

// maxFreeScratch bounds the idle scratch kept: enough for the concurrent traversals of a busy 2-core server.
var maxFreeScratch = 4*runtime.GOMAXPROCS(0) + 4

// Options configure a Resolver.
type Options struct {
	// CacheMaxBytes bounds the memory of cached answers; 0 means cache.DefaultMaxBytes, a negative value turns
	// caching off (EvaluatePlan's hypothetical states must never reach a cache).
	CacheMaxBytes int64
}

// guestAnswer is a cached GuestPath.
type guestAnswer struct {
	path  []directory.Ref
	found bool
	depth int // the levels its walk went down (a Probe's Depth on a cache hit)
}

const kindGuestPath cache.Kind = 1

// New returns a resolver.
func New(opts Options) *Resolver {
	r := &Resolver{}
	if opts.CacheMaxBytes >= 0 {
		c, err := cache.New[guestAnswer](opts.CacheMaxBytes)
		if err == nil {
			r.guests = c
		}
	}
	return r
}

// CacheStats reports the cache's counters (zero when caching is off).
func (r *Resolver) CacheStats() cache.Stats {
	if r.guests == nil {
		return cache.Stats{}
	}
	return r.guests.Stats()
}

// WaitCache blocks until cache writes are applied (ristretto buffers them); for tests and benchmarks.
func (r *Resolver) WaitCache() {
	if r.guests != nil {
		r.guests.Wait()
	}
}

// Close releases the cache's goroutines. The resolver must not be used afterwards.
func (r *Resolver) Close() {
	if r.guests != nil {
		r.guests.Close()
	}
}

// View is the resolver bound to one directory revision.
type View struct {
	r     *Resolver
	dir   *directory.Directory
	probe *Probe // nil: nothing recorded
}

// Probe records what the walks of a view did, for a trace's span (the server's policy spans carry it): how
// many walks ran, how many GuestPath answers came from the cache instead, and the deepest nesting level any
// walk reached (a cached answer counts with the depth its walk reached). One Probe serves one goroutine's
// decision: it is not safe for concurrent use.
type Probe struct {
	Walks, CacheHits int
	Depth            int
}

// Probe returns the view recording into p (nil: record nothing).
func (v View) Probe(p *Probe) View {
	v.probe = p
	return v
}

// reached records a walk (or a cached one's answer, cached) that went depth levels deep.
func (v View) reached(depth int, cached bool) {
	p := v.probe
	if p == nil {
		return
	}
	if cached {
		p.CacheHits++
	} else {
		p.Walks++
	}
	p.Depth = max(p.Depth, depth)
}

// At binds the resolver to one directory revision.
func (r *Resolver) At(dir *directory.Directory) View { return View{r: r, dir: dir} }

// Directory is the revision the view answers on.
func (v View) Directory() *directory.Directory { return v.dir }

// scratch is the per-traversal working memory: visit stamps and back-pointers indexed by Ref.
type scratch struct {
	stamp []uint32
	link  []directory.Ref
	epoch uint32
	queue []directory.Ref
	// seen is a visited bit per ref, for walks that need no path back (MemberBatches): 1.1M refs take 137 KiB,
	// which stays in a core's cache where the 4.4 MiB of stamps do not, and a whole-tenant walk tests it ten
	// million times.
	seen []uint64
}

// bits returns the scratch's visited bits for n refs, all clear.
func (s *scratch) bits(n int) []uint64 {
	words := (n + 63) / 64
	if cap(s.seen) < words {
		s.seen = make([]uint64, words+words/8)
	}
	s.seen = s.seen[:words]
	clear(s.seen)
	return s.seen
}

// mark sets x's bit in seen and reports whether it was clear.
func mark(seen []uint64, x directory.Ref) bool {
	w, bit := x/64, uint64(1)<<(x%64)
	if seen[w]&bit != 0 {
		return false
	}
	seen[w] |= bit
	return true
}

func (r *Resolver) scratch(n int) *scratch {
	var s *scratch
	r.mu.Lock()
	if k := len(r.free); k > 0 {
		s = r.free[k-1]
		r.free = r.free[:k-1]
	}
	r.mu.Unlock()
	if s == nil {
		s = &scratch{}
	}
	if len(s.stamp) < n {
		s.stamp = make([]uint32, n+n/8)
		s.link = make([]directory.Ref, len(s.stamp))
		s.epoch = 0
	}
	s.epoch++
	if s.epoch == 0 { // wrapped: stamps from 2^32 traversals ago would look current
		clear(s.stamp)
		s.epoch = 1
	}
	s.queue = s.queue[:0]
	return s
}

func (r *Resolver) release(s *scratch) {
	r.mu.Lock()
	if len(r.free) < maxFreeScratch {
		r.free = append(r.free, s)
	}
	r.mu.Unlock()
}

func (s *scratch) visit(x directory.Ref, link directory.Ref) bool {
	if s.stamp[x] == s.epoch {
		return false
	}
	s.stamp[x] = s.epoch
	s.link[x] = link
	return true
}

// appendPath appends x and the links that lead from it back to end, end included: the path a walk found to x,
// from x back to where the walk started.
func (s *scratch) appendPath(path []directory.Ref, x, end directory.Ref) []directory.Ref {
	path = append(path, x)
	for x != end {
		x = s.link[x]
		path = append(path, x)
	}
	return path
}

// MemberPath returns the shortest nesting path group → … → principal (both ends included) when principal is a
// member of group at any depth. A group in a nesting cycle is a member of itself, by the loop.
func (v View) MemberPath(group, principal directory.Ref) ([]directory.Ref, bool) {
	if v.dir.Node(group) == nil || v.dir.Node(principal) == nil {
		return nil, false
	}
	s := v.r.scratch(v.dir.RefLimit())
	defer v.r.release(s)
	// Walk up from the principal; link[x] is the node below x on the way back down to the principal. depth is
	// the level of the groups being found (the queue's nodes before levelEnd are one level below them).
	s.visit(principal, principal)
	s.queue = append(s.queue, principal)
	depth, levelEnd := 0, 0
	for i := 0; i < len(s.queue); i++ {
		if i == levelEnd {
			depth, levelEnd = depth+1, len(s.queue)
		}
		child := s.queue[i]
		for _, p := range v.dir.Node(child).MemberOf() {
			if p == group {
				v.reached(depth, false)
				return s.appendPath([]directory.Ref{group}, child, principal), true
			}
			if s.visit(p, child) {
				s.queue = append(s.queue, p)
			}
		}
	}
	v.reached(depth-1, false) // the last level found no groups
	return nil, false
}

// CyclePath reports whether making child a direct member of group would close a nesting cycle: that is the case
// when group is already a member of child at any depth (or child is group). The path runs child → … → group.
func (v View) CyclePath(group, child directory.Ref) ([]directory.Ref, bool) {
	if group == child {
		return []directory.Ref{child}, v.dir.Node(child) != nil
	}
	return v.MemberPath(child, group)
}

// GuestPath returns the shortest path group → … → a guest user when group contains a guest at any depth. Answers
// are cached per group and revision-safe (see package cache).
func (v View) GuestPath(group directory.Ref) ([]directory.Ref, bool) {
	c := v.r.guests
	if c != nil {
		if a, ok := c.Get(v.dir.Lineage(), v.dir.Revision(), uint32(group), kindGuestPath); ok {
			v.reached(a.depth, true)
			return slices.Clone(a.path), a.found
		}
	}
	path, found, depth := v.shortestDown(group, (*directory.Node).IsGuest)
	v.reached(depth, false)
	if c != nil {
		c.Set(v.dir.Lineage(), v.dir.Revision(), uint32(group), kindGuestPath, guestAnswer{path: path, found: found, depth: depth}, int64(4*len(path)))
	}
	return slices.Clone(path), found
}

// shortestDown walks down from group breadth-first and returns the path to the first node that matches, and the
// deepest level the walk reached (1: group's direct members).
func (v View) shortestDown(group directory.Ref, match func(*directory.Node) bool) ([]directory.Ref, bool, int) {
	if v.dir.Node(group) == nil {
		return nil, false, 0
	}
	s := v.r.scratch(v.dir.RefLimit())
	defer v.r.release(s)
	s.visit(group, group)
	s.queue = append(s.queue, group)
	depth, levelEnd := 0, 0
	for i := 0; i < len(s.queue); i++ {
		if i == levelEnd {
			depth, levelEnd = depth+1, len(s.queue)
		}
		parent := s.queue[i]
		for _, m := range v.dir.Node(parent).Members() {
			if !s.visit(m, parent) {
				continue
			}
			n := v.dir.Node(m)
			if match(n) {
				path := s.appendPath(nil, m, group)
				slices.Reverse(path)
				return path, true, depth
			}
			if n.IsGroup() {
				s.queue = append(s.queue, m)
			}
		}
	}
	return nil, false, depth
}

// Members yields the transitive members of group, each once, in breadth-first order with its depth (1 for a
// direct member). A group in a cycle with group itself is yielded, group itself is not. It streams: the first
// members come before the walk has gone deep.
func (v View) Members(group directory.Ref) iter.Seq2[directory.Ref, int] {
	return func(yield func(directory.Ref, int) bool) {
		for batch, depth := range v.MemberBatches(group) {
			for _, m := range batch {
				if !yield(m, depth) {
					return
				}
			}
		}
	}
}

// MemberBatches is Members a batch at a time: each batch holds the next members in Members' order, all at the
// same depth; the slice is only valid until the next. A batch gathers the members first found among consecutive
// groups of one level until it holds memberBatch of them (or the level ends). The walk reads a batch's nodes one
// after the other in a short loop, so that their loads, each likely a cache miss on a large tenant, overlap
// instead of waiting for one another; a caller that reads the batch's nodes again finds them in cache.
func (v View) MemberBatches(group directory.Ref) iter.Seq2[[]directory.Ref, int] {
	return func(yield func([]directory.Ref, int) bool) {
		if v.dir.Node(group) == nil {
			return
		}
		s := v.r.scratch(0)
		defer v.r.release(s)
		seen := s.bits(v.dir.RefLimit())
		mark(seen, group)
		frontier := []directory.Ref{group}
		batch := make([]directory.Ref, 0, memberBatch+64)
		deepest := 0
		defer func() { v.reached(deepest, false) }()
		for depth := 1; len(frontier) > 0; depth++ {
			var next []directory.Ref
			// flush hands the batch over after queueing its groups for the next level.
			flush := func() bool {
				for _, m := range batch {
					if v.dir.Node(m).IsGroup() {
						next = append(next, m)
					}
				}
				deepest = depth
				ok := yield(batch, depth)
				batch = batch[:0]
				return ok
			}
			for _, parent := range frontier {
				for _, m := range v.dir.Node(parent).Members() {
					if mark(seen, m) {
						batch = append(batch, m)
					}
				}
				if len(batch) >= memberBatch && !flush() {
					return
				}
			}
			if len(batch) > 0 && !flush() {
				return
			}
			frontier = next
		}
	}
}

// memberBatch is the size MemberBatches gathers a batch to: enough loads to keep a core's outstanding misses busy,
// few enough that the batch's nodes stay in its cache until the caller reads them again.
const memberBatch = 256

// Ancestors yields every group that node is a member of at any depth, each once, breadth-first with its depth
// (the length of the shortest nesting path). node itself is not yielded, even when a cycle leads back to it (as
// Members does not yield the group it starts from).
func (v View) Ancestors(node directory.Ref) iter.Seq2[directory.Ref, int] {
	return func(yield func(directory.Ref, int) bool) {
		v.walkUp(node, func(g directory.Ref, depth int, _ *scratch) bool { return yield(g, depth) })
	}
}

// walkUp is Ancestors with the walk's scratch, whose links lead from each group found back down to node. The
// frontier lives in the scratch's queue, one level after the other, so a walk allocates nothing once the
// scratch has grown to the largest walk.
func (v View) walkUp(node directory.Ref, yield func(g directory.Ref, depth int, s *scratch) bool) {
	if v.dir.Node(node) == nil {
		return
	}
	s := v.r.scratch(v.dir.RefLimit())
	defer v.r.release(s)
	s.visit(node, node)
	s.queue = append(s.queue, node)
	deepest := 0
	defer func() { v.reached(deepest, false) }()
	for start, depth := 0, 1; start < len(s.queue); depth++ {
		end := len(s.queue)
		for i := start; i < end; i++ {
			for _, g := range v.dir.Node(s.queue[i]).MemberOf() {
				if !s.visit(g, s.queue[i]) {
					continue
				}
				s.queue = append(s.queue, g)
				deepest = depth
				if !yield(g, depth, s) {
					return
				}
			}
		}
		start = end
	}
}

// GroupFilter narrows the groups Groups yields. It never narrows the walk: a labelled group reached only through
// unlabelled ones is still found, at its true depth.
type GroupFilter struct {
	LabelledOnly       bool // only groups that carry a sensitivity label
	RoleAssignableOnly bool // only role-assignable groups
}

// keeps reports whether group g of d passes f. The zero filter keeps every group without reading its attributes
// (a cache miss each on a large tenant).
func (f GroupFilter) keeps(d *directory.Directory, g directory.Ref) bool {
	if f == (GroupFilter{}) {
		return true
	}
	group := d.Node(g).Group()
	return (!f.LabelledOnly || group.GetLabelId() != "") && (!f.RoleAssignableOnly || group.GetIsAssignableToRole())
}

// GroupPaths is Groups with each group's shortest nesting path group → … → principal (both ends included, so
// the depth is len(path)-1). The path's backing array is reused from one group to the next: copy what you keep.
func (v View) GroupPaths(principal directory.Ref, f GroupFilter) iter.Seq2[directory.Ref, []directory.Ref] {
	return func(yield func(directory.Ref, []directory.Ref) bool) {
		var path []directory.Ref
		v.walkUp(principal, func(g directory.Ref, _ int, s *scratch) bool {
			if !f.keeps(v.dir, g) {
				return true
			}
			path = s.appendPath(path[:0], g, principal)
			return yield(g, path)
		})
	}
}

// Groups yields the effective groups of a principal (user, group or service principal) that pass f: every group
// it belongs to at any depth, each once, in order of depth (the length of the shortest nesting path, 1 for a
// direct membership). It walks up the reverse edges, so it costs what the principal's ancestry holds, not the
// tenant's size, and cycles end the walk. It streams: the first groups come before the walk has gone far.
func (v View) Groups(principal directory.Ref, f GroupFilter) iter.Seq2[directory.Ref, int] {
	return func(yield func(directory.Ref, int) bool) {
		for g, depth := range v.Ancestors(principal) {
			if f.keeps(v.dir, g) && !yield(g, depth) {
				return
			}
		}
	}
}

// Invalidate tells the resolver that next was derived from prev by delta, before any reader sees next. Only the
// answers the change can affect are dropped: GuestPath of every group at or above a changed edge's group or a
// created, deleted or changed object, in both revisions. A nil delta means the tenant was replaced whole (a new lineage): what was known of prev's
// lineage is forgotten.
func (r *Resolver) Invalidate(prev, next *directory.Directory, delta *directory.Delta) {
	if r.guests == nil {
		return
	}
	if delta == nil {
		if prev != nil && prev.Lineage() != next.Lineage() {
			r.guests.Forget(prev.Lineage())
		}
		return
	}
	var touched []uint32
	mark := func(dir *directory.Directory, from directory.Ref) {
		if n := dir.Node(from); n != nil && n.IsGroup() {
			touched = append(touched, uint32(from))
		}
		for g := range r.At(dir).Ancestors(from) {
			touched = append(touched, uint32(g))
		}
	}
	for _, dir := range []*directory.Directory{prev, next} {
		for _, e := range delta.EdgesAdded {
			mark(dir, e.Group)
		}
		for _, e := range delta.EdgesRemoved {
			mark(dir, e.Group)
		}
		for _, n := range delta.Objects {
			mark(dir, n)
		}
	}
	r.guests.Dirty(next.Lineage(), next.Revision(), touched)
}
