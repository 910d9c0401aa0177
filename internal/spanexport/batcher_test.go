package spanexport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// recordingExporter keeps the names of the spans of each export; with a release channel, each export waits for it.
type recordingExporter struct {
	mu       sync.Mutex
	batches  [][]string
	err      error
	release  chan struct{}
	started  chan struct{} // receives once an export has begun (buffered)
	shutdown int
}

func (e *recordingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if e.started != nil {
		select {
		case e.started <- struct{}{}:
		default:
		}
	}
	if e.release != nil {
		select {
		case <-e.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.batches = append(e.batches, names)
	return e.err
}

func (e *recordingExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.shutdown++
	return nil
}

func (e *recordingExporter) snapshot() (batches [][]string, spans []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.batches {
		batches = append(batches, b)
		spans = append(spans, b...)
	}
	return batches, spans
}

// endSpans makes n spans named prefix0… through a provider that hands them to p.
func endSpans(tp *sdktrace.TracerProvider, prefix string, n int) {
	tracer := tp.Tracer("test")
	for i := range n {
		_, span := tracer.Start(context.Background(), fmt.Sprintf("%s%d", prefix, i))
		span.End()
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A full batch goes at once, without waiting for the timer; batches never exceed MaxExportBatch; every span
// arrives, in the order the spans ended; Shutdown sends the partial batch left and shuts the exporter down once.
func TestBatcherSendsFullBatchesAtOnceAndTheRestAtShutdown(t *testing.T) {
	exp := &recordingExporter{}
	b := NewBatcher(exp, BatcherOptions{ScheduleDelay: time.Hour, MaxQueueSize: 100, MaxExportBatch: 10})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	endSpans(tp, "s", 25)
	waitFor(t, "two full batches", func() bool { _, spans := exp.snapshot(); return len(spans) >= 20 })
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	batches, spans := exp.snapshot()
	if fmt.Sprint(spans) != fmt.Sprint(names("s", 25)) {
		t.Errorf("exported %v, want s0…s24 in order", spans)
	}
	for _, batch := range batches {
		if len(batch) > 10 {
			t.Errorf("a batch of %d spans, want at most 10", len(batch))
		}
	}
	if exp.shutdown != 1 {
		t.Errorf("exporter shut down %d times, want once", exp.shutdown)
	}
	if b.Dropped() != 0 {
		t.Errorf("dropped %d", b.Dropped())
	}
	endSpans(tp, "late", 1) // after Shutdown: neither exported nor a panic
	if _, spans := exp.snapshot(); len(spans) != 25 {
		t.Errorf("%d spans exported after a span ended past Shutdown, want 25", len(spans))
	}
}

// A batch that never fills goes when ScheduleDelay has passed.
func TestBatcherSendsPartialBatchAfterScheduleDelay(t *testing.T) {
	exp := &recordingExporter{}
	b := NewBatcher(exp, BatcherOptions{ScheduleDelay: 20 * time.Millisecond, MaxQueueSize: 100, MaxExportBatch: 50})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	defer tp.Shutdown(context.Background())
	endSpans(tp, "s", 3)
	waitFor(t, "the timer's export", func() bool { _, spans := exp.snapshot(); return len(spans) == 3 })
}

// While the collector hangs, a finished span never waits: past MaxQueueSize spans are dropped and counted, and
// every span is either exported or counted as dropped once the collector answers again.
func TestBatcherDropsWhenQueueIsFullAndNeverBlocks(t *testing.T) {
	var reportsMu sync.Mutex
	var reports []string
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		reportsMu.Lock()
		defer reportsMu.Unlock()
		reports = append(reports, err.Error())
	}))
	defer otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	exp := &recordingExporter{release: make(chan struct{}), started: make(chan struct{}, 1)}
	b := NewBatcher(exp, BatcherOptions{ScheduleDelay: time.Hour, MaxQueueSize: 8, MaxExportBatch: 4})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	endSpans(tp, "first", 4) // a full batch: the export starts, and hangs
	<-exp.started
	done := make(chan struct{})
	go func() { endSpans(tp, "s", 100); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ending spans blocked while the exporter hung")
	}
	if got := b.Dropped(); got != 100-8 {
		t.Errorf("dropped %d, want 92 (100 spans, a queue of 8, the first batch in the hung export)", got)
	}
	close(exp.release)
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, spans := exp.snapshot()
	if uint64(len(spans))+b.Dropped() != 104 {
		t.Errorf("exported %d + dropped %d, want 104", len(spans), b.Dropped())
	}
	reportsMu.Lock()
	defer reportsMu.Unlock()
	if len(reports) != 1 || !strings.Contains(reports[0], "92 spans dropped") {
		t.Errorf("reports %q, want one that 92 spans were dropped", reports)
	}
}

// ForceFlush sends everything queued before it, and returns the export's error.
func TestBatcherForceFlush(t *testing.T) {
	exp := &recordingExporter{err: errors.New("collector said no")}
	b := NewBatcher(exp, BatcherOptions{ScheduleDelay: time.Hour, MaxQueueSize: 100, MaxExportBatch: 50})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	defer tp.Shutdown(context.Background())
	endSpans(tp, "s", 3)
	if err := tp.ForceFlush(context.Background()); err == nil || err.Error() != "collector said no" {
		t.Errorf("ForceFlush: %v, want the exporter's error", err)
	}
	if _, spans := exp.snapshot(); len(spans) != 3 {
		t.Errorf("%d spans exported by ForceFlush, want 3", len(spans))
	}
}

// Shutdown waits no longer than its context when the collector hangs.
func TestBatcherShutdownBoundedByContext(t *testing.T) {
	exp := &recordingExporter{release: make(chan struct{})}
	defer close(exp.release)
	b := NewBatcher(exp, BatcherOptions{ScheduleDelay: time.Hour, ExportTimeout: time.Hour, MaxQueueSize: 10, MaxExportBatch: 5})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	endSpans(tp, "s", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := b.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %s", d)
	}
}

// recordOnly records every span without sampling it: the SDK hands such spans to its processors, which must not
// export them.
type recordOnly struct{}

func (recordOnly) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	return sdktrace.SamplingResult{Decision: sdktrace.RecordOnly, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
}
func (recordOnly) Description() string { return "RecordOnly" }

// Spans recorded but not sampled are not exported.
func TestBatcherIgnoresUnsampledSpans(t *testing.T) {
	exp := &recordingExporter{}
	b := NewBatcher(exp, BatcherOptions{})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b), sdktrace.WithSampler(recordOnly{}))
	_, span := tp.Tracer("test").Start(context.Background(), "s", trace.WithNewRoot())
	span.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, spans := exp.snapshot(); len(spans) != 0 || b.Dropped() != 0 {
		t.Errorf("exported %v, dropped %d; want neither", spans, b.Dropped())
	}
}

// The OTEL_BSP_* variables, as the SDK's BatchSpanProcessor reads them.
func TestBatcherOptionsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want BatcherOptions
	}{
		{nil, BatcherOptions{5 * time.Second, 30 * time.Second, 2048, 512}},
		{map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_BSP_EXPORT_TIMEOUT": "1000", "OTEL_BSP_MAX_QUEUE_SIZE": "4096", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1024"},
			BatcherOptions{250 * time.Millisecond, time.Second, 4096, 1024}},
		{map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "100"}, BatcherOptions{5 * time.Second, 30 * time.Second, 100, 100}},                                    // a batch no larger than the queue
		{map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "-3", "OTEL_BSP_SCHEDULE_DELAY": "soon"}, BatcherOptions{5 * time.Second, 30 * time.Second, 2048, 512}}, // ignored
	} {
		for _, k := range []string{"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"} {
			t.Setenv(k, tc.env[k])
		}
		if got := BatcherOptionsFromEnv(); got != tc.want {
			t.Errorf("%v: %+v, want %+v", tc.env, got, tc.want)
		}
	}
}
