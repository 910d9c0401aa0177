package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/groupgate/groupgate/bench"
	"github.com/groupgate/groupgate/internal/otlptest"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// observabilityRun is one of the four configurations --observability-rounds compares.
type observabilityRun struct {
	report           bench.Report
	records, dropped uint64 // the decision-log run's records written and dropped
	spans            int64  // the tracing run's spans received
}

// runObservability measures what the decision log and tracing cost (issue 21): rounds of four runs back to back,
// each against a server of its own in this process, started fresh on the same snapshot: plain, --decision-log
// file:… (a temporary file), and tracing to an OTLP receiver in this process (OTLP over gRPC, where it decodes
// every export, and HTTP, where it counts the spans in the wire format without decoding them), and spans-only (the same spans,
// counted and dropped: tracing's cost before any export). The tracing run sets only OTEL_EXPORTER_OTLP_ENDPOINT: the protocol, the
// sampler and the batch processor are the defaults or what OTEL_* in the environment say, as for serve. The
// receiver's CPU is charged to the figure (it runs on the same cores as the server and the load, as a local
// collector would). The records and spans are counted after each server has stopped (and flushed).
func runObservability(ctx context.Context, cfg bench.Config, transport, snapshot string, gcHeadroom uint64, rounds int, cpuProfile string) error {
	dir, err := tempDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	endpointVars := []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}
	saved := map[string]string{}
	for _, k := range endpointVars {
		if v, ok := os.LookupEnv(k); ok {
			saved[k] = v
		}
		os.Unsetenv(k)
	}
	defer func() {
		for k, v := range saved {
			os.Setenv(k, v)
		}
	}()
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if protocol == "" {
		protocol = "http/protobuf"
	}
	names := []string{"plain", "decision-log", "tracing", "spans-only"}
	results := make([][]observabilityRun, rounds)
	for round := range rounds {
		fmt.Fprintf(stdout(), "round %d (load %s)\n", round+1, loadAverage())
		results[round] = make([]observabilityRun, len(names))
		// Each round starts with another run (plain first, then decision-log first, …): a run's place in the
		// round changes what it measures (the heap the earlier servers left, the machine's drift over the minute).
		for k := range names {
			i := (k + round) % len(names)
			name := names[i]
			runtime.GC() // the last server's snapshot and index are garbage now, not during this run
			debug.FreeOSMemory()
			run, err := runObservabilityOnce(ctx, cfg, name, transport, snapshot, dir, protocol, gcHeadroom, profilePath(cpuProfile, name, round))
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, name, err)
			}
			line := run.report.String()
			switch name {
			case "decision-log":
				line += fmt.Sprintf("  records %d, dropped %d", run.records, run.dropped)
			case "tracing":
				line += fmt.Sprintf("  spans %d (%.2f a request, %s)", run.spans, float64(run.spans)/float64(max(run.report.Requests, 1)), protocol)
			case "spans-only":
				line += fmt.Sprintf("  spans %d (%.2f a request, not exported)", run.spans, float64(run.spans)/float64(max(run.report.Requests, 1)))
			}
			fmt.Fprintln(stdout(), line)
			results[round][i] = run
		}
	}
	fmt.Fprintf(stdout(), "tenant %s, concurrency %d, %s\n", cfg.Tenant, cfg.Concurrency, transport)
	// Throughput, and this process's CPU time per request (server, load generator and receiver together): on a
	// machine shared with other work the CPU cost moves far less than the throughput does.
	fmt.Fprintf(stdout(), "%-6s %-24s %-38s %-38s %-38s\n", "round", "plain", "decision-log", "tracing", "spans-only")
	ratios := make([][2][]float64, len(names)) // per run: throughput and CPU a request against the round's plain run
	for round, runs := range results {
		plain := runs[0].report
		cells := make([]any, 0, len(names)+1)
		cells = append(cells, round+1, fmt.Sprintf("%.0f/s, %s cpu/req", plain.PerSecond, plain.CPUPerRequest.Round(100*time.Nanosecond)))
		for i, run := range runs[1:] {
			r := run.report
			rate, cpu := 100*(r.PerSecond-plain.PerSecond)/plain.PerSecond, 100*float64(r.CPUPerRequest-plain.CPUPerRequest)/float64(plain.CPUPerRequest)
			ratios[i+1][0], ratios[i+1][1] = append(ratios[i+1][0], rate), append(ratios[i+1][1], cpu)
			cells = append(cells, fmt.Sprintf("%.0f/s %+.1f%%, %s %+.1f%%", r.PerSecond, rate, r.CPUPerRequest.Round(100*time.Nanosecond), cpu))
		}
		fmt.Fprintf(stdout(), "%-6d %-24s %-38s %-38s %-38s\n", cells...)
	}
	if rounds > 1 {
		// Each round's runs follow each other within a minute; the machine's other work moves between rounds. The
		// median of the rounds' differences is the figure least moved by one disturbed run.
		cells := []any{"median", ""}
		for _, r := range ratios[1:] {
			cells = append(cells, fmt.Sprintf("%+.1f%%, cpu %+.1f%%", median(r[0]), median(r[1])))
		}
		fmt.Fprintf(stdout(), "%-6s %-24s %-38s %-38s %-38s\n", cells...)
	}
	return nil
}

