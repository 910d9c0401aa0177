package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/bench"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/oidc"
	"github.com/groupgate/groupgate/internal/oidc/oidctest"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/servertest"
)

// BenchmarkBenchByCaller runs groupgate bench's load generator (bench.Run, the default mix, 8 workers, over gRPC
// on loopback) against one server on the medium tenant, once with a static token and once with an Entra ID token
// (RS256, verified once and then served from the verified-token cache): SPEC §13's JWTs should cost a static
// token's throughput within 5%. req/s is the figure to compare; -count alternates the two.
//
//	go test ./server -run '^$' -bench BenchByCaller -benchtime 200000x
func BenchmarkBenchByCaller(b *testing.B) {
	d, params := benchtenant.Load(b, "medium")
	issuer := oidctest.New(b, oidctest.Options{})
	v, err := oidc.New(context.Background(), oidc.Config{Issuers: []string{issuer.V1URL()}, Audiences: []string{oidctest.DefaultAudience}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	static, err := server.ParseTokens(strings.NewReader("checker:bench:" + checkerToken + "\n"))
	if err != nil {
		b.Fatal(err)
	}
	srv := servertest.StartWith(b, servertest.Options{Tokens: static, JWT: &server.JWTAuth{Verifier: v, Roles: server.DefaultJWTRoles()}}, d)
	jwt := issuer.Token(oidctest.TokenOptions{Roles: []string{"GroupGate.Check"}, Expiry: time.Now().Add(24 * time.Hour)})
	// Three rounds, each static then JWT, so that a change in the machine's load between runs shows up in both.
	for round := 1; round <= 3; round++ {
		for _, caller := range []struct{ name, token string }{{"static", checkerToken}, {"jwt", jwt}} {
			benchCaller(b, fmt.Sprintf("round%d/%s", round, caller.name), srv.Addr, caller.token, d.TenantID(), params)
		}
	}
}

func benchCaller(b *testing.B, name, addr, token, tenant string, params workload.Params) {
	b.Run(name, func(b *testing.B) {
		r, err := bench.Run(context.Background(), name, bench.Config{Addr: addr, Token: token, Tenant: tenant,
			Params: params, Concurrency: 8, Requests: b.N, Duration: time.Hour, Mix: bench.DefaultMix, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		if r.Errors > 0 {
			b.Fatalf("%d errors: %v", r.Errors, r.ErrorCodes)
		}
		b.ReportMetric(r.PerSecond, "req/s")
		b.ReportMetric(float64(r.P99.Microseconds()), "p99-µs")
	})
}
