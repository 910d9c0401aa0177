// Package spanexport carries finished spans from OpenTelemetry's SDK to an OTLP exporter at a cost a decision
// can bear when every call is traced: a batching span processor that hands spans over in batches rather than one
// at a time, and an exporter that writes the spans' OTLP encoding itself and sends it through the SDK's own OTLP
// clients (their endpoint, headers, TLS, compression, timeout and retries, all from the OTEL_* variables).
package spanexport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The batch span processor's defaults and environment variables, as the OpenTelemetry specification
// ("Batch Span Processor", "Environment Variable Specification") and the SDK's BatchSpanProcessor have them.
const (
	defaultScheduleDelay  = 5000 * time.Millisecond
	defaultExportTimeout  = 30000 * time.Millisecond
	defaultMaxQueueSize   = 2048
	defaultMaxExportBatch = 512
)

// BatcherOptions are a Batcher's limits; zero fields take the OTEL_BSP_* variables' values, or the defaults.
type BatcherOptions struct {
	ScheduleDelay  time.Duration // OTEL_BSP_SCHEDULE_DELAY (ms): the longest a span waits for its batch
	ExportTimeout  time.Duration // OTEL_BSP_EXPORT_TIMEOUT (ms): the longest one export may take
	MaxQueueSize   int           // OTEL_BSP_MAX_QUEUE_SIZE: spans held before new ones are dropped
	MaxExportBatch int           // OTEL_BSP_MAX_EXPORT_BATCH_SIZE: spans in one export
}

