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
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/groupgate/groupgate/bench"
	"github.com/groupgate/groupgate/bench/workload"
	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func newBenchCmd() *cobra.Command {
	var cfg bench.Config
	var preset, snapshot, mix, output string
	var noNoOp, noHTTP bool
	var httpURL string
	var cpuProfile string
	var sampleEvery time.Duration
	var memProfile string
	var separate bool
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
Request ids come from the generated tenant: --preset and --seed must match the tenant the server holds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
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
			ctx := cmd.Context()
			var serverRSS func() int64
			var serverCPU func() time.Duration // the server process's CPU time so far, with --separate
			switch {
			case cfg.Addr == "" && separate:
				path, cleanup, err := snapshotFile(cfg.Params, snapshot)
				if err != nil {
					return err
				}
				defer cleanup()
				httpListen := ""
				if !noHTTP {
					if httpListen, err = freeLoopbackAddr(); err != nil {
						return err
					}
					httpURL = "http://" + httpListen
				}
				child, err := spawnServer(ctx, "serve", "--snapshot", path, "--log-level", "warn", "--http-listen", httpListen)
				if err != nil {
					return err
				}
				defer child.stop()
				cfg.Addr, serverRSS, serverCPU = child.addr, child.rss, child.cpu
			case cfg.Addr == "":
				url, stop, err := benchServer(ctx, &cfg, snapshot, !noHTTP)
				if err != nil {
					return err
				}
				defer stop()
				httpURL = url
			case separate:
				return errors.New("--separate starts its own servers: leave out --addr")
			}
			if noHTTP {
				httpURL = ""
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer f.Close()
			}
			reports := []bench.Report{}
			stopSampling := sampleResources(sampleEvery)
			r, err := runMeasuringServer(ctx, "groupgate", cfg, serverCPU)
			samples := stopSampling()
			if memProfile != "" {
				if err := writeAllocProfile(memProfile); err != nil {
					return err
				}
			}
			if cpuProfile != "" {
				pprof.StopCPUProfile()
			}
			if err != nil {
				return err
			}
			reports = append(reports, r)
			serverRSSBytes := int64(-1)
			if serverRSS != nil {
				serverRSSBytes = serverRSS() // at the end of the groupgate run, as the samples are
			}
			if httpURL != "" {
				overHTTP := cfg
				overHTTP.HTTPURL = strings.TrimSuffix(httpURL, "/")
				hr, err := runMeasuringServer(ctx, "http", overHTTP, serverCPU)
				if err != nil {
					return err
				}
				reports = append(reports, hr)
			}
			if !noNoOp {
				addr, stop, err := noOpServer(ctx, separate)
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
			for _, s := range samples {
				fmt.Fprintln(stdout(), s)
			}
			if serverRSSBytes >= 0 {
				fmt.Fprintf(stdout(), "server process rss %7.1f MiB at the end of the run\n", float64(serverRSSBytes)/(1<<20))
			}
			byName := map[string]bench.Report{}
			for _, r := range reports {
				byName[r.Target] = r
			}
			if noop, ok := byName["no-op"]; ok && noop.PerSecond > 0 {
				fmt.Fprintf(stdout(), "groupgate / no-op throughput: %.0f%%\n", 100*reports[0].PerSecond/noop.PerSecond)
			}
			if h, ok := byName["http"]; ok && reports[0].PerSecond > 0 {
				fmt.Fprintf(stdout(), "http / groupgate throughput: %.0f%% (the same load over HTTP/JSON, as a share of gRPC's)\n", 100*h.PerSecond/reports[0].PerSecond)
			}
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
	fl.StringVar(&mix, "mix", "add-member=60,check-membership=30,batch=10", "request weights: add-member, check-membership, batch (10 checks), effective-groups (a user's whole stream), write")
	fl.BoolVar(&noNoOp, "no-baseline", false, "skip the no-op comparison")
	fl.BoolVar(&noHTTP, "no-http", false, "skip the run over the HTTP/JSON API")
	fl.StringVar(&httpURL, "http-url", "", "with --addr: the server's HTTP/JSON API (e.g. http://127.0.0.1:8080) to load as well; empty skips it")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process during the groupgate run (with an in-process server: both)")
	fl.StringVarP(&output, "output", "o", "text", "text or json")
	fl.StringVar(&memProfile, "memprofile", "", "after the groupgate run, write this process's allocation profile (pprof allocs; with an in-process server: both)")
	fl.BoolVar(&separate, "separate", false, "run groupgate and the no-op handler each in a process of its own (default: in this process)")
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

// benchServer starts groupgate in this process on the snapshot file or the generated preset, with its HTTP/JSON
// API on a free loopback port when withHTTP (its URL is returned).
func benchServer(ctx context.Context, cfg *bench.Config, snapshot string, withHTTP bool) (httpURL string, stop func(), err error) {
	path, cleanup, err := snapshotFile(cfg.Params, snapshot)
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	ready, httpReady := make(chan string, 1), make(chan string, 1)
	f := &serveFlags{listen: "127.0.0.1:0", snapshots: []string{path}, logLevel: "warn", logFormat: "text", shutdownTimeout: time.Second}
	if withHTTP {
		f.httpListen, f.httpReady = "127.0.0.1:0", httpReady
	}
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, f, ready) }()
	select {
	case cfg.Addr = <-ready:
		if withHTTP {
			httpURL = "http://" + <-httpReady // sent before ready
		}
		return httpURL, func() { cancel(); <-errc; cleanup() }, nil
	case err := <-errc:
		cancel()
		cleanup()
		return "", nil, err
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

// noOpServer starts the no-op baseline in this process, or in a process of its own.
func noOpServer(ctx context.Context, separate bool) (addr string, stop func(), err error) {
	if !separate {
		return bench.NoOpServer()
	}
	child, err := spawnServer(ctx, "noop-serve")
	if err != nil {
		return "", nil, err
	}
	return child.addr, child.stop, nil
}

// childServer is a server process started by bench --separate.
type childServer struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// spawnServer runs this executable with args and --listen on a free loopback port, and waits until it answers.
func spawnServer(ctx context.Context, args ...string) (*childServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append(args, "--listen", addr)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &childServer{addr: addr, cmd: cmd, done: make(chan struct{})}
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
}

func newNoOpServeCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:    "noop-serve",
		Short:  "Serve the no-op DecisionService that bench --separate compares against",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			_, stopServer, err := bench.ServeNoOp(listen)
			if err != nil {
				return err
			}
			<-ctx.Done()
			stopServer()
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	return cmd
}
