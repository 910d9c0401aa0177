package server

import (
	"context"
	"strings"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/policy"
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

// statsHandler makes the server span of network calls.
func (t *tracing) statsHandler(tp trace.TracerProvider) stats.Handler {
	return otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(t.propagators),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()))
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

// child starts a child span of the call's span when that one is recorded; otherwise it returns ctx and a nil
// span, and costs nothing more (tracing off, or this call not sampled).
//
// The child starts from a context holding only its parent: the call's context is a chain of a dozen values deep
// (gRPC's, the interceptors'), and Start and the parent-based sampler each look the parent up in it again (the
// sampler's look-ups were 5% of groupgate bench's CPU with every call traced, the server spans' included). The
// child's callers use the returned span only to end it.
func (s *Server) child(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if s.tracing == nil {
		return ctx, nil
	}
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, nil
	}
	_, span := s.tracing.tracer.Start(trace.ContextWithSpan(context.Background(), parent), name, trace.WithAttributes(attrs...))
	return ctx, span
}

// evaluate runs one policy evaluation on dir, in a "policy.NAME" span when the call is traced: the tenant, the
// revision, and what the rules found (violations, warnings, and their codes).
func evaluate[Q, R any](ctx context.Context, s *Server, name string, dir *directory.Directory, q Q, fn func(*directory.Directory, Q) (R, error)) (R, error) {
	if s.tracing == nil { // no span name or attributes built on every decision of an untraced server
		return fn(dir, q)
	}
	_, span := s.child(ctx, "policy."+name, attribute.String("groupgate.tenant", dir.TenantID()), attribute.Int64("groupgate.revision", dir.Revision()))
	r, err := fn(dir, q)
	if span == nil {
		return r, err
	}
	var decisions []*pb.Decision
	switch v := any(r).(type) {
	case *pb.Decision:
		decisions = append(decisions, v)
	case []policy.StepResult:
		for _, st := range v {
			if st.Decision != nil {
				decisions = append(decisions, st.Decision)
			}
		}
	}
	var rules []string
	violations, warnings := 0, 0
	for _, d := range decisions {
		violations += len(d.GetViolations())
		warnings += len(d.GetWarnings())
		for _, v := range d.GetViolations() {
			rules = append(rules, v.GetRule().String())
		}
	}
	span.SetAttributes(attribute.Int("groupgate.rule_count", violations+warnings), attribute.Int("groupgate.violations", violations),
		attribute.Int("groupgate.warnings", warnings), attribute.StringSlice("groupgate.rules", rules))
	if len(decisions) == 1 {
		span.SetAttributes(attribute.String("groupgate.verdict", decisions[0].GetVerdict().String()))
	}
	if err != nil {
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
	return r, err
}

// resolverSpan is a child span for a walk of the resolver; end it with the depth the walk reached.
func (s *Server) resolverSpan(ctx context.Context, name string, dir *directory.Directory) (context.Context, func(depth int)) {
	if s.tracing == nil {
		return ctx, func(int) {}
	}
	ctx, span := s.child(ctx, "resolver."+name, attribute.String("groupgate.tenant", dir.TenantID()), attribute.Int64("groupgate.revision", dir.Revision()))
	if span == nil {
		return ctx, func(int) {}
	}
	return ctx, func(depth int) {
		span.SetAttributes(attribute.Int("groupgate.depth_reached", depth))
		span.End()
	}
}
