package authzen_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/groupgate/groupgate/server/servertest"
)

// BenchmarkEvaluation asks the README's deny (u-gary adding grp-engineering to grp-finance, with its evidence
// path) through POST /access/v1/evaluation and through POST /v1/canAddMember, against the same server in the same
// run: the AuthZEN form's cost over the native route is its JSON translation, the sole-tenant lookup (cached) and
// nothing else (one call through the interceptor chain each).
//
//	go test ./server/authzen -run '^$' -bench Evaluation -cpu 2
func BenchmarkEvaluation(b *testing.B) {
	srv := servertest.StartWith(b, servertest.Options{HTTP: true})
	b.Run("native", func(b *testing.B) {
		benchPost(b, srv.HTTPURL+"/v1/canAddMember", []byte(`{"tenantId":"contoso","groupId":"grp-finance","memberId":"grp-engineering","actorId":"u-gary"}`))
	})
	authzen := []byte(`{"subject":{"type":"user","id":"u-gary"},"action":{"name":"add_member","properties":{"member_id":"grp-engineering"}},"resource":{"type":"group","id":"grp-finance"}}`)
	b.Run("authzen", func(b *testing.B) { benchPost(b, srv.HTTPURL+"/access/v1/evaluation", authzen) })
	b.Run("authzen-tenant", func(b *testing.B) { benchPost(b, srv.HTTPURL+"/tenants/contoso/access/v1/evaluation", authzen) })
}

func benchPost(b *testing.B, url string, body []byte) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	b.ReportAllocs()
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
