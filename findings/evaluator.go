package findings

import (
	"slices"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/policy"
	"github.com/groupgate/groupgate/resolver"
	"google.golang.org/protobuf/proto"
)

// Evaluator holds the open findings of one tenant at one revision and moves them to the next revision by
// re-evaluating only what the revision's changes can reach. It asks policy for every finding (GroupFindings,
// CycleFinding, LimitFinding: the functions Audit runs), so the open set is by construction what a fresh Audit
// would report, as long as the scoping below misses nothing (the differential test's job). Not safe for
// concurrent use.
type Evaluator struct {
	res *resolver.Resolver
	dir *directory.Directory

	open map[string]*pb.Finding // by ID
	// byGroup holds, per group id, the ids of the findings GroupFindings reported for it.
	byGroup map[string][]string
	// cycles holds, per open cycle finding, the ids of its component's groups; cycleOf the reverse.
	cycles  map[string][]string
	cycleOf map[string]string
	limitID string // the id of the open RULE_ROLE_GROUP_LIMIT finding, "" when none

	// journal holds, during one Advance, every id the revision touched with its finding before (nil: it was not
	// open), so that the diff costs what the revision touched, not the size of the open set.
	journal map[string]*pb.Finding
}

// Diff is what one revision did to the open findings.
type Diff struct {
	Opened []*pb.Finding
	// Resolved holds the findings as they last held.
	Resolved []*pb.Finding
	// Updated holds the findings that still hold under the same id but whose evidence (message, path) changed,
	// as they were before: a renamed group, another path to the same guest. No event is sent for them, but
	// history needs the old form to rebuild the open set at an earlier revision.
	Updated []*pb.Finding
}

// Empty reports whether the revision changed nothing.
func (d *Diff) Empty() bool { return len(d.Opened)+len(d.Resolved)+len(d.Updated) == 0 }

// NewEvaluator evaluates dir in full (as Audit does).
func NewEvaluator(dir *directory.Directory) *Evaluator {
	// Its own resolver, without a cache: the evaluator may look at directories it built itself (Apply), whose
	// refs must never reach the cache the decisions share; and every group it asks about is one a change has
	// just made dirty, so a cache would rarely answer anyway.
	ev := &Evaluator{res: resolver.New(resolver.Options{CacheMaxBytes: -1})}
	ev.reset(dir)
	return ev
}

// Directory is the revision the evaluator is at.
func (ev *Evaluator) Directory() *directory.Directory { return ev.dir }

// Open is the open set by id. It belongs to the evaluator: read it, never change it.
func (ev *Evaluator) Open() map[string]*pb.Finding { return ev.open }

func (ev *Evaluator) reset(dir *directory.Directory) {
	ev.dir = dir
	ev.open = map[string]*pb.Finding{}
	ev.byGroup = map[string][]string{}
	ev.cycles = map[string][]string{}
	ev.cycleOf = map[string]string{}
	ev.limitID = ""
	view := ev.res.At(dir)
	all := policy.WantRules(nil)
	for g := range dir.Groups() {
		ev.setGroup(g.ID(), groupFindings(dir, view, g, all))
	}
	for _, comp := range policy.NestingCycles(dir) {
		ev.addCycle(dir, comp)
	}
	if f := policy.LimitFinding(dir); f != nil {
		ev.limitID = ID(f)
		ev.open[ev.limitID] = f
	}
}

func groupFindings(dir *directory.Directory, view resolver.View, g *directory.Node, want func(pb.Rule) bool) []*pb.Finding {
	var out []*pb.Finding
	_ = policy.GroupFindings(dir, view, g, want, func(f *pb.Finding) error {
		out = append(out, f)
		return nil
	})
	return out
}

// put and del change the open set, noting in the journal what an id held before the revision.
func (ev *Evaluator) put(id string, f *pb.Finding) {
	ev.note(id)
	ev.open[id] = f
}

func (ev *Evaluator) del(id string) {
	ev.note(id)
	delete(ev.open, id)
}

