package main

import (
	"context"
	"fmt"
	"io/fs"
	"os/signal"
	"syscall"
	"time"

	"github.com/groupgate/groupgate/internal/listen"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/app"
	"github.com/groupgate/groupgate/server/gateway"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/spf13/cobra"
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
	authzenBaseURL  string
	oidcIssuers     []string
	oidcAudiences   []string
	oidcRoles       []string
	decisionLog     decisionLogFlags // --decision-log* (decisionlog.go)
	webhook         app.FindingsWebhook
	// httpReady, when set, receives the HTTP listener's address (tests; not a flag).
	httpReady chan<- string
}

// defaultGCHeadroom is how far the heap may grow between two garbage collections once the live heap reaches
// 64 MiB (package gctune; less below, and within the memory limit): fewer collections keep a medium tenant's
// HTTP tail latency down, while a tenant whose live heap is larger gets as much from GOGC's 100% anyway. The
// measurements behind it are in the README's design notes.
const defaultGCHeadroom = 256 << 20

const gcHeadroomUsage = "collect garbage only after the heap has grown by this many bytes (scaled by (heap/64 MiB)² below a 64 MiB heap, and at most half of what the Go memory limit leaves), or by GOGC percent of the live heap when that is more (0: GOGC alone)"

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
	fl.StringVar(&f.authzenBaseURL, "authzen-base-url", "", "the AuthZEN PDP identifier that GET /.well-known/authzen-configuration announces, e.g. https://pdp.example.com (default: the HTTP listener's URL as each request reached it)")
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
	fl.StringVar(&f.webhook.URL, "findings-webhook", "", "post each finding that opens or resolves to this URL as a signed CloudEvents 1.0 JSON event (README \"Be told when a violation enters\"); https unless loopback")
	fl.StringVar(&f.webhook.SecretFile, "findings-webhook-secret-file", "", "file holding the key of the events' X-Groupgate-Signature (HMAC-SHA256 of the body); required with --findings-webhook")
	fl.StringVar(&f.webhook.HeaderFile, "findings-webhook-header-file", "", "file of 'Name: value' lines sent with every event, e.g. Event Grid's aeg-sas-key (values never logged)")
	fl.BoolVar(&f.webhook.Insecure, "findings-webhook-insecure", false, "allow a plain http:// --findings-webhook off this machine")
	annotateEnv(cmd)
	return cmd
}

// serve runs the server until ctx ends. ready, when set, receives the gRPC address once everything is served
// (f.httpReady the HTTP listener's just before).
func serve(ctx context.Context, f *serveFlags, ready chan<- string) error {
	cfg, err := f.config()
	if err != nil {
		return err
	}
	return app.Serve(ctx, cfg, func(a *app.App) {
		if f.httpReady != nil && a.HTTPAddr() != "" {
			f.httpReady <- a.HTTPAddr()
		}
		if ready != nil {
			ready <- a.Addr()
		}
	})
}

// config is the server the flags describe.
func (f *serveFlags) config() (app.Config, error) {
	logger, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return app.Config{}, err
	}
	var socketMode fs.FileMode // zero when serve is called without flags (bench, tests): the default
	if f.socketMode != "" {
		if socketMode, err = listen.ParseMode(f.socketMode); err != nil {
			return app.Config{}, fmt.Errorf("--socket-mode: %w", err)
		}
	}
	return app.Config{
		Listen: f.listen, HTTPListen: f.httpListen, Metrics: f.metrics, SocketMode: socketMode, Insecure: f.insecure,
		Snapshots: f.snapshots, StoreURL: f.storeURL, Retention: f.retention, CheckpointEvery: f.checkpointEvery,
		TokenFile: f.tokenFile, OIDC: app.OIDC{Issuers: f.oidcIssuers, Audiences: f.oidcAudiences, Roles: f.oidcRoles},
		TLSCert: f.tlsCert, TLSKey: f.tlsKey, ClientCA: f.clientCA, Browser: f.browser, AuthZENBaseURL: f.authzenBaseURL,
		Limits: f.limits, CacheBytes: f.cacheBytes, GCHeadroom: f.gcHeadroom, FollowMemoryLimit: true,
		DecisionLog: app.DecisionLogConfig{Sink: f.decisionLog.sink, MaxBytes: f.decisionLog.maxBytes, Keep: f.decisionLog.keep}, ShutdownTimeout: f.shutdownTimeout, Logger: logger,
		FindingsWebhook: f.webhook,
	}, nil
}
