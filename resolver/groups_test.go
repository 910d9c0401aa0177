package resolver

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// groupsTenant is small enough to read:
//
//	top ─┬─ mid-a ── leaf ── {u-alice, sp-app}
//	     └─ mid-b ── mid-c ── leaf          (the diamond: top reaches leaf in 2 and in 3)
//	role-admins (role-assignable, labelled) ── u-alice
//	loop-1 ⇄ loop-2 ── u-bob                (a cycle above bob)
//	lonely                                  (u-carol is in no group)
func groupsTenant(t *testing.T) *directory.Directory {
	t.Helper()
	g := func(id, label string, role bool, members ...string) *pb.Group {
		return &pb.Group{Id: id, Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED, LabelId: label, IsAssignableToRole: role, Members: members}
	}
	s := &pb.Snapshot{
		TenantId: "t",
		Labels:   []*pb.Label{{Id: "conf", DisplayName: "Confidential", GroupsScope: true}},
		Users: []*pb.User{
			{Id: "u-alice", UserType: pb.UserType_USER_TYPE_MEMBER},
			{Id: "u-bob", UserType: pb.UserType_USER_TYPE_GUEST},
			{Id: "u-carol", UserType: pb.UserType_USER_TYPE_MEMBER},
		},
		ServicePrincipals: []*pb.ServicePrincipal{{Id: "sp-app"}},
		Groups: []*pb.Group{
			g("top", "conf", false, "mid-a", "mid-b"),
			g("mid-a", "", false, "leaf"),
			g("mid-b", "", false, "mid-c"),
			g("mid-c", "conf", false, "leaf"),
			g("leaf", "", false, "u-alice", "sp-app"),
			g("role-admins", "conf", true, "u-alice"),
			g("loop-1", "", false, "loop-2"),
			g("loop-2", "", false, "loop-1", "u-bob"),
			g("lonely", "", false),
		},
	}
	d, err := directory.FromSnapshot(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGroups(t *testing.T) {
	d := groupsTenant(t)
	v := New(Options{}).At(d)
	tests := []struct {
		name      string
		principal string
		filter    GroupFilter
		want      []string // "id:depth" in the order yielded
	}{
		{"direct and nested, the diamond at its shortest depth", "u-alice", GroupFilter{},
			[]string{"leaf:1", "role-admins:1", "mid-a:2", "mid-c:2", "top:3", "mid-b:3"}},
		{"labelled only, walking through unlabelled groups", "u-alice", GroupFilter{LabelledOnly: true},
			[]string{"role-admins:1", "mid-c:2", "top:3"}},
		{"role-assignable only", "u-alice", GroupFilter{RoleAssignableOnly: true}, []string{"role-admins:1"}},
		{"both filters", "u-alice", GroupFilter{LabelledOnly: true, RoleAssignableOnly: true}, []string{"role-admins:1"}},
		{"a service principal", "sp-app", GroupFilter{}, []string{"leaf:1", "mid-a:2", "mid-c:2", "top:3", "mid-b:3"}},
		{"a group", "mid-c", GroupFilter{}, []string{"mid-b:1", "top:2"}},
		{"a top group belongs to nothing", "top", GroupFilter{}, nil},
		{"a cycle ends the walk", "u-bob", GroupFilter{}, []string{"loop-2:1", "loop-1:2"}},
		{"a group in a cycle is not its own effective group", "loop-1", GroupFilter{}, []string{"loop-2:1"}},
		{"a user in no group", "u-carol", GroupFilter{}, nil},
		{"nothing passes the filter", "u-bob", GroupFilter{LabelledOnly: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := d.Lookup(tt.principal)
			if !ok {
				t.Fatalf("no %s", tt.principal)
			}
			var got []string
			for g, depth := range v.Groups(p.Ref(), tt.filter) {
				got = append(got, fmt.Sprintf("%s:%d", d.Node(g).ID(), depth))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Groups(%s, %+v) = %v, want %v", tt.principal, tt.filter, got, tt.want)
			}
		})
	}
}

// TestGroupPaths: each group comes with its shortest path down to the principal; the diamond's top is reached
// through mid-a (two hops), not mid-b and mid-c (three).
func TestGroupPaths(t *testing.T) {
	d := groupsTenant(t)
	v := New(Options{}).At(d)
	tests := []struct {
		principal string
		filter    GroupFilter
		want      []string // "group: path"
	}{
		{"u-alice", GroupFilter{LabelledOnly: true}, []string{
			"role-admins: role-admins u-alice", "mid-c: mid-c leaf u-alice", "top: top mid-a leaf u-alice"}},
		{"u-bob", GroupFilter{}, []string{"loop-2: loop-2 u-bob", "loop-1: loop-1 loop-2 u-bob"}},
		{"mid-c", GroupFilter{}, []string{"mid-b: mid-b mid-c", "top: top mid-b mid-c"}},
		{"u-carol", GroupFilter{}, nil},
	}
	for _, tt := range tests {
		p, _ := d.Lookup(tt.principal)
		var got []string
		for g, path := range v.GroupPaths(p.Ref(), tt.filter) {
			got = append(got, d.Node(g).ID()+": "+strings.Join(d.IDs(path), " "))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("GroupPaths(%s, %+v) = %q, want %q", tt.principal, tt.filter, got, tt.want)
		}
	}
}

func TestGroupsStopsWhenTheCallerDoes(t *testing.T) {
	d := groupsTenant(t)
	r := New(Options{})
	alice, _ := d.Lookup("u-alice")
	n := 0
	for range r.At(d).Groups(alice.Ref(), GroupFilter{}) {
		if n++; n == 2 {
			break
		}
	}
	if n != 2 {
		t.Fatalf("%d groups before break, want 2", n)
	}
	// The scratch went back to the free list: the next walk reuses it and answers in full.
	r.mu.Lock()
	free := len(r.free)
	r.mu.Unlock()
	if free != 1 {
		t.Errorf("%d idle scratch after an abandoned walk, want 1", free)
	}
	n = 0
	for range r.At(d).Groups(alice.Ref(), GroupFilter{}) {
		n++
	}
	if n != 6 {
		t.Errorf("%d groups after reuse, want 6", n)
	}
}

// TestGroupsAllocatesNothingPerGroup walks up a 2,000-group chain: once the scratch has grown, a walk allocates
// nothing at all (its closures stay on the stack), never per group nor per tenant node.
func TestGroupsAllocatesNothingPerGroup(t *testing.T) {
	d := chain(t, 2000)
	v := New(Options{}).At(d)
	guest, _ := d.Lookup("guest")
	walk := func() {
		n := 0
		for range v.Groups(guest.Ref(), GroupFilter{}) {
			n++
		}
		if n != 2000 {
			t.Fatalf("%d groups, want 2000", n)
		}
	}
	walk()
	if allocs := testing.AllocsPerRun(20, walk); allocs > 0 {
		t.Errorf("%.0f allocations per walk of 2,000 groups, want none", allocs)
	}
}
