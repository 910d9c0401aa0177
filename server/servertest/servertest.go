// Package servertest starts a real groupgate server on a random 127.0.0.1 port for tests, over real gRPC.
package servertest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/findings"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/app"
	"github.com/groupgate/groupgate/server/gateway"
	"github.com/groupgate/groupgate/store"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Server is a running test server.
type Server struct {
	Addr   string
	Client *client.Client
	Store  store.Store
	Server *server.Server
	// Metrics is set when Options.Metrics was.
	Metrics *server.Metrics
	// HTTPURL is the HTTP/JSON API's base URL (http://127.0.0.1:port) when Options.HTTP was set.
	HTTPURL string
}

// Options change how the test server runs.
type Options struct {
	// Tokens turns authentication on.
	Tokens *server.Tokens
	// JWT accepts Entra ID / OIDC tokens (authentication on).
	JWT *server.JWTAuth
	// TLS secures the server; Client.TLS must then be set too.
	TLS *tls.Config
	// Client configures the returned client (token, TLS).
	Client client.Options
	// Metrics turns metrics on (Server.Metrics).
	Metrics bool
	// Limits override the server's limits.
	Limits server.Limits
	// HTTP also serves the HTTP/JSON API on 127.0.0.1:0 (Server.HTTPURL), as serve --http-listen does.
	HTTP bool
	// HTTPRoot is the HTTP listener's handler for paths outside the API (gateway.Options.Root).
	HTTPRoot http.Handler
	// Browser widens the HTTP listener's browser rules (gateway.Options.Browser).
	Browser gateway.BrowserRules
	// AuthZENBaseURL is the AuthZEN PDP identifier discovery announces (app.Config.AuthZENBaseURL).
	AuthZENBaseURL string
	// Logger, when set, receives the server's logs (default: discarded).
	Logger *slog.Logger
	// DecisionLog and DecisionLogReader are the server's (server.Config).
	DecisionLog       server.DecisionLog
	DecisionLogReader server.DecisionLogReader
	// ServerOptions are added to the server's (server.Config.ServerOptions).
	ServerOptions []grpc.ServerOption
	// TracerProvider traces the server's calls (server.Config.TracerProvider).
	TracerProvider trace.TracerProvider
	// Store, when set, opens the store to serve (its OnChange must call onChange) instead of a memory store
	// holding the given tenants; the caller seeds it.
	Store func(onChange store.ChangeListener) store.Store
	// Findings bound WatchFindings' subscribers and history (server.Config.Findings).
	Findings findings.Options
	// FindingsWebhook posts live findings to a URL (app.Config.FindingsWebhook).
	FindingsWebhook app.FindingsWebhook
}

// Start serves the given tenants (the demo tenant when none is given) from a memory store on 127.0.0.1:0 and
// returns a connected client. Everything is stopped when the test ends.
func Start(t testing.TB, tenants ...*directory.Directory) *Server {
	t.Helper()
	return StartWith(t, Options{}, tenants...)
}

// StartWith is Start with options. The server is assembled by server/app, as groupgate serve assembles it.
func StartWith(t testing.TB, opts Options, tenants ...*directory.Directory) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := app.Config{
		Listen:         "127.0.0.1:0",
		Tenants:        tenants,
		Tokens:         opts.Tokens,
		JWT:            opts.JWT,
		TLS:            opts.TLS,
		Limits:         opts.Limits,
		MetricsAlways:  opts.Metrics,
		Logger:         opts.Logger,
		Browser:        opts.Browser,
		AuthZENBaseURL: opts.AuthZENBaseURL,

		DecisionLogger:    opts.DecisionLog,
		DecisionLogReader: opts.DecisionLogReader,
		ServerOptions:     opts.ServerOptions,
		TracerProvider:    opts.TracerProvider,
		// GCHeadroom zero: a test's server leaves the collector to Go, as before the headroom existed.
		ShutdownTimeout: 5 * time.Second,
		Findings:        opts.Findings,
		FindingsWebhook: opts.FindingsWebhook,
	}
	if opts.Store != nil {
		cfg.Store = func(onChange store.ChangeListener) (store.Store, error) { return opts.Store(onChange), nil }
	}
	if opts.HTTP {
		cfg.HTTPListen = "127.0.0.1:0"
		cfg.HTTPRoot = opts.HTTPRoot
		if cfg.HTTPRoot == nil {
			cfg.HTTPRoot = gateway.NoRoute
		}
	}
	a, err := app.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	select {
	case <-a.Serving():
	case err := <-errc:
		a.Close()
		t.Fatal(err)
	}
	c, err := client.Dial(a.Addr(), opts.Client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		<-errc
		a.Close()
	})
	return &Server{Addr: a.Addr(), Client: c, Store: a.Store(), Server: a.Server(), Metrics: a.Metrics(), HTTPURL: a.HTTPURL()}
}
