// Package bench is the load driver behind `groupgate bench`: it sends a mix of decision requests (and optionally
// writes) from many concurrent workers, over gRPC or over the HTTP/JSON API, and reports throughput, latency
// percentiles and errors by code; the command runs the same load against a no-op DecisionService to compare.
package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/listen"
	"github.com/groupgate/groupgate/internal/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Mix weighs the kinds of request; weights need not add up to anything.
type Mix struct {
	AddMember, CheckMembership, Batch, Write int
	// EffectiveGroups streams every group a random user belongs to (one request = the whole stream).
	EffectiveGroups int
}

// DefaultMix is mostly CanAddMember (with transitive guest and cycle checks) and CheckMembership.
var DefaultMix = Mix{AddMember: 60, CheckMembership: 30, Batch: 10}

// Config is one load run.
type Config struct {
	// Addr is the gRPC server to load (host:port, or unix:///path/to.sock); with HTTPURL set, the load goes to
	// that HTTP/JSON API instead.
	Addr    string
	HTTPURL string
	// AuthZEN, with HTTPURL, sends the decisions through the AuthZEN routes (SPEC §17) instead of /v1/….
	AuthZEN     bool
	Token       string
	Tenant      string
	Params      workload.Params // the generated tenant the ids come from
	Concurrency int
	Duration    time.Duration // run until this has passed…
	Requests    int           // …or this many requests were sent, whichever comes first (0: no count limit)
	Mix         Mix
	Seed        uint64
	// MaxSamples bounds the latencies kept for percentiles (a uniform prefix per worker beyond it).
	MaxSamples int
	// Rate, when > 0, caps the requests sent per second by all workers together (a soak at a steady write
	// rate, rather than as fast as the server answers).
	Rate float64
}

// Report is the outcome of one run.
type Report struct {
	Target     string         `json:"target"`
	Transport  string         `json:"transport"` // "tcp" or "unix" (gRPC), "http" or "authzen"
	Requests   int64          `json:"requests"`
	Errors     int64          `json:"errors"`
	ErrorCodes map[string]int `json:"error_codes,omitempty"`
	Seconds    float64        `json:"seconds"`
	PerSecond  float64        `json:"per_second"`
	P50        time.Duration  `json:"p50_ns"`
	P95        time.Duration  `json:"p95_ns"`
	P99        time.Duration  `json:"p99_ns"`
	Max        time.Duration  `json:"max_ns"`
	// CPUPerRequest is this process's CPU time (user and system) during the run per request: with the server in
	// this process, the client's and the server's cost of a request together. On a machine shared with other
	// work it varies far less than throughput does.
	CPUPerRequest time.Duration `json:"cpu_per_request_ns"`
	// ServerCPUPerRequest is the server process's CPU time per request, when the server runs in a process of its
	// own (bench --separate); 0 otherwise.
	ServerCPUPerRequest time.Duration `json:"server_cpu_per_request_ns,omitempty"`
}

func (r Report) String() string {
	s := fmt.Sprintf("%-10s %-4s %9d requests in %5.1fs = %8.0f req/s   p50 %7s  p95 %7s  p99 %7s  max %7s  cpu/req %6s  errors %d %v",
		r.Target, r.Transport, r.Requests, r.Seconds, r.PerSecond, r.P50.Round(time.Microsecond), r.P95.Round(time.Microsecond),
		r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.CPUPerRequest.Round(100*time.Nanosecond), r.Errors, r.ErrorCodes)
	if r.ServerCPUPerRequest > 0 {
		s += fmt.Sprintf("  server cpu/req %s", r.ServerCPUPerRequest.Round(100*time.Nanosecond))
	}
	return s
}