func (ev *Evaluator) note(id string) {
	if ev.journal == nil {
		return
	}
	if _, seen := ev.journal[id]; !seen {
		ev.journal[id] = ev.open[id]
	}
}

func (ev *Evaluator) setGroup(gid string, fs []*pb.Finding) {
	if len(fs) == 0 {
		delete(ev.byGroup, gid)
		return
	}
	ids := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = ID(f)
		ev.put(ids[i], f)
	}
	ev.byGroup[gid] = ids
}

func (ev *Evaluator) addCycle(dir *directory.Directory, comp []directory.Ref) {
	f := policy.CycleFinding(dir, comp)
	id := ID(f)
	ev.put(id, f)
	members := dir.IDs(comp)
	ev.cycles[id] = members
	for _, m := range members {
		ev.cycleOf[m] = id
	}
}

func (ev *Evaluator) dropCycle(id string) {
	for _, m := range ev.cycles[id] {
		if ev.cycleOf[m] == id {
			delete(ev.cycleOf, m)
		}
	}
	delete(ev.cycles, id)
	ev.del(id)
}

// Advance moves the evaluator to next, which delta derived from the evaluator's directory. A nil delta (the
// tenant was replaced whole) evaluates next in full and diffs it against the open set.
func (ev *Evaluator) Advance(next *directory.Directory, delta *directory.Delta) *Diff {
	var before map[string]*pb.Finding
	if delta == nil {
		before = ev.open
		ev.reset(next)
	} else {
		ev.journal = map[string]*pb.Finding{}
		ev.advance(next, delta)
		before, ev.journal = ev.journal, nil
	}
	d := &Diff{}
	for id, old := range before {
		f, ok := ev.open[id]
		switch {
		case ok && old == nil:
			d.Opened = append(d.Opened, f)
		case !ok && old != nil:
			d.Resolved = append(d.Resolved, old)
		case ok && old != f && !proto.Equal(old, f):
			d.Updated = append(d.Updated, old)
		}
	}
	if delta == nil {
		for id, f := range ev.open {
			if _, ok := before[id]; !ok {
				d.Opened = append(d.Opened, f)
			}
		}
	}
	for _, list := range [][]*pb.Finding{d.Opened, d.Resolved, d.Updated} {
		sortFindings(list)
	}
	return d
}

