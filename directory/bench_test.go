package directory_test

import (
	"fmt"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/resolver"
)

// BenchmarkWriteOneEdge applies a one-edge batch (a user joins a leaf group) to the generated tenant and
// invalidates the resolver cache for it: the work between WriteChanges and the write being visible to decisions
// on the memory store. B/op shows that the tenant is not copied.
//
//	go test ./directory -run '^$' -bench WriteOneEdge -benchmem
func BenchmarkWriteOneEdge(b *testing.B) {
	for _, preset := range benchtenant.Presets() {
		b.Run(preset, func(b *testing.B) {
			d, p := benchtenant.Load(b, preset)
			res := resolver.New(resolver.Options{})
			leaf := workload.GroupID(p.Groups - 1)
			var lat benchtenant.Latencies
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := []*pb.Change{{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: leaf, MemberId: workload.UserID(i % p.Users)}}}}
				lat.Time(func() {
					next, delta, err := d.Apply(c, d.Revision()+1)
					if err != nil {
						b.Fatal(fmt.Sprint(err))
					}
					res.Invalidate(d, next, delta)
				})
			}
			b.StopTimer()
			lat.Report(b)
		})
	}
}
