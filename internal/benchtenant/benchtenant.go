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
	"github.com/groupgate/groupgate/internal/workload"
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