// sortFindings orders findings as a reader scans them: by group, then rule, then id.
func sortFindings(fs []*pb.Finding) {
	slices.SortFunc(fs, func(a, b *pb.Finding) int {
		if c := compareStrings(a.GetGroupId(), b.GetGroupId()); c != 0 {
			return c
		}
		if a.GetRule() != b.GetRule() {
			return int(a.GetRule()) - int(b.GetRule())
		}
		return compareStrings(ID(a), ID(b))
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// advance re-evaluates what delta can have changed:
//   - GroupFindings of every group at or above a changed edge's group or a changed object (user type, group
//     kind, label, name, deletion), in both revisions: a guest path runs through everything below a group, and
//     the evidence names every group on it;
//   - GroupFindings of every group carrying a changed label, and of their direct parents (whose nesting
//     findings compare the child's label);
//   - the nesting cycles around changed group-in-group edges and changed groups only, each component found
//     from one group by walking its ancestors (small) and then down inside them;
//   - the role-assignable count, every time (it costs nothing).
func (ev *Evaluator) advance(next *directory.Directory, delta *directory.Delta) {
	prev := ev.dir
	ev.dir = next
	scope := map[string]bool{}
	up := func(d *directory.Directory, r directory.Ref) {
		n := d.Node(r)
		if n == nil {
			return
		}
		if n.IsGroup() {
			scope[n.ID()] = true
		}
		for a := range ev.res.At(d).Ancestors(r) {
			scope[d.Node(a).ID()] = true
		}
	}
	for _, d := range []*directory.Directory{prev, next} {
		for _, e := range delta.EdgesAdded {
			up(d, e.Group)
		}
		for _, e := range delta.EdgesRemoved {
			up(d, e.Group)
		}
		for _, r := range delta.Objects {
			up(d, r)
		}
	}
	if len(delta.LabelsChanged) > 0 {
		for g := range next.Groups() {
			if slices.Contains(delta.LabelsChanged, g.Group().GetLabelId()) {
				scope[g.ID()] = true
				for _, p := range g.MemberOf() {
					scope[next.Node(p).ID()] = true
				}
			}
		}
	}
	view := ev.res.At(next)
	all := policy.WantRules(nil)
	for gid := range scope {
		for _, id := range ev.byGroup[gid] {
			ev.del(id)
		}
		var fs []*pb.Finding
		if g, ok := next.Lookup(gid); ok && g.IsGroup() {
			fs = groupFindings(next, view, g, all)
		}
		ev.setGroup(gid, fs)
	}
	ev.advanceCycles(prev, next, delta)
	if ev.limitID != "" {
		ev.del(ev.limitID)
		ev.limitID = ""
	}
	if f := policy.LimitFinding(next); f != nil {
		ev.limitID = ID(f)
		ev.put(ev.limitID, f)
	}
}

// advanceCycles re-finds the nesting cycles a revision can have made, broken or renamed. A component changes
// only through an edge between two of its groups, or by one of its groups changing (renamed, deleted): start
// from those groups; every old component that meets a component found anew is dropped and its groups are looked
// at again (a removed edge can split a component into pieces that hold neither end of the edge; an added edge
// can merge components that hold neither end).
func (ev *Evaluator) advanceCycles(prev, next *directory.Directory, delta *directory.Delta) {
	var work []string
	isGroup := func(r directory.Ref) bool {
		for _, d := range []*directory.Directory{prev, next} {
			if n := d.Node(r); n != nil && n.IsGroup() {
				return true
			}
		}
		return false
	}
	addID := func(r directory.Ref) {
		for _, d := range []*directory.Directory{next, prev} {
			if n := d.Node(r); n != nil {
				work = append(work, n.ID())
				return
			}
		}
	}
	for _, edges := range [][]directory.Edge{delta.EdgesAdded, delta.EdgesRemoved} {
		for _, e := range edges {
			if isGroup(e.Member) {
				addID(e.Group)
				addID(e.Member)
			}
		}
	}
	for _, r := range delta.Objects {
		if isGroup(r) {
			addID(r)
		}
	}
	if len(work) == 0 {
		return
	}
	view := ev.res.At(next)
	done := map[string]bool{}
	for len(work) > 0 {
		gid := work[len(work)-1]
		work = work[:len(work)-1]
		if done[gid] {
			continue
		}
		done[gid] = true
		var comp []directory.Ref
		if g, ok := next.Lookup(gid); ok && g.IsGroup() {
			comp = component(view, g.Ref())
		}
		members := []string{gid}
		if len(comp) > 1 {
			members = next.IDs(comp)
		}
		for _, m := range members {
			done[m] = true
			if old, ok := ev.cycleOf[m]; ok {
				work = append(work, ev.cycles[old]...)
				ev.dropCycle(old)
			}
		}
		if len(comp) > 1 {
			ev.addCycle(next, comp)
		}
	}
}

// component returns the strongly connected component of group g in the group graph, sorted by ref: g and every
// ancestor of g that g reaches going down. It walks g's ancestors (a handful of groups) and then down from g only
// through them, never into g's whole subtree.
func component(view resolver.View, g directory.Ref) []directory.Ref {
	dir := view.Directory()
	anc := map[directory.Ref]bool{}
	for a := range view.Ancestors(g) {
		anc[a] = true
	}
	comp := []directory.Ref{g}
	if len(anc) == 0 {
		return comp
	}
	seen := map[directory.Ref]bool{g: true}
	for i := 0; i < len(comp); i++ {
		for _, m := range dir.Node(comp[i]).Members() {
			if anc[m] && !seen[m] {
				seen[m] = true
				comp = append(comp, m)
			}
		}
	}
	slices.Sort(comp)
	return comp
}
