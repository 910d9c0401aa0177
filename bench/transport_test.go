package bench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// BenchmarkNoOpRoundTrip is one unary call at a time to the no-op handler over loopback TCP and over a unix
// socket: what the transport alone costs per gRPC call, without a decision or a load generator's concurrency.
//
//	go test ./bench -run '^$' -bench NoOpRoundTrip -count 5
func BenchmarkNoOpRoundTrip(b *testing.B) {
	for _, tc := range []struct{ name, listen string }{
		{"tcp", "127.0.0.1:0"},
		{"unix", "unix://" + filepath.Join(b.TempDir(), "gg.sock")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			addr, stop, err := ServeNoOp(tc.listen)
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			c, err := client.Dial(addr, client.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			req := &pb.CheckMembershipRequest{TenantId: "t", GroupId: "g", PrincipalId: "u"}
			if _, err := c.Decisions.CheckMembership(ctx, req); err != nil { // connect outside the timing
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decisions.CheckMembership(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
