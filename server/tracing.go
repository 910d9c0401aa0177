package server

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/policy"
	"github.com/groupgate/groupgate/resolver"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// tracerName names the spans this package makes.
const tracerName = "github.com/groupgate/groupgate/server"

// tracing is how the server makes spans (SPEC §14), when Config.TracerProvider is set. A call over the network
// gets its server span from otelgrpc's stats handler, which continues the trace in the call's traceparent
// metadata. The HTTP gateway's calls never reach a stats handler (server.Invoke and NewStream run the interceptor
// chain in-process), so for them the outermost interceptor makes the same span from the same metadata (the
// gateway forwards the HTTP request's traceparent header into it). Inside the span, the policy evaluation and the
// resolver's walks get child spans.
type tracing struct {
	tracer      trace.Tracer
	propagators propagation.TextMapPropagator
}

func newTracing(tp trace.TracerProvider) *tracing {
	if tp == nil {
		return nil
	}
	return &tracing{tracer: tp.Tracer(tracerName), propagators: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
}

// statsHandler makes the server span of network calls: otelgrpc's, told only of each call's end.
func (t *tracing) statsHandler(tp trace.TracerProvider) stats.Handler {
	return endOnly{otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(t.propagators),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))}
}

// endOnly passes a stats handler the end of each call (status, span end), and none of the other events gRPC
// reports six times a call (headers, payloads, trailers). otelgrpc's server handler does nothing with those but
// find the span in the context again, except for the incoming header, where it formats and parses the listening
// address into server.address and server.port attributes: the same two on every span of the process, which cost
// a SetAttributes, four attributes to copy, encode and export, and 1-1.5% of groupgate bench's CPU with every
// call traced.
type endOnly struct{ stats.Handler }

func (h endOnly) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	if _, ok := rs.(*stats.End); ok {
		h.Handler.HandleRPC(ctx, rs)
	}
}

func inProcess(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	_, in := p.Addr.(InProcessAddr)
	return in
}

// startInProcess starts the server span of an in-process call, as otelgrpc names and describes it.
func (t *tracing) startInProcess(ctx context.Context, fullMethod string) (context.Context, trace.Span) {
	md, _ := metadata.FromIncomingContext(ctx)
	ctx = t.propagators.Extract(ctx, metadataCarrier(md))
	name := strings.TrimPrefix(fullMethod, "/")
	service, method, _ := strings.Cut(name, "/")
	return t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", service), attribute.String("rpc.method", method),
		attribute.String("groupgate.transport", "http-gateway")))
}

func endSpan(span trace.Span, err error) {
	st, _ := status.FromError(err)
	span.SetAttributes(attribute.Int64("rpc.grpc.status_code", int64(st.Code())))
	if err != nil {
		span.SetStatus(otelcodes.Error, st.Message())
	}
	span.End()
}

func (t *tracing) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !inProcess(ctx) {
		return handler(ctx, req)
	}
	ctx, span := t.startInProcess(ctx, info.FullMethod)
	resp, err := handler(ctx, req)
	endSpan(span, err)
	return resp, err
}

func (t *tracing) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !inProcess(ss.Context()) {
		return handler(srv, ss)
	}
	ctx, span := t.startInProcess(ss.Context(), info.FullMethod)
	err := handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	endSpan(span, err)
	return err
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// metadataCarrier reads gRPC metadata for a propagator.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// tracedParent is a context holding only the call's span, when that span is recorded; ok is false otherwise
// (tracing off, or this call not sampled), and then a child costs nothing more.
//
// The context holds only the parent: the call's context is a chain of a dozen values deep (gRPC's, the
// interceptors'), and Start and the parent-based sampler each look the parent up in it again (the sampler's
// look-ups were 5% of groupgate bench's CPU with every call traced, the server spans' included).
func (s *Server) tracedParent(ctx context.Context) (context.Context, bool) {
	if s.tracing == nil {
		return nil, false
	}
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return nil, false
	}
	return trace.ContextWithSpan(context.Background(), parent), true
}

