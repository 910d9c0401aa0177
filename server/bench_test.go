package server_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/groupgate/groupgate/bench"
	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/server/servertest"
)

// BenchmarkEffectiveMembersOverGRPC streams every transitive member of the generated tenant's top group through a
// real server on loopback, client in the same process: ns/op is the whole stream, first-message-ns the wait for
// the first message (SPEC §7: < 500 ms and < 5 ms for ~1M members on the large tenant).
//
//	GROUPGATE_BENCH_LARGE=1 go test ./server -run '^$' -bench EffectiveMembersOverGRPC -benchtime 10x
func BenchmarkEffectiveMembersOverGRPC(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, _ := benchtenant.Load(b, preset)
			srv := servertest.Start(b, d)
			req := &pb.EffectiveMembersRequest{TenantId: d.TenantID(), GroupId: workload.TopGroupID}
			var first benchtenant.Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start, n := time.Now(), 0
				err := srv.Client.EachMember(context.Background(), req, func(r *pb.EffectiveMembersResponse) error {
					if n == 0 {
						first.Record(time.Since(start))
					}
					n += len(r.GetMembers())
					return nil
				})
				if err != nil || n == 0 {
					b.Fatalf("%d members: %v", n, err)
				}
				b.ReportMetric(float64(n), "members")
			}
			b.StopTimer()
			first.ReportAs(b, "first-message-")
		})
	}
}

// BenchmarkEffectiveGroupsOverGRPC streams every effective group of random generated users (each in ~10 groups of
// the deepest layer) through a real server on loopback, client in the same process: p50/p99 are the whole
// stream, first-message-p50/p99 the wait for its first message. The noop sub-benchmark asks bench's no-op server
// (one empty message per call) in the same run: the floor a gRPC server stream costs on this machine.
//
//	GROUPGATE_BENCH_LARGE=1 go test ./server -run '^$' -bench EffectiveGroupsOverGRPC -benchtime 20000x
func BenchmarkEffectiveGroupsOverGRPC(b *testing.B) {
	for _, preset := range append([]string{"noop"}, benchtenant.Presets()...) {
		b.Run(preset, func(b *testing.B) {
			var c *client.Client
			var reqs []*pb.EffectiveGroupsRequest
			if preset == "noop" {
				addr, stop, err := bench.NoOpServer()
				if err != nil {
					b.Fatal(err)
				}
				defer stop()
				if c, err = client.Dial(addr, client.Options{}); err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				reqs = []*pb.EffectiveGroupsRequest{{TenantId: "t", PrincipalId: "u"}}
			} else {
				d, p := benchtenant.Load(b, preset)
				c = servertest.Start(b, d).Client
				_, users := benchtenant.Refs(b, d, p, 4096)
				for _, u := range users {
					reqs = append(reqs, &pb.EffectiveGroupsRequest{TenantId: d.TenantID(), PrincipalId: d.Node(u).ID()})
				}
			}
			runtime.GC() // the generator's garbage, so that its collection is not measured
			var whole, first benchtenant.Latencies
			groups := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start, messages := time.Now(), 0
				err := c.EachGroup(context.Background(), reqs[i%len(reqs)], func(r *pb.EffectiveGroupsResponse) error {
					if messages++; messages == 1 {
						first.Record(time.Since(start))
					}
					groups += len(r.GetGroups())
					return nil
				})
				if err != nil || messages == 0 {
					b.Fatalf("%d messages: %v", messages, err)
				}
				whole.Record(time.Since(start))
			}
			b.StopTimer()
			whole.Report(b)
			first.ReportAs(b, "first-message-")
			b.ReportMetric(float64(groups)/float64(b.N), "groups/op")
		})
	}
}
