package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/groupgate/groupgate/bench"
	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/decisionlog"
	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/gctune"
	"github.com/groupgate/groupgate/internal/workload"
	"github.com/groupgate/groupgate/server/app"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

func newBenchCmd() *cobra.Command {
	var cfg bench.Config
	var preset, snapshot, mix, output string
	var noNoOp, noHTTP, withAuthZEN bool
	var httpURL string
	var cpuProfile string
	var sampleEvery time.Duration
	var memProfile string
	var separate bool
	var transport string
	var gcHeadroom uint64
	var stream streamFlags
	var decisionLog string
	var obsRounds int
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a server with decisions (and optional writes) over gRPC and HTTP/JSON, and a no-op gRPC handler in the same run",
		Long: `Load-test groupgate over gRPC on loopback. Without --addr, a server is started in this process on the
--snapshot file (made by 'groupgate gen') or on a tenant generated from --preset. The same load then runs
over the same server's HTTP/JSON API (--http-url with --addr; --no-http skips it), and against a no-op
DecisionService in this process; the ratios of throughputs are printed (SPEC §7: groupgate >= 70% of the
no-op; issue 12: HTTP >= 50% of gRPC).
With --separate, groupgate and the no-op handler each run in a process of their own instead (the production
setup: the load generator does not share their heap), started from this executable.
--transport unix serves (and loads) over a unix domain socket instead of loopback TCP; --transport both runs
groupgate and the no-op handler over each, every run on a server of its own, and compares the two transports.
--stream measures lists instead of decisions: groupgate streams EffectiveMembers of --stream-group (the
preset's top group: 1.1M members on large) --stream-repeat times, then a no-op handler streams a copy of the
same messages as often; the members/s of both, the wait for the first message and their ratio are printed.
Request ids come from the generated tenant: --preset and --seed must match the tenant the server holds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			// This process's servers and the no-op handler run under the same collector settings as a server
			// process of its own (--separate passes them on).
			defer gctune.Start(gcHeadroom)()
			p, ok := workload.Preset(preset)
			if !ok {
				return fmt.Errorf("--preset %q: want tiny, small, medium or large", preset)
			}
			if cmd.Flags().Changed("seed") {
				p.Seed = cfg.Seed
			}
			cfg.Params = p
			if cfg.Tenant == "" {
				cfg.Tenant = p.TenantID
			}
			m, err := parseMix(mix)
			if err != nil {
				return err
			}
			cfg.Mix = m
			transports, err := parseTransports(transport, cfg.Addr, cmd.Flags().Changed("transport"))
			if err != nil {
				return err
			}
			if cfg.Addr != "" && separate {
				return errors.New("--separate starts its own servers: leave out --addr")
			}
			if stream.on && (cmd.Flags().Changed("mix") || cmd.Flags().Changed("requests") || cmd.Flags().Changed("rate")) {
				return errors.New("--stream reads whole EffectiveMembers streams: --mix, --requests and --rate are for the decision load")
			}
			if obsRounds > 0 && (cfg.Addr != "" || separate || stream.on || decisionLog != "") {
				return errors.New("--observability-rounds starts its own servers in this process, with and without a decision log: leave out --addr, --separate, --stream and --decision-log")
			}
			ctx := cmd.Context()
			snapshotPath := ""
			if cfg.Addr == "" {
				path, cleanup, err := snapshotFile(cfg.Params, snapshot)
				if err != nil {
					return err
				}
				defer cleanup()
				snapshotPath = path
			}
			// groupgate over each transport, each on a server of its own that starts cold (no run finds a cache the
			// run before it warmed). All of them are started first and stay up to the end, so that every run, the
			// no-op ones included, sees the same processes and heaps. The first one also serves the HTTP/JSON API,
			// loaded after the gRPC runs.
			if obsRounds > 0 {
				return runObservability(ctx, cfg, transports[0], snapshotPath, gcHeadroom, obsRounds, cpuProfile)
			}
			servers := make([]*benchServer, len(transports))
			for i, t := range transports {
				if cfg.Addr != "" {
					servers[i] = &benchServer{addr: cfg.Addr, httpURL: httpURL, rss: func() int64 { return -1 }}
					continue
				}
				s, err := startBenchServer(ctx, t, snapshotPath, separate, !noHTTP && !stream.on && i == 0, gcHeadroom, decisionLog, nil)
				if err != nil {
					return err
				}
				defer s.stop()
				servers[i] = s
			}
			if stream.on {
				return runStreams(ctx, cfg, stream, servers, transports, separate, noNoOp, gcHeadroom, cpuProfile, memProfile, output)
			}
			// The profile starts once the servers are up: it covers the groupgate runs, not loading the snapshots.
			stopProfile, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			defer stopProfile()
			var reports []bench.Report
			var samples [][]resourceSample
			var serverRSS []int64
			for i, s := range servers {
				runCfg := cfg
				runCfg.Addr = s.addr
				stopSampling := sampleResources(sampleEvery)
				r, err := runMeasuringServer(ctx, "groupgate", runCfg, s.cpu)
				samples = append(samples, stopSampling())
				serverRSS = append(serverRSS, servers[i].rss()) // at the end of the run, as the samples are
				if err != nil {
					return err
				}
				reports = append(reports, r)
			}
			if memProfile != "" {
				if err := writeAllocProfile(memProfile); err != nil {
					return err
				}
			}
			stopProfile()
			if first := servers[0]; first.httpURL != "" && !noHTTP {
				overHTTP := cfg
				overHTTP.Addr, overHTTP.HTTPURL = first.addr, strings.TrimSuffix(first.httpURL, "/")
				hr, err := runMeasuringServer(ctx, "http", overHTTP, first.cpu)
				if err != nil {
					return err
				}
				reports = append(reports, hr)
				if withAuthZEN {
					// The same decisions through the AuthZEN routes of the same listener (SPEC §17).
					overAuthZEN := overHTTP
					overAuthZEN.AuthZEN = true
					ar, err := runMeasuringServer(ctx, "authzen", overAuthZEN, first.cpu)
					if err != nil {
						return err
					}
					reports = append(reports, ar)
				}
			}
			if !noNoOp {
				for _, t := range transports {
					addr, stop, err := noOpServer(ctx, t, separate, gcHeadroom)
					if err != nil {
						return err
					}
					noop := cfg
					noop.Addr = addr
					nr, err := bench.Run(ctx, "no-op", noop)
					stop()
					if err != nil {
						return err
					}
					reports = append(reports, nr)
				}
			}
			if output == "json" {
				b, _ := json.MarshalIndent(reports, "", "  ")
				fmt.Fprintln(stdout(), string(b))
				return nil
			}
			fmt.Fprintf(stdout(), "tenant %s (%d users, %d groups), concurrency %d, mix %s, GOMAXPROCS %d\n",
				cfg.Tenant, p.Users, p.Groups, cfg.Concurrency, mix, runtime.GOMAXPROCS(0))
			for _, r := range reports {
				fmt.Fprintln(stdout(), r)
			}
			for i, t := range transports {
				if len(samples[i]) > 0 && len(transports) > 1 {
					fmt.Fprintf(stdout(), "groupgate over %s:\n", t)
				}
				for _, s := range samples[i] {
					fmt.Fprintln(stdout(), s)
				}
				if serverRSS[i] >= 0 {
					fmt.Fprintf(stdout(), "server process rss %7.1f MiB at the end of the run (%s)\n", float64(serverRSS[i])/(1<<20), t)
				}
			}
			printComparisons(reports)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Addr, "addr", "", "server to load (default: start one in this process)")
	fl.StringVar(&cfg.Token, "token", "", "bearer token")
	fl.StringVar(&cfg.Tenant, "tenant", "", "tenant id (default: the preset's)")
	fl.StringVar(&preset, "preset", "small", "the generated tenant's preset: tiny, small, medium or large")
	fl.Uint64Var(&cfg.Seed, "seed", 1, "the generated tenant's seed")
	fl.StringVar(&snapshot, "snapshot", "", "without --addr: serve this snapshot file instead of generating --preset")
	fl.IntVarP(&cfg.Concurrency, "concurrency", "c", 16, "concurrent workers")
	fl.DurationVarP(&cfg.Duration, "duration", "d", 10*time.Second, "how long to run (each target)")
	fl.IntVarP(&cfg.Requests, "requests", "n", 0, "stop after this many requests (0: run for --duration)")
	fl.Float64Var(&cfg.Rate, "rate", 0, "at most this many requests per second from all workers together (0: as fast as answered)")
	fl.StringVar(&mix, "mix", "add-member=60,check-membership=30,batch=10", "request weights: add-member, check-membership, batch (10 checks), effective-groups (a user's whole stream), write")
	fl.BoolVar(&noNoOp, "no-baseline", false, "skip the no-op comparison")
	fl.BoolVar(&noHTTP, "no-http", false, "skip the run over the HTTP/JSON API")
	fl.BoolVar(&withAuthZEN, "authzen", false, "after the HTTP/JSON run, send the same decisions through the AuthZEN routes (add-member, check-membership and batch; other requests stay native) and compare")
	fl.StringVar(&httpURL, "http-url", "", "with --addr: the server's HTTP/JSON API (e.g. http://127.0.0.1:8080) to load as well; empty skips it")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process during the groupgate run (with an in-process server: both)")
	fl.StringVarP(&output, "output", "o", "text", "text or json")
	fl.StringVar(&memProfile, "memprofile", "", "after the groupgate run, write this process's allocation profile (pprof allocs; with an in-process server: both)")
	fl.StringVar(&transport, "transport", "tcp", "without --addr: serve and load over tcp (loopback), unix (a socket in a temporary directory), or both (tcp,unix; unix,tcp runs the socket first), compared in one run")
	fl.BoolVar(&separate, "separate", false, "run groupgate and the no-op handler each in a process of its own (default: in this process)")
	fl.Uint64Var(&gcHeadroom, "gc-headroom-bytes", defaultGCHeadroom, "the servers' (and this process's) --gc-headroom-bytes: "+gcHeadroomUsage)
	fl.BoolVar(&stream.on, "stream", false, "measure EffectiveMembers streams against a no-op handler streaming the same messages, instead of the decision load")
	fl.StringVar(&stream.group, "stream-group", workload.TopGroupID, "with --stream: the group whose effective members are streamed")
	fl.IntVar(&stream.repeat, "stream-repeat", 3, "with --stream: timed streams from each server (after one untimed); the median is reported")
	fl.Int32Var(&stream.pageSize, "stream-page-size", 0, "with --stream: the request's page_size (0: the server's default)")
	fl.StringVar(&decisionLog, "decision-log", "", "without --addr: the servers' --decision-log (stdout, file:PATH); tracing follows the OTEL_* variables as serve's does")
	fl.IntVar(&obsRounds, "observability-rounds", 0, "instead of the comparisons above: this many rounds of four runs, each on a fresh server in this process: plain, --decision-log file:…, tracing (OTEL_*) to an OTLP receiver in this process, and the same spans made but not exported; --cpuprofile PATH writes PATH.RUN.ROUND")
	fl.DurationVar(&sampleEvery, "sample", 0, "during the groupgate run, print this process's goroutines, live Go heap (after a GC) and RSS at this interval (with an in-process server they include the server's)")
	annotateEnv(cmd)
	return cmd
}

func parseMix(s string) (bench.Mix, error) {
	var m bench.Mix
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return m, fmt.Errorf("--mix %q: want name=weight,…", s)
		}
		switch k {
		case "add-member":
			m.AddMember = n
		case "check-membership":
			m.CheckMembership = n
		case "batch":
			m.Batch = n
		case "write":
			m.Write = n
		case "effective-groups":
			m.EffectiveGroups = n
		default:
			return m, fmt.Errorf("--mix: unknown request %q", k)
		}
	}
	return m, nil
}

// startCPUProfile profiles this process's CPU into the file path ("": no profile) until stop, which also closes
// the file and may be called again (a deferred call after the run's own).
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }, nil
}

func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// resourceSample is this process's resource use at one moment of a run.
type resourceSample struct {
	at         time.Duration
	goroutines int
	heapBytes  uint64
	rssBytes   int64
}

func (s resourceSample) String() string {
	return fmt.Sprintf("at %6.1fs  goroutines %5d  live heap %7.1f MiB  rss %7.1f MiB", s.at.Seconds(), s.goroutines,
		float64(s.heapBytes)/(1<<20), float64(s.rssBytes)/(1<<20))
}

// sampleResources samples at every interval (and once at the start and the end) until the returned function is
// called, which returns the samples. A zero interval samples nothing.
func sampleResources(every time.Duration) func() []resourceSample {
	if every <= 0 {
		return func() []resourceSample { return nil }
	}
	start := time.Now()
	take := func() resourceSample {
		runtime.GC() // live heap, not whatever garbage the last cycle left: growth then means a leak
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return resourceSample{at: time.Since(start), goroutines: runtime.NumGoroutine(), heapBytes: m.HeapAlloc, rssBytes: rss()}
	}
	samples := []resourceSample{take()}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				samples = append(samples, take())
			}
		}
	}()
	return func() []resourceSample {
		close(done)
		<-finished
		return append(samples, take())
	}
}

// rss is the resident set size of this process in bytes (Linux), or -1.
func rss() int64 { return rssOf("self") }

// rssOf is the resident set size of a process ("self" or a pid) in bytes (Linux), or -1.
func rssOf(pid string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/statm")
	if err != nil {
		return -1
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

// snapshotFile returns the snapshot file to serve: the given one, or the generated preset written to a
// temporary file (removed by cleanup).
func snapshotFile(p workload.Params, snapshot string) (path string, cleanup func(), err error) {
	if snapshot != "" {
		return snapshot, func() {}, nil
	}
	dir, err := tempDir()
	if err != nil {
		return "", nil, err
	}
	path = dir + "/tenant.pb"
	if err := directory.WriteSnapshotFile(path, workload.Generate(p)); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// parseTransports reads --transport: the transports to run groupgate (and the no-op handler) over. With --addr
// the address names its transport.
func parseTransports(transport, addr string, changed bool) ([]string, error) {
	if addr != "" {
		if changed {
			return nil, errors.New("--transport starts its own servers: leave out --addr (which names its transport: unix:///path for a socket)")
		}
		return []string{bench.Transport(addr)}, nil
	}
	if transport == "both" {
		return []string{"tcp", "unix"}, nil
	}
	var out []string
	for _, t := range strings.Split(transport, ",") {
		if (t != "tcp" && t != "unix") || slices.Contains(out, t) {
			return nil, fmt.Errorf("--transport %q: want tcp, unix, both, or tcp,unix / unix,tcp for the order of the runs", transport)
		}
		out = append(out, t)
	}
	return out, nil
}

// printComparisons prints groupgate's throughput as a share of the no-op handler's over each transport, and,
// when both transports ran, how the unix socket compares with loopback TCP.
func printComparisons(reports []bench.Report) {
	find := func(target, transport string) *bench.Report {
		for i := range reports {
			if reports[i].Target == target && reports[i].Transport == transport {
				return &reports[i]
			}
		}
		return nil
	}
	var ratios, transports []string
	for _, t := range []string{"tcp", "unix"} {
		gg, noop := find("groupgate", t), find("no-op", t)
		if gg != nil && noop != nil && noop.PerSecond > 0 {
			ratios = append(ratios, fmt.Sprintf("%.0f%%", 100*gg.PerSecond/noop.PerSecond))
			transports = append(transports, t)
		}
	}
	switch len(ratios) {
	case 1:
		fmt.Fprintf(stdout(), "groupgate / no-op throughput: %s\n", ratios[0])
	case 2: // named by transport
		fmt.Fprintf(stdout(), "groupgate / no-op throughput: %s %s, %s %s\n", transports[0], ratios[0], transports[1], ratios[1])
	}
	if h := find("http", "http"); h != nil && reports[0].PerSecond > 0 {
		// reports[0] is groupgate over gRPC on the server whose HTTP/JSON API h loaded.
		fmt.Fprintf(stdout(), "http / groupgate throughput: %.0f%% (the same load over HTTP/JSON, as a share of gRPC's)\n", 100*h.PerSecond/reports[0].PerSecond)
	}
	if h, a := find("http", "http"), find("authzen", "authzen"); h != nil && a != nil && h.PerSecond > 0 {
		fmt.Fprintf(stdout(), "authzen / http throughput: %.0f%% (the decisions through /access/v1/evaluation[s], as a share of /v1/…)\n", 100*a.PerSecond/h.PerSecond)
	}
	for _, target := range []string{"groupgate", "no-op"} {
		tcp, unix := find(target, "tcp"), find(target, "unix")
		if tcp == nil || unix == nil || tcp.PerSecond == 0 || tcp.P50 == 0 || tcp.P99 == 0 {
			continue
		}
		change := func(u, t float64) string { return fmt.Sprintf("%+.1f%%", 100*(u-t)/t) }
		fmt.Fprintf(stdout(), "%s over unix socket vs loopback tcp: throughput %s, p50 %s, p99 %s\n", target,
			change(unix.PerSecond, tcp.PerSecond), change(float64(unix.P50), float64(tcp.P50)), change(float64(unix.P99), float64(tcp.P99)))
	}
}

// benchServer is a groupgate server that bench loads: its gRPC address, its HTTP/JSON API's URL (or ""), and,
// for a process of its own, its resident set size and CPU time (-1 and nil in this process, where --sample
// covers it).
type benchServer struct {
	addr, httpURL string
	stop          func()
	rss           func() int64
	cpu           func() time.Duration
	// logStats reads an in-process server's decision-log counts (nil for a process of its own).
	logStats func() (decisionlog.Stats, bool)
}

// startBenchServer starts groupgate on the snapshot file, listening on loopback TCP or on a unix socket in a
// temporary directory, in this process or (separate) in a process of its own; withHTTP also serves its HTTP/JSON
// API on a free loopback port. A server in this process traces with tracerProvider when it is not nil (in place
// of what OTEL_* would set up).
func startBenchServer(ctx context.Context, transport, snapshot string, separate, withHTTP bool, gcHeadroom uint64, decisionLog string, tracerProvider trace.TracerProvider) (*benchServer, error) {
	httpListen := ""
	if separate {
		if withHTTP {
			var err error
			if httpListen, err = freeLoopbackAddr(); err != nil {
				return nil, err
			}
		}
		child, err := spawnServer(ctx, transport, "serve", "--snapshot", snapshot, "--log-level", "warn", "--http-listen", httpListen,
			"--gc-headroom-bytes", strconv.FormatUint(gcHeadroom, 10), "--decision-log", decisionLog)
		if err != nil {
			return nil, err
		}
		s := &benchServer{addr: child.addr, stop: child.stop, rss: child.rss, cpu: child.cpu}
		if withHTTP {
			s.httpURL = "http://" + httpListen
		}
		return s, nil
	}
	listenAddr, cleanup, err := benchListenAddress(transport)
	if err != nil {
		return nil, err
	}
	logger, err := newLogger("warn", "text")
	if err != nil {
		cleanup()
		return nil, err
	}
	cfg := app.Config{Listen: listenAddr, SocketMode: 0o600, Snapshots: []string{snapshot}, Logger: logger,
		ShutdownTimeout: time.Second, GCHeadroom: gcHeadroom,
		DecisionLog: app.DecisionLogConfig{Sink: decisionLog, MaxBytes: 100 << 20, Keep: 10}, TracerProvider: tracerProvider}
	if withHTTP {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	a, err := app.Open(ctx, cfg)
	if err != nil {
		cleanup()
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	stop := func() { cancel(); <-errc; a.Close(); cleanup() }
	select {
	case <-a.Serving():
		return &benchServer{addr: a.Addr(), httpURL: a.HTTPURL(), stop: stop, rss: func() int64 { return -1 }, logStats: a.DecisionLogStats}, nil
	case err := <-errc:
		stop()
		return nil, err
	}
}

// runMeasuringServer is bench.Run that also reports the server process's CPU time per request, when serverCPU
// reads it (a server of its own, --separate): the cost of a request to the server alone, without the load
// generator's, and less sensitive to other work on the machine than throughput is.
func runMeasuringServer(ctx context.Context, name string, cfg bench.Config, serverCPU func() time.Duration) (bench.Report, error) {
	if serverCPU == nil {
		return bench.Run(ctx, name, cfg)
	}
	before := serverCPU()
	r, err := bench.Run(ctx, name, cfg)
	if used := serverCPU() - before; err == nil && r.Requests > 0 && used > 0 {
		r.ServerCPUPerRequest = used / time.Duration(r.Requests)
	}
	return r, err
}

// freeLoopbackAddr is a loopback address with a port free at the time of the call.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// benchListenAddress is where a bench server in this process listens: any free loopback port, or a socket in a
// new temporary directory (removed by cleanup).
func benchListenAddress(transport string) (addr string, cleanup func(), err error) {
	if transport == "unix" {
		dir, err := tempDir()
		if err != nil {
			return "", nil, err
		}
		return "unix://" + filepath.Join(dir, "gg.sock"), func() { os.RemoveAll(dir) }, nil
	}
	return "127.0.0.1:0", func() {}, nil
}

// noOpServer starts the no-op baseline in this process, or in a process of its own.
func noOpServer(ctx context.Context, transport string, separate bool, gcHeadroom uint64) (addr string, stop func(), err error) {
	if !separate {
		listenAddr, cleanup, err := benchListenAddress(transport)
		if err != nil {
			return "", nil, err
		}
		addr, stop, err := bench.ServeNoOp(listenAddr)
		if err != nil {
			cleanup()
			return "", nil, err
		}
		return addr, func() { stop(); cleanup() }, nil
	}
	child, err := spawnServer(ctx, transport, "noop-serve", "--gc-headroom-bytes", strconv.FormatUint(gcHeadroom, 10))
	if err != nil {
		return "", nil, err
	}
	return child.addr, child.stop, nil
}

// childServer is a server process started by bench --separate.
type childServer struct {
	addr    string
	cmd     *exec.Cmd
	done    chan struct{}
	cleanup func() // removes a socket's temporary directory
}

// spawnServer runs this executable with args and --listen on a free loopback port or a unix socket in a
// temporary directory, and waits until it answers.
func spawnServer(ctx context.Context, transport string, args ...string) (*childServer, error) {
	addr, cleanup, err := benchListenAddress(transport)
	if err != nil {
		return nil, err
	}
	if transport == "tcp" { // the child cannot tell us which port it got: pick a free one for it
		if addr, err = freeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		cleanup()
		return nil, err
	}
	cmd := exec.Command(exe, append(args, "--listen", addr)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, err
	}
	c := &childServer{addr: addr, cmd: cmd, done: make(chan struct{}), cleanup: cleanup}
	go func() { _ = cmd.Wait(); close(c.done) }()
	conn, err := client.Dial(addr, client.Options{})
	if err != nil {
		c.stop()
		return nil, err
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Minute) // the large tenant loads in seconds; generous for slow machines
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		// Any answer but UNAVAILABLE (groupgate: NOT_FOUND for this tenant; the no-op: OK) means it is up.
		_, err := conn.Decisions.CheckMembership(cctx, &pb.CheckMembershipRequest{TenantId: "probe", GroupId: "g", PrincipalId: "u"})
		cancel()
		if status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
			return c, nil
		}
		select {
		case <-c.done:
			c.cleanup()
			return nil, fmt.Errorf("%s exited before serving", strings.Join(args, " "))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.stop()
			return nil, fmt.Errorf("%s did not serve within 5 minutes: %v", strings.Join(args, " "), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cpu is the child's user and system CPU time so far (Linux, in clock ticks of 10 ms), or 0.
func (c *childServer) cpu() time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; utime and stime are fields 14 and 15, counted after its ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// rss is the child's resident set size in bytes (Linux), or -1.
func (c *childServer) rss() int64 { return rssOf(strconv.Itoa(c.cmd.Process.Pid)) }

func (c *childServer) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cleanup()
}

func newNoOpServeCmd() *cobra.Command {
	var listen string
	var gcHeadroom uint64
	var record struct{ addr, request string }
	cmd := &cobra.Command{
		Use:    "noop-serve",
		Short:  "Serve the no-op DecisionService that bench --separate compares against",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			defer gctune.Start(gcHeadroom)()
			serveNoOp := bench.ServeNoOp
			if record.addr != "" {
				req := &pb.EffectiveMembersRequest{}
				if err := protojson.Unmarshal([]byte(record.request), req); err != nil {
					return fmt.Errorf("--members-request: %w", err)
				}
				members, err := bench.RecordMembers(ctx, record.addr, "", req)
				if err != nil {
					return err
				}
				serveNoOp = func(addr string) (string, func(), error) { return bench.ServeNoOpStream(addr, members) }
			}
			_, stopServer, err := serveNoOp(listen)
			if err != nil {
				return err
			}
			<-ctx.Done()
			stopServer()
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	cmd.Flags().Uint64Var(&gcHeadroom, "gc-headroom-bytes", defaultGCHeadroom, gcHeadroomUsage)
	cmd.Flags().StringVar(&record.addr, "members-from", "", "before serving, record this server's EffectiveMembers answer to --members-request, to stream as the no-op's")
	cmd.Flags().StringVar(&record.request, "members-request", "", "with --members-from: the EffectiveMembersRequest in protobuf JSON")
	return cmd
}

// streamFlags are bench's --stream options.
type streamFlags struct {
	on       bool
	group    string
	repeat   int
	pageSize int32
}

// runStreams is bench --stream: EffectiveMembers of one group from each groupgate server, then the same answer
// from a no-op handler that streams a recorded copy of its messages (over each transport), compared by
// members per second.
func runStreams(ctx context.Context, cfg bench.Config, sf streamFlags, servers []*benchServer, transports []string, separate, noNoOp bool,
	gcHeadroom uint64, cpuProfile, memProfile, output string) error {
	req := &pb.EffectiveMembersRequest{TenantId: cfg.Tenant, GroupId: sf.group, PageSize: sf.pageSize}
	stopProfile, err := startCPUProfile(cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	var reports []bench.StreamReport
	var recorded []*pb.EffectiveMembersResponse
	for i, s := range servers {
		r, err := bench.Stream(ctx, "groupgate", bench.StreamConfig{Addr: s.addr, Token: cfg.Token, Request: req, Repeat: sf.repeat,
			Record: i == 0 && !noNoOp && !separate, ServerCPU: s.cpu})
		if err != nil {
			return err
		}
		if i == 0 {
			recorded, r.Recorded = r.Recorded, nil
		}
		reports = append(reports, r)
	}
	stopProfile()
	if memProfile != "" {
		if err := writeAllocProfile(memProfile); err != nil {
			return err
		}
	}
	if !noNoOp {
		for _, t := range transports {
			addr, serverCPU, stop, err := noOpStreamServer(ctx, t, separate, gcHeadroom, servers[0].addr, req, recorded)
			if err != nil {
				return err
			}
			r, err := bench.Stream(ctx, "no-op", bench.StreamConfig{Addr: addr, Request: req, Repeat: sf.repeat, ServerCPU: serverCPU})
			stop()
			if err != nil {
				return err
			}
			reports = append(reports, r)
		}
	}
	if output == "json" {
		b, _ := json.MarshalIndent(reports, "", "  ")
		fmt.Fprintln(stdout(), string(b))
		return nil
	}
	page := "the server's default"
	if sf.pageSize > 0 {
		page = strconv.Itoa(int(sf.pageSize))
	}
	fmt.Fprintf(stdout(), "EffectiveMembers of %s in tenant %s, page_size %s, %d timed streams from each server after one untimed, GOMAXPROCS %d\n",
		sf.group, cfg.Tenant, page, sf.repeat, runtime.GOMAXPROCS(0))
	for _, r := range reports {
		fmt.Fprintln(stdout(), r)
	}
	for _, gg := range reports {
		for _, noop := range reports {
			if gg.Target == "groupgate" && noop.Target == "no-op" && gg.Transport == noop.Transport && noop.MembersPerSecond() > 0 {
				if gg.Members != noop.Members || gg.Messages != noop.Messages {
					return fmt.Errorf("the no-op streamed %d members in %d messages, groupgate %d in %d", noop.Members, noop.Messages, gg.Members, gg.Messages)
				}
				serverCPU := ""
				if gg.ServerCPUPerStream > 0 && noop.ServerCPUPerStream > 0 {
					serverCPU = fmt.Sprintf(", server CPU per stream %s vs %s", gg.ServerCPUPerStream.Round(time.Millisecond), noop.ServerCPUPerStream.Round(time.Millisecond))
				}
				fmt.Fprintf(stdout(), "EffectiveMembers / no-op stream (%s): %.0f%% of the members/s (medians; fastest streams %.0f%%), first message %s vs %s (medians)%s\n",
					gg.Transport, 100*gg.MembersPerSecond()/noop.MembersPerSecond(), 100*gg.FastestMembersPerSecond()/noop.FastestMembersPerSecond(),
					gg.MedianFirst().Round(time.Microsecond), noop.MedianFirst().Round(time.Microsecond), serverCPU)
			}
		}
	}
	return nil
}

// noOpStreamServer starts a no-op handler whose EffectiveMembers streams recorded, in this process; or, in a
// process of its own, one that records req's answer from the groupgate server at from before it serves, and
// whose CPU time serverCPU reads (nil in this process).
func noOpStreamServer(ctx context.Context, transport string, separate bool, gcHeadroom uint64, from string, req *pb.EffectiveMembersRequest,
	recorded []*pb.EffectiveMembersResponse) (addr string, serverCPU func() time.Duration, stop func(), err error) {
	if separate {
		reqJSON, err := protojson.Marshal(req)
		if err != nil {
			return "", nil, nil, err
		}
		child, err := spawnServer(ctx, transport, "noop-serve", "--gc-headroom-bytes", strconv.FormatUint(gcHeadroom, 10),
			"--members-from", from, "--members-request", string(reqJSON))
		if err != nil {
			return "", nil, nil, err
		}
		return child.addr, child.cpu, child.stop, nil
	}
	listenAddr, cleanup, err := benchListenAddress(transport)
	if err != nil {
		return "", nil, nil, err
	}
	addr, stopServer, err := bench.ServeNoOpStream(listenAddr, recorded)
	if err != nil {
		cleanup()
		return "", nil, nil, err
	}
	return addr, nil, func() { stopServer(); cleanup() }, nil
}
