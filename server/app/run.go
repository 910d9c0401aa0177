package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/groupgate/groupgate/server/gateway"
	webui "github.com/groupgate/groupgate/web"
)

// Run serves every listener until ctx ends or one of them fails, then shuts down: health says NOT_SERVING,
// listeners stop accepting, calls in flight get up to Config.ShutdownTimeout. A listener that fails stops the
// others through the same shutdown, so that Run never returns with one of them still answering.
func (a *App) Run(ctx context.Context) error {
	errc := make(chan error, 1) // the gRPC serve loop
	var web *gateway.Server
	var webDone <-chan error
	if a.httpLis != nil {
		var err error
		if web, err = a.startHTTP(); err != nil {
			return err
		}
		webDone = web.Done()
	}
	a.srv.MarkServing()
	a.logger.Info("serving", "address", a.Addr(), "store", a.store.Name(), "tenants", a.store.Tenants())
	if web != nil {
		a.logger.Info("serving HTTP/JSON", "address", a.httpURL)
	}
	go func() { errc <- a.srv.GRPC().Serve(a.grpcLis) }()
	close(a.serving)
	var failed error
	select {
	case err := <-errc:
		if err != nil {
			failed = err
			a.logger.Error("gRPC listener failed", "err", err)
		} // nil: the gRPC server was stopped from elsewhere (Server().Shutdown); the rest follows it
	case err := <-webDone:
		failed = fmt.Errorf("--http-listen: %w", err)
		a.logger.Error("HTTP listener failed", "err", err)
	case <-ctx.Done():
	}
	a.shutdown(web)
	return failed
}

// startHTTP serves the HTTP/JSON API, the explorer and /healthz on the HTTP listener, in front of the gRPC server
// (in-process, see server/gateway), with the gRPC port's TLS configuration.
func (a *App) startHTTP() (*gateway.Server, error) {
	root := a.cfg.HTTPRoot
	if root == nil {
		root = webui.Handler()
	}
	web, err := gateway.Start(a.httpLis, a.srv, a.tls,
		gateway.Options{MaxBodyBytes: int64(a.cfg.Limits.MaxRecvBytes), Root: root, Browser: a.cfg.Browser,
			AuthZENBaseURL: a.cfg.AuthZENBaseURL},
		slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn))
	if err != nil {
		return nil, fmt.Errorf("--http-listen: %w", err)
	}
	return web, nil
}

// shutdown stops the HTTP and gRPC servers together: HTTP calls in flight need the gRPC server to finish, and the
// gRPC server's graceful stop waits for them.
func (a *App) shutdown(web *gateway.Server) {
	a.logger.Info("shutting down: finishing in-flight calls", "timeout", a.cfg.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		if web != nil {
			web.Shutdown(ctx)
		}
		close(stopped)
	}()
	a.srv.Shutdown(ctx)
	<-stopped
	a.logger.Info("stopped")
}

// Serve opens a server, runs it until ctx ends and closes it: the whole life of `groupgate serve`. onServing,
// when set, is called once every listener is served (the addresses are known then).
func Serve(ctx context.Context, cfg Config, onServing func(*App)) error {
	a, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	if onServing != nil {
		ran := make(chan struct{})
		defer close(ran)
		go func() {
			select {
			case <-a.Serving():
				onServing(a)
			case <-ran:
			}
		}()
	}
	return a.Run(ctx)
}
