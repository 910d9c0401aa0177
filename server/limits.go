package server

import (
	"context"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Limits protect the server from oversized or excessive requests. Each refusal is an explicit status code,
// never an out-of-memory crash.
type Limits struct {
	// MaxRecvBytes bounds one received message (gRPC answers RESOURCE_EXHAUSTED beyond it). 0: 16 MiB, enough
	// for a CheckBatch of 1000 or a plan of 10 000 steps with GUID ids; snapshots are imported in parts.
	MaxRecvBytes int
	// MaxConcurrentUnary bounds unary calls in progress; more are refused with RESOURCE_EXHAUSTED. 0: 4096.
	MaxConcurrentUnary int
	// MaxConcurrentStreams bounds streaming calls in progress (EffectiveMembers, EffectiveGroups, Audit, Watch,
	// Import, Export), which hold a revision and may run long. 0: 256.
	MaxConcurrentStreams int
	// MaxStreamsPerConnection is HTTP/2's concurrent stream limit per connection. 0: 1024.
	MaxStreamsPerConnection uint32
	// DefaultTimeout is the deadline given to unary calls that bring none. 0: 30 s.
	DefaultTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxRecvBytes <= 0 {
		l.MaxRecvBytes = 16 << 20
	}
	if l.MaxConcurrentUnary <= 0 {
		l.MaxConcurrentUnary = 4096
	}
	if l.MaxConcurrentStreams <= 0 {
		l.MaxConcurrentStreams = 256
	}
	if l.MaxStreamsPerConnection == 0 {
		l.MaxStreamsPerConnection = 1024
	}
	if l.DefaultTimeout <= 0 {
		l.DefaultTimeout = 30 * time.Second
	}
	return l
}

func (l Limits) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(l.MaxRecvBytes),
		grpc.MaxConcurrentStreams(l.MaxStreamsPerConnection),
		// Calls run on a pool of goroutines that live on, keeping the stacks they grew, rather than on a
		// goroutine each whose stack grows again from 8 KB through the interceptors, the tracing SDK and the
		// policy (runtime.newstack/copystack were 8-10% of groupgate bench's CPU). Calls beyond the pool's
		// size still get a goroutine each.
		grpc.NumStreamWorkers(streamWorkers()),
		// Clients may ping at most every 10 s (with or without calls in flight); a connection that pings more
		// often is closed with ENHANCE_YOUR_CALM. Idle connections are closed after 15 minutes.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: 15 * time.Minute,
			Time:              2 * time.Minute,
			Timeout:           20 * time.Second,
		}),
	}
}

// streamWorkers is the size of the gRPC server's pool of call goroutines: enough for the calls in progress at
// once on a busy server of this many CPUs (16 a CPU, at least 32; groupgate bench's default load is 16 at once).
func streamWorkers() uint32 {
	return uint32(max(32, 16*runtime.GOMAXPROCS(0)))
}

// admission refuses calls beyond a concurrency limit at once, rather than queueing them until memory runs out:
// the caller sees RESOURCE_EXHAUSTED and can back off or try another replica.
type admission struct {
	unary, streams chan struct{}
	defaultTimeout time.Duration
}

func newAdmission(l Limits) *admission {
	return &admission{
		unary:          make(chan struct{}, l.MaxConcurrentUnary),
		streams:        make(chan struct{}, l.MaxConcurrentStreams),
		defaultTimeout: l.DefaultTimeout,
	}
}

func (a *admission) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	select {
	case a.unary <- struct{}{}:
	default:
		return nil, status.Errorf(codes.ResourceExhausted, "server is at its limit of %d concurrent calls; retry with backoff", cap(a.unary))
	}
	defer func() { <-a.unary }()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.defaultTimeout)
		defer cancel()
	}
	return handler(ctx, req)
}

func (a *admission) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	select {
	case a.streams <- struct{}{}:
	default:
		return status.Errorf(codes.ResourceExhausted, "server is at its limit of %d concurrent streams; retry with backoff", cap(a.streams))
	}
	defer func() { <-a.streams }()
	return handler(srv, ss)
}
