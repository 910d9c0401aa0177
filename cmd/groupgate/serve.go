package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"github.com/groupgate/groupgate/internal/gctune"
	"github.com/groupgate/groupgate/internal/listen"
	"github.com/groupgate/groupgate/internal/oidc"
	"github.com/groupgate/groupgate/resolver"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/gateway"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/memory"
	"github.com/groupgate/groupgate/store/postgres"
	webui "github.com/groupgate/groupgate/web"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

type serveFlags struct {
	listen          string
	httpListen      string
	socketMode      string
	snapshots       []string
	storeURL        string
	insecure        bool
	tokenFile       string
	tlsCert, tlsKey string
	clientCA        string
	metrics         string
	limits          server.Limits
	logLevel        string
	logFormat       string
	cacheBytes      int64
	shutdownTimeout time.Duration
	retention       postgres.Retention
	checkpointEvery int64
	gcHeadroom      uint64
	browser         gateway.BrowserRules
	oidcIssuers     []string
	oidcAudiences   []string
	oidcRoles       []string
	decisionLog     decisionLogFlags // --decision-log* (decisionlog.go)
	// httpReady, when set, receives the HTTP listener's address (tests; not a flag).
	httpReady chan<- string
}

// defaultGCHeadroom is the least the heap may grow between two garbage collections (package gctune): 256 MiB
// took the HTTP p99 of the medium tenant from 2.2-2.5 ms to ~1.6 ms and changes nothing for a tenant whose live
// heap is above it (the large one's is 400-530 MiB), which GOGC's 100% already gives as much.
const defaultGCHeadroom = 256 << 20

const gcHeadroomUsage = "collect garbage only after the heap has grown by at least this many bytes, or by GOGC percent of the live heap when that is more (0: GOGC alone; GOMEMLIMIT still applies)"