// BatcherOptionsFromEnv reads the OTEL_BSP_* variables as the SDK's BatchSpanProcessor does: a value that is not
// a positive integer is ignored (the default holds), and a batch larger than the queue is cut to the queue.
func BatcherOptionsFromEnv() BatcherOptions {
	o := BatcherOptions{
		ScheduleDelay:  envMillis("OTEL_BSP_SCHEDULE_DELAY", defaultScheduleDelay),
		ExportTimeout:  envMillis("OTEL_BSP_EXPORT_TIMEOUT", defaultExportTimeout),
		MaxQueueSize:   envInt("OTEL_BSP_MAX_QUEUE_SIZE", defaultMaxQueueSize),
		MaxExportBatch: envInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", defaultMaxExportBatch),
	}
	if o.MaxExportBatch > o.MaxQueueSize {
		o.MaxExportBatch = min(defaultMaxExportBatch, o.MaxQueueSize)
	}
	return o
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func envMillis(name string, def time.Duration) time.Duration {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 { // 0 would be a timer that never rests
		return time.Duration(n) * time.Millisecond
	}
	return def
}

// Batcher is a span processor with the SDK's BatchSpanProcessor's contract (a bounded queue that drops rather
// than blocks, batches of at most MaxExportBatch, a batch sent after ScheduleDelay at the latest, everything
// queued sent at ForceFlush and Shutdown) and a cheaper hand-over. The SDK's sends every finished span through a
// channel to its goroutine, which wakes for each one: with every call traced that was a scheduler round trip per
// span, on the decision's core. Here a finished span is appended to a slice under a mutex, and the exporting
// goroutine is woken once a batch is full (or by its timer).
type Batcher struct {
	exporter sdktrace.SpanExporter
	opts     BatcherOptions

	mu      sync.Mutex
	queue   []sdktrace.ReadOnlySpan // finished spans not yet taken for export
	spare   []sdktrace.ReadOnlySpan // the last exported queue, emptied, for the next swap
	stopped bool

	wake    chan struct{} // a full batch is queued (buffered 1: a wake-up is never lost, never blocks)
	flushes chan chan error
	done    chan struct{} // closed when the exporting goroutine has sent everything and returned

	stopOnce sync.Once
	stopErr  error
	dropped  atomic.Uint64
}

var _ sdktrace.SpanProcessor = (*Batcher)(nil)

// NewBatcher starts a Batcher exporting through exporter.
func NewBatcher(exporter sdktrace.SpanExporter, opts BatcherOptions) *Batcher {
	def := BatcherOptionsFromEnv()
	if opts.ScheduleDelay <= 0 {
		opts.ScheduleDelay = def.ScheduleDelay
	}
	if opts.ExportTimeout <= 0 {
		opts.ExportTimeout = def.ExportTimeout
	}
	if opts.MaxQueueSize <= 0 {
		opts.MaxQueueSize = def.MaxQueueSize
	}
	if opts.MaxExportBatch <= 0 {
		opts.MaxExportBatch = def.MaxExportBatch
	}
	opts.MaxExportBatch = min(opts.MaxExportBatch, opts.MaxQueueSize)
	b := &Batcher{
		exporter: exporter,
		opts:     opts,
		queue:    make([]sdktrace.ReadOnlySpan, 0, opts.MaxExportBatch),
		wake:     make(chan struct{}, 1),
		flushes:  make(chan chan error),
		done:     make(chan struct{}),
	}
	go b.run()
	return b
}

// OnStart does nothing: a span is queued when it ends.
func (*Batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span, or drops it (and counts it) when the queue is full or the Batcher stopped.
func (b *Batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	b.mu.Lock()
	if b.stopped || len(b.queue) >= b.opts.MaxQueueSize {
		b.mu.Unlock()
		b.dropped.Add(1)
		return
	}
	b.queue = append(b.queue, s)
	full := len(b.queue) == b.opts.MaxExportBatch
	b.mu.Unlock()
	if full {
		select {
		case b.wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// Dropped is how many finished spans were dropped because the queue was full (the collector slower than the
// spans come) or the Batcher had stopped.
func (b *Batcher) Dropped() uint64 { return b.dropped.Load() }

// ForceFlush exports every span queued before it was called, and returns the first export error.
func (b *Batcher) ForceFlush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case b.flushes <- reply:
	case <-b.done:
		return nil // stopped: Shutdown sent everything
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops taking spans, exports what is queued and shuts the exporter down; ctx bounds the wait.
func (b *Batcher) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() {
		b.mu.Lock()
		b.stopped = true
		b.mu.Unlock()
		select {
		case b.wake <- struct{}{}:
		default:
		}
		select {
		case <-b.done:
		case <-ctx.Done():
			b.stopErr = ctx.Err()
			return
		}
		b.stopErr = b.exporter.Shutdown(ctx)
	})
	return b.stopErr
}

func (b *Batcher) run() {
	defer close(b.done)
	timer := time.NewTimer(b.opts.ScheduleDelay)
	defer timer.Stop()
	var reported uint64 // drops told so far: at most once a minute, through the SDK's error handler (serve's log)
	var reportedAt time.Time
	for {
		var reply chan error
		select {
		case <-b.wake:
		case <-timer.C:
		case reply = <-b.flushes:
		}
		err := b.exportQueued()
		if reply != nil {
			reply <- err
		} else if err != nil {
			otel.Handle(err)
		}
		if n := b.dropped.Load(); n > reported && time.Since(reportedAt) >= time.Minute {
			otel.Handle(fmt.Errorf("%d spans dropped so far (%d since the last report): the queue of %d was full, the collector took spans slower than they came", n, n-reported, b.opts.MaxQueueSize))
			reported, reportedAt = n, time.Now()
		}
		b.mu.Lock()
		stopped := b.stopped && len(b.queue) == 0
		b.mu.Unlock()
		if stopped {
			return
		}
		// The next batch waits at most ScheduleDelay from now.
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(b.opts.ScheduleDelay)
	}
}

// exportQueued takes everything queued and exports it in batches of at most MaxExportBatch (whatever woke the
// goroutine, a full batch, the timer, a flush or the stop, the oldest span has waited long enough).
func (b *Batcher) exportQueued() error {
	b.mu.Lock()
	taken := b.queue
	b.queue, b.spare = b.spare[:0], nil
	b.mu.Unlock()
	spans := taken
	var errs []error
	for len(spans) > 0 {
		n := min(len(spans), b.opts.MaxExportBatch)
		ctx, cancel := context.WithTimeoutCause(context.Background(), b.opts.ExportTimeout, errors.New("span export timeout"))
		if err := b.exporter.ExportSpans(ctx, spans[:n]); err != nil {
			errs = append(errs, err)
		}
		cancel()
		clear(spans[:n]) // the spans' memory goes back to the collector now, not at the next swap
		spans = spans[n:]
	}
	b.mu.Lock()
	b.spare = taken[:0] // the next swap's queue: no new array per batch
	b.mu.Unlock()
	return errors.Join(errs...)
}
