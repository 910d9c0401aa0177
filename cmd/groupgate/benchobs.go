package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/groupgate/groupgate/bench"
	"github.com/groupgate/groupgate/internal/otlptest"
)

// observabilityRun is one of the three configurations --observability-rounds compares.
type observabilityRun struct {
	report           bench.Report
	records, dropped uint64 // the decision-log run's records written and dropped
	spans            int64  // the tracing run's spans received
}

// runObservability measures what the decision log and tracing cost (issue 21): rounds of three runs back to back,
// each against a server of its own in this process, started fresh on the same snapshot: plain, --decision-log
// file:… (a temporary file), and tracing to an OTLP receiver in this process (OTLP over gRPC, where it decodes
// every export, and HTTP, where it counts the spans in the wire format without decoding them). The tracing run sets only OTEL_EXPORTER_OTLP_ENDPOINT: the protocol, the
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
	names := []string{"plain", "decision-log", "tracing"}
	results := make([][]observabilityRun, rounds)
	for round := range rounds {
		fmt.Fprintf(stdout(), "round %d (load %s)\n", round+1, loadAverage())
		for _, name := range names {
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
			}
			fmt.Fprintln(stdout(), line)
			results[round] = append(results[round], run)
		}
	}
	fmt.Fprintf(stdout(), "tenant %s, concurrency %d, %s\n", cfg.Tenant, cfg.Concurrency, transport)
	// Throughput, and this process's CPU time per request (server, load generator and receiver together): on a
	// machine shared with other work the CPU cost moves far less than the throughput does.
	fmt.Fprintf(stdout(), "%-6s %-24s %-38s %-38s\n", "round", "plain", "decision-log", "tracing")
	for round, runs := range results {
		plain := runs[0].report
		cell := func(r bench.Report) string {
			return fmt.Sprintf("%.0f/s %+.1f%%, %s %+.1f%%", r.PerSecond, 100*(r.PerSecond-plain.PerSecond)/plain.PerSecond,
				r.CPUPerRequest.Round(100*time.Nanosecond), 100*float64(r.CPUPerRequest-plain.CPUPerRequest)/float64(plain.CPUPerRequest))
		}
		fmt.Fprintf(stdout(), "%-6d %-24s %-38s %-38s\n", round+1, fmt.Sprintf("%.0f/s, %s cpu/req", plain.PerSecond, plain.CPUPerRequest.Round(100*time.Nanosecond)),
			cell(runs[1].report), cell(runs[2].report))
	}
	return nil
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
	s, err := startBenchServer(ctx, transport, snapshot, false, false, gcHeadroom, decisionLog)
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
