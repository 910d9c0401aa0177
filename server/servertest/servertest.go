// Package servertest starts a real groupgate server on a random 127.0.0.1 port for tests, over real gRPC.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"github.com/groupgate/groupgate/resolver"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/gateway"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/memory"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
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
	TLS credentials.TransportCredentials
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
}

// Start serves the given tenants (the demo tenant when none is given) from a memory store on 127.0.0.1:0 and
// returns a connected client. Everything is stopped when the test ends.
func Start(t testing.TB, tenants ...*directory.Directory) *Server {
	t.Helper()
	return StartWith(t, Options{}, tenants...)
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options, tenants ...*directory.Directory) *Server {
	t.Helper()
	if len(tenants) == 0 && opts.Store == nil {
		d, err := demo.Directory()
		if err != nil {
			t.Fatalf("demo tenant: %v", err)
		}
		tenants = []*directory.Directory{d}
	}
	res := resolver.New(resolver.Options{})
	var st store.Store
	if opts.Store != nil {
		st = opts.Store(res.Invalidate)
	} else {
		mem := memory.New(memory.Options{OnChange: res.Invalidate})
		for _, d := range tenants {
			if err := mem.Add(d); err != nil {
				t.Fatal(err)
			}
		}
		st = mem
	}
	var metrics *server.Metrics
	if opts.Metrics {
		metrics = server.NewMetrics(st, res.CacheStats)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := server.Config{
		Store:    st,
		Resolver: res,
		Logger:   opts.Logger,
		Tokens:   opts.Tokens,
		JWT:      opts.JWT,
		Metrics:  metrics,
		Limits:   opts.Limits,

		DecisionLog:       opts.DecisionLog,
		DecisionLogReader: opts.DecisionLogReader,
		ServerOptions:     opts.ServerOptions,
		TracerProvider:    opts.TracerProvider,
	}
	var inProcess *gateway.InProcess
	if opts.HTTP {
		inProcess = gateway.NewInProcess()
	}
	if opts.TLS != nil {
		creds := opts.TLS
		if inProcess != nil {
			creds = inProcess.Credentials(creds)
		}
		cfg.ServerOptions = append(cfg.ServerOptions, grpc.Creds(creds))
	}
	srv := server.New(cfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.MarkServing()
	go func() { _ = srv.GRPC().Serve(lis) }()
	c, err := client.Dial(lis.Addr().String(), opts.Client)
	if err != nil {
		t.Fatal(err)
	}
	var web *gateway.Server
	if inProcess != nil {
		go func() { _ = srv.GRPC().Serve(inProcess) }()
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		web, err = gateway.Start(hl, srv, inProcess, nil, gateway.Options{MaxBodyBytes: int64(opts.Limits.MaxRecvBytes), Root: opts.HTTPRoot, Browser: opts.Browser}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if web != nil {
			web.Shutdown(ctx)
		}
		srv.Shutdown(ctx)
		res.Close()
	})
	out := &Server{Addr: lis.Addr().String(), Client: c, Store: st, Server: srv, Metrics: metrics}
	if web != nil {
		out.HTTPURL = web.URL
	}
	return out
}
