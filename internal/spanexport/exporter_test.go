package spanexport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/groupgate/groupgate/internal/otlptest"
)

var errClientStopped = errors.New("client stopped")

// captureClient is an otlptrace.Client that keeps the encoding of every request it is given, marshalled inside
// UploadTraces as the real clients marshal it (an exporter may reuse its buffers once UploadTraces returns).
type captureClient struct {
	mu       sync.Mutex
	starts   int
	stops    int
	requests [][]byte
	err      error // returned by UploadTraces, if set
}

func (c *captureClient) Start(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.starts++
	return nil
}

func (c *captureClient) Stop(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stops++
	return nil
}

func (c *captureClient) UploadTraces(_ context.Context, rss []*tracepb.ResourceSpans) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stops > 0 {
		return errClientStopped // as otlptracegrpc's after Stop
	}
	if c.err != nil {
		return c.err
	}
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rss})
	if err != nil {
		return err
	}
	c.requests = append(c.requests, b)
	return nil
}

func (c *captureClient) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.requests
	c.requests = nil
	return r
}

var (
	traceA = trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	traceB = trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	spanA  = trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	spanB  = trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	spanC  = trace.SpanID{8, 7, 6, 5, 4, 3, 2, 1}
)

func mustTraceState(t testing.TB, s string) trace.TraceState {
	t.Helper()
	ts, err := trace.ParseTraceState(s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func spanContext(tid trace.TraceID, sid trace.SpanID, flags trace.TraceFlags, ts trace.TraceState, remote bool) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, TraceState: ts, Remote: remote})
}

// allValues is an attribute of every value type, with their zero and empty values.
func allValues() []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.Bool("bool.true", true),
		attribute.Bool("bool.false", false),
		attribute.Int64("int", -42),
		attribute.Int64("int.zero", 0),
		attribute.Int64("int.max", math.MaxInt64),
		attribute.Int("int.min", math.MinInt64),
		attribute.Float64("float", 3.25),
		attribute.Float64("float.zero", 0),
		attribute.Float64("float.negzero", math.Copysign(0, -1)),
		attribute.Float64("float.inf", math.Inf(-1)),
		attribute.String("string", "héllo"),
		attribute.String("string.empty", ""),
		attribute.String("", "empty key"),
		attribute.BoolSlice("bools", []bool{true, false, true}),
		attribute.BoolSlice("bools.empty", []bool{}),
		attribute.Int64Slice("ints", []int64{0, 1, -1, math.MaxInt64}),
		attribute.IntSlice("ints.empty", nil),
		attribute.Float64Slice("floats", []float64{0, 1.5, -2}),
		attribute.Float64Slice("floats.empty", nil),
		attribute.StringSlice("strings", []string{"a", "", "ccc"}),
		attribute.StringSlice("strings.empty", []string{}),
		attribute.StringSlice("strings.many", []string{"1", "2", "3", "4", "5", "6"}),
		attribute.ByteSlice("bytes", []byte{0, 1, 0xff}),
		attribute.ByteSlice("bytes.empty", nil),
		attribute.Slice("slice", attribute.StringValue("x"), attribute.IntValue(7), attribute.BoolSliceValue([]bool{false}),
			attribute.SliceValue(), attribute.MapValue(attribute.String("k", "v")), attribute.Value{}),
		attribute.Slice("slice.empty"),
		attribute.Map("map", attribute.String("b", "2"), attribute.Int("a", 1), attribute.Map("nested", attribute.Bool("x", false))),
		attribute.Map("map.empty"),
		{Key: "empty.value"}, // an EMPTY value
	}
}

var (
	t0     = time.Date(2026, 12, 4, 12, 0, 0, 123456789, time.UTC)
	resOne = resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "groupgate"), attribute.String("service.version", "1.2.3"), attribute.Int("pid", 4242))
	resTwo    = resource.NewSchemaless(attribute.String("service.name", "other"), attribute.StringSlice("hosts", []string{"a", "b"}))
	scopeGRPC = instrumentation.Scope{Name: "go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc", Version: "0.72.0"}
	scopeFull = instrumentation.Scope{Name: "policy", Version: "v9", SchemaURL: "https://example.com/schema",
		Attributes: attribute.NewSet(attribute.String("scope.attr", "x"), attribute.Int("n", 3))}
	scopeSchemaOnly = instrumentation.Scope{SchemaURL: "https://example.com/only-schema"}
)

