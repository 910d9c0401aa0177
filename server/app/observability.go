package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/groupgate/groupgate/decisionlog"
	"github.com/groupgate/groupgate/internal/spanexport"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/postgres"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"
)

// DecisionLogConfig is where every decision is recorded (SPEC §14; serve's --decision-log* flags).
type DecisionLogConfig struct {
	// Sink is stdout, file:PATH (JSON lines, rotated) or postgres (the store's database; its records are pruned
	// after Config.Retention.DecisionLog); "": no decision log.
	Sink string
	// MaxBytes rotates a file log when it would grow past it; Keep is how many rotated files stay.
	MaxBytes int64
	Keep     int
}

// openObservability opens the decision log on the store, and tracing as the OTEL_* environment variables ask
// (SetupTracing). A decision log that cannot be opened (an unwritable path) stops the server here, with the
// path. The log is closed after the server has stopped and before the store closes (the closer stack's order).
func (a *App) openObservability(ctx context.Context) error {
	a.decisionLog, a.decisionLogReader, a.tracer = a.cfg.DecisionLogger, a.cfg.DecisionLogReader, a.cfg.TracerProvider
	if a.cfg.DecisionLog.Sink != "" {
		dl, reader, closeLog, err := openDecisionLog(a.cfg.DecisionLog, a.cfg.Retention.DecisionLog, a.store, a.logger)
		if err != nil {
			return err
		}
		a.onClose(closeLog)
		a.decisionLog, a.decisionLogReader = dl, reader
	}
	if a.tracer == nil {
		tp, shutdown, err := SetupTracing(ctx, a.logger)
		if err != nil {
			return err
		}
		if tp != nil {
			a.onClose(shutdown)
			a.tracer = tp
			a.logger.Info("tracing on", "exporter", os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "sampler", os.Getenv("OTEL_TRACES_SAMPLER"))
		}
	}
	return nil
}

// openDecisionLog opens the --decision-log sink behind a decisionlog.Logger (nil without one).
func openDecisionLog(f DecisionLogConfig, retainFor time.Duration, st store.Store, logger *slog.Logger) (*decisionlog.Logger, server.DecisionLogReader, func(), error) {
	var sink decisionlog.Sink
	var reader server.DecisionLogReader
	switch {
	case f.Sink == "":
		return nil, nil, nil, nil
	case f.Sink == "stdout":
		sink = decisionlog.NewJSONLines(os.Stdout)
	case strings.HasPrefix(f.Sink, "file:"):
		path := strings.TrimPrefix(f.Sink, "file:")
		if path == "" {
			return nil, nil, nil, errors.New("--decision-log file:PATH: the path is missing")
		}
		if f.Keep < 0 {
			return nil, nil, nil, fmt.Errorf("--decision-log-keep %d: must not be negative", f.Keep)
		}
		file, err := decisionlog.OpenFile(path, f.MaxBytes, f.Keep)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--decision-log %s: %w", f.Sink, err)
		}
		sink = file
	case f.Sink == "postgres":
		pg, ok := st.(*postgres.Store)
		if !ok {
			return nil, nil, nil, errors.New("--decision-log postgres needs --store postgres://…: the log goes into the store's database")
		}
		if retainFor < 0 {
			return nil, nil, nil, fmt.Errorf("--decision-log-retain-for %s: must not be negative (0 keeps everything)", retainFor)
		}
		sink, reader = pg.DecisionLog(), pg.DecisionLog()
	default:
		return nil, nil, nil, fmt.Errorf("--decision-log %q: want stdout, file:PATH or postgres", f.Sink)
	}
	l := decisionlog.New(sink, decisionlog.Options{Logger: logger})
	logger.Info("decision log on", "sink", f.Sink)
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

// SetupTracing turns OpenTelemetry tracing on when the standard environment variables name an OTLP endpoint
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT), over gRPC or HTTP per
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL (grpc, http/protobuf; default http/protobuf as
// the specification says), sampling per OTEL_TRACES_SAMPLER (the SDK reads it; default parentbased_always_on).
// Without an endpoint, or with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, it returns a nil provider:
// no exporter, no spans, nothing on the hot path. It also becomes the global provider (groupgate sync's Graph
// requests use it) with the W3C trace context propagator.
//
// Spans go through a spanexport.Batcher (OTEL_BSP_* as the SDK's batch processor reads them) rather than the SDK's
// BatchSpanProcessor, whose hand-over costs a goroutine wake-up per span, to a spanexport.Exporter, which encodes
// them for the OTLP client itself.
func SetupTracing(ctx context.Context, logger *slog.Logger) (trace.TracerProvider, func(), error) {
	if os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" ||
		strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") || os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return nil, func() {}, nil
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	// The OTLP clients read every OTEL_EXPORTER_OTLP_* variable (endpoint, headers, TLS, compression, timeout,
	// retries); spanexport writes the spans' encoding for them (the SDK's own transform cost several times more).
	var client otlptrace.Client
	switch protocol {
	case "grpc":
		client = otlptracegrpc.NewClient()
	case "", "http/protobuf":
		client = otlptracehttp.NewClient()
	default: // http/json among them: spanexport's messages marshal only as protobuf
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", protocol)
	}
	exp, err := spanexport.New(ctx, client)
	if err != nil {
		return nil, nil, fmt.Errorf("OpenTelemetry exporter: %w", err)
	}
	res := resource.Default() // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	if os.Getenv("OTEL_SERVICE_NAME") == "" {
		if merged, err := resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", "groupgate"))); err == nil {
			res = merged
		}
	}
	// The SDK's own errors (an export the collector refused or never answered) into this process's log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("OpenTelemetry", "err", err) }))
	batcher := spanexport.NewBatcher(exp, spanexport.BatcherOptions{})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(batcher), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil { // exports what is queued; an unreachable collector cannot hold up the exit
			logger.Warn("tracing: the last spans were not all exported", "err", err)
		}
		if n := batcher.Dropped(); n > 0 {
			logger.Warn("tracing: spans dropped, the collector took them slower than they came", "dropped", n)
		}
	}, nil
}

// DecisionLogStats is what the --decision-log logger did with its records so far (after Close: all of them);
// false without one (groupgate bench reports the dropped records of its decision-log run from it).
func (a *App) DecisionLogStats() (decisionlog.Stats, bool) {
	l, ok := a.decisionLog.(*decisionlog.Logger)
	if !ok || l == nil {
		return decisionlog.Stats{}, false
	}
	return l.Stats(), true
}
