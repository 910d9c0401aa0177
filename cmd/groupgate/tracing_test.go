package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/entra/graphtest"
	"github.com/groupgate/groupgate/internal/otlptest"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestServeTracesFromTheEnvironment: serve with OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL=grpc
// exports the spans of an HTTP call to the receiver, continuing the caller's traceparent, and the decision record
// carries the trace id.
func TestServeTracesFromTheEnvironment(t *testing.T) {
	recv := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+recv.Endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_SERVICE_NAME", "groupgate-test")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	ready, httpReady, done := make(chan string, 1), make(chan string, 1), make(chan error, 1)
	f := &serveFlags{listen: "127.0.0.1:0", httpListen: "127.0.0.1:0", httpReady: httpReady, logLevel: "error", logFormat: "text",
		shutdownTimeout: time.Second, decisionLog: decisionLogFlags{sink: "file:" + path, maxBytes: 1 << 20, keep: 1}}
	go func() { done <- serve(ctx, f, ready) }()
	<-ready
	httpAddr := <-httpReady
	const traceID, parentID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
	req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/v1/canAddMember",
		strings.NewReader(`{"tenantId":"contoso","groupId":"grp-finance","memberId":"u-gina","actorId":"u-oscar"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rpc := recv.WaitFor(t, traceID, "groupgate.v1.DecisionService/CanAddMember")
	if rpc.ParentSpanID != parentID || rpc.Service != "groupgate-test" {
		t.Fatalf("server span %+v: want the child of %s from service groupgate-test", rpc, parentID)
	}
	recv.WaitFor(t, traceID, "policy.can_add_member")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := runCLI(t, "decisions", "--file", path)
	if !strings.Contains(out, "trace "+traceID) {
		t.Fatalf("decisions:\n%s\nwant the record in trace %s", out, traceID)
	}
}

// TestSyncTracesGraphRequests: groupgate sync with OTEL_* set makes one "sync.round" span per round and a client
// span of every Graph request as its child, in its trace; the round span counts the requests it made.
func TestSyncTracesGraphRequests(t *testing.T) {
	recv := otlptest.Start(t)
	g := graphtest.New(graphtest.Crafted())
	defer g.Close()
	cmd, out := syncCmd(t, g, g.Token, "-o", filepath.Join(t.TempDir(), "s.pb.gz"))
	cmd.Env = append(cmd.Env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://"+recv.Endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
	if err := cmd.Run(); err != nil {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	var names []string
	for _, s := range recv.Spans() {
		names = append(names, s.Name)
	}
	round := recv.WaitFor(t, "", "sync.round")
	if round.ParentSpanID != "" || round.Attributes["groupgate.sync.kind"] != "full" || round.Attributes["groupgate.tenant"] == "" {
		t.Errorf("round span %+v, want a root span of a full round naming the tenant", round)
	}
	graph := 0
	for _, s := range recv.Spans() {
		if u := s.Attributes["url.full"]; s.Kind != tracepb.Span_SPAN_KIND_CLIENT || !strings.Contains(u, "/v1.0/") && !strings.Contains(u, "/beta/") {
			continue
		}
		graph++
		if s.TraceID != round.TraceID || s.ParentSpanID != round.SpanID {
			t.Errorf("Graph request span %s (%s) in trace %s under %s, want the round span's child (%s in %s)", s.Name, s.Attributes["url.full"],
				s.TraceID, s.ParentSpanID, round.SpanID, round.TraceID)
		}
	}
	if graph < 2 || round.Attributes["groupgate.sync.graph_requests"] != strconv.Itoa(graph) {
		t.Fatalf("%d Graph client spans, round span counts %s requests; want one span per request (users, groups, …); received %v",
			graph, round.Attributes["groupgate.sync.graph_requests"], names)
	}
}

// TestBenchObservabilityRounds: bench --observability-rounds runs plain, --decision-log file:, tracing to its own
// receiver and spans-only, each against a fresh server: the decision-log run writes records and drops none, the
// tracing run's spans reach the receiver over either OTLP protocol (at least the server span of every request),
// the spans-only run makes as many, and the summary compares the four. It starts its own servers: --separate and
// --addr are refused.
func TestBenchObservabilityRounds(t *testing.T) {
	for _, protocol := range []string{"", "grpc"} {
		t.Run("protocol "+protocol, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			out := runCLI(t, "bench", "--preset", "tiny", "-c", "4", "-n", "1000", "--observability-rounds", "1")
			var records, dropped, spans, spansOnly, requests int
			for _, line := range strings.Split(out, "\n") {
				fields := strings.Fields(line)
				if len(fields) < 3 || fields[3] != "requests" {
					continue
				}
				if !strings.Contains(line, "errors 0 ") {
					t.Errorf("errors in %q", line)
				}
				requests, _ = strconv.Atoi(fields[2])
				switch fields[0] {
				case "decision-log":
					if _, err := fmt.Sscanf(line[strings.Index(line, "records "):], "records %d, dropped %d", &records, &dropped); err != nil {
						t.Fatalf("%q: %v", line, err)
					}
				case "tracing":
					if _, err := fmt.Sscanf(line[strings.Index(line, "spans "):], "spans %d", &spans); err != nil {
						t.Fatalf("%q: %v", line, err)
					}
				case "spans-only":
					if _, err := fmt.Sscanf(line[strings.Index(line, "spans "):], "spans %d", &spansOnly); err != nil {
						t.Fatalf("%q: %v", line, err)
					}
				}
			}
			if records < requests || dropped != 0 || spans < requests || spansOnly < requests {
				t.Errorf("records %d (dropped %d), spans %d, spans-only %d for %d requests a run; want a record a decision, none dropped, a span or more a request:\n%s",
					records, dropped, spans, spansOnly, requests, out)
			}
			if !strings.Contains(out, "round  plain") || !strings.Contains(out, "spans-only") || !strings.Contains(out, "\n1      ") {
				t.Errorf("no summary:\n%s", out)
			}
		})
	}
	for _, extra := range [][]string{{"--separate"}, {"--addr", "127.0.0.1:1"}} {
		if _, err := runCLIError(t, append([]string{"bench", "--preset", "tiny", "--observability-rounds", "1"}, extra...)...); err == nil || !strings.Contains(err.Error(), "--observability-rounds") {
			t.Errorf("%v: error %v, want --observability-rounds refused", extra, err)
		}
	}
}