// equivalenceCases are batches that exercise every field tracetransform writes (and leaves out).
func equivalenceCases(t testing.TB) []struct {
	name  string
	spans []sdktrace.ReadOnlySpan
} {
	ts := mustTraceState(t, "vendor=a1,other=b-2")
	stub := func(name string, mod func(*tracetest.SpanStub)) sdktrace.ReadOnlySpan {
		s := tracetest.SpanStub{
			Name:                 name,
			SpanContext:          spanContext(traceA, spanA, trace.FlagsSampled, trace.TraceState{}, false),
			SpanKind:             trace.SpanKindInternal,
			StartTime:            t0,
			EndTime:              t0.Add(1500 * time.Microsecond),
			Resource:             resOne,
			InstrumentationScope: scopeGRPC,
		}
		if mod != nil {
			mod(&s)
		}
		return s.Snapshot()
	}
	return []struct {
		name  string
		spans []sdktrace.ReadOnlySpan
	}{
		{"one span", []sdktrace.ReadOnlySpan{stub("one", nil)}},
		{"sdk spans", sdkSpans(t)},
		{"every attribute type", []sdktrace.ReadOnlySpan{stub("attrs", func(s *tracetest.SpanStub) {
			s.Attributes = allValues()
		})}},
		{"remote parent, trace state, flags", []sdktrace.ReadOnlySpan{
			stub("remote parent", func(s *tracetest.SpanStub) {
				s.SpanContext = spanContext(traceA, spanB, trace.FlagsSampled, ts, false)
				s.Parent = spanContext(traceA, spanA, trace.FlagsSampled, ts, true)
				s.SpanKind = trace.SpanKindServer
			}),
			stub("local parent, unsampled", func(s *tracetest.SpanStub) {
				s.SpanContext = spanContext(traceA, spanC, 0, trace.TraceState{}, false)
				s.Parent = spanContext(traceA, spanB, trace.FlagsSampled, ts, false)
			}),
			stub("all trace flags", func(s *tracetest.SpanStub) {
				s.SpanContext = spanContext(traceB, spanC, 0xff, mustTraceState(t, "k=v"), true)
			}),
			stub("invalid ids", func(s *tracetest.SpanStub) {
				s.SpanContext = trace.SpanContext{}
				s.Parent = spanContext(traceB, trace.SpanID{}, 0, trace.TraceState{}, true) // remote, no valid parent id
			}),
		}},
		{"kinds", func() []sdktrace.ReadOnlySpan {
			var spans []sdktrace.ReadOnlySpan
			for _, k := range []trace.SpanKind{trace.SpanKindUnspecified, trace.SpanKindInternal, trace.SpanKindServer,
				trace.SpanKindClient, trace.SpanKindProducer, trace.SpanKindConsumer, trace.SpanKind(42)} {
				spans = append(spans, stub(fmt.Sprint("kind ", int(k)), func(s *tracetest.SpanStub) { s.SpanKind = k }))
			}
			return spans
		}()},
		{"statuses", func() []sdktrace.ReadOnlySpan {
			var spans []sdktrace.ReadOnlySpan
			for _, st := range []sdktrace.Status{{}, {Code: codes.Unset, Description: "unset with message"}, {Code: codes.Ok},
				{Code: codes.Ok, Description: "ok"}, {Code: codes.Error}, {Code: codes.Error, Description: "permission denied"},
				{Code: codes.Code(9), Description: "unknown code"}} {
				spans = append(spans, stub("status "+st.Code.String(), func(s *tracetest.SpanStub) { s.Status = st }))
			}
			return spans
		}()},
		{"events, links, dropped counts", []sdktrace.ReadOnlySpan{stub("everything", func(s *tracetest.SpanStub) {
			s.Attributes = []attribute.KeyValue{attribute.String("a", "b")}
			s.DroppedAttributes = 3
			s.Events = []sdktrace.Event{
				{Name: "first", Time: t0.Add(time.Millisecond), Attributes: []attribute.KeyValue{attribute.Int("n", 1)}, DroppedAttributeCount: 2},
				{Name: "", Time: time.Time{}},                                   // no name, the zero time
				{Name: "before epoch", Time: time.Unix(-5, 0)},                  // clamped to 0
				{Name: "attrs", Time: t0, Attributes: allValues()[:12]},         // > 127 bytes
				{Name: "negative dropped", Time: t0, DroppedAttributeCount: -1}, // clamped to 0
			}
			s.DroppedEvents = 1
			s.Links = []sdktrace.Link{
				{SpanContext: spanContext(traceB, spanB, trace.FlagsSampled, ts, true), Attributes: []attribute.KeyValue{attribute.Bool("l", true)}, DroppedAttributeCount: 5},
				{SpanContext: spanContext(traceB, spanC, 0, trace.TraceState{}, false)},
				{}, // an invalid context
			}
			s.DroppedLinks = math.MaxInt64 // clamped to MaxUint32
		})}},
		{"empty and zero fields", []sdktrace.ReadOnlySpan{
			stub("", func(s *tracetest.SpanStub) {
				s.StartTime, s.EndTime = time.Time{}, time.Unix(0, 0)
				s.SpanKind = trace.SpanKindUnspecified
				s.DroppedAttributes, s.DroppedEvents, s.DroppedLinks = -1, 0, -7
			}),
			stub("no attributes", func(s *tracetest.SpanStub) { s.Attributes = []attribute.KeyValue{} }),
		}},
		{"resources and scopes interleaved", []sdktrace.ReadOnlySpan{
			stub("1", nil),
			stub("2", func(s *tracetest.SpanStub) { s.Resource = resTwo }),
			stub("3", func(s *tracetest.SpanStub) { s.InstrumentationScope = scopeFull }),
			stub("4", func(s *tracetest.SpanStub) { s.Resource, s.InstrumentationScope = resTwo, scopeFull }),
			stub("5", nil),
			stub("6", func(s *tracetest.SpanStub) { s.InstrumentationScope = scopeSchemaOnly }),
			stub("7", func(s *tracetest.SpanStub) { s.InstrumentationScope = instrumentation.Scope{} }),
			stub("8", func(s *tracetest.SpanStub) { s.Resource = resTwo }),
			stub("9", func(s *tracetest.SpanStub) { s.InstrumentationScope = scopeFull }),
			stub("10", func(s *tracetest.SpanStub) {
				// An equal attribute set in another *Resource, with another schema URL: the first span's resource wins.
				s.Resource = resource.NewWithAttributes("https://example.com/other-schema", resOne.Attributes()...)
			}),
		}},
		{"nil, empty and schemaless resources", []sdktrace.ReadOnlySpan{
			stub("nil resource", func(s *tracetest.SpanStub) { s.Resource = nil }),
			stub("empty resource", func(s *tracetest.SpanStub) { s.Resource = resource.Empty() }),
			stub("empty resource with a schema", func(s *tracetest.SpanStub) {
				s.Resource = resource.NewWithAttributes("https://example.com/s")
				s.InstrumentationScope = scopeFull
			}),
		}},
		{"empty resource first", []sdktrace.ReadOnlySpan{
			stub("empty resource with a schema", func(s *tracetest.SpanStub) { s.Resource = resource.NewWithAttributes("https://example.com/s") }),
			stub("nil resource", func(s *tracetest.SpanStub) { s.Resource = nil }),
		}},
		{"nil spans", []sdktrace.ReadOnlySpan{nil, stub("between nils", nil), nil}},
		{"many scopes", func() []sdktrace.ReadOnlySpan {
			// More scope groups than are searched linearly, interleaved, across two resources.
			var spans []sdktrace.ReadOnlySpan
			for i := range 40 {
				spans = append(spans, stub(fmt.Sprint("span ", i), func(s *tracetest.SpanStub) {
					s.InstrumentationScope = instrumentation.Scope{Name: fmt.Sprint("scope ", i%13)}
					if i%3 == 0 {
						s.Resource = resTwo
					}
				}))
			}
			return spans
		}()},
		{"sizes around the reserved lengths", []sdktrace.ReadOnlySpan{
			stub(strings.Repeat("n", 100), func(s *tracetest.SpanStub) { // span of ~127-130 bytes
				s.Attributes = []attribute.KeyValue{attribute.String("k", strings.Repeat("v", 120))} // key-value > 127
			}),
			stub("big span", func(s *tracetest.SpanStub) {
				s.Attributes = []attribute.KeyValue{attribute.String("k", strings.Repeat("v", 20000))} // span > 16383
			}),
			stub("huge span", func(s *tracetest.SpanStub) {
				s.Attributes = []attribute.KeyValue{attribute.String("k", strings.Repeat("v", 3<<20))} // scope > 2 MiB
			}),
		}},
	}
}

