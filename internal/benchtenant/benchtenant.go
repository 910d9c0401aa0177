// Package benchtenant loads generated tenants for benchmarks, once per process: small and medium always, large
// only when GROUPGATE_BENCH_LARGE=1 (it takes about a minute and a few GiB to build).
package benchtenant

import (
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/workload"
	"google.golang.org/protobuf/proto"
)

var (
	mu    sync.Mutex
	cache = map[string]*directory.Directory{}
)

// Presets are the sizes benchmarks run on.
func Presets() []string {
	if os.Getenv("GROUPGATE_BENCH_LARGE") == "1" {
		return []string{"small", "medium", "large"}
	}
	return []string{"small", "medium"}
}

// Load returns the generated tenant of a preset.
func Load(b testing.TB, preset string) (*directory.Directory, workload.Params) {
	b.Helper()
	p, ok := workload.Preset(preset)
	if !ok {
		b.Fatalf("no preset %q", preset)
	}
	mu.Lock()
	defer mu.Unlock()
	if d, ok := cache[preset]; ok {
		return d, p
	}
	d, err := directory.FromSnapshot(workload.Generate(p), 1)
	if err != nil {
		b.Fatal(err)
	}
	cache[preset] = d
	return d, p
}

// Refs picks n random refs of generated groups and users, deterministically.
func Refs(b testing.TB, d *directory.Directory, p workload.Params, n int) (groups, users []directory.Ref) {
	rng := rand.New(rand.NewPCG(42, 42))
	for i := 0; i < n; i++ {
		g, ok := d.Lookup(workload.GroupID(rng.IntN(p.Groups)))
		u, ok2 := d.Lookup(workload.UserID(rng.IntN(p.Users)))
		if !ok || !ok2 {
			b.Fatal("generated ids missing")
		}
		groups, users = append(groups, g.Ref()), append(users, u.Ref())
	}
	return groups, users
}

// Latencies records per-operation durations and reports their percentiles as benchmark metrics.
type Latencies struct{ d []time.Duration }

// Time runs fn and records how long it took.
func (l *Latencies) Time(fn func()) {
	t := time.Now()
	fn()
	l.d = append(l.d, time.Since(t))
}

// Record adds a duration measured elsewhere.
func (l *Latencies) Record(d time.Duration) { l.d = append(l.d, d) }

// Report adds p50-ns and p99-ns to the benchmark's output.
func (l *Latencies) Report(b *testing.B) { l.ReportAs(b, "") }

// ReportAs is Report with the metric names prefixed.
func (l *Latencies) ReportAs(b *testing.B, prefix string) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	b.ReportMetric(float64(l.d[len(l.d)/2].Nanoseconds()), prefix+"p50-ns")
	b.ReportMetric(float64(l.d[min(len(l.d)-1, len(l.d)*99/100)].Nanoseconds()), prefix+"p99-ns")
}

// SyncRound is n changes of the kind a sync round brings (SPEC §16's 100-change revision), against d, a tenant
// generated with p: users (5% guests) joining and leaving leaf groups, groups nested under groups of a higher
// layer (the graph stays a DAG), users turning guest or member, labels applied to or removed from groups. Its
// first change toggles guest u-bench-guest's direct membership of the first group whose label bars guests (toggle: add or remove),
// so that every round opens and resolves at least one finding. The tenant needs that guest: GuestChange creates it.
func SyncRound(d *directory.Directory, p workload.Params, rng *rand.Rand, n int, toggle bool) []*pb.Change {
	layers := p.Layers()
	leaves := layers[len(layers)-1]
	secret := SecretGroup(d, p)
	var out []*pb.Change
	if toggle {
		out = append(out, &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: secret, MemberId: BenchGuest}}})
	} else {
		out = append(out, &pb.Change{Change: &pb.Change_RemoveMember{RemoveMember: &pb.MemberChange{GroupId: secret, MemberId: BenchGuest}}})
	}
	leaf := func() *directory.Node {
		g, _ := d.Lookup(workload.GroupID(leaves[0] + rng.IntN(leaves[1]-leaves[0])))
		return g
	}
	user := func() *directory.Node {
		u, _ := d.Lookup(workload.UserID(rng.IntN(p.Users)))
		return u
	}
	labels := []string{"", "lbl-public", "lbl-internal", "lbl-confidential", "lbl-secret"}
	removed := map[[2]string]bool{}
	for len(out) < n {
		switch k := rng.IntN(100); {
		case k < 50:
			out = append(out, &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: leaf().ID(), MemberId: user().ID()}}})
		case k < 80:
			g := leaf()
			if m := g.Members(); len(m) > 0 {
				e := [2]string{g.ID(), d.Node(m[rng.IntN(len(m))]).ID()}
				if !removed[e] {
					removed[e] = true
					out = append(out, &pb.Change{Change: &pb.Change_RemoveMember{RemoveMember: &pb.MemberChange{GroupId: e[0], MemberId: e[1]}}})
				}
			}
		case k < 88:
			upper := 1 + rng.IntN(len(layers)-2)
			parent := workload.GroupID(layers[upper][0] + rng.IntN(layers[upper][1]-layers[upper][0]))
			lower := layers[upper+1+rng.IntN(len(layers)-upper-1)]
			child := workload.GroupID(lower[0] + rng.IntN(lower[1]-lower[0]))
			out = append(out, &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: parent, MemberId: child}}})
		case k < 94:
			u := user().User()
			u.UserType = pb.UserType_USER_TYPE_GUEST + pb.UserType_USER_TYPE_MEMBER - u.UserType
			out = append(out, &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: u}})
		default:
			g := leaf()
			pg := proto.CloneOf(g.Group())
			pg.Members, pg.Owners = d.IDs(g.Members()), d.IDs(g.Owners())
			pg.LabelId = labels[rng.IntN(len(labels))]
			out = append(out, &pb.Change{Change: &pb.Change_UpsertGroup{UpsertGroup: pg}})
		}
	}
	return out
}

// BenchGuest is the guest SyncRound's toggle adds and removes.
const BenchGuest = "u-bench-guest"

// GuestChange creates BenchGuest.
func GuestChange() *pb.Change {
	return &pb.Change{Change: &pb.Change_UpsertUser{UpsertUser: &pb.User{Id: BenchGuest, DisplayName: "Bench Guest", UserType: pb.UserType_USER_TYPE_GUEST}}}
}

// SecretGroup is the first group of a generated tenant whose label does not allow guests (lbl-secret or
// lbl-confidential: the upper layers).
func SecretGroup(d *directory.Directory, p workload.Params) string {
	for i := range p.Groups {
		if g, ok := d.Lookup(workload.GroupID(i)); ok {
			if l, ok := d.Label(g.Group().GetLabelId()); ok && !l.GetGuestsAllowed() {
				return g.ID()
			}
		}
	}
	return workload.TopGroupID
}
