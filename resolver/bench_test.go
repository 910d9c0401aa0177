package resolver_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/resolver"
)

// BenchmarkGuestPathCold computes a random group's guest path with no cache: one downward walk.
func BenchmarkGuestPathCold(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, p := benchtenant.Load(b, preset)
			v := resolver.New(resolver.Options{CacheMaxBytes: -1}).At(d)
			groups, _ := benchtenant.Refs(b, d, p, 4096)
			var lat benchtenant.Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lat.Time(func() { v.GuestPath(groups[i%len(groups)]) })
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}

// BenchmarkGuestPathWarm answers the same from the cache.
func BenchmarkGuestPathWarm(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, p := benchtenant.Load(b, preset)
			r := resolver.New(resolver.Options{})
			v := r.At(d)
			groups, _ := benchtenant.Refs(b, d, p, 4096)
			for _, g := range groups {
				v.GuestPath(g)
			}
			r.WaitCache()
			var lat benchtenant.Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lat.Time(func() { v.GuestPath(groups[i%len(groups)]) })
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}

// BenchmarkCyclePath checks whether nesting one random group under another closes a cycle.
func BenchmarkCyclePath(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, p := benchtenant.Load(b, preset)
			v := resolver.New(resolver.Options{}).At(d)
			groups, _ := benchtenant.Refs(b, d, p, 4096)
			var lat benchtenant.Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lat.Time(func() { v.CyclePath(groups[i%len(groups)], groups[(i+1)%len(groups)]) })
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}

// BenchmarkMembersOfTopGroup streams every effective member of the top group (all users and groups), reporting
// the time to the first 1,000 members and the member count.
func BenchmarkMembersOfTopGroup(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, _ := benchtenant.Load(b, preset)
			v := resolver.New(resolver.Options{}).At(d)
			top, _ := d.Lookup(workload.TopGroupID)
			var first time.Duration
			count := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				count = 0
				for range v.Members(top.Ref()) {
					count++
					if count == 1000 {
						first += time.Since(start)
					}
				}
			}
			b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "first1000-ns")
			b.ReportMetric(float64(count), "members")
		})
	}
}

// BenchmarkGroupsOfAUser walks up from random generated users to every group they belong to at any depth. Every
// generated user sits in ~10 leaf groups, the deepest layer (layer 11 of 12 on large), so each walk climbs the
// whole height of the tenant. ns/op and p50/p99 are the whole walk, first-p50/p99 the wait for the first group;
// "labelled" lists only labelled groups (20% of them), which reads every group's attributes on the way.
//
//	GROUPGATE_BENCH_LARGE=1 go test ./resolver -run '^$' -bench GroupsOfAUser -benchtime 20000x
func BenchmarkGroupsOfAUser(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		for _, filter := range []struct {
			name string
			f    resolver.GroupFilter
		}{{"all", resolver.GroupFilter{}}, {"labelled", resolver.GroupFilter{LabelledOnly: true}}} {
			b.Run(preset+"/"+filter.name, func(b *testing.B) {
				d, p := benchtenant.Load(b, preset)
				v := resolver.New(resolver.Options{}).At(d)
				_, users := benchtenant.Refs(b, d, p, 4096)
				var whole, first benchtenant.Latencies
				groups := 0
				runtime.GC() // the generator's garbage, so that its collection is not measured
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					start, n := time.Now(), 0
					for range v.Groups(users[i%len(users)], filter.f) {
						if n == 0 {
							first.Record(time.Since(start))
						}
						n++
					}
					whole.Record(time.Since(start))
					groups += n
				}
				b.StopTimer()
				whole.Report(b)
				first.ReportAs(b, "first-")
				b.ReportMetric(float64(groups)/float64(b.N), "groups/op")
			})
		}
	}
}