// sdkSpans are spans the SDK built, with limits that make it drop attributes, events and links.
func sdkSpans(t testing.TB) []sdktrace.ReadOnlySpan {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(resOne),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{AttributeValueLengthLimit: -1, AttributeCountLimit: 4, EventCountLimit: 2,
			LinkCountLimit: 1, AttributePerEventCountLimit: 1, AttributePerLinkCountLimit: 1}))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	grpcTracer := tp.Tracer(scopeGRPC.Name, trace.WithInstrumentationVersion(scopeGRPC.Version))
	policyTracer := tp.Tracer("policy", trace.WithInstrumentationVersion("v9"), trace.WithSchemaURL("https://example.com/schema"),
		trace.WithInstrumentationAttributes(attribute.String("scope.attr", "x")))
	parent := spanContext(traceA, spanA, trace.FlagsSampled, mustTraceState(t, "gg=1"), true)
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	ctx, server := grpcTracer.Start(ctx, "groupgate.v1.DecisionService/CanAddMember", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("rpc.system.name", "grpc")))
	_, child := policyTracer.Start(ctx, "policy.can_add_member", trace.WithLinks(
		trace.Link{SpanContext: spanContext(traceB, spanB, 0, trace.TraceState{}, false), Attributes: []attribute.KeyValue{attribute.Int("a", 1), attribute.Int("b", 2)}},
		trace.Link{SpanContext: spanContext(traceB, spanC, trace.FlagsSampled, trace.TraceState{}, true)}))
	child.SetAttributes(allValues()...)
	child.AddEvent("e1", trace.WithAttributes(attribute.String("x", "y"), attribute.String("z", "w")))
	child.AddEvent("e2")
	child.AddEvent("e3")
	child.RecordError(errors.New("boom"))
	child.SetStatus(codes.Error, "denied")
	child.End()
	server.SetStatus(codes.Ok, "ignored by the SDK for Ok")
	server.End()
	_, root := grpcTracer.Start(context.Background(), "local root")
	root.End()
	return rec.Ended()
}

