// Package app assembles a running groupgate: the store, the listeners, TLS, callers' authentication, the gRPC
// server, the HTTP gateway with the explorer, metrics, and their shutdown. `groupgate serve` maps its flags onto
// a Config; tests and `groupgate bench` start servers the same way:
//
//	a, err := app.Open(ctx, cfg) // checks, loads the tenants, binds every listener; nothing served yet
//	defer a.Close()             // whatever Open started, in reverse order
//	err = a.Run(ctx)            // serves until ctx ends or a listener fails, then shuts down gracefully
//
// Errors name the serve flag of the Config field they are about: that is how people meet these settings.
package app

import (
	"crypto/tls"
	"github.com/groupgate/groupgate/findings"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/gateway"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/postgres"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Config is everything a groupgate server is made of. The zero value serves the demo tenant from memory on
// 127.0.0.1:50051, gRPC only, to every caller on this machine.
type Config struct {
	// Listen is the gRPC address: host:port, or a unix socket (unix:///path/to.sock). "": DefaultListen.
	Listen string
	// HTTPListen is the HTTP/JSON API's address (and the explorer's), under the same rules; "": none.
	HTTPListen string
	// Metrics serves Prometheus metrics at http://Metrics/metrics; "": none. Always loopback (or a socket)
	// unless Insecure: it is guarded by neither TLS nor tokens.
	Metrics string
	// SocketMode is the file mode of the unix sockets the addresses name; 0: listen.DefaultSocketMode (0660).
	SocketMode fs.FileMode
	// Insecure allows non-loopback addresses without TLS or tokens.
	Insecure bool

	// Snapshots are snapshot files of one tenant each (.json, .json.gz, .pb, .pb.gz) and Tenants directories
	// already in memory: served from a memory store, or seeded into PostgreSQL where it lacks them. Neither: the
	// demo tenant contoso (memory store).
	Snapshots []string
	Tenants   []*directory.Directory
	// StoreURL is where tenants live: "" or "memory", or a postgres:// URL shared by replicas.
	StoreURL string
	// Store, when set, opens the store instead of StoreURL (tests: a store of their own); it must call
	// onChange after every change, as memory.Options.OnChange does.
	Store func(onChange store.ChangeListener) (store.Store, error)
	// Retention and CheckpointEvery configure the PostgreSQL store (postgres.Options). CheckpointEvery must be
	// N > 0 or -1 with a postgres store (serve's default: 10,000).
	Retention       postgres.Retention
	CheckpointEvery int64

	// TokenFile holds static callers (ROLE:TOKEN or ROLE:NAME:TOKEN lines); Tokens are the same already parsed.
	TokenFile string
	Tokens    *server.Tokens
	// OIDC accepts Entra ID / OpenID Connect access tokens (SPEC §13); JWT is the same already built.
	OIDC OIDC
	JWT  *server.JWTAuth
	// TLSCert and TLSKey turn TLS on for the gRPC and the HTTP listener; ClientCA requires client certificates
	// (mTLS). TLS is the same already built (tests); GRPCCredentials, when set, wrap it for the gRPC server.
	TLSCert, TLSKey, ClientCA string
	TLS                       *tls.Config
	// Browser widens the HTTP listener's rules against web pages (gateway.BrowserRules).
	Browser gateway.BrowserRules
	// AuthZENBaseURL is the AuthZEN PDP identifier the HTTP listener's discovery document announces
	// (--authzen-base-url, SPEC §17); "": the listener's own URL as each request reached it.
	AuthZENBaseURL string
	// HTTPRoot serves the HTTP listener's paths outside the API; nil: the explorer page (package web).
	HTTPRoot http.Handler

	// DecisionLog records every decision (SPEC §14); DecisionLogger and DecisionLogReader are the same already
	// built (tests). Tracing follows the OTEL_* environment variables (SetupTracing) unless TracerProvider is set.
	DecisionLog       DecisionLogConfig
	DecisionLogger    server.DecisionLog
	DecisionLogReader server.DecisionLogReader
	TracerProvider    trace.TracerProvider
	// ServerOptions are added to the gRPC server's (tests).
	ServerOptions []grpc.ServerOption

	// FindingsWebhook posts each live finding event to a URL (SPEC §16); its URL "": none.
	FindingsWebhook FindingsWebhook

	// Limits bound requests and concurrency (zero fields: server's defaults).
	Limits server.Limits
	// CacheBytes bounds the resolver's cache; 0: its default.
	CacheBytes int64
	// Metrics are counted only when someone can scrape them (Metrics set) or MetricsAlways is (tests): the
	// interceptor costs ~10% of throughput.
	MetricsAlways bool
	// GCHeadroom is internal/gctune's headroom; 0: GOGC alone.
	GCHeadroom uint64
	// FollowMemoryLimit sets the process's Go memory limit from its container's (internal/memlimit: 90% of the
	// cgroup limit unless GOMEMLIMIT is set) and fits GCHeadroom inside it. It changes the whole process: serve
	// sets it, an embedder that has its own limit does not.
	FollowMemoryLimit bool
	// ShutdownTimeout is how long Run's shutdown waits for in-flight calls; 0: 30 s.
	ShutdownTimeout time.Duration
	// Logger receives the server's logs; nil: slog.Default().
	Logger *slog.Logger
	// Findings bound WatchFindings' subscribers and history (server.Config.Findings); zero values take defaults.
	Findings findings.Options
}

// OIDC configures Entra ID / OpenID Connect bearer tokens (serve's --oidc-* flags).
type OIDC struct {
	// Issuers are discovery locations ({URL}/.well-known/openid-configuration); none: JWTs are not accepted.
	Issuers []string
	// Audiences are the accepted aud values: required with Issuers.
	Audiences []string
	// Roles map values of the token's roles claim to groupgate roles, as VALUE=ROLE; none:
	// GroupGate.Check=checker and GroupGate.Write=writer.
	Roles []string
}

// DefaultListen is the gRPC address of a Config that names none.
const DefaultListen = "127.0.0.1:50051"

// DefaultShutdownTimeout is how long shutdown waits for in-flight calls when the Config says nothing.
const DefaultShutdownTimeout = 30 * time.Second

func (c *Config) complete() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// secured: callers must prove who they are, or the connection is encrypted and may be.
func (c *Config) secured() bool {
	return c.TokenFile != "" || c.Tokens != nil || len(c.OIDC.Issuers) > 0 || c.JWT != nil ||
		c.TLSCert != "" || c.TLS != nil
}