// median of xs (sorted in place).
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func runObservabilityOnce(ctx context.Context, cfg bench.Config, name, transport, snapshot, dir, protocol string, gcHeadroom uint64, cpuProfile string) (observabilityRun, error) {
	var run observabilityRun
	decisionLog := ""
	if name == "decision-log" {
		decisionLog = "file:" + filepath.Join(dir, "decisions.jsonl")
		// A fresh log per run: the last run's files would be rotated along.
		matches, _ := filepath.Glob(filepath.Join(dir, "decisions.jsonl*"))
		for _, m := range matches {
			os.Remove(m)
		}
	}
	var receiver *otlptest.Receiver
	if name == "tracing" {
		grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return run, err
		}
		httpLis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			grpcLis.Close()
			return run, err
		}
		r, stop := otlptest.Serve(grpcLis, httpLis)
		defer stop()
		receiver = r
		endpoint := "http://" + httpLis.Addr().String()
		if protocol == "grpc" {
			endpoint = "http://" + grpcLis.Addr().String()
		}
		os.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
		defer os.Unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	var tracerProvider trace.TracerProvider
	var spansOnly *countingProcessor
	if name == "spans-only" {
		// What tracing costs before any export: the SDK's spans, sampled as OTEL_TRACES_SAMPLER says (the default:
		// every call), made by otelgrpc and the server as in the tracing run, counted and dropped when they end.
		spansOnly = &countingProcessor{}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spansOnly))
		defer tp.Shutdown(context.Background())
		tracerProvider = tp
	}
	s, err := startBenchServer(ctx, transport, snapshot, false, false, gcHeadroom, decisionLog, tracerProvider)
	if err != nil {
		return run, err
	}
	stopped := false
	defer func() {
		if !stopped {
			s.stop()
		}
	}()
	runCfg := cfg
	runCfg.Addr = s.addr
	stopProfile, err := startCPUProfile(cpuProfile)
	if err != nil {
		return run, err
	}
	run.report, err = bench.Run(ctx, name, runCfg)
	stopProfile()
	if err != nil {
		return run, err
	}
	s.stop() // flushes the decision log and the span batches
	stopped = true
	if s.logStats != nil {
		if st, ok := s.logStats(); ok {
			run.records, run.dropped = st.Written, st.Dropped+st.Failed
		}
	}
	if receiver != nil {
		run.spans, _ = receiver.Counts()
	}
	if spansOnly != nil {
		run.spans = spansOnly.ended.Load()
	}
	return run, nil
}

// profilePath is where the CPU profile of one run goes: PATH.NAME.ROUND ("" for none).
func profilePath(path, name string, round int) string {
	if path == "" {
		return ""
	}
	return fmt.Sprintf("%s.%s.%d", path, name, round+1)
}

// loadAverage is the machine's 1-minute load average as /proc/loadavg has it, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	fields := strings.Fields(string(b))
	if len(fields) < 3 {
		return "?"
	}
	return strings.Join(fields[:3], " ")
}

// countingProcessor counts the sampled spans that end, and keeps none.
type countingProcessor struct{ ended atomic.Int64 }

func (p *countingProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (p *countingProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		p.ended.Add(1)
	}
}
func (p *countingProcessor) Shutdown(context.Context) error   { return nil }
func (p *countingProcessor) ForceFlush(context.Context) error { return nil }