// normalized decodes an ExportTraceServiceRequest and sorts its ResourceSpans by their resource: tracetransform
// takes them out of a map, in no order.
func normalized(t testing.TB, b []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	key := func(rs *tracepb.ResourceSpans) string {
		k, err := proto.MarshalOptions{Deterministic: true}.Marshal(&tracepb.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl})
		if err != nil {
			t.Fatal(err)
		}
		return string(k)
	}
	slices.SortStableFunc(req.ResourceSpans, func(a, b *tracepb.ResourceSpans) int { return strings.Compare(key(a), key(b)) })
	return &req
}

func requireEquivalent(t *testing.T, want, got []byte) {
	t.Helper()
	w, g := normalized(t, want), normalized(t, got)
	if !proto.Equal(w, g) {
		t.Fatalf("spanexport's request differs from otlptrace's\notlptrace:  %s\nspanexport: %s", protojson.Format(w), protojson.Format(g))
	}
	// With a single resource there is no order to normalize, and the fields are written in protobuf-go's order:
	// the bytes themselves are the same.
	if len(w.ResourceSpans) == 1 && !bytes.Equal(want, got) {
		t.Errorf("one resource: the encodings are equal as messages but differ in bytes\notlptrace:  %x\nspanexport: %x", want, got)
	}
}

func TestExportSpansEncodesWhatOTLPTraceSends(t *testing.T) {
	ctx := context.Background()
	cases := equivalenceCases(t)
	// One exporter of each for all the cases, one after another: the buffers are reused from batch to batch, and
	// each request must still be its own batch's.
	official := &captureClient{}
	officialExp, err := otlptrace.New(ctx, official)
	if err != nil {
		t.Fatal(err)
	}
	mine := &captureClient{}
	exp, err := New(ctx, mine)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := officialExp.ExportSpans(ctx, tc.spans); err != nil {
				t.Fatal(err)
			}
			if err := exp.ExportSpans(ctx, tc.spans); err != nil {
				t.Fatal(err)
			}
			want, got := official.take(), mine.take()
			if len(want) != 1 || len(got) != 1 {
				t.Fatalf("requests: otlptrace %d, spanexport %d; want 1 each", len(want), len(got))
			}
			requireEquivalent(t, want[0], got[0])
		})
	}
	t.Run("all batches, in turn, twice", func(t *testing.T) {
		// The requests of a run of exports, compared at the end: a later batch must not have written over an
		// earlier one's bytes (the capture client copies, as a real client's marshalling does).
		for range 2 {
			for _, tc := range cases {
				if err := officialExp.ExportSpans(ctx, tc.spans); err != nil {
					t.Fatal(err)
				}
				if err := exp.ExportSpans(ctx, tc.spans); err != nil {
					t.Fatal(err)
				}
			}
		}
		want, got := official.take(), mine.take()
		if len(want) != len(got) {
			t.Fatalf("requests: otlptrace %d, spanexport %d", len(want), len(got))
		}
		for i := range want {
			requireEquivalent(t, want[i], got[i])
		}
	})
}

