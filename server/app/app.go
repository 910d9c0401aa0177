package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/groupgate/groupgate/internal/gctune"
	"github.com/groupgate/groupgate/internal/listen"
	"github.com/groupgate/groupgate/internal/memlimit"
	"github.com/groupgate/groupgate/resolver"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/authzen"
	"github.com/groupgate/groupgate/server/gateway"
	"github.com/groupgate/groupgate/store"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// App is an opened groupgate server: its store loaded and its listeners bound.
type App struct {
	cfg    Config
	logger *slog.Logger

	closeMu sync.Mutex
	closers []func() // Close runs them last first

	tls               *tls.Config
	decisionLog       server.DecisionLog
	decisionLogReader server.DecisionLogReader
	tracer            trace.TracerProvider
	tokens            *server.Tokens
	jwt               *server.JWTAuth
	resolver          *resolver.Resolver
	store             store.Store
	metrics           *server.Metrics
	srv               *server.Server
	grpcLis           net.Listener
	httpLis           net.Listener
	httpAddr          string // the HTTP listener's address and base URL (gateway.Endpoint)
	httpURL           string
	serving           chan struct{}

	webhookSecret []byte      // the findings webhook's HMAC key
	webhookHeader http.Header // sent with its POSTs
	webhookToken  string      // its in-process calls' bearer token, "" without authentication
}

// Open checks cfg, loads the tenants and binds every listener, one step after another; a failed step undoes the
// ones before it. Nothing is served until Run.
func Open(ctx context.Context, cfg Config) (*App, error) {
	cfg.complete()
	a := &App{cfg: cfg, logger: cfg.Logger, serving: make(chan struct{})}
	for _, step := range []func(context.Context) error{
		a.checkAddresses, // first: a typo should not wait for a large tenant to load
		a.tuneGC,
		a.openCallers,
		a.checkFindingsWebhook, // before the store loads: bad flags stop serve at once
		a.openTLS,
		a.openStore,
		a.openObservability,
		a.buildServer,
		a.startFindingsWebhook,
		a.listen,
		a.serveMetrics,
	} {
		if err := step(ctx); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// onClose pushes f on the closer stack.
func (a *App) onClose(f func()) {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	a.closers = append(a.closers, f)
}

// Close stops whatever Open started and Run left running, in reverse order; it may be called more than once.
func (a *App) Close() {
	a.closeMu.Lock()
	closers := a.closers
	a.closers = nil
	a.closeMu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}

// Addr is the gRPC listener's address as a client dials it: host:port, or unix:///path for a socket.
func (a *App) Addr() string { return listen.Target(a.grpcLis.Addr()) }

// HTTPAddr is the HTTP listener's address (host:port, or unix:///path), and HTTPURL its base URL (http://…,
// https://…, or the unix:///path form); both "" without an HTTP listener.
func (a *App) HTTPAddr() string { return a.httpAddr }
func (a *App) HTTPURL() string  { return a.httpURL }

// Server is the gRPC server (tests: its metrics, in-process calls).
func (a *App) Server() *server.Server { return a.srv }

// Store is the store the server answers from.
func (a *App) Store() store.Store { return a.store }

// Metrics are the server's metrics, nil when none are counted.
func (a *App) Metrics() *server.Metrics { return a.metrics }

// Serving is closed once Run serves every listener and health says SERVING.
func (a *App) Serving() <-chan struct{} { return a.serving }

// checkAddresses applies the loopback rule to every address (metrics are never guarded by TLS or tokens) and,
// for a socket, checks that its path is free.
func (a *App) checkAddresses(context.Context) error {
	secured := a.cfg.secured()
	for _, l := range []struct {
		flag, addr string
		optional   bool // empty disables it
		allowed    bool // may be a non-loopback address
	}{
		{"--listen", a.cfg.Listen, false, a.cfg.Insecure || secured},
		{"--http-listen", a.cfg.HTTPListen, true, a.cfg.Insecure || secured},
		{"--metrics", a.cfg.Metrics, true, a.cfg.Insecure},
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
	if err := authzen.ValidateBaseURL(a.cfg.AuthZENBaseURL); err != nil {
		return err
	}
	return a.cfg.Browser.Validate()
}

// checkListenAddress refuses a non-loopback address unless allowed: without TLS or tokens, anything that can
// reach the port could ask, and write. A unix socket counts as local: only this machine reaches it, and its file
// mode (--socket-mode) decides which users.
func checkListenAddress(flag, addr string, allowed bool) error {
	parsed, err := listen.Parse(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	if allowed || parsed.Local() {
		return nil
	}
	return fmt.Errorf("%s %s is not a loopback address: refusing to serve it without TLS or tokens (pass --insecure to do it anyway)", flag, addr)
}

// tuneGC follows the container's memory limit (before anything large is allocated) and starts the collector's
// headroom.
func (a *App) tuneGC(context.Context) error {
	if a.cfg.FollowMemoryLimit {
		memlimit.Apply(a.logger, a.cfg.GCHeadroom)
	}
	a.onClose(gctune.Start(a.cfg.GCHeadroom))
	return nil
}

func (a *App) openTLS(context.Context) error {
	switch {
	case a.cfg.TLS != nil:
		a.tls = a.cfg.TLS
	case a.cfg.TLSCert != "" || a.cfg.TLSKey != "":
		cfg, err := server.ServerTLSConfig(a.cfg.TLSCert, a.cfg.TLSKey, a.cfg.ClientCA)
		if err != nil {
			return err
		}
		a.tls = cfg
	case a.cfg.ClientCA != "":
		return errors.New("--client-ca needs --tls-cert and --tls-key")
	}
	return nil
}

// buildServer makes the gRPC server (which the HTTP gateway calls in-process: server.Server.Conn).
func (a *App) buildServer(context.Context) error {
	if a.cfg.Metrics != "" || a.cfg.MetricsAlways {
		a.metrics = server.NewMetrics(a.store, a.resolver.CacheStats)
	}
	var opts []grpc.ServerOption
	if a.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(a.tls)))
	}
	a.srv = server.New(server.Config{Store: a.store, Resolver: a.resolver, Logger: a.logger, Tokens: a.tokens, JWT: a.jwt,
		Limits: a.cfg.Limits, Metrics: a.metrics, ServerOptions: append(opts, a.cfg.ServerOptions...),
		DecisionLog: a.decisionLog, DecisionLogReader: a.decisionLogReader, TracerProvider: a.tracer,
		Findings: a.cfg.Findings})
	a.onClose(a.srv.GRPC().Stop) // when Run did not stop it gracefully
	return nil
}

// listen binds the gRPC and HTTP listeners.
func (a *App) listen(context.Context) error {
	opts := listen.Options{SocketMode: a.cfg.SocketMode}
	lis, cleanup, err := listen.Listen(a.cfg.Listen, opts)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	// A socket's file goes when the graceful stop closes the listener; this covers returns before that.
	a.onClose(cleanup)
	a.grpcLis = lis
	if a.cfg.HTTPListen == "" {
		return nil
	}
	hl, cleanup, err := listen.Listen(a.cfg.HTTPListen, opts)
	if err != nil {
		return fmt.Errorf("--http-listen: %w", err)
	}
	a.onClose(cleanup)
	a.httpLis = hl
	a.httpAddr, a.httpURL = gateway.Endpoint(hl, a.tls != nil)
	return nil
}
