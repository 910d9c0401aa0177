package spanexport

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkEndSpans: a span started and ended on every core at once, handed to the SDK's BatchSpanProcessor or to
// a Batcher, exporting to nowhere: the processors' hand-over, with the SDK's span costs common to both. With
// both cores ending spans without pause, the exporting goroutine waits for a turn and the queue can fill: the
// Batcher's drops are reported. (The SDK's processor counts its own but does not expose the count: read once by
// reflection in the same benchmark, it had dropped 15–38% of the spans, the Batcher 1–5%.)
func BenchmarkEndSpans(b *testing.B) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	for _, tc := range []struct {
		name string
		proc func() sdktrace.SpanProcessor
	}{
		{"sdk-batch-span-processor", func() sdktrace.SpanProcessor { return sdktrace.NewBatchSpanProcessor(discardExporter{}) }},
		{"batcher", func() sdktrace.SpanProcessor { return NewBatcher(discardExporter{}, BatcherOptions{}) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			proc := tc.proc()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
			defer tp.Shutdown(context.Background())
			tracer := tp.Tracer("bench")
			attrs := []attribute.KeyValue{attribute.String("groupgate.tenant", "bench-medium"), attribute.Int("groupgate.rule_count", 2)}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, span := tracer.Start(context.Background(), "policy.can_add_member")
					span.SetAttributes(attrs...)
					span.End()
				}
			})
			if batcher, ok := proc.(*Batcher); ok {
				b.ReportMetric(float64(batcher.Dropped())/float64(b.N), "dropped/op")
			}
		})
	}
}
