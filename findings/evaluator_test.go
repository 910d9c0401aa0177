package findings_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/findings"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/policy"
	"github.com/groupgate/groupgate/resolver"
	"google.golang.org/protobuf/proto"
)

// audit is a fresh Audit of dir by id; it fails the test when two findings share an id (the id would not be a
// key of the open set then).
func audit(t *testing.T, dir *directory.Directory) map[string]*pb.Finding {
	t.Helper()
	out := map[string]*pb.Finding{}
	e := policy.New(resolver.New(resolver.Options{CacheMaxBytes: -1}))
	err := e.Audit(dir, nil, func(f *pb.Finding) error {
		id := findings.ID(f)
		if prev, dup := out[id]; dup {
			t.Fatalf("revision %d: two findings with id %s:\n%v\n%v", dir.Revision(), id, prev, f)
		}
		out[id] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffSets describes how got differs from want ("" when equal: same ids, same evidence).
func diffSets(got, want map[string]*pb.Finding) string {
	var out string
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			out += fmt.Sprintf("\n  missing %s %v", id, w)
		case !proto.Equal(g, w):
			out += fmt.Sprintf("\n  stale   %s\n    got  %v\n    want %v", id, g, w)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			out += fmt.Sprintf("\n  extra   %s %v", id, g)
		}
	}
	return out
}

// differentialTenant is a small generated tenant with deep nesting (7 layers, cross edges), few users per group
// so that guests come and go, and a few back edges that close nesting cycles.
func differentialTenant(t *testing.T) *directory.Directory {
	t.Helper()
	p := workload.Params{TenantID: "diff", Seed: 7, Users: 300, Groups: 120, Depth: 7, FanOutMin: 2, FanOutMax: 3,
		GuestShare: 0.05, CrossEdges: 0.05, LabelledShare: 0.4, GroupsPerUser: 1}
	snap := workload.Generate(p)
	// Back edges: a leaf-ish group contains a group above it.
	for _, e := range [][2]int{{100, 3}, {60, 10}, {110, 40}, {90, 90 - 60}} {
		snap.Groups[e[0]].Members = append(snap.Groups[e[0]].Members, workload.GroupID(e[1]))
	}
	snap.Settings.RoleAssignableGroupLimit = 3
	d, err := directory.FromSnapshot(snap, 1)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writer makes random, valid-looking change batches against the current directory.
type writer struct {
	rng  *rand.Rand
	next int // for new ids
}

func (w *writer) pick(ids []string) string { return ids[w.rng.IntN(len(ids))] }

func groupChange(n *directory.Node, dir *directory.Directory, edit func(g *pb.Group)) *pb.Change {
	g := proto.CloneOf(n.Group())
	g.Members, g.Owners = dir.IDs(n.Members()), dir.IDs(n.Owners())
	edit(g)
	return &pb.Change{Change: &pb.Change_UpsertGroup{UpsertGroup: g}}
}

func (w *writer) batch(dir *directory.Directory) []*pb.Change {
	var groups, users []string
	for n := range dir.Nodes() {
		switch {
		case n.IsGroup():
			groups = append(groups, n.ID())
		case n.Kind() == directory.KindUser:
			users = append(users, n.ID())
		}
	}
	labels := []string{"", "lbl-public", "lbl-internal", "lbl-confidential", "lbl-secret"}
	var out []*pb.Change
	for range 1 + w.rng.IntN(4) {
		g, _ := dir.Lookup(w.pick(groups))
		var c *pb.Change
		switch k := w.rng.IntN(100); {
		case k < 25: // a user (often a guest) joins a group
			c = &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: g.ID(), MemberId: w.pick(users)}}}
		case k < 37: // a group nests under another: deeper nesting, sometimes a cycle
			c = &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: g.ID(), MemberId: w.pick(groups)}}}
		case k < 55: // a member leaves
			if m := g.Members(); len(m) > 0 {
				c = &pb.Change{Change: &pb.Change_RemoveMember{RemoveMember: &pb.MemberChange{GroupId: g.ID(), MemberId: dir.Node(m[w.rng.IntN(len(m))]).ID()}}}
			}
		case k < 63: // a label is applied, changed or removed
			c = groupChange(g, dir, func(pg *pb.Group) { pg.LabelId = w.pick(labels) })
		case k < 67: // role-assignable flips
			c = groupChange(g, dir, func(pg *pb.Group) { pg.IsAssignableToRole = !pg.IsAssignableToRole })
		case k < 71: // dynamic membership flips
			c = groupChange(g, dir, func(pg *pb.Group) {
				pg.Membership = pb.Membership_MEMBERSHIP_DYNAMIC + pb.Membership_MEMBERSHIP_ASSIGNED - pg.Membership
			})
		case k < 74: // a group is renamed (the evidence names it)
			c = groupChange(g, dir, func(pg *pb.Group) { pg.DisplayName = fmt.Sprintf("Renamed %d", w.rng.IntN(1000)) })
		case k < 76: // a group's members are replaced wholesale
			c = groupChange(g, dir, func(pg *pb.Group) {
				pg.Members = []string{w.pick(users), w.pick(groups), w.pick(users)}
				pg.Members = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(pg.Members))), func(id string) bool { return id == pg.Id })
			})
		case k < 84: // a user turns guest or member, or is renamed
			u, _ := dir.Lookup(w.pick(users))
			pu := u.User()
			if w.rng.IntN(4) == 0 {
				pu.DisplayName = fmt.Sprintf("Person %d", w.rng.IntN(1000))
			} else {
				pu.UserType = pb.UserType_USER_TYPE_GUEST + pb.UserType_USER_TYPE_MEMBER - pu.UserType
			}
			c = &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: pu}}
		case k < 87: // a user or a group is deleted
			id := w.pick(users)
			if w.rng.IntN(3) == 0 {
				id = g.ID()
			}
			c = &pb.Change{Change: &pb.Change_DeleteObject{DeleteObject: &pb.DeleteObject{Id: id}}}
		case k < 91: // a new guest arrives in a group
			w.next++
			id := fmt.Sprintf("u-new-%d", w.next)
			out = append(out, &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: id, UserType: pb.UserType_USER_TYPE_GUEST}}})
			c = &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: g.ID(), MemberId: id}}}
		case k < 94: // a new group, labelled, with a child group and a user
			w.next++
			c = &pb.Change{Change: &pb.Change_UpsertGroup{UpsertGroup: &pb.Group{Id: fmt.Sprintf("g-new-%d", w.next),
				Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED,
				LabelId: w.pick(labels), Members: []string{w.pick(groups), w.pick(users)}, IsAssignableToRole: w.rng.IntN(3) == 0}}}
		case k < 97: // a label's policy or priority changes
			l, _ := dir.Label(w.pick(labels[1:]))
			l = proto.CloneOf(l)
			if w.rng.IntN(2) == 0 {
				l.GuestsAllowed = !l.GuestsAllowed
			} else {
				l.Priority = int32(w.rng.IntN(40))
			}
			c = &pb.Change{Change: &pb.Change_UpsertLabel{UpsertLabel: l}}
		default: // the role-assignable limit moves
			s := proto.CloneOf(dir.Settings())
			s.RoleAssignableGroupLimit = int32(1 + w.rng.IntN(6))
			c = &pb.Change{Change: &pb.Change_UpdateSettings{UpdateSettings: s}}
		}
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// TestEvaluatorMatchesAudit is the differential test of SPEC §16: after every revision of a long random write
// sequence, the incrementally evaluated open set equals a fresh Audit: same ids, same evidence. Along the way it
// checks that the diff Advance reports is the set difference of the two audits. A second evaluator is told of each
// revision by ChangeDelta (what the hub uses) instead of Apply's delta, and must agree too.
func TestEvaluatorMatchesAudit(t *testing.T) {
	revisions := 1000
	if testing.Short() {
		revisions = 300
	}
	dir := differentialTenant(t)
	ev := findings.NewEvaluator(dir)
	// fromChanges is told of each revision by ChangeDelta, as the hub does, rather than by Apply's delta.
	fromChanges := findings.NewEvaluator(dir)
	want := audit(t, dir)
	if d := diffSets(ev.Open(), want); d != "" {
		t.Fatalf("initial evaluation differs from Audit:%s", d)
	}
	w := &writer{rng: rand.New(rand.NewPCG(1, 2))}
	applied, refused, kinds := 0, 0, map[pb.Rule]int{}
	for applied < revisions {
		changes := w.batch(dir)
		next, delta, err := dir.Apply(changes, dir.Revision()+1)
		if err != nil {
			refused++ // e.g. a delete of a label carrier's label, a dangling id: the store would refuse it too
			if refused > 20*revisions {
				t.Fatalf("%d batches refused, last: %v", refused, err)
			}
			continue
		}
		applied++
		before := want
		diff := ev.Advance(next, delta)
		fromChanges.Advance(next, findings.ChangeDelta(dir, next, changes))
		dir = next
		want = audit(t, dir)
		if d := diffSets(ev.Open(), want); d != "" {
			t.Fatalf("revision %d (%d changes %v): open set differs from Audit:%s", dir.Revision(), len(changes), changes, d)
		}
		if d := diffSets(fromChanges.Open(), want); d != "" {
			t.Fatalf("revision %d (%d changes %v), told by ChangeDelta: open set differs from Audit:%s", dir.Revision(), len(changes), changes, d)
		}
		for _, f := range diff.Opened {
			kinds[f.GetRule()]++
			if _, was := before[findings.ID(f)]; was {
				t.Fatalf("revision %d: %v reported opened, but held before", dir.Revision(), f)
			}
		}
		for _, f := range diff.Resolved {
			if _, still := want[findings.ID(f)]; still || !proto.Equal(before[findings.ID(f)], f) {
				t.Fatalf("revision %d: %v reported resolved: still open %v, or not as it last held", dir.Revision(), f, still)
			}
		}
		opened, resolved := 0, 0
		for id := range want {
			if _, ok := before[id]; !ok {
				opened++
			}
		}
		for id := range before {
			if _, ok := want[id]; !ok {
				resolved++
			}
		}
		if opened != len(diff.Opened) || resolved != len(diff.Resolved) {
			t.Fatalf("revision %d: reported %d opened, %d resolved; the audits differ by %d, %d", dir.Revision(),
				len(diff.Opened), len(diff.Resolved), opened, resolved)
		}
	}
	// The sequence must have exercised every rule, or the test proves less than it claims.
	for _, r := range policy.AuditRules() {
		if kinds[r] == 0 {
			t.Errorf("no %v finding opened in %d revisions", r, revisions)
		}
	}
	t.Logf("%d revisions applied (%d batches refused); findings opened by rule: %v; open at the end: %d", applied, refused, kinds, len(want))
}