// Run sends the load to cfg.Addr.
func Run(ctx context.Context, name string, cfg Config) (Report, error) {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Duration <= 0 && cfg.Requests <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.MaxSamples <= 0 {
		cfg.MaxSamples = 5_000_000
	}
	total := cfg.Mix.AddMember + cfg.Mix.CheckMembership + cfg.Mix.Batch + cfg.Mix.EffectiveGroups + cfg.Mix.Write
	if total <= 0 {
		return Report{}, fmt.Errorf("empty request mix")
	}
	var c target
	if cfg.HTTPURL != "" && cfg.AuthZEN {
		c = authzenTarget{newHTTPTarget(cfg.HTTPURL, cfg.Token, cfg.Concurrency)}
	} else if cfg.HTTPURL != "" {
		c = newHTTPTarget(cfg.HTTPURL, cfg.Token, cfg.Concurrency)
	} else {
		gc, err := client.Dial(cfg.Addr, client.Options{Token: cfg.Token})
		if err != nil {
			return Report{}, err
		}
		c = grpcTarget{gc}
	}
	defer c.Close()
	// Calls do not carry the run's deadline: a call in flight when the run ends finishes normally (the server
	// would otherwise time it out, a few microseconds before the client notices, and count an error).
	callCtx := context.WithoutCancel(ctx)
	runCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var sent, done, errs atomic.Int64
	codes := sync.Map{}
	samples := make([][]time.Duration, cfg.Concurrency)
	perWorker := cfg.MaxSamples / cfg.Concurrency
	for w := range samples { // allocated up front: the driver's own memory stays flat during the run
		samples[w] = make([]time.Duration, 0, perWorker)
	}
	cpuStart := ProcessCPU()
	// With a rate, request n is due at start + n/rate: a worker takes the next slot and waits for its time. A
	// stalled server is caught up afterwards (at most Concurrency requests at once), so the average holds.
	var slot atomic.Int64
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)))
			gen := requests{p: cfg.Params, tenant: cfg.Tenant, rng: rng, worker: w}
			for runCtx.Err() == nil {
				if interval > 0 {
					if wait := time.Until(start.Add(time.Duration(slot.Add(1)-1) * interval)); wait > 0 {
						timer := time.NewTimer(wait)
						select {
						case <-timer.C:
						case <-runCtx.Done():
							timer.Stop()
							return
						}
					}
				}
				if cfg.Requests > 0 && sent.Add(1) > int64(cfg.Requests) {
					return
				}
				if cfg.Requests <= 0 {
					sent.Add(1)
				}
				pick := rng.IntN(total)
				t0 := time.Now()
				cctx, cancel := context.WithTimeout(callCtx, 30*time.Second)
				err := gen.send(cctx, c, pick, cfg.Mix)
				cancel()
				d := time.Since(t0)
				done.Add(1)
				if err != nil {
					errs.Add(1)
					code := status.Code(err).String()
					n, _ := codes.LoadOrStore(code, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
				}
				if len(samples[w]) < perWorker {
					samples[w] = append(samples[w], d)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := ProcessCPU() - cpuStart
	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	slices.Sort(all)
	pct := func(q float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(q*float64(len(all))))]
	}
	r := Report{Target: name, Transport: cfg.transport(), Requests: done.Load(), Errors: errs.Load(), Seconds: elapsed.Seconds(),
		P50: pct(0.50), P95: pct(0.95), P99: pct(0.99), ErrorCodes: map[string]int{}}
	if len(all) > 0 {
		r.Max = all[len(all)-1]
	}
	r.PerSecond = float64(r.Requests) / elapsed.Seconds()
	if r.Requests > 0 && cpu > 0 {
		r.CPUPerRequest = cpu / time.Duration(r.Requests)
	}
	codes.Range(func(k, v any) bool {
		r.ErrorCodes[k.(string)] = int(v.(*atomic.Int64).Load())
		return true
	})
	return r, nil
}

// transport is how the load reaches the server: "authzen" for the AuthZEN routes, "http" for the HTTP/JSON API,
// else its gRPC transport.
func (c Config) transport() string {
	if c.HTTPURL != "" && c.AuthZEN {
		return "authzen"
	}
	if c.HTTPURL != "" {
		return "http"
	}
	return Transport(c.Addr)
}

// Transport is "unix" for a unix socket target, else "tcp".
func Transport(addr string) string {
	if strings.HasPrefix(addr, "unix:") {
		return "unix"
	}
	return "tcp"
}

// requests makes random requests on the generated tenant's ids.
type requests struct {
	p      workload.Params
	tenant string
	rng    *rand.Rand
	worker int
	// added is the membership the worker's last write added, which its next write removes again: churn that
	// keeps the tenant's size steady, so that a long run's memory shows leaks rather than a growing tenant.
	added *pb.MemberChange
}

func (g *requests) group() string { return workload.GroupID(g.rng.IntN(g.p.Groups)) }
func (g *requests) user() string  { return workload.UserID(g.rng.IntN(g.p.Users)) }

// addMember nests a random group under another: the decision runs the transitive guest and cycle checks.
func (g *requests) addMember() *pb.CanAddMemberRequest {
	return &pb.CanAddMemberRequest{TenantId: g.tenant, GroupId: g.group(), MemberId: g.group(), ActorId: workload.AdminID}
}

func (g *requests) send(ctx context.Context, c target, pick int, mix Mix) error {
	var err error
	switch {
	case pick < mix.AddMember:
		err = c.CanAddMember(ctx, g.addMember())
	case pick < mix.AddMember+mix.CheckMembership:
		err = c.CheckMembership(ctx, &pb.CheckMembershipRequest{TenantId: g.tenant, GroupId: g.group(), PrincipalId: g.user()})
	case pick < mix.AddMember+mix.CheckMembership+mix.Batch:
		req := &pb.CheckBatchRequest{TenantId: g.tenant}
		for i := 0; i < 10; i++ {
			req.Checks = append(req.Checks, &pb.CheckBatchItem{Check: &pb.CheckBatchItem_CanAddMember{CanAddMember: g.addMember()}})
		}
		err = c.CheckBatch(ctx, req)
	case pick < mix.AddMember+mix.CheckMembership+mix.Batch+mix.EffectiveGroups:
		err = c.EffectiveGroups(ctx, &pb.EffectiveGroupsRequest{TenantId: g.tenant, PrincipalId: g.user()})
	default:
		// Membership churn: add a random user to a random group, and take it out again with the next write.
		change := &pb.Change{}
		if g.added == nil {
			g.added = &pb.MemberChange{GroupId: g.group(), MemberId: g.user()}
			change.Change = &pb.Change_AddMember{AddMember: g.added}
		} else {
			change.Change = &pb.Change_RemoveMember{RemoveMember: g.added}
			g.added = nil
		}
		err = c.WriteChanges(ctx, &pb.WriteChangesRequest{TenantId: g.tenant, Changes: []*pb.Change{change}})
	}
	return err
}