func TestExportSpansConcurrently(t *testing.T) {
	ctx := context.Background()
	cases := equivalenceCases(t)
	want := make([][]byte, len(cases))
	for i, tc := range cases {
		c := &captureClient{}
		exp, err := otlptrace.New(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := exp.ExportSpans(ctx, tc.spans); err != nil {
			t.Fatal(err)
		}
		want[i] = c.take()[0]
	}
	// One exporter, one client per case (to tell the requests apart), exports from several goroutines at once.
	clients := make([]*captureClient, len(cases))
	for i := range clients {
		clients[i] = &captureClient{}
	}
	exp := NewExporter(clientByBatch{cases: cases, clients: clients})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range cases {
				i := (i + g) % len(cases)
				if err := exp.ExportSpans(ctx, cases[i].spans); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i, c := range clients {
		got := c.take()
		if len(got) != 8 {
			t.Fatalf("%s: %d requests, want 8", cases[i].name, len(got))
		}
		for _, g := range got {
			requireEquivalent(t, want[i], g)
		}
	}
}

// clientByBatch sends each batch to the capture client of the case whose first span's name it carries.
type clientByBatch struct {
	cases []struct {
		name  string
		spans []sdktrace.ReadOnlySpan
	}
	clients []*captureClient
}

func (clientByBatch) Start(context.Context) error { return nil }
func (clientByBatch) Stop(context.Context) error  { return nil }
func (c clientByBatch) UploadTraces(ctx context.Context, rss []*tracepb.ResourceSpans) error {
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: rss})
	if err != nil {
		return err
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		return err
	}
	// The batches are told apart by their number of spans and first span's name, unique among the cases.
	var names []string
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				names = append(names, s.Name)
			}
		}
	}
	for i, tc := range c.cases {
		if batchID(tc.spans) == fmt.Sprint(len(names), slices.Sorted(slices.Values(names))) {
			return c.clients[i].UploadTraces(ctx, rss)
		}
	}
	return fmt.Errorf("no case has the spans %q", names)
}

func batchID(spans []sdktrace.ReadOnlySpan) string {
	var names []string
	for _, s := range spans {
		if s != nil {
			names = append(names, s.Name())
		}
	}
	return fmt.Sprint(len(names), slices.Sorted(slices.Values(names)))
}

func TestBatchIDsAreUnique(t *testing.T) {
	seen := map[string]string{}
	for _, tc := range equivalenceCases(t) {
		id := batchID(tc.spans)
		if other, ok := seen[id]; ok {
			t.Fatalf("cases %q and %q have the same spans' names", other, tc.name)
		}
		seen[id] = tc.name
	}
}

// groupgateSpans are n/2 requests' spans as groupgate traces a decision: otelgrpc's server span and the policy
// engine's child span, with their attributes.
func groupgateSpans(tb testing.TB, n int) []sdktrace.ReadOnlySpan {
	rec := tracetest.NewSpanRecorder()
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "groupgate")))
	if err != nil {
		tb.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(res))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	grpcTracer := tp.Tracer(scopeGRPC.Name, trace.WithInstrumentationVersion(scopeGRPC.Version))
	policyTracer := tp.Tracer("github.com/groupgate/groupgate/policy")
	for i := range n / 2 {
		ctx, server := grpcTracer.Start(context.Background(), "groupgate.v1.DecisionService/CanAddMember",
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("rpc.system.name", "grpc"),
				attribute.String("rpc.method", "groupgate.v1.DecisionService/CanAddMember")))
		_, child := policyTracer.Start(ctx, "policy.can_add_member")
		child.SetAttributes(
			attribute.String("groupgate.tenant", "contoso"),
			attribute.Int64("groupgate.revision", int64(1000+i)),
			attribute.Int("groupgate.rule_count", 2),
			attribute.Int("groupgate.depth_reached", 3),
			attribute.StringSlice("groupgate.rules", []string{"no-guests-in-finance", "max-owners"}),
			attribute.String("groupgate.verdict", "allow"),
			attribute.String("groupgate.decision_id", fmt.Sprintf("0b9e1c6e-2f4d-4a7b-9c1e-%012d", i)))
		child.End()
		server.SetAttributes(attribute.String("rpc.response.status_code", "OK"))
		server.End()
	}
	return rec.Ended()
}

