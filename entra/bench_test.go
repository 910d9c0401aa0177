package entra_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
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
