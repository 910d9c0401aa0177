package server_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/groupgate/groupgate/bench/workload"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/server/servertest"
)

// BenchmarkCanAddMemberInProcess is one CanAddMember through server.Invoke (the whole interceptor chain, no
// transport) on the small tenant: the per-decision cost of what the server adds around policy (decision ids, the
// decision log, spans), without the noise of a loopback transport.
//
//	go test ./server -run '^$' -bench CanAddMemberInProcess -count 5
func BenchmarkCanAddMemberInProcess(b *testing.B) {
	d, params := benchtenant.Load(b, "small")
	srv := servertest.Start(b, d)
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := make([]*pb.CanAddMemberRequest, 1024)
	for i := range reqs {
		reqs[i] = &pb.CanAddMemberRequest{TenantId: d.TenantID(), GroupId: workload.GroupID(rng.IntN(params.Groups)),
			MemberId: workload.UserID(rng.IntN(params.Users)), ActorId: workload.UserID(rng.IntN(params.Users))}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var resp pb.CanAddMemberResponse
		if err := srv.Server.Invoke(ctx, pb.DecisionService_CanAddMember_FullMethodName, reqs[i%len(reqs)], &resp); err != nil {
			b.Fatal(err)
		}
	}
}
