package server

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/resolver"
)

var snapshotOnce struct {
	sync.Once
	d   *directory.Directory
	err error
}

// BenchmarkProduceTopGroupMembers is what EffectiveMembers of the top group costs groupgate beyond gRPC: the walk
// and the encoding of its pages (produceMembers), the pages handed to a goroutine that gives them back
// to the buffer pool as gRPC's transport does once it has written them. ns/member is
// the figure to compare with a no-op stream's cost per member. With GROUPGATE_BENCH_SNAPSHOT it runs on that
// snapshot file loaded as serve loads it (the heap layout the server has), otherwise on the generated presets.
//
//	GROUPGATE_BENCH_SNAPSHOT=/tmp/large/large.pb go test ./server -run '^$' -bench ProduceTopGroupMembers -benchtime 10x
func BenchmarkProduceTopGroupMembers(b *testing.B) {
	if path := os.Getenv("GROUPGATE_BENCH_SNAPSHOT"); path != "" {
		snapshotOnce.Do(func() { snapshotOnce.d, snapshotOnce.err = directory.LoadFile(path) })
		if snapshotOnce.err != nil {
			b.Fatal(snapshotOnce.err)
		}
		b.Run("snapshot", func(b *testing.B) { benchmarkProduceMembers(b, snapshotOnce.d) })
		return
	}
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, _ := benchtenant.Load(b, preset)
			benchmarkProduceMembers(b, d)
		})
	}
}

func benchmarkProduceMembers(b *testing.B, d *directory.Directory) {
	top, ok := d.Lookup(workload.TopGroupID)
	if !ok {
		b.Fatalf("no %s in the tenant", workload.TopGroupID)
	}
	view := resolver.New(resolver.Options{}).At(d)
	want := memberTypeFilter(nil)
	members, pageBytes := 0, 0
	for range view.Members(top.Ref()) {
		members++
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := newMemberPager(context.Background(), DefaultPageSize, d.Revision())
		done := make(chan struct{})
		size := 0
		go func() { // as gRPC's transport would: the codec's bytes, freed once written
			defer close(done)
			c := newCodec()
			for page := range p.pages {
				data, err := c.Marshal(&encodedMessage{data: page, pool: p.pool})
				if err != nil {
					panic(err)
				}
				size += data.Len()
				data.Free()
			}
		}()
		var deepest atomic.Int64
		produceMembers(d, view.MemberBatches(top.Ref()), want, p, &deepest)
		if p.items > 0 {
			p.pages <- appendRevision(p.page, p.revision)
		}
		close(p.pages)
		<-done
		pageBytes = size
	}
	b.StopTimer()
	if members == 0 {
		b.Fatal("no members encoded")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/member")
	b.ReportMetric(float64(members), "members")
	b.ReportMetric(float64(pageBytes), "bytes")
}