// finishedChild records a child span of parent (tracedParent) for work that ran from start to now. The span is
// made after the work, with all its attributes in one SetAttributes: the SDK copies, deduplicates and limits the
// attributes of every Start and SetAttributes call, and one call instead of three per decision was measurable
// with every call traced; and attributes given to Start are copied twice more on the way (into the option and
// into the start config) than SetAttributes' (BenchmarkCanAddMemberInProcess/traced: 480 B and 2 allocations
// less a decision). Nothing runs inside these spans that makes spans of its own.
func (s *Server) finishedChild(parent context.Context, name string, start time.Time, err error, attrs ...attribute.KeyValue) {
	_, span := s.tracing.tracer.Start(parent, name, trace.WithTimestamp(start))
	span.SetAttributes(attrs...)
	if err != nil {
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
}

// policySpanNames are the names of the policy spans, made once rather than per decision.
var policySpanNames sync.Map // question name -> "policy." + name

func policySpanName(name string) string {
	if v, ok := policySpanNames.Load(name); ok {
		return v.(string)
	}
	v, _ := policySpanNames.LoadOrStore(name, "policy."+name)
	return v.(string)
}

// evaluate runs one policy evaluation on dir. When the call is traced, it runs on a probed engine and records a
// "policy.NAME" span: the tenant, the revision, the depth the resolver's walks reached (and how many walked or
// came from the cache), what the rules found (rule count and codes), and, for one decision, its verdict and
// decision id (which it assigns: the trace leads to the decision record, as the record's trace_id to the trace).
func evaluate[Q, R any](ctx context.Context, s *Server, name string, dir *directory.Directory, q Q, fn func(*policy.Engine, *directory.Directory, Q) (R, error)) (R, error) {
	parent, traced := s.tracedParent(ctx)
	if !traced { // no span name, probe or attributes built on a decision that is not traced
		return fn(s.engine, dir, q)
	}
	start := time.Now()
	var probe resolver.Probe
	r, err := fn(s.engine.Probed(&probe), dir, q)
	var one *pb.Decision
	var rules []string
	switch v := any(r).(type) {
	case *pb.Decision:
		if v != nil {
			one = v
			rules = appendRules(rules, v)
		}
	case []policy.StepResult:
		for _, st := range v {
			rules = appendRules(rules, st.Decision)
		}
	}
	count := len(rules)
	var buf [9]attribute.KeyValue
	attrs := append(buf[:0], attribute.String("groupgate.tenant", dir.TenantID()), attribute.Int64("groupgate.revision", dir.Revision()),
		attribute.Int("groupgate.rule_count", count), attribute.Int("groupgate.depth_reached", probe.Depth))
	if probe.CacheHits > 0 { // answers the walks did not have to make (their depth counts in depth_reached)
		attrs = append(attrs, attribute.Int("groupgate.resolver_cache_hits", probe.CacheHits))
	}
	if len(rules) > 0 {
		attrs = append(attrs, attribute.StringSlice("groupgate.rules", rules))
	}
	if one != nil {
		one.DecisionId = newDecisionID()
		attrs = append(attrs, attribute.String("groupgate.verdict", one.GetVerdict().String()), attribute.String("groupgate.decision_id", one.DecisionId))
	}
	s.finishedChild(parent, policySpanName(name), start, err, attrs...)
	return r, err
}

// appendRules appends the rule codes of d's violations and warnings.
func appendRules(rules []string, d *pb.Decision) []string {
	for _, v := range d.GetViolations() {
		rules = append(rules, v.GetRule().String())
	}
	for _, v := range d.GetWarnings() {
		rules = append(rules, v.GetRule().String())
	}
	return rules
}

// resolverSpan times a walk of the resolver for a "resolver.NAME" child span; end it with the depth the walk
// reached.
func (s *Server) resolverSpan(ctx context.Context, name string, dir *directory.Directory) func(depth int) {
	parent, traced := s.tracedParent(ctx)
	if !traced {
		return func(int) {}
	}
	start := time.Now()
	return func(depth int) {
		s.finishedChild(parent, "resolver."+name, start, nil, attribute.String("groupgate.tenant", dir.TenantID()),
			attribute.Int64("groupgate.revision", dir.Revision()), attribute.Int("groupgate.depth_reached", depth))
	}
}
