package server_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/groupgate/groupgate/decisionlog"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/benchtenant"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/server/servertest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BenchmarkCanAddMemberInProcess is one CanAddMember through server.Invoke (the whole interceptor chain, no
// transport) on the small tenant: the per-decision cost of what the server adds around policy, without the noise
// of a loopback transport. Sub-benchmarks: plain (decision ids only), with a file decision log (the writer
// goroutine's encoding and writes included, as it shares the CPUs), and traced with the default sampler (every call
// recorded).
//
//	go test ./server -run '^$' -bench CanAddMemberInProcess -count 5
func BenchmarkCanAddMemberInProcess(b *testing.B) {
	d, params := benchtenant.Load(b, "small")
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := make([]*pb.CanAddMemberRequest, 1024)
	for i := range reqs {
		reqs[i] = &pb.CanAddMemberRequest{TenantId: d.TenantID(), GroupId: workload.GroupID(rng.IntN(params.Groups)),
			MemberId: workload.UserID(rng.IntN(params.Users)), ActorId: workload.UserID(rng.IntN(params.Users))}
	}
	run := func(b *testing.B, opts servertest.Options) {
		srv := servertest.StartWith(b, opts, d)
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
	b.Run("plain", func(b *testing.B) { run(b, servertest.Options{}) })
	b.Run("decision-log-file", func(b *testing.B) {
		f, err := decisionlog.OpenFile(filepath.Join(b.TempDir(), "d.jsonl"), 100<<20, 1)
		if err != nil {
			b.Fatal(err)
		}
		l := decisionlog.New(f, decisionlog.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		run(b, servertest.Options{DecisionLog: l})
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		st := l.Stats()
		b.ReportMetric(float64(st.Dropped+st.Failed), "dropped")
	})
	b.Run("traced", func(b *testing.B) {
		// The spans go through the SDK's batch processor to an exporter that drops them: what the server pays
		// per call, without the encoding and the receiving that an OTLP collector does in a process of its own.
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardExporter{}))
		run(b, servertest.Options{TracerProvider: tp})
		_ = tp.Shutdown(context.Background())
	})
}

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }
