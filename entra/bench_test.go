package entra_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/groupgate/groupgate/entra"
	"github.com/groupgate/groupgate/entra/graphtest"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/server/servertest"
)

// mediumStandIn serves the medium preset at Graph's page sizes (999 users, 100 groups a page).
func mediumStandIn(b *testing.B) (*graphtest.Server, workload.Params, []*pb.Label, *pb.Snapshot) {
	b.Helper()
	p, _ := workload.Preset("medium")
	snap := workload.Generate(p)
	tenant, labelsJSON, err := graphtest.FromSnapshot(snap)
	if err != nil {
		b.Fatal(err)
	}
	g := graphtest.New(tenant)
	b.Cleanup(g.Close)
	g.UserPage, g.GroupPage, g.OtherPage, g.MembersPerEntry = 999, 100, 999, 1000
	return g, p, labelsFile(b, labelsJSON), snap
}

func cacheCounter(b *testing.B, srv *servertest.Server, name string) float64 {
	b.Helper()
	mfs, err := srv.Metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	b.Fatalf("no metric %s", name)
	return 0
}

// BenchmarkSyncDeltaRoundMedium times one delta round of 100 membership additions, from reading Graph's delta
// to the server having applied it (ms-applied/round), then saving the --state file, on the medium preset held
// by a running server, and checks that cached answers about groups the round did not touch stay warm.
func BenchmarkSyncDeltaRoundMedium(b *testing.B) {
	ctx := context.Background()
	g, p, labels, snap := mediumStandIn(b)
	srv := servertest.StartWith(b, servertest.Options{Metrics: true})
	s := &entra.Syncer{Tenant: p.TenantID, Graph: &entra.Client{Endpoint: g.URL, Tokens: entra.StaticToken(g.Token), HTTP: g.Client()}, Labels: labels,
		Store: &entra.FileState{Path: filepath.Join(b.TempDir(), "state.json.gz")}}
	dest := &entra.Server{Client: srv.Client, Tenant: p.TenantID}
	if err := s.RunRound(ctx, dest); err != nil {
		b.Fatal(err)
	}
	layers := p.Layers()
	leaves := layers[len(layers)-1]
	// Warm questions about 50 leaf groups; the changes go to other leaf groups, whose ancestors are never
	// leaves, so none of the warm answers depends on them.
	warm := map[int]bool{}
	for i := 0; i < 50; i++ {
		warm[leaves[0]+i] = true
	}
	// Nesting a group under a guest-blocking label asks for its guest path: the answers the resolver caches.
	var parent string
	for _, g := range snap.GetGroups() {
		if g.GetLabelId() == "lbl-confidential" {
			parent = g.GetId()
			break
		}
	}
	ask := func() {
		for gi := range warm {
			if _, err := srv.Client.CanAddMember(ctx, p.TenantID, parent, workload.GroupID(gi), workload.AdminID); err != nil {
				b.Fatal(err)
			}
		}
	}
	ask()
	time.Sleep(200 * time.Millisecond) // the cache admits entries asynchronously
	ask()
	rng := rand.New(rand.NewPCG(7, 7))
	var roundTime, saveTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		g.Update(func(t *graphtest.Tenant) {
			for n := 0; n < 100; {
				gi := leaves[0] + 50 + rng.IntN(leaves[1]-leaves[0]-50)
				grp := t.Groups[workload.GroupID(gi)]
				u := workload.UserID(rng.IntN(p.Users))
				if grp.Members[len(grp.Members)-1].ID == u {
					continue
				}
				grp.Members = append(grp.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: u})
				n++
			}
		})
		hits := cacheCounter(b, srv, "groupgate_cache_hits_total")
		b.StartTimer()
		start := time.Now()
		r, err := s.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dest.Write(ctx, r); err != nil {
			b.Fatal(err)
		}
		applied := time.Since(start)
		if err := s.Commit(ctx, r); err != nil {
			b.Fatal(err)
		}
		roundTime += applied
		saveTime += time.Since(start) - applied
		b.StopTimer()
		if len(r.Changes) > 100 || r.Full {
			b.Fatalf("round: full %v, %d changes; want a delta of at most 100 additions", r.Full, len(r.Changes))
		}
		ask()
		if got := cacheCounter(b, srv, "groupgate_cache_hits_total") - hits; got < float64(len(warm)) {
			b.Fatalf("after the round %v of %d warm answers were cache hits", got, len(warm))
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(roundTime.Milliseconds())/float64(b.N), "ms-applied/round")
	b.ReportMetric(float64(saveTime.Milliseconds())/float64(b.N), "ms-state-save/round")
}

