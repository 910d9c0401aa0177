// Package workload generates synthetic tenants for benchmarks and load tests (SPEC §7): a layered DAG of groups
// whose leaf groups hold the users, every group above with 2–4 child groups from the layer below, ~1% extra cross
// edges, 5% guests, some labelled groups, and a few administrators and applications to act. It is deterministic:
// the same Params give a byte-identical snapshot.
package workload

import (
	"fmt"
	"math/rand/v2"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// Params shape a generated tenant.
type Params struct {
	TenantID string
	Seed     uint64
	Users    int
	Groups   int
	// Depth is the number of group layers; layer 0 holds the top group(s), layer Depth-1 the leaf groups.
	Depth int
	// FanOutMin and FanOutMax bound how many child groups a non-leaf group has.
	FanOutMin, FanOutMax int
	// GuestShare is the fraction of users who are guests.
	GuestShare float64
	// CrossEdges is the fraction of extra group→group edges, relative to the tree edges, to any deeper layer.
	CrossEdges float64
	// LabelledShare is the fraction of groups that carry a label.
	LabelledShare float64
	// GroupsPerUser is how many leaf groups each user is a direct member of (SPEC's large preset has ~10M
	// membership edges for 1M users).
	GroupsPerUser int
}

// Preset returns the parameters of a named size: small (20k users, 2k groups, depth 8), medium (100k users, 10k
// groups, depth 8) or large (1M users, 100k groups, depth 12).
func Preset(name string) (Params, bool) {
	p := Params{TenantID: "bench-" + name, Seed: 1, FanOutMin: 2, FanOutMax: 4, GuestShare: 0.05, CrossEdges: 0.01, LabelledShare: 0.2, GroupsPerUser: 10}
	switch name {
	case "tiny":
		p.Users, p.Groups, p.Depth = 2_000, 200, 6
	case "small":
		p.Users, p.Groups, p.Depth = 20_000, 2_000, 8
	case "medium":
		p.Users, p.Groups, p.Depth = 100_000, 10_000, 8
	case "large":
		p.Users, p.Groups, p.Depth = 1_000_000, 100_000, 12
	default:
		return Params{}, false
	}
	return p, true
}

// Well-known ids in every generated tenant, for benchmarks and load tests.
const (
	// TopGroupID is the group at layer 0: every user is its member at some depth.
	TopGroupID = "g-000000"
	// AdminID is a Groups Administrator (a label-enforcement bypass role); OwnerID owns every group.
	AdminID = "u-admin"
	OwnerID = "u-owner"
	// AppID is a provisioning application with GroupMember.ReadWrite.All.
	AppID = "sp-provisioning"
)

// GroupID names the i-th group. Ids are short and readable rather than GUIDs: the resolver interns them, so their
// shape does not change decision cost, and they keep snapshot files and benchmark output small.
func GroupID(i int) string { return fmt.Sprintf("g-%06d", i) }

// UserID names the i-th generated user.
func UserID(i int) string { return fmt.Sprintf("u-%07d", i) }

// Layers returns the index range [start, end) of each group layer, top first. Layer sizes grow geometrically by
// the factor g that makes them add up to Groups (one top group), so each group above the leaves has about g
// children: 2.7 for the large preset, 3.5 for medium.
func (p Params) Layers() [][2]int {
	depth := max(1, p.Depth)
	groups := max(depth, p.Groups)
	sum := func(g float64) float64 {
		total, size := 0.0, 1.0
		for i := 0; i < depth; i++ {
			total += size
			size *= g
		}
		return total
	}
	lo, hi := 1.0, float64(groups)
	for i := 0; i < 100; i++ {
		mid := (lo + hi) / 2
		if sum(mid) < float64(groups) {
			lo = mid
		} else {
			hi = mid
		}
	}
	sizes := make([]int, depth)
	total, size := 0, 1.0
	for i := range sizes {
		sizes[i] = max(1, int(size+0.5))
		total += sizes[i]
		size *= lo
	}
	sizes[depth-1] += groups - total // rounding goes to the leaves
	out := make([][2]int, depth)
	start := 0
	for i, n := range sizes {
		out[i] = [2]int{start, start + n}
		start += n
	}
	return out
}

// Generate builds the tenant.
func Generate(p Params) *pb.Snapshot {
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	layers := p.Layers()
	s := &pb.Snapshot{
		TenantId: p.TenantID,
		Settings: &pb.TenantSettings{Licenses: []string{"ENTRA_ID_P1"}, SecurityGroupLabelsEnabled: true, UnifiedGroupLabelsEnabled: true},
		Labels: []*pb.Label{
			{Id: "lbl-public", DisplayName: "Public", Priority: 0, GroupsScope: true, Synced: true, GuestsAllowed: true, PublishedTo: []string{"*"}},
			{Id: "lbl-internal", DisplayName: "Internal", Priority: 10, GroupsScope: true, Synced: true, GuestsAllowed: true, PublishedTo: []string{"*"}},
			{Id: "lbl-confidential", DisplayName: "Confidential", Priority: 20, GroupsScope: true, Synced: true, GuestsAllowed: false, PublishedTo: []string{"*"}},
			{Id: "lbl-secret", DisplayName: "Secret", Priority: 30, GroupsScope: true, Synced: true, GuestsAllowed: false, PublishedTo: []string{"*"}},
		},
	}
	s.Users = make([]*pb.User, 0, p.Users+2)
	s.Users = append(s.Users,
		&pb.User{Id: AdminID, DisplayName: "Bench Groups Admin", UserType: pb.UserType_USER_TYPE_MEMBER, DirectoryRoles: []string{"Groups Administrator"}},
		&pb.User{Id: OwnerID, DisplayName: "Bench Owner", UserType: pb.UserType_USER_TYPE_MEMBER})
	for i := 0; i < p.Users; i++ {
		t := pb.UserType_USER_TYPE_MEMBER
		if rng.Float64() < p.GuestShare {
			t = pb.UserType_USER_TYPE_GUEST
		}
		s.Users = append(s.Users, &pb.User{Id: UserID(i), DisplayName: fmt.Sprintf("User %d", i), UserType: t})
	}
	s.ServicePrincipals = []*pb.ServicePrincipal{{Id: AppID, DisplayName: "Bench Provisioning", AppPermissions: []string{"GroupMember.ReadWrite.All"}}}

	groups := make([]*pb.Group, p.Groups)
	// A label's priority grows towards the top, so that parents are at least as restrictive as their children.
	labelFor := func(layer int) string {
		if rng.Float64() >= p.LabelledShare {
			return ""
		}
		switch pos := float64(layer) / float64(max(1, p.Depth-1)); {
		case pos < 0.25:
			return "lbl-secret"
		case pos < 0.5:
			return "lbl-confidential"
		case pos < 0.75:
			return "lbl-internal"
		}
		return "lbl-public"
	}
	for li, l := range layers {
		for i := l[0]; i < l[1]; i++ {
			groups[i] = &pb.Group{
				Id: GroupID(i), DisplayName: fmt.Sprintf("Group %d (layer %d)", i, li),
				Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED,
				LabelId: labelFor(li), Owners: []string{OwnerID},
			}
		}
	}
	// Tree edges: every group below the top gets one parent in the layer above, then parents are topped up to
	// FanOutMin children; total children per parent stays within [FanOutMin, FanOutMax] where the layer sizes allow.
	treeEdges := 0
	for li := 1; li < len(layers); li++ {
		above, here := layers[li-1], layers[li]
		nAbove := above[1] - above[0]
		children := make([]int, nAbove)
		for i := here[0]; i < here[1]; i++ {
			// Spread children evenly, then jitter within the fan-out bound.
			pi := (i - here[0]) * nAbove / (here[1] - here[0])
			if children[pi] >= p.FanOutMax {
				pi = rng.IntN(nAbove)
			}
			parent := groups[above[0]+pi]
			parent.Members = append(parent.Members, groups[i].Id)
			children[pi]++
			treeEdges++
		}
		for pi, n := range children {
			for n < p.FanOutMin && here[1]-here[0] > n {
				c := groups[here[0]+rng.IntN(here[1]-here[0])].Id
				parent := groups[above[0]+pi]
				if !contains(parent.Members, c) {
					parent.Members = append(parent.Members, c)
					treeEdges++
				}
				n++
			}
		}
	}
	// Cross edges, from a group chosen uniformly to one at least two layers deeper, keep the graph a DAG and
	// spread evenly (choosing the layer first would pile them onto the single top group).
	if len(layers) >= 3 {
		upper := layers[len(layers)-3][1] // groups that have a layer two below them
		for k := 0; k < int(float64(treeEdges)*p.CrossEdges); k++ {
			fi := rng.IntN(upper)
			from := 0
			for fi >= layers[from][1] {
				from++
			}
			to := from + 2 + rng.IntN(len(layers)-from-2)
			child := groups[layers[to][0]+rng.IntN(layers[to][1]-layers[to][0])].Id
			if !contains(groups[fi].Members, child) {
				groups[fi].Members = append(groups[fi].Members, child)
			}
		}
	}
	// Users go to leaf groups: the first round robin, so that leaves are balanced and every user has a group,
	// the others at random.
	leaves := layers[len(layers)-1]
	nLeaves := leaves[1] - leaves[0]
	perUser := min(max(1, p.GroupsPerUser), nLeaves)
	picked := make([]int, 0, perUser)
	for i := 0; i < p.Users; i++ {
		id := UserID(i)
		picked = append(picked[:0], i%nLeaves)
		for len(picked) < perUser {
			if l := rng.IntN(nLeaves); !containsInt(picked, l) {
				picked = append(picked, l)
			}
		}
		for _, l := range picked {
			groups[leaves[0]+l].Members = append(groups[leaves[0]+l].Members, id)
		}
	}
	s.Groups = groups
	return s
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
