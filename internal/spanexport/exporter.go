package spanexport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// errAlreadyStarted is what a second Start returns, as otlptrace.Exporter's.
var errAlreadyStarted = errors.New("already started")

// maxFreeEncoders bounds the encoders kept between exports: one is all a batch span processor (one export at a
// time) uses; a few more keep concurrent callers from allocating their buffers afresh every time.
const maxFreeEncoders = 4

// Exporter is a span exporter with otlptrace.Exporter's contract that writes the OTLP protobuf encoding of the
// spans itself, straight from the SDK's spans into a buffer it reuses, instead of building the intermediate
// tracepb structs (otlptrace's tracetransform, an allocation per span, attribute, value, event and link) for the
// client's proto.Marshal to walk again.
//
// It still sends through an otlptrace.Client, so everything the OTLP clients take from the OTEL_EXPORTER_OTLP_*
// variables (endpoint, headers, TLS, compression, timeout, retries) holds. The client is handed one
// tracepb.ResourceSpans per resource whose only content is the encoded fields, set as the message's unknown
// fields: protobuf's binary marshalling writes unknown fields verbatim, so the request on the wire is the one
// the official exporter sends (the tests decode both and compare them).
//
// Two consequences of that: the client must marshal with protobuf's binary encoding (otlptracegrpc, or
// otlptracehttp with http/protobuf: its http/json encoding builds JSON from the messages' known fields and would
// send empty ResourceSpans), and the clients' experimental self-observability metrics (OTEL_GO_X_OBSERVABILITY),
// which count the spans of the ResourceSpans they are given, count none.
type Exporter struct {
	client otlptrace.Client

	// The lifecycle, as otlptrace.Exporter's: the client is started once and stopped once, and only if it was
	// started.
	mu        sync.RWMutex
	started   bool
	startOnce sync.Once
	stopOnce  sync.Once

	// Encoders not in use. An encoder's buffers are reused from export to export, so it serves one export at a
	// time; a list under a mutex rather than a sync.Pool because a pool is emptied by the garbage collector, and a
	// batch's buffers (~150 KB for 512 spans) would then be allocated again for most batches of a busy server.
	freeMu sync.Mutex
	free   []*encoder
}

var _ sdktrace.SpanExporter = (*Exporter)(nil)

// NewExporter returns an Exporter sending through client, not started: Start starts the client (New does both).
func NewExporter(client otlptrace.Client) *Exporter {
	return &Exporter{client: client}
}

// New returns an Exporter sending through client, started, as otlptrace.New.
func New(ctx context.Context, client otlptrace.Client) (*Exporter, error) {
	e := NewExporter(client)
	if err := e.Start(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Start starts the client (its connections); only the first call does, later ones return an error.
func (e *Exporter) Start(ctx context.Context) error {
	err := errAlreadyStarted
	e.startOnce.Do(func() {
		e.mu.Lock()
		e.started = true
		e.mu.Unlock()
		err = e.client.Start(ctx)
	})
	return err
}

// Shutdown stops the client, once, if it was started. Spans exported afterwards go to the stopped client, which
// refuses them as it refuses otlptrace.Exporter's.
func (e *Exporter) Shutdown(ctx context.Context) error {
	e.mu.RLock()
	started := e.started
	e.mu.RUnlock()
	if !started {
		return nil
	}
	var err error
	e.stopOnce.Do(func() {
		err = e.client.Stop(ctx)
		e.mu.Lock()
		e.started = false
		e.mu.Unlock()
	})
	return err
}

// ExportSpans encodes spans and uploads them through the client in one request; a batch without spans sends
// nothing. It may be called concurrently (each call encodes into its own buffers).
func (e *Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	enc := e.getEncoder()
	// The messages point into enc's buffer: the client marshals them before UploadTraces returns (the HTTP client
	// into the request body, the gRPC client in the call), and enc is reused only after that.
	defer e.putEncoder(enc)
	rss := enc.encode(spans)
	if len(rss) == 0 {
		return nil
	}
	if err := e.client.UploadTraces(ctx, rss); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// MarshalLog is the Exporter as the SDK logs it (otlptrace.Exporter's, with this type).
func (e *Exporter) MarshalLog() any {
	return struct {
		Type   string
		Client string
	}{
		Type:   "spanexport",
		Client: fmt.Sprintf("%T", e.client),
	}
}

func (e *Exporter) getEncoder() *encoder {
	e.freeMu.Lock()
	defer e.freeMu.Unlock()
	if n := len(e.free); n > 0 {
		enc := e.free[n-1]
		e.free[n-1] = nil
		e.free = e.free[:n-1]
		return enc
	}
	return &encoder{}
}

func (e *Exporter) putEncoder(enc *encoder) {
	enc.release()
	e.freeMu.Lock()
	defer e.freeMu.Unlock()
	if len(e.free) < maxFreeEncoders {
		e.free = append(e.free, enc)
	}
}
