// Package server is the gRPC transport: the DecisionService and DirectoryService, health and reflection, the
// interceptor chain (logging, error mapping, panic recovery, request validation) and the mapping of errors to
// status codes. It decides nothing itself: it hands requests to policy and resolver on a directory from store.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/findings"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/policy"
	"github.com/groupgate/groupgate/resolver"
	"github.com/groupgate/groupgate/store"
	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Config assembles a server.
type Config struct {
	Store    store.Store
	Resolver *resolver.Resolver
	Logger   *slog.Logger
	// MaxWait bounds how long a request without a deadline waits for consistency.min_revision; 0 means 10 s.
	MaxWait time.Duration
	// Tokens and JWT, when either is set, authenticate every call but health checks (SPEC §8, §13): a bearer
	// token is one of Tokens, or a JWT that JWT verifies. Both nil let every caller in.
	Tokens *Tokens
	JWT    *JWTAuth
	// Limits bound request sizes and concurrency; zero values take defaults.
	Limits Limits
	// Metrics, when set, count calls and decisions.
	Metrics *Metrics
	// DecisionLog, when set, receives a record of every decision (SPEC §14); DecisionLogReader, when set, answers
	// ListDecisions (the Postgres decision log). Without it ListDecisions is FAILED_PRECONDITION.
	DecisionLog       DecisionLog
	DecisionLogReader DecisionLogReader
	// TracerProvider, when set, traces every call (SPEC §14): a server span continuing the caller's traceparent,
	// over gRPC and through the HTTP gateway alike, with child spans for policy and resolver work. nil: no spans,
	// and no cost.
	TracerProvider trace.TracerProvider
	// Findings bound WatchFindings' subscribers and history (zero values take defaults).
	Findings findings.Options
	// ServerOptions are added to the grpc.Server's (credentials, limits). Interceptors added here would not run
	// on the HTTP gateway's in-process calls (Invoke): add them to New's chain instead.
	ServerOptions []grpc.ServerOption
}

// Server is a groupgate gRPC server.
type Server struct {
	cfg    Config
	engine *policy.Engine
	grpc   *grpc.Server
	health *health.Server
	// unary is the whole chain of unary interceptors as one, run by the gRPC server and by Invoke alike.
	unary        grpc.UnaryServerInterceptor
	unaryMethods map[string]unaryMethod
	// stream is the chain of stream interceptors as one, run by the gRPC server and by NewStream alike.
	stream        grpc.StreamServerInterceptor
	streamMethods map[string]streamMethod
	syncs         *syncRounds
	tracing       *tracing
	findings      *findings.Hubs
	findingsOpts  findings.Options
}

