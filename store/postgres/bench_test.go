package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/pgtest"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/resolver"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/memory"
)

// BenchmarkWriteOneEdge is WriteChanges of one membership edge on the small generated tenant (20k users, 2k
// groups), through the store, until the new revision is visible to decisions on the writing replica: the
// memory store, and PostgreSQL (a throwaway local cluster, fsync off) with a second replica following.
//
// propagation-p50/p99-ns is, for PostgreSQL, the time from the start of the write until the second replica has
// applied it (NOTIFY, then reading the log): when decisions there see it.
//
//	go test ./store/postgres -run '^$' -bench WriteOneEdge -benchtime 2000x
func BenchmarkWriteOneEdge(b *testing.B) {
	d, p := benchtenant.Load(b, "small")
	leaf := workload.GroupID(p.Groups - 1)
	change := func(i int) []*pb.Change {
		return []*pb.Change{{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: leaf, MemberId: workload.UserID(i % p.Users)}}}}
	}
	ctx := context.Background()

	b.Run("memory", func(b *testing.B) {
		res := resolver.New(resolver.Options{})
		st := memory.New(memory.Options{OnChange: res.Invalidate})
		if err := st.Add(d); err != nil {
			b.Fatal(err)
		}
		var lat benchtenant.Latencies
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			lat.Time(func() {
				if _, err := st.Write(ctx, store.Write{TenantID: d.TenantID(), Changes: change(i)}); err != nil {
					b.Fatal(err)
				}
			})
		}
		b.StopTimer()
		lat.Report(b)
	})

	b.Run("postgres", func(b *testing.B) {
		pg := pgtest.Start(b)
		url := pg.NewDatabase()
		res := resolver.New(resolver.Options{})
		a := open(b, url, res.Invalidate)
		if _, err := a.Import(ctx, d.Snapshot(), nil); err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		applied := map[int64]time.Time{}
		arrived := sync.NewCond(&mu)
		open(b, url, func(_, next *directory.Directory, _ *directory.Delta) {
			mu.Lock()
			applied[next.Revision()] = time.Now()
			mu.Unlock()
			arrived.Broadcast()
		})
		var lat, lag benchtenant.Latencies
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			var rev int64
			lat.Time(func() {
				var err error
				if rev, err = a.Write(ctx, store.Write{TenantID: d.TenantID(), Changes: change(i)}); err != nil {
					b.Fatal(err)
				}
			})
			mu.Lock()
			for applied[rev].IsZero() {
				arrived.Wait()
			}
			lag.Record(applied[rev].Sub(start))
			delete(applied, rev)
			mu.Unlock()
		}
		b.StopTimer()
		lat.Report(b)
		lag.ReportAs(b, "propagation-")
	})
}