// target is where the load goes: the gRPC API or the HTTP/JSON API. Each call decodes the whole answer, as a
// real client would.
type target interface {
	CanAddMember(context.Context, *pb.CanAddMemberRequest) error
	CheckMembership(context.Context, *pb.CheckMembershipRequest) error
	CheckBatch(context.Context, *pb.CheckBatchRequest) error
	// EffectiveGroups reads the whole stream.
	EffectiveGroups(context.Context, *pb.EffectiveGroupsRequest) error
	WriteChanges(context.Context, *pb.WriteChangesRequest) error
	Close() error
}

type grpcTarget struct{ c *client.Client }

func (t grpcTarget) CanAddMember(ctx context.Context, r *pb.CanAddMemberRequest) error {
	_, err := t.c.Decisions.CanAddMember(ctx, r)
	return err
}

func (t grpcTarget) CheckMembership(ctx context.Context, r *pb.CheckMembershipRequest) error {
	_, err := t.c.Decisions.CheckMembership(ctx, r)
	return err
}

func (t grpcTarget) CheckBatch(ctx context.Context, r *pb.CheckBatchRequest) error {
	_, err := t.c.Decisions.CheckBatch(ctx, r)
	return err
}

func (t grpcTarget) EffectiveGroups(ctx context.Context, r *pb.EffectiveGroupsRequest) error {
	return t.c.EachGroup(ctx, r, func(*pb.EffectiveGroupsResponse) error { return nil })
}

func (t grpcTarget) WriteChanges(ctx context.Context, r *pb.WriteChangesRequest) error {
	_, err := t.c.Directory.WriteChanges(ctx, r)
	return err
}

func (t grpcTarget) Close() error { return t.c.Close() }

// NoOpServer serves a DecisionService and DirectoryService that answer at once with empty responses, on a
// loopback port: the baseline that gRPC itself costs on this machine.
func NoOpServer() (addr string, stop func(), err error) { return ServeNoOp("127.0.0.1:0") }

// ServeNoOp is NoOpServer on a given address (host:port or unix:///path/to.sock), returning its dial target.
func ServeNoOp(addr string) (target string, stop func(), err error) { return serveNoOp(addr, noOp{}) }

func serveNoOp(addr string, decisions noOp) (target string, stop func(), err error) {
	lis, cleanup, err := listen.Listen(addr, listen.Options{})
	if err != nil {
		return "", nil, err
	}
	s := grpc.NewServer()
	pb.RegisterDecisionServiceServer(s, decisions)
	pb.RegisterDirectoryServiceServer(s, noOpDirectory{})
	go func() { _ = s.Serve(lis) }()
	return listen.Target(lis.Addr()), func() { s.Stop(); cleanup() }, nil
}

type noOp struct {
	pb.UnimplementedDecisionServiceServer
	// members is EffectiveMembers' answer (one empty message when nil).
	members []*pb.EffectiveMembersResponse
}

func (noOp) CanAddMember(context.Context, *pb.CanAddMemberRequest) (*pb.CanAddMemberResponse, error) {
	return &pb.CanAddMemberResponse{Decision: &pb.Decision{}}, nil
}

func (noOp) CheckMembership(context.Context, *pb.CheckMembershipRequest) (*pb.CheckMembershipResponse, error) {
	return &pb.CheckMembershipResponse{}, nil
}

func (noOp) CheckBatch(_ context.Context, r *pb.CheckBatchRequest) (*pb.CheckBatchResponse, error) {
	return &pb.CheckBatchResponse{Results: make([]*pb.CheckBatchResult, len(r.GetChecks()))}, nil
}

func (noOp) EffectiveGroups(_ *pb.EffectiveGroupsRequest, s grpc.ServerStreamingServer[pb.EffectiveGroupsResponse]) error {
	return s.Send(&pb.EffectiveGroupsResponse{})
}

type noOpDirectory struct {
	pb.UnimplementedDirectoryServiceServer
}

func (noOpDirectory) WriteChanges(context.Context, *pb.WriteChangesRequest) (*pb.WriteChangesResponse, error) {
	return &pb.WriteChangesResponse{}, nil
}