// New builds a server; call Serve to accept connections.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resolver == nil {
		cfg.Resolver = resolver.New(resolver.Options{})
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 10 * time.Second
	}
	s := &Server{cfg: cfg, engine: policy.New(cfg.Resolver), health: health.NewServer(), syncs: newSyncRounds(),
		unaryMethods: map[string]unaryMethod{}, streamMethods: map[string]streamMethod{}}
	s.findingsOpts = cfg.Findings
	if s.findingsOpts.Logger == nil {
		s.findingsOpts.Logger = cfg.Logger
	}
	if s.findingsOpts.SubscriberBuffer <= 0 {
		s.findingsOpts.SubscriberBuffer = 256
	}
	if cfg.Metrics != nil && s.findingsOpts.Observe == nil {
		s.findingsOpts.Observe = cfg.Metrics.observeFindings
	}
	s.findings = findings.NewHubs(cfg.Store, s.findingsOpts)

	recoveryOpts := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		cfg.Logger.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})}
	limits := cfg.Limits.withDefaults()
	adm := newAdmission(limits)
	// Outermost first: metrics and logging see every call with its final code; auth refuses strangers before
	// they take a concurrency slot; recovery turns a panic into INTERNAL; validation runs just before handlers.
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	var tracingOpts []grpc.ServerOption
	if s.tracing = newTracing(cfg.TracerProvider); s.tracing != nil {
		// Outermost, so that the span covers everything else, and the logs and records inside know its trace id.
		unary = append(unary, s.tracing.unaryInterceptor)
		stream = append(stream, s.tracing.streamInterceptor)
		tracingOpts = append(tracingOpts, grpc.StatsHandler(s.tracing.statsHandler(cfg.TracerProvider)))
	}
	if cfg.Metrics != nil {
		unary = append(unary, cfg.Metrics.grpc.UnaryServerInterceptor())
		stream = append(stream, cfg.Metrics.grpc.StreamServerInterceptor())
	}
	authOn := s.Authenticates()
	if authOn {
		// Outside logging, so that its log line can name the caller that auth found inside it.
		unary = append(unary, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(withCallerSlot(ctx), req)
		})
		stream = append(stream, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			wrapped := middleware.WrapServerStream(ss)
			wrapped.WrappedContext = withCallerSlot(ss.Context())
			return handler(srv, wrapped)
		})
	}
	logUnary, logStream := loggingInterceptors(cfg.Logger)
	unary = append(unary, logUnary, unaryErrors)
	stream = append(stream, logStream, streamErrors)
	if authOn {
		a := &authenticator{tokens: cfg.Tokens, jwt: cfg.JWT}
		unary = append(unary, auth.UnaryServerInterceptor(a.authFunc))
		stream = append(stream, auth.StreamServerInterceptor(a.authFunc))
	}
	unary = append(unary, adm.unaryInterceptor, recovery.UnaryServerInterceptor(recoveryOpts...), unaryValidation)
	stream = append(stream, adm.streamInterceptor, recovery.StreamServerInterceptor(recoveryOpts...), streamValidation)
	s.unary = chainUnary(unary)
	s.stream = chainStream(stream)
	opts := append(limits.serverOptions(), grpc.UnaryInterceptor(s.unary), grpc.StreamInterceptor(s.stream),
		grpc.ForceServerCodecV2(newCodec())) // sends EffectiveMembers' pre-encoded pages (encoded.go)
	opts = append(opts, tracingOpts...)
	s.grpc = grpc.NewServer(append(opts, cfg.ServerOptions...)...)
	decisions, directory := &decisionService{s: s}, &directoryService{s: s}
	s.register(&pb.DecisionService_ServiceDesc, decisions)
	s.register(&pb.DirectoryService_ServiceDesc, directory)
	s.register(&healthpb.Health_ServiceDesc, s.health)
	reflection.Register(s.grpc)
	if cfg.Metrics != nil {
		cfg.Metrics.grpc.InitializeMetrics(s.grpc)
		cfg.Metrics.Registry.MustRegister(s.syncs)
		if cfg.DecisionLog != nil {
			cfg.Metrics.Registry.MustRegister(decisionLogCollector{cfg.DecisionLog})
		}
	}
	return s
}

// Authenticates says whether callers must bring a token (static or JWT); without, every caller that reaches a
// listener is a writer.
func (s *Server) Authenticates() bool { return s.cfg.Tokens != nil || s.cfg.JWT != nil }

// GRPC is the underlying server, e.g. to Serve a listener or register more services.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// MarkServing reports SERVING on the health service (overall and per service): call it once tenants are loaded.
func (s *Server) MarkServing() {
	for _, name := range []string{"", pb.DecisionService_ServiceDesc.ServiceName, pb.DirectoryService_ServiceDesc.ServiceName} {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
}

// MarkNotServing reports NOT_SERVING on the health service while calls are still answered: a replica draining
// before it stops (Shutdown does it too).
func (s *Server) MarkNotServing() {
	for _, name := range []string{"", pb.DecisionService_ServiceDesc.ServiceName, pb.DirectoryService_ServiceDesc.ServiceName} {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
}

// Shutdown reports NOT_SERVING, stops accepting calls and waits for in-flight ones up to ctx, then cuts them.
// WatchFindings streams, which would never end by themselves, are ended first (UNAVAILABLE, with the revision to
// resume from).
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	s.findings.Close()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

// directory returns the tenant's directory honouring consistency.min_revision, waiting up to the request's
// deadline (or MaxWait when it has none).
func (s *Server) directory(ctx context.Context, tenantID string, c *pb.Consistency) (*directory.Directory, error) {
	min := c.GetMinRevision()
	if min == 0 {
		return s.cfg.Store.Directory(ctx, tenantID, 0)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.MaxWait)
		defer cancel()
	}
	d, err := s.cfg.Store.Directory(ctx, tenantID, min)
	if err == context.DeadlineExceeded {
		return nil, status.Errorf(codes.DeadlineExceeded, "tenant %q did not reach revision %d in time", tenantID, min)
	}
	return d, err
}

func unaryValidation(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func streamValidation(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &validatingStream{ServerStream: ss})
}

// validatingStream validates every message the client sends.
type validatingStream struct{ grpc.ServerStream }

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return validate(m)
}

func unaryErrors(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		return nil, toStatus(err).Err()
	}
	return resp, nil
}

func streamErrors(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := handler(srv, ss); err != nil {
		return toStatus(err).Err()
	}
	return nil
}