func newServeCmd() *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the gRPC API on the given snapshots, or on the embedded demo tenant contoso",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return serve(ctx, f, nil)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:50051", "address to listen on: host:port, or a unix socket as unix:///path/to.sock (also unix:/abs/path, unix:relative/path)")
	fl.StringVar(&f.httpListen, "http-listen", "127.0.0.1:8080", "address of the HTTP/JSON API (POST /v1/{rpc}, GET /healthz, GET /openapi.json), same TLS and tokens as --listen, host:port or unix:///path/to.sock; empty disables it")
	fl.StringSliceVar(&f.browser.AllowedOrigins, "http-allowed-origins", nil, "origins (scheme://host[:port]) whose web pages may call the HTTP API, with CORS answers; any other origin's requests are refused (repeatable)")
	fl.StringSliceVar(&f.browser.AllowedHosts, "http-allowed-hosts", nil, "names a request's Host may carry besides localhost and loopback addresses; others are refused against DNS rebinding (repeatable)")
	fl.StringVar(&f.socketMode, "socket-mode", "0660", "file mode (octal) of a unix socket that --listen, --http-listen or --metrics names; connecting needs write permission")
	fl.StringSliceVar(&f.snapshots, "snapshot", nil, "snapshot file of one tenant (.json, .json.gz, .pb, .pb.gz); repeat for more tenants (default: the demo tenant contoso)")
	fl.StringVar(&f.storeURL, "store", "memory", "where tenants live: memory, or postgres://… shared by replicas (with --snapshot, seeds tenants the database does not hold yet)")
	fl.BoolVar(&f.insecure, "insecure", false, "allow listening on a non-loopback address without TLS or tokens")
	fl.StringVar(&f.tokenFile, "token-file", "", "file of ROLE:TOKEN lines (roles checker, writer); every call but health then needs 'authorization: Bearer TOKEN'")
	fl.StringSliceVar(&f.oidcIssuers, "oidc-issuer", nil, "accept Entra ID / OpenID Connect access tokens from this issuer: its discovery location, e.g. https://login.microsoftonline.com/TENANT/v2.0 (v2 tokens) or https://login.microsoftonline.com/TENANT (v1 tokens, as managed identities present them); https except on loopback (repeatable)")
	fl.StringSliceVar(&f.oidcAudiences, "oidc-audience", nil, "accepted aud of those tokens: the app ID URI (api://groupgate) and/or the client id (repeatable; required with --oidc-issuer)")
	fl.StringSliceVar(&f.oidcRoles, "oidc-role", []string{"GroupGate.Check=checker", "GroupGate.Write=writer"}, "VALUE=ROLE: a value of the token's roles claim (an app role) and the groupgate role it grants, checker or writer (repeatable; the highest wins)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "server certificate (PEM); with --tls-key turns TLS on")
	fl.StringVar(&f.tlsKey, "tls-key", "", "server private key (PEM)")
	fl.StringVar(&f.clientCA, "client-ca", "", "CA certificate (PEM) that client certificates must chain to (mTLS; needs --tls-cert)")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9090)")
	fl.IntVar(&f.limits.MaxRecvBytes, "max-recv-bytes", 16<<20, "largest message accepted (RESOURCE_EXHAUSTED beyond)")
	fl.IntVar(&f.limits.MaxConcurrentUnary, "max-concurrent-calls", 4096, "unary calls in progress at once (RESOURCE_EXHAUSTED beyond)")
	fl.IntVar(&f.limits.MaxConcurrentStreams, "max-concurrent-streams", 256, "streaming calls in progress at once (RESOURCE_EXHAUSTED beyond)")
	fl.DurationVar(&f.limits.DefaultTimeout, "default-timeout", 30*time.Second, "deadline of unary calls that bring none")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (debug logs every call)")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fl.Int64Var(&f.cacheBytes, "cache-bytes", 0, "memory bound of the resolver cache in bytes (0: the default)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight calls")
	fl.Uint64Var(&f.gcHeadroom, "gc-headroom-bytes", defaultGCHeadroom, gcHeadroomUsage)
	fl.Int64Var(&f.checkpointEvery, "checkpoint-every", 10_000, "postgres: store a tenant's snapshot every N revisions, where replicas start and retention may prune below (-1: never)")
	fl.Int64Var(&f.retention.Revisions, "retain-revisions", 10_000, "postgres: keep at least the newest N revisions of each tenant's change log for Watch (the log above the newest checkpoint is always kept)")
	fl.DurationVar(&f.retention.For, "retain-for", 24*time.Hour, "postgres: keep at least the revisions (and superseded checkpoints) written within this period")
	fl.DurationVar(&f.retention.Every, "prune-every", time.Minute, "postgres: how often one replica prunes what --retain-revisions and --retain-for no longer keep (0: keep everything)")
	f.decisionLog.register(fl, &f.retention)
	annotateEnv(cmd)
	return cmd
}