// BenchmarkSyncStateRound times delta rounds of 10, 1,000 and 100,000 membership additions on a tenant held by a
// running server: ms-applied/round is Next and the server applying the changes, without the stand-in's time
// answering (Graph's latency); ms-state-save/round is Commit saving the --state file (base and log, statelog.go);
// state-bytes/round what that save wrote; ms-next/round is the sync's share of ms-applied (the rest is the
// server applying the batch). Medium always; large (1M users) with GROUPGATE_BENCH_LARGE=1.
func BenchmarkSyncStateRound(b *testing.B) {
	presets := []string{"medium"}
	if os.Getenv("GROUPGATE_BENCH_LARGE") == "1" {
		presets = append(presets, "large")
	}
	for _, preset := range presets {
		b.Run(preset, func(b *testing.B) {
			ctx := context.Background()
			p, _ := workload.Preset(preset)
			tenantG, labelsJSON, err := graphtest.FromSnapshot(workload.Generate(p))
			if err != nil {
				b.Fatal(err)
			}
			g := graphtest.New(tenantG)
			tenantG = nil
			b.Cleanup(g.Close)
			g.UserPage, g.GroupPage, g.OtherPage, g.MembersPerEntry = 999, 100, 999, 1000
			srv := servertest.StartWith(b, servertest.Options{})
			fs := &entra.FileState{Path: filepath.Join(b.TempDir(), "state.json.gz")}
			s := &entra.Syncer{Tenant: p.TenantID, Graph: &entra.Client{Endpoint: g.URL, Tokens: entra.StaticToken(g.Token), HTTP: g.Client()},
				Labels: labelsFile(b, labelsJSON), Store: fs}
			dest := &entra.Server{Client: srv.Client, Tenant: p.TenantID}
			start := time.Now()
			if err := s.RunRound(ctx, dest); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: full round into the server and the state file: %v; base %d bytes", preset, time.Since(start).Round(time.Millisecond), fileBytes(b, fs.Path))
			rng := rand.New(rand.NewPCG(7, 7))
			for _, n := range []int{10, 1000, 100_000} {
				b.Run(fmt.Sprintf("changes=%d", n), func(b *testing.B) {
					var applied, save, next time.Duration
					var written int64
					// GROUPGATE_SYNC_CPUPROFILE profiles the rounds (and the stand-in's updates between them, which
					// show as graphtest frames), not the setup.
					if path := os.Getenv("GROUPGATE_SYNC_CPUPROFILE"); path != "" {
						f, err := os.Create(fmt.Sprintf("%s.%d", path, n))
						if err != nil {
							b.Fatal(err)
						}
						if err := pprof.StartCPUProfile(f); err != nil {
							b.Fatal(err)
						}
						defer func() { pprof.StopCPUProfile(); f.Close() }()
					}
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						g.ForgetHistory()
						g.Update(func(t *graphtest.Tenant) {
							for k := 0; k < n; {
								grp := t.Groups[workload.GroupID(rng.IntN(p.Groups))]
								u := workload.UserID(rng.IntN(p.Users))
								if len(grp.Members) > 0 && grp.Members[len(grp.Members)-1].ID == u {
									continue
								}
								grp.Members = append(grp.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: u})
								k++
							}
						})
						runtime.GC() // the stand-in's copy of the tenant is garbage now; not the round's
						log := fileBytes(b, fs.LogPath())
						busy := g.Busy()
						b.StartTimer()
						t0 := time.Now()
						r, err := s.Next(ctx)
						if err != nil {
							b.Fatal(err)
						}
						next += time.Since(t0) - (g.Busy() - busy)
						if _, err := dest.Write(ctx, r); err != nil {
							b.Fatal(err)
						}
						t1 := time.Now()
						if err := s.Commit(ctx, r); err != nil {
							b.Fatal(err)
						}
						save += time.Since(t1)
						applied += t1.Sub(t0) - (g.Busy() - busy)
						b.StopTimer()
						if r.Full || len(r.Changes) == 0 || len(r.Changes) > n {
							b.Fatalf("round: full %v, %d changes; want a delta of at most %d additions", r.Full, len(r.Changes), n)
						}
						if nb, nl := fileBytes(b, fs.Path), fileBytes(b, fs.LogPath()); nl > log {
							written += nl - log
						} else {
							written += nb + nl // compacted: the base written whole
						}
						b.StartTimer()
					}
					b.ReportMetric(float64(applied.Milliseconds())/float64(b.N), "ms-applied/round")
					b.ReportMetric(float64(next.Milliseconds())/float64(b.N), "ms-next/round")
					b.ReportMetric(float64(save.Milliseconds())/float64(b.N), "ms-state-save/round")
					b.ReportMetric(float64(written)/float64(b.N), "state-bytes/round")
				})
			}
		})
	}
}

func fileBytes(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
