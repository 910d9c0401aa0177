package server_test

import (
	"context"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/server/servertest"
)

// BenchmarkDescribeTopGroupOverGRPC is what the explorer asks when a person opens the generated tenant's top
// group: its first page of 100 direct members with the counts of each sub-group and of the group itself (every
// user of the tenant, through every level of nesting), over a real server on loopback. members is the group's
// effective count; exact says whether it fit the count budget.
//
//	GROUPGATE_BENCH_LARGE=1 go test ./server -run '^$' -bench DescribeTopGroupOverGRPC -benchtime 20x
func BenchmarkDescribeTopGroupOverGRPC(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, _ := benchtenant.Load(b, preset)
			srv := servertest.Start(b, d)
			req := &pb.DescribeObjectRequest{TenantId: d.TenantID(), Id: workload.TopGroupID}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := srv.Client.Decisions.DescribeObject(context.Background(), req)
				if err != nil || len(resp.GetGroup().GetMembers()) == 0 {
					b.Fatalf("%v: %v", resp, err)
				}
				g := resp.GetGroup()
				b.ReportMetric(float64(g.GetEffectiveMemberCount()), "members")
				exact := 0.0
				if g.GetEffectiveMemberCountExact() {
					exact = 1
				}
				b.ReportMetric(exact, "exact")
			}
		})
	}
}

// BenchmarkSearchObjectsOverGRPC is one typeahead request on the generated tenant.
//
//	go test ./server -run '^$' -bench SearchObjectsOverGRPC -benchtime 50x
func BenchmarkSearchObjectsOverGRPC(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, _ := benchtenant.Load(b, preset)
			srv := servertest.Start(b, d)
			req := &pb.SearchObjectsRequest{TenantId: d.TenantID(), Query: "g-0001"}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := srv.Client.Decisions.SearchObjects(context.Background(), req)
				if err != nil || len(resp.GetObjects()) == 0 {
					b.Fatalf("%v: %v", resp, err)
				}
			}
		})
	}
}