// serve runs the server until ctx ends. ready, when set, receives the listening address.
func serve(ctx context.Context, f *serveFlags, ready chan<- string) error {
	logger, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	defer gctune.Start(f.gcHeadroom)()
	socketMode := listen.DefaultSocketMode // when serve is called without flags (bench, tests, --snapshot)
	if f.socketMode != "" {
		if socketMode, err = listen.ParseMode(f.socketMode); err != nil {
			return fmt.Errorf("--socket-mode: %w", err)
		}
	}
	// Every address is checked now, not after the tenants have loaded (seconds on a large one): the loopback rule
	// (metrics are never guarded by TLS or tokens) and, for a socket, that its path is free.
	secured := f.tokenFile != "" || f.tlsCert != "" || len(f.oidcIssuers) > 0
	for _, l := range []struct {
		flag, addr string
		optional   bool // empty disables it
		allowed    bool // may be a non-loopback address
	}{
		{"--listen", f.listen, false, f.insecure || secured},
		{"--http-listen", f.httpListen, true, f.insecure || secured},
		{"--metrics", f.metrics, true, f.insecure},
	} {
		if l.optional && l.addr == "" {
			continue
		}
		if err := checkListenAddress(l.flag, l.addr, l.allowed); err != nil {
			return err
		}
		if err := listen.Check(l.addr); err != nil {
			return fmt.Errorf("%s: %w", l.flag, err)
		}
	}
	if err := f.browser.Validate(); err != nil {
		return err
	}
	var tokens *server.Tokens
	if f.tokenFile != "" {
		if tokens, err = server.LoadTokenFile(f.tokenFile); err != nil {
			return err
		}
	}
	jwtAuth, err := openJWTAuth(ctx, f, logger)
	if err != nil {
		return err
	}
	if jwtAuth != nil {
		defer jwtAuth.Verifier.Close()
	}
	// The HTTP gateway reaches the gRPC server through an in-memory listener (see server/gateway).
	var inProcess *gateway.InProcess
	if f.httpListen != "" {
		inProcess = gateway.NewInProcess()
	}
	var serverOpts []grpc.ServerOption
	var tlsConfig *tls.Config
	switch {
	case f.tlsCert != "" || f.tlsKey != "":
		if tlsConfig, err = server.ServerTLSConfig(f.tlsCert, f.tlsKey, f.clientCA); err != nil {
			return err
		}
		creds := credentials.NewTLS(tlsConfig)
		if inProcess != nil {
			creds = inProcess.Credentials(creds)
		}
		serverOpts = append(serverOpts, grpc.Creds(creds))
	case f.clientCA != "":
		return errors.New("--client-ca needs --tls-cert and --tls-key")
	}
	res := resolver.New(resolver.Options{CacheMaxBytes: f.cacheBytes})
	defer res.Close() // deferred first, so it runs last: after the store has stopped calling Invalidate
	st, closeStore, err := openStore(ctx, f, res, logger)
	if err != nil {
		return err
	}
	defer closeStore()
	var metrics *server.Metrics // only when someone can scrape them: the interceptor costs ~10% of throughput
	if f.metrics != "" {
		metrics = server.NewMetrics(st, res.CacheStats)
	}
	obs, err := openObservability(ctx, &f.decisionLog, st, logger) // decision log and tracing (decisionlog.go)
	if err != nil {
		return err
	}
	defer obs.close() // after the server has stopped, before the store closes
	srv := server.New(server.Config{Store: st, Resolver: res, Logger: logger, Tokens: tokens, JWT: jwtAuth, Limits: f.limits,
		Metrics: metrics, ServerOptions: serverOpts, DecisionLog: obs.decisionLog, DecisionLogReader: obs.reader, TracerProvider: obs.tracer})
	listenOpts := listen.Options{SocketMode: socketMode}
	lis, closeListener, err := listen.Listen(f.listen, listenOpts)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	// A socket's file goes when Shutdown's graceful stop closes the listener; this covers returns before that.
	defer closeListener()
	if f.metrics != "" {
		stopMetrics, err := serveMetrics(f.metrics, listenOpts, metrics, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	errc := make(chan error, 2) // the gRPC and in-process serve loops
	var web *gateway.Server
	var webDone <-chan error
	if inProcess != nil {
		go func() { errc <- srv.GRPC().Serve(inProcess) }()
		if web, err = startHTTP(f.httpListen, listenOpts, srv, inProcess, tlsConfig, f.limits.MaxRecvBytes, f.browser, logger); err != nil {
			lis.Close()
			srv.Shutdown(context.Background())
			return err
		}
		webDone = web.Done()
	}
	srv.MarkServing()
	target := listen.Target(lis.Addr())
	logger.Info("serving", "address", target, "store", st.Name(), "tenants", st.Tenants())
	if web != nil {
		logger.Info("serving HTTP/JSON", "address", web.URL)
		if f.httpReady != nil {
			f.httpReady <- web.Addr
		}
	}
	if ready != nil {
		ready <- target
	}
	go func() { errc <- srv.GRPC().Serve(lis) }()
	// A listener that fails stops the other too (through the same shutdown as SIGTERM), so that serve never
	// returns with one of them still answering.
	var failed error
	select {
	case failed = <-errc:
		logger.Error("gRPC listener failed", "err", failed)
	case err := <-webDone:
		failed = fmt.Errorf("--http-listen: %w", err)
		logger.Error("HTTP listener failed", "err", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight calls", "timeout", f.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	// Both at once: HTTP calls in flight need the gRPC server to finish, and the gRPC server's graceful stop
	// waits for them.
	stopped := make(chan struct{})
	go func() {
		if web != nil {
			web.Shutdown(sctx)
		}
		close(stopped)
	}()
	srv.Shutdown(sctx)
	<-stopped
	logger.Info("stopped")
	return failed
}

// openJWTAuth checks the --oidc-* flags and starts fetching the issuers' keys (nil without --oidc-issuer). An issuer
// that cannot be reached does not stop serve: its callers get UNAVAILABLE until its keys arrive.
func openJWTAuth(ctx context.Context, f *serveFlags, logger *slog.Logger) (*server.JWTAuth, error) {
	if len(f.oidcIssuers) == 0 {
		if len(f.oidcAudiences) > 0 {
			return nil, errors.New("--oidc-audience without --oidc-issuer: name the issuer whose tokens carry it")
		}
		return nil, nil
	}
	roles := map[string]server.Role{}
	for _, r := range f.oidcRoles {
		value, name, ok := strings.Cut(r, "=")
		if !ok || value == "" {
			return nil, fmt.Errorf("--oidc-role %q: want VALUE=ROLE, e.g. GroupGate.Check=checker", r)
		}
		role, err := server.ParseRole(name)
		if err != nil {
			return nil, fmt.Errorf("--oidc-role %q: %w", r, err)
		}
		roles[value] = role
	}
	cfg := oidc.Config{Issuers: f.oidcIssuers, Audiences: f.oidcAudiences, Logger: logger}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("--oidc-issuer, --oidc-audience: %w", err)
	}
	v, err := oidc.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	logger.Info("accepting OIDC tokens", "issuers", f.oidcIssuers, "audiences", f.oidcAudiences, "roles", f.oidcRoles)
	return &server.JWTAuth{Verifier: v, Roles: roles}, nil
}

// httpRoot serves GET / and every other path outside the API on the HTTP listener: the explorer page (package
// web) and its assets.
func httpRoot() http.Handler { return webui.Handler() }

// startHTTP serves the HTTP/JSON API on addr (host:port or a unix socket) in front of the gRPC server that
// serves inProcess (see server/gateway), with the gRPC port's TLS configuration.
func startHTTP(addr string, listenOpts listen.Options, srv *server.Server, inProcess *gateway.InProcess, tlsConfig *tls.Config, maxBody int, browser gateway.BrowserRules, logger *slog.Logger) (*gateway.Server, error) {
	lis, closeListener, err := listen.Listen(addr, listenOpts)
	if err != nil {
		return nil, fmt.Errorf("--http-listen: %w", err)
	}
	web, err := gateway.Start(lis, srv, inProcess, tlsConfig, gateway.Options{MaxBodyBytes: int64(maxBody), Root: httpRoot(), Browser: browser},
		slog.NewLogLogger(logger.Handler(), slog.LevelWarn))
	if err != nil {
		closeListener()
		return nil, err
	}
	return web, nil
}

// openStore opens the store --store names and puts the --snapshot tenants in it: all of them in a memory
// store (the demo tenant when there are none); in PostgreSQL only those the database does not hold yet, so that
// a restart never overwrites what was written since.
func openStore(ctx context.Context, f *serveFlags, res *resolver.Resolver, logger *slog.Logger) (store.Store, func(), error) {
	if f.storeURL == "" || f.storeURL == "memory" {
		tenants, err := loadTenants(f.snapshots)
		if err != nil {
			return nil, nil, err
		}
		st := memory.New(memory.Options{OnChange: res.Invalidate})
		for _, d := range tenants {
			if err := st.Add(d); err != nil {
				return nil, nil, err
			}
			logTenant(logger, "tenant loaded", d)
		}
		return st, func() {}, nil
	}
	if !strings.HasPrefix(f.storeURL, "postgres://") && !strings.HasPrefix(f.storeURL, "postgresql://") {
		// The value is not echoed: it may hold a password.
		return nil, nil, errors.New("--store: want memory or a postgres:// URL")
	}
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch {
	case f.retention.Revisions < 0:
		return nil, nil, fmt.Errorf("--retain-revisions %d: must not be negative", f.retention.Revisions)
	case f.retention.For < 0:
		return nil, nil, fmt.Errorf("--retain-for %s: must not be negative", f.retention.For)
	case f.retention.Every < 0:
		return nil, nil, fmt.Errorf("--prune-every %s: must not be negative (0 keeps everything)", f.retention.Every)
	case f.checkpointEvery == 0:
		return nil, nil, errors.New("--checkpoint-every 0: want N > 0, or -1 for no checkpoints")
	}
	st, err := postgres.Open(openCtx, f.storeURL, postgres.Options{OnChange: res.Invalidate, Logger: logger,
		Retention: f.retention, CheckpointEvery: f.checkpointEvery})
	if err != nil {
		return nil, nil, err
	}
	for _, id := range st.Tenants() {
		d, err := st.Directory(ctx, id, 0)
		if err == nil {
			logTenant(logger, "tenant loaded from postgres", d)
		}
	}
	if len(f.snapshots) > 0 {
		tenants, err := loadTenants(f.snapshots)
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		for _, d := range tenants {
			zero := int64(0) // only into an empty tenant: a replica racing us to seed it wins, and we follow
			_, err := st.Import(openCtx, d.Snapshot(), &zero)
			switch {
			case errors.Is(err, store.ErrRevisionMismatch):
				logger.Info("tenant already in postgres: --snapshot not imported", "tenant", d.TenantID())
			case err != nil:
				st.Close()
				return nil, nil, fmt.Errorf("seeding tenant %s: %w", d.TenantID(), err)
			default:
				logTenant(logger, "tenant imported into postgres", d)
			}
		}
	}
	return st, st.Close, nil
}

func logTenant(logger *slog.Logger, msg string, d *directory.Directory) {
	c := d.Counts()
	logger.Info(msg, "tenant", d.TenantID(), "revision", d.Revision(), "users", c.Users,
		"groups", c.Groups, "service_principals", c.ServicePrincipals, "labels", c.Labels, "memberships", c.Memberships)
}

// loadTenants reads and validates every snapshot file (the demo tenant when there are none). A file that fails
// validation stops the server from starting, with the offending ids in the message.
func loadTenants(paths []string) ([]*directory.Directory, error) {
	if len(paths) == 0 {
		d, err := demo.Directory()
		if err != nil {
			return nil, err
		}
		return []*directory.Directory{d}, nil
	}
	seen := map[string]string{}
	var out []*directory.Directory
	for _, p := range paths {
		start := time.Now()
		d, err := directory.LoadFile(p)
		if err != nil {
			return nil, err
		}
		if other, dup := seen[d.TenantID()]; dup {
			return nil, fmt.Errorf("%s and %s both hold tenant %q", other, p, d.TenantID())
		}
		seen[d.TenantID()] = p
		slog.Debug("snapshot read", "file", p, "seconds", time.Since(start).Seconds())
		out = append(out, d)
	}
	return out, nil
}

// checkListenAddress refuses a non-loopback address unless allowed: without TLS or tokens, anything that can
// reach the port could ask, and write. A unix socket counts as local: only this machine reaches it, and its file
// mode (--socket-mode) decides which users.
func checkListenAddress(flag, addr string, allowed bool) error {
	a, err := listen.Parse(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	if allowed || a.Local() {
		return nil
	}
	return fmt.Errorf("%s %s is not a loopback address: refusing to serve it without TLS or tokens (pass --insecure to do it anyway)", flag, addr)
}

// serveMetrics serves Prometheus metrics on their own listener, so that scraping never competes with the gRPC
// port and can be firewalled apart.
func serveMetrics(addr string, opts listen.Options, m *server.Metrics, logger *slog.Logger) (stop func(), err error) {
	lis, closeListener, err := listen.Listen(addr, opts)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	web := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = web.Serve(lis) }()
	if lis.Addr().Network() == "unix" {
		logger.Info("serving metrics", "address", listen.Target(lis.Addr()), "path", "/metrics")
	} else {
		logger.Info("serving metrics", "address", "http://"+lis.Addr().String()+"/metrics")
	}
	return func() { _ = web.Close(); closeListener() }, nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
