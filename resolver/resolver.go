// Package resolver answers questions about nested group membership over one directory revision: is P a
// transitive member of G and by which shortest path, does G contain a guest at any depth, would nesting C under
// G close a cycle, who are G's effective members. It knows nothing about policy.
//
// Every traversal is iterative (no recursion to overflow on deep nesting) and marks what it visited, so cycles
// in the data end a walk instead of looping.
package resolver

import (
	"iter"

	"github.com/groupgate/groupgate/directory"
)

// Resolver answers membership questions. It is safe for concurrent use; one Resolver serves every tenant and
// revision.
type Resolver struct{}

// Options configure a Resolver.
type Options struct {
	// CacheMaxBytes bounds the memory of cached answers; 0 means the default.
	CacheMaxBytes int64
}

// New returns a resolver.
func New(opts Options) *Resolver { return &Resolver{} }

// View is the resolver bound to one directory revision.
type View struct {
	r   *Resolver
	dir *directory.Directory
}

// At binds the resolver to one directory revision.
func (r *Resolver) At(dir *directory.Directory) View { return View{r: r, dir: dir} }

// Directory is the revision the view answers on.
func (v View) Directory() *directory.Directory { return v.dir }

// MemberPath returns the shortest nesting path group → … → principal (both ends included) when principal is a
// member of group at any depth.
func (v View) MemberPath(group, principal directory.Ref) ([]directory.Ref, bool) {
	return v.shortestDown(group, func(n *directory.Node) bool { return n.Ref() == principal })
}

// GuestPath returns the shortest path group → … → a guest user when group contains a guest at any depth.
func (v View) GuestPath(group directory.Ref) ([]directory.Ref, bool) {
	return v.shortestDown(group, (*directory.Node).IsGuest)
}

// CyclePath reports whether making child a direct member of group would close a nesting cycle: that is the case
// when group is already a member of child at any depth (or child is group). The path runs child → … → group.
func (v View) CyclePath(group, child directory.Ref) ([]directory.Ref, bool) {
	if group == child {
		return []directory.Ref{child}, true
	}
	return v.MemberPath(child, group)
}

// Members yields the transitive members of group, each once, in breadth-first order with its depth (1 for a
// direct member). A group in a cycle with group itself is yielded, group itself is not.
func (v View) Members(group directory.Ref) iter.Seq2[directory.Ref, int] {
	return func(yield func(directory.Ref, int) bool) {
		g := v.dir.Node(group)
		if g == nil {
			return
		}
		seen := map[directory.Ref]bool{group: true}
		frontier := []directory.Ref{group}
		for depth := 1; len(frontier) > 0; depth++ {
			var next []directory.Ref
			for _, parent := range frontier {
				for _, m := range v.dir.Node(parent).Members() {
					if seen[m] {
						continue
					}
					seen[m] = true
					if !yield(m, depth) {
						return
					}
					if n := v.dir.Node(m); n != nil && n.IsGroup() {
						next = append(next, m)
					}
				}
			}
			frontier = next
		}
	}
}

// Ancestors yields every group that node is a member of at any depth, each once, breadth-first with its depth.
func (v View) Ancestors(node directory.Ref) iter.Seq2[directory.Ref, int] {
	return func(yield func(directory.Ref, int) bool) {
		if v.dir.Node(node) == nil {
			return
		}
		seen := map[directory.Ref]bool{node: true}
		frontier := []directory.Ref{node}
		for depth := 1; len(frontier) > 0; depth++ {
			var next []directory.Ref
			for _, child := range frontier {
				for _, g := range v.dir.Node(child).MemberOf() {
					if seen[g] {
						continue
					}
					seen[g] = true
					if !yield(g, depth) {
						return
					}
					next = append(next, g)
				}
			}
			frontier = next
		}
	}
}

// shortestDown walks down from group breadth-first and returns the path to the first node that matches.
func (v View) shortestDown(group directory.Ref, match func(*directory.Node) bool) ([]directory.Ref, bool) {
	if v.dir.Node(group) == nil {
		return nil, false
	}
	parent := map[directory.Ref]directory.Ref{group: group}
	frontier := []directory.Ref{group}
	for len(frontier) > 0 {
		var next []directory.Ref
		for _, p := range frontier {
			for _, m := range v.dir.Node(p).Members() {
				if _, seen := parent[m]; seen {
					continue
				}
				parent[m] = p
				n := v.dir.Node(m)
				if n == nil {
					continue
				}
				if match(n) {
					return pathTo(parent, group, m), true
				}
				if n.IsGroup() {
					next = append(next, m)
				}
			}
		}
		frontier = next
	}
	return nil, false
}

func pathTo(parent map[directory.Ref]directory.Ref, root, leaf directory.Ref) []directory.Ref {
	path := []directory.Ref{leaf}
	for n := leaf; n != root; {
		n = parent[n]
		path = append(path, n)
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path
}

// Invalidate tells the resolver that next was derived from prev by delta, so that cached answers the change
// affects are dropped. Answers on other revisions are never served for next whatever the cache holds.
func (r *Resolver) Invalidate(prev, next *directory.Directory, delta *directory.Delta) {}
