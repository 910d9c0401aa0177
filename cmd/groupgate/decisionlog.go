package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/groupgate/groupgate/server/app"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
)

// decisionLogFlags are serve's --decision-log* flags (SPEC §14).
type decisionLogFlags struct {
	sink     string
	maxBytes int64
	keep     int
	// retainFor is postgres.Retention.DecisionLog: the store's pruner applies it.
	retainFor *time.Duration
}

func (f *decisionLogFlags) register(fl *pflag.FlagSet, retention *postgres.Retention) {
	f.retainFor = &retention.DecisionLog
	fl.StringVar(&f.sink, "decision-log", "", "record every decision (SPEC §14): stdout, file:PATH (JSON lines, rotated), or postgres (a decision_log table in --store's database); empty: none")
	fl.Int64Var(&f.maxBytes, "decision-log-max-bytes", 100<<20, "file: rotate the decision log when it would grow past this many bytes")
	fl.IntVar(&f.keep, "decision-log-keep", 10, "file: how many rotated decision log files (PATH.1 … PATH.N) to keep")
	fl.DurationVar(&retention.DecisionLog, "decision-log-retain-for", 90*24*time.Hour, "postgres: delete decision log records older than this (with the change log's pruner, every --prune-every; 0: keep them all)")
}

// tracedHTTPClient is groupgate sync's Graph client: with tracing on (app.SetupTracing), every Graph request is a
// client span (otelhttp) and carries its traceparent, and tracer (nil with tracing off) makes the round spans
// the requests are children of.
func tracedHTTPClient(ctx context.Context, logger *slog.Logger, timeout time.Duration) (*http.Client, trace.Tracer, func(), error) {
	tp, shutdown, err := app.SetupTracing(ctx, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	c := &http.Client{Timeout: timeout}
	var tracer trace.Tracer
	if tp != nil {
		c.Transport = otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp))
		tracer = tp.Tracer("github.com/groupgate/groupgate/entra")
	}
	return c, tracer, shutdown, nil
}
