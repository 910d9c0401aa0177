package policy_test

import (
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/policy"
	"github.com/groupgate/groupgate/resolver"
)

// BenchmarkCanAddMember nests a random group under another, as the Groups Administrator: every decision runs the
// nesting-cycle check and the transitive guest check on the member group (warm: the cache has seen each group).
//
//	go test ./policy -run '^$' -bench CanAddMember -benchtime 200000x
func BenchmarkCanAddMember(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, p := benchtenant.Load(b, preset)
			res := resolver.New(resolver.Options{})
			e := policy.New(res)
			groups, _ := benchtenant.Refs(b, d, p, 4096)
			reqs := make([]*pb.CanAddMemberRequest, len(groups))
			for i := range groups {
				reqs[i] = &pb.CanAddMemberRequest{GroupId: d.Node(groups[i]).ID(), MemberId: d.Node(groups[(i+1)%len(groups)]).ID(), ActorId: workload.AdminID}
			}
			for _, r := range reqs { // warm the cache
				if _, err := e.CanAddMember(d, r); err != nil {
					b.Fatal(err)
				}
			}
			res.WaitCache()
			var lat benchtenant.Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lat.Time(func() {
					if _, err := e.CanAddMember(d, reqs[i%len(reqs)]); err != nil {
						b.Fatal(err)
					}
				})
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}

// BenchmarkCheckMembership asks whether a random user is in a random group, with the shortest path when so.
func BenchmarkCheckMembership(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, p := benchtenant.Load(b, preset)
			v := resolver.New(resolver.Options{}).At(d)
			groups, users := benchtenant.Refs(b, d, p, 4096)
			var lat benchtenant.Latencies
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lat.Time(func() { v.MemberPath(groups[i%len(groups)], users[i%len(users)]) })
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}
