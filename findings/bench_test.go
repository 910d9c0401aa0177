package findings_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/groupgate/groupgate/findings"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/memory"
)

// BenchmarkRevisionEventsOut writes 100-change revisions (benchtenant.SyncRound: users joining and leaving,
// groups nested, user types and labels changing, and a guest toggled in a Secret group so that every revision
// has events) to a memory store whose tenant a hub follows, and times each from the moment the write has
// committed (Write returned) to its events reaching a subscriber: out-p50/p99-ns (SPEC §16: < 100 ms on the
// large preset). ns/op also holds the write itself; initial-ms is the hub's first full evaluation.
//
//	GROUPGATE_BENCH_LARGE=1 go test ./findings -run '^$' -bench RevisionEventsOut -benchtime 30x -count 3
func BenchmarkRevisionEventsOut(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d0, p := benchtenant.Load(b, preset)
			d, _, err := d0.Apply([]*pb.Change{benchtenant.GuestChange()}, d0.Revision()+1)
			if err != nil {
				b.Fatal(err)
			}
			st := memory.New(memory.Options{})
			if err := st.Add(d); err != nil {
				b.Fatal(err)
			}
			hubs := findings.NewHubs(st, findings.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			defer hubs.Close()
			ctx := context.Background()
			h, err := hubs.Hub(ctx, d.TenantID())
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			sub, err := h.Subscribe(ctx, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close()
			initial := time.Since(t0)
			rng := rand.New(rand.NewPCG(9, 9))
			var out benchtenant.Latencies
			events := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir, _ := st.Directory(ctx, d.TenantID(), 0)
				changes := benchtenant.SyncRound(dir, p, rng, 100, i%2 == 0)
				b.StartTimer()
				rev, err := st.Write(ctx, store.Write{TenantID: d.TenantID(), Changes: changes})
				if err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				for done := false; !done; {
					select {
					case rec := <-sub.C():
						if rec.Revision == rev {
							out.Record(time.Since(committed))
							events += len(rec.Events)
							done = true
						}
					case <-sub.Done():
						b.Fatal(sub.Err())
					case <-time.After(time.Minute):
						b.Fatalf("no events for revision %d", rev)
					}
				}
			}
			b.StopTimer()
			out.ReportAs(b, "out-")
			b.ReportMetric(float64(events)/float64(b.N), "events/rev")
			b.ReportMetric(float64(initial.Milliseconds()), "initial-ms")
		})
	}
}

// BenchmarkAdvance splits a hub's work on one 100-change revision (benchtenant.SyncRound) into its two parts:
// apply, deriving the revision and its delta from the last (directory.Apply, as the store's write did), and
// evaluate (Evaluator.Advance). B/op is what each allocates: on a large heap, allocation is what a revision costs
// the rest of the process (it brings the collector's next cycle closer).
//
//	GROUPGATE_BENCH_LARGE=1 go test ./findings -run '^$' -bench Advance -benchtime 20x -benchmem
func BenchmarkAdvance(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		d0, p := benchtenant.Load(b, preset)
		d, _, err := d0.Apply([]*pb.Change{benchtenant.GuestChange()}, d0.Revision()+1)
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(9, 9))
		for _, part := range []string{"apply", "evaluate"} {
			b.Run(preset+"/"+part, func(b *testing.B) {
				ev := findings.NewEvaluator(d)
				dir := d
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					changes := benchtenant.SyncRound(dir, p, rng, 100, i%2 == 0)
					if part == "apply" {
						b.StartTimer()
					}
					next, delta, err := dir.Apply(changes, dir.Revision()+1)
					if err != nil {
						b.Fatal(err)
					}
					if part == "evaluate" {
						b.StartTimer()
						ev.Advance(next, delta)
					}
					b.StopTimer()
					dir = next
				}
			})
		}
	}
}
