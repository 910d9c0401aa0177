package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/groupgate/groupgate/internal/listen"
)

// serveMetrics serves Prometheus metrics on their own listener, so that scraping never competes with the gRPC
// port and can be firewalled apart.
func (a *App) serveMetrics(context.Context) error {
	if a.cfg.Metrics == "" {
		return nil
	}
	lis, cleanup, err := listen.Listen(a.cfg.Metrics, listen.Options{SocketMode: a.cfg.SocketMode})
	if err != nil {
		return fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.metrics.Handler())
	web := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = web.Serve(lis) }()
	if lis.Addr().Network() == "unix" {
		a.logger.Info("serving metrics", "address", listen.Target(lis.Addr()), "path", "/metrics")
	} else {
		a.logger.Info("serving metrics", "address", "http://"+lis.Addr().String()+"/metrics")
	}
	a.onClose(func() { _ = web.Close(); cleanup() })
	return nil
}