// TestOverRealClients exports through the OTLP clients groupgate uses, to the in-process receiver: the spans
// (hidden from the clients as unknown fields) arrive, decoded by a collector's code as any other request.
func TestOverRealClients(t *testing.T) {
	ctx := context.Background()
	spans := groupgateSpans(t, 6)
	clients := []struct {
		name string
		new  func(t *testing.T) (otlptrace.Client, *otlptest.Receiver)
	}{
		{"http", func(t *testing.T) (otlptrace.Client, *otlptest.Receiver) {
			r := &otlptest.Receiver{}
			srv := httptest.NewServer(r)
			t.Cleanup(srv.Close)
			return otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(srv.URL + "/v1/traces")), r
		}},
		{"http gzip", func(t *testing.T) (otlptrace.Client, *otlptest.Receiver) {
			r := &otlptest.Receiver{}
			srv := httptest.NewServer(r)
			t.Cleanup(srv.Close)
			return otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"),
				otlptracehttp.WithCompression(otlptracehttp.GzipCompression)), r
		}},
		{"grpc", func(t *testing.T) (otlptrace.Client, *otlptest.Receiver) {
			r := otlptest.Start(t)
			return otlptracegrpc.NewClient(otlptracegrpc.WithEndpoint(r.Endpoint), otlptracegrpc.WithInsecure()), r
		}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			client, r := c.new(t)
			exp, err := New(ctx, client)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second batch over buffers the first one used
				if err := exp.ExportSpans(ctx, spans); err != nil {
					t.Fatal(err)
				}
			}
			if err := exp.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			got := r.Spans()
			if len(got) != 2*len(spans) {
				t.Fatalf("received %d spans, want %d", len(got), 2*len(spans))
			}
			// The spans arrive grouped by scope: they are found by their ids.
			byID := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range spans {
				byID[s.SpanContext().TraceID().String()+"/"+s.SpanContext().SpanID().String()] = s
			}
			received := map[string]int{}
			for i, s := range got {
				id := s.TraceID + "/" + s.SpanID
				received[id]++
				want, ok := byID[id]
				if !ok {
					t.Fatalf("span %d: %+v was not sent", i, s)
				}
				parent := ""
				if want.Parent().SpanID().IsValid() {
					parent = want.Parent().SpanID().String()
				}
				if s.Name != want.Name() || s.ParentSpanID != parent || s.Service != "groupgate" {
					t.Errorf("span %d: %+v, want %s, parent %q, of groupgate", i, s, want.Name(), parent)
				}
				for _, kv := range want.Attributes() {
					if v := s.Attributes[string(kv.Key)]; kv.Value.Type() != attribute.STRINGSLICE && v != kv.Value.String() {
						t.Errorf("span %d (%s): attribute %s = %q, want %q", i, s.Name, kv.Key, v, kv.Value.String())
					}
				}
				if len(s.Attributes) != len(want.Attributes()) {
					t.Errorf("span %d (%s): attributes %v, want %v", i, s.Name, s.Attributes, want.Attributes())
				}
			}
			for id, n := range received {
				if n != 2 {
					t.Errorf("span %s received %d times, want 2", id, n)
				}
			}
			rules := ""
			for _, s := range got {
				if s.Name == "policy.can_add_member" {
					rules = s.Attributes["groupgate.rules"]
				}
			}
			if !strings.Contains(rules, "no-guests-in-finance") || !strings.Contains(rules, "max-owners") {
				t.Errorf("groupgate.rules = %q", rules)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	spans := groupgateSpans(t, 2)

	t.Run("start once, stop once", func(t *testing.T) {
		c := &captureClient{}
		exp, err := New(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := exp.Start(ctx); !errors.Is(err, errAlreadyStarted) {
			t.Errorf("second Start: %v, want %v", err, errAlreadyStarted)
		}
		for range 2 {
			if err := exp.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if c.starts != 1 || c.stops != 1 {
			t.Errorf("client started %d times, stopped %d times; want 1, 1", c.starts, c.stops)
		}
	})

	t.Run("not started: not stopped", func(t *testing.T) {
		c := &captureClient{}
		if err := NewExporter(c).Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if c.starts != 0 || c.stops != 0 {
			t.Errorf("client started %d times, stopped %d times; want 0, 0", c.starts, c.stops)
		}
	})

	t.Run("nothing to send", func(t *testing.T) {
		c := &captureClient{}
		exp, err := New(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, batch := range [][]sdktrace.ReadOnlySpan{nil, {}, {nil, nil}} {
			if err := exp.ExportSpans(ctx, batch); err != nil {
				t.Errorf("ExportSpans(%d spans): %v", len(batch), err)
			}
		}
		if n := len(c.take()); n != 0 {
			t.Errorf("%d requests for empty batches", n)
		}
	})

	t.Run("client errors wrapped as otlptrace's", func(t *testing.T) {
		boom := errors.New("boom")
		official, err := otlptrace.New(ctx, &captureClient{err: boom})
		if err != nil {
			t.Fatal(err)
		}
		exp, err := New(ctx, &captureClient{err: boom})
		if err != nil {
			t.Fatal(err)
		}
		want, got := official.ExportSpans(ctx, spans), exp.ExportSpans(ctx, spans)
		if !errors.Is(got, boom) || want == nil || got.Error() != want.Error() {
			t.Errorf("ExportSpans: %v, want %v (wrapping %v)", got, want, boom)
		}
		// The failed batch's buffers serve the next one.
		exp.client.(*captureClient).err = nil
		if err := exp.ExportSpans(ctx, spans); err != nil {
			t.Fatal(err)
		}
	})

	// After Shutdown, the exporters hand the batch to the stopped client as otlptrace's does, and say what it says.
	// Both clients of a case send to the same receiver, so that their errors' texts (which name it) compare.
	for _, c := range []struct {
		name    string
		clients func(t *testing.T) func() otlptrace.Client
	}{
		{"after shutdown, capture client", func(*testing.T) func() otlptrace.Client {
			return func() otlptrace.Client { return &captureClient{} }
		}},
		{"after shutdown, http client", func(t *testing.T) func() otlptrace.Client {
			srv := httptest.NewServer(&otlptest.Receiver{})
			t.Cleanup(srv.Close)
			return func() otlptrace.Client {
				return otlptracehttp.NewClient(otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{}))
			}
		}},
		{"after shutdown, grpc client", func(t *testing.T) func() otlptrace.Client {
			r := otlptest.Start(t)
			return func() otlptrace.Client {
				return otlptracegrpc.NewClient(otlptracegrpc.WithEndpoint(r.Endpoint), otlptracegrpc.WithInsecure())
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			newClient := c.clients(t)
			official, err := otlptrace.New(ctx, newClient())
			if err != nil {
				t.Fatal(err)
			}
			exp, err := New(ctx, newClient())
			if err != nil {
				t.Fatal(err)
			}
			if err := official.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if err := exp.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			want, got := official.ExportSpans(ctx, spans), exp.ExportSpans(ctx, spans)
			// The HTTP client's error is its stopped context's, noticed before or during the Post, as it happens.
			same := func(want, got error) bool {
				if want == nil || got == nil {
					return want == got
				}
				if errors.Is(want, context.Canceled) {
					return errors.Is(got, context.Canceled) && strings.HasPrefix(got.Error(), "traces export: ")
				}
				return got.Error() == want.Error()
			}
			if !same(want, got) {
				t.Errorf("ExportSpans after Shutdown: %v; otlptrace's: %v", got, want)
			}
			t.Logf("ExportSpans after Shutdown: %v", got)
		})
	}
}

// discardClient marshals each request as the OTLP clients do, and sends nothing. With reuse, it marshals into a
// buffer of its own, so that allocs/op counts the exporter's allocations alone.
type discardClient struct {
	reuse bool
	buf   []byte
	bytes int
}

func (*discardClient) Start(context.Context) error { return nil }
func (*discardClient) Stop(context.Context) error  { return nil }
func (c *discardClient) UploadTraces(_ context.Context, rss []*tracepb.ResourceSpans) error {
	req := coltracepb.ExportTraceServiceRequest{ResourceSpans: rss}
	var err error
	if c.reuse {
		c.buf, err = proto.MarshalOptions{}.MarshalAppend(c.buf[:0], &req)
	} else {
		c.buf, err = proto.Marshal(&req)
	}
	c.bytes = len(c.buf)
	return err
}

// BenchmarkExportSpans exports a batch of 512 of groupgate's spans (256 decisions), the batch span processor's
// default batch, with otlptrace's exporter and with this one. "marshal" is a client that marshals the request as
// the real ones do (proto.Marshal, a new buffer); "marshal-reuse" marshals into a buffer it keeps, so that its
// allocs/op are the exporter's alone.
func BenchmarkExportSpans(b *testing.B) {
	ctx := context.Background()
	spans := groupgateSpans(b, 512)
	exporters := []struct {
		name string
		new  func(otlptrace.Client) sdktrace.SpanExporter
	}{
		{"otlptrace", func(c otlptrace.Client) sdktrace.SpanExporter { return otlptrace.NewUnstarted(c) }},
		{"spanexport", func(c otlptrace.Client) sdktrace.SpanExporter { return NewExporter(c) }},
	}
	for _, reuse := range []bool{false, true} {
		for _, e := range exporters {
			name := e.name + "/marshal"
			if reuse {
				name += "-reuse"
			}
			b.Run(name, func(b *testing.B) {
				client := &discardClient{reuse: reuse}
				exp := e.new(client)
				b.ReportAllocs()
				for b.Loop() {
					if err := exp.ExportSpans(ctx, spans); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(spans)), "ns/span")
				b.ReportMetric(float64(client.bytes), "request-bytes")
			})
		}
	}
}

// nopClient takes requests and does nothing with them.
type nopClient struct{}

func (nopClient) Start(context.Context) error                                  { return nil }
func (nopClient) Stop(context.Context) error                                   { return nil }
func (nopClient) UploadTraces(context.Context, []*tracepb.ResourceSpans) error { return nil }

// TestExportSpansAllocatesNothing: once its buffers have grown to the batch, the exporter allocates nothing to
// encode one, whatever the number of spans (the client's marshalling aside), but the copy that attribute.Value's
// accessors make of a slice attribute's elements (AsStringSlice…: groupgate.rules on a decision's span).
func TestExportSpansAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	exp := NewExporter(nopClient{})
	for _, tc := range []struct {
		name  string
		spans []sdktrace.ReadOnlySpan
	}{
		{"groupgate's spans", groupgateSpans(t, 512)},
		{"every field, every attribute type but Slice, Map and ByteSlice values", []sdktrace.ReadOnlySpan{tracetest.SpanStub{
			Name: "attrs", Resource: resOne, InstrumentationScope: scopeFull,
			SpanContext: spanContext(traceA, spanA, trace.FlagsSampled, mustTraceState(t, "a=1,b=2"), false),
			Attributes: slices.DeleteFunc(allValues(), func(kv attribute.KeyValue) bool {
				// The copying accessors of these allocate: AsSlice, AsMap, AsByteSlice.
				return kv.Value.Type() == attribute.SLICE || kv.Value.Type() == attribute.MAP || kv.Value.Type() == attribute.BYTESLICE
			}),
			Events: []sdktrace.Event{{Name: "e", Attributes: []attribute.KeyValue{attribute.Int("n", 1)}}},
			Links:  []sdktrace.Link{{SpanContext: spanContext(traceB, spanB, trace.FlagsSampled, trace.TraceState{}, true)}},
		}.Snapshot()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// AllocsPerRun counts the whole process's allocations, and the servers and clients of the tests
			// before may still be winding down in the background: many runs, so that their few allocations
			// round down to nothing, while one of the exporter's per export would not.
			if n := testing.AllocsPerRun(200, func() {
				if err := exp.ExportSpans(ctx, tc.spans); err != nil {
					t.Fatal(err)
				}
			}); n > float64(sliceAttributes(tc.spans)) {
				t.Errorf("%v allocations per export of %d spans, want at most %d (their slice attributes)", n, len(tc.spans), sliceAttributes(tc.spans))
			}
		})
	}
}

// sliceAttributes counts the slice-valued attributes of spans, their events and links.
func sliceAttributes(spans []sdktrace.ReadOnlySpan) int {
	n := 0
	count := func(attrs []attribute.KeyValue) {
		for _, kv := range attrs {
			switch kv.Value.Type() {
			case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE:
				n++
			}
		}
	}
	for _, s := range spans {
		count(s.Attributes())
		for _, e := range s.Events() {
			count(e.Attributes)
		}
		for _, l := range s.Links() {
			count(l.Attributes)
		}
	}
	return n
}
