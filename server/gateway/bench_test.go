package gateway_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	groupgatev1 "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/grpc/metadata"
)

// BenchmarkCanAddMember asks the demo tenant's DENY with its evidence path (README's example) over HTTP/JSON and
// over gRPC, both against the same server, the client in the same process; run with -cpu to vary the workers.
//
//	go test ./server/gateway -run '^$' -bench CanAddMember -cpu 2,8
func BenchmarkCanAddMember(b *testing.B) {
	srv := servertest.StartWith(b, servertest.Options{HTTP: true})
	body := []byte(`{"tenantId":"contoso","groupId":"grp-finance","memberId":"grp-engineering","actorId":"u-gary"}`)
	b.Run("http", func(b *testing.B) { benchPost(b, srv.HTTPURL+"/v1/canAddMember", body) })
	b.Run("grpc", func(b *testing.B) {
		ctx := metadata.NewOutgoingContext(b.Context(), nil)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := srv.Client.CanAddMember(ctx, "contoso", "grp-finance", "grp-engineering", "u-gary"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkEffectiveMembers streams a small group's members (one message) over HTTP/JSON (NDJSON) and over gRPC,
// against the same server.
//
//	go test ./server/gateway -run '^$' -bench EffectiveMembers -cpu 1,8
func BenchmarkEffectiveMembers(b *testing.B) {
	srv := servertest.StartWith(b, servertest.Options{HTTP: true})
	body := []byte(`{"tenantId":"contoso","groupId":"grp-engineering"}`)
	b.Run("http", func(b *testing.B) { benchPost(b, srv.HTTPURL+"/v1/effectiveMembers", body) })
	b.Run("grpc", func(b *testing.B) {
		req := &groupgatev1.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-engineering"}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := srv.Client.EachMember(b.Context(), req, func(*groupgatev1.EffectiveMembersResponse) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// benchPost posts body to url from parallel workers over one keep-alive client, and wants 200 each time.
func benchPost(b *testing.B, url string, body []byte) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("HTTP %d", resp.StatusCode)
			}
		}
	})
}
