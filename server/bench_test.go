package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/groupgate/groupgate/bench/workload"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
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
