package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/groupgate/groupgate/decisionlog"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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

// observability is what serve's server.Config needs for the decision log and tracing, and how to stop them.
type observability struct {
	decisionLog server.DecisionLog
	reader      server.DecisionLogReader
	tracer      trace.TracerProvider
	closers     []func()
}

// close flushes the decision log and the spans: call it after the server has stopped, before the store closes.
func (o *observability) close() {
	for i := len(o.closers) - 1; i >= 0; i-- {
		o.closers[i]()
	}
}

// openObservability opens the decision log the flags ask for on st, and tracing as the OTEL_* environment
// variables ask. A decision log that cannot be opened (an unwritable path) stops serve here, with the path.
func openObservability(ctx context.Context, f *decisionLogFlags, st store.Store, logger *slog.Logger) (*observability, error) {
	o := &observability{}
	dl, reader, closeLog, err := openDecisionLog(f, st, logger)
	if err != nil {
		return nil, err
	}
	if dl != nil {
		o.decisionLog, o.reader = dl, reader
		o.closers = append(o.closers, closeLog)
	}
	tp, shutdown, err := setupTracing(ctx)
	if err != nil {
		o.close()
		return nil, err
	}
	if tp != nil {
		o.tracer = tp
		o.closers = append(o.closers, shutdown)
		logger.Info("tracing on", "exporter", os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "sampler", os.Getenv("OTEL_TRACES_SAMPLER"))
	}
	return o, nil
}

// openDecisionLog opens the --decision-log sink behind a decisionlog.Logger (nil without one).
func openDecisionLog(f *decisionLogFlags, st store.Store, logger *slog.Logger) (*decisionlog.Logger, server.DecisionLogReader, func(), error) {
	var sink decisionlog.Sink
	var reader server.DecisionLogReader
	switch {
	case f.sink == "":
		return nil, nil, nil, nil
	case f.sink == "stdout":
		sink = decisionlog.NewJSONLines(os.Stdout)
	case strings.HasPrefix(f.sink, "file:"):
		path := strings.TrimPrefix(f.sink, "file:")
		if path == "" {
			return nil, nil, nil, errors.New("--decision-log file:PATH: the path is missing")
		}
		if f.keep < 0 {
			return nil, nil, nil, fmt.Errorf("--decision-log-keep %d: must not be negative", f.keep)
		}
		file, err := decisionlog.OpenFile(path, f.maxBytes, f.keep)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--decision-log %s: %w", f.sink, err)
		}
		sink = file
	case f.sink == "postgres":
		pg, ok := st.(*postgres.Store)
		if !ok {
			return nil, nil, nil, errors.New("--decision-log postgres needs --store postgres://…: the log goes into the store's database")
		}
		if f.retainFor != nil && *f.retainFor < 0 {
			return nil, nil, nil, fmt.Errorf("--decision-log-retain-for %s: must not be negative (0 keeps everything)", *f.retainFor)
		}
		sink, reader = pg.DecisionLog(), pg.DecisionLog()
	default:
		return nil, nil, nil, fmt.Errorf("--decision-log %q: want stdout, file:PATH or postgres", f.sink)
	}
	l := decisionlog.New(sink, decisionlog.Options{Logger: logger})
	logger.Info("decision log on", "sink", f.sink)
	return l, reader, func() {
		if err := l.Close(); err != nil {
			logger.Error("closing the decision log", "err", err)
		}
		st := l.Stats()
		level := slog.LevelInfo
		if st.Dropped > 0 || st.Failed > 0 {
			level = slog.LevelWarn
		}
		logger.Log(context.Background(), level, "decision log closed", "written", st.Written, "dropped", st.Dropped, "failed", st.Failed)
	}, nil
}

// setupTracing turns OpenTelemetry tracing on when the standard environment variables name an OTLP endpoint
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT), over gRPC or HTTP per
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL (grpc, http/protobuf; default http/protobuf as
// the specification says), sampling per OTEL_TRACES_SAMPLER (the SDK reads it; default parentbased_always_on).
// Without an endpoint, or with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, it returns a nil provider:
// no exporter, no spans, nothing on the hot path. It also becomes the global provider (groupgate sync's Graph
// requests use it) with the W3C trace context propagator.
func setupTracing(ctx context.Context) (trace.TracerProvider, func(), error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" ||
		strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return nil, func() {}, nil
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("OpenTelemetry exporter: %w", err)
	}
	res := resource.Default() // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	if os.Getenv("OTEL_SERVICE_NAME") == "" {
		if merged, err := resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", "groupgate"))); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx) // exports what is queued; an unreachable collector cannot hold up the exit
	}, nil
}

// tracedHTTPClient is groupgate sync's Graph client: with tracing on (setupTracing), every Graph request is a
// client span (otelhttp) and carries its traceparent.
func tracedHTTPClient(ctx context.Context, timeout time.Duration) (*http.Client, func(), error) {
	tp, shutdown, err := setupTracing(ctx)
	if err != nil {
		return nil, nil, err
	}
	c := &http.Client{Timeout: timeout}
	if tp != nil {
		c.Transport = otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp))
	}
	return c, shutdown, nil
}
