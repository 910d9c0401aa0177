package otlptest

import (
	"bytes"
	"net"
	"net/http"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// export is a request of two resources, with 3 and 0+2 spans in their scopes, and attributes and schema URLs
// around them that the counter must skip.
func export() *coltracepb.ExportTraceServiceRequest {
	attrs := []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "groupgate"}}}}
	span := func(name string) *tracepb.Span {
		return &tracepb.Span{Name: name, TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8), Attributes: attrs,
			StartTimeUnixNano: 1, EndTimeUnixNano: 2, Kind: tracepb.Span_SPAN_KIND_SERVER}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{Resource: &resourcepb.Resource{Attributes: attrs}, SchemaUrl: "s", ScopeSpans: []*tracepb.ScopeSpans{
			{Scope: &commonpb.InstrumentationScope{Name: "a"}, Spans: []*tracepb.Span{span("1"), span("2"), span("3")}, SchemaUrl: "s"},
		}},
		{ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "b"}}, {Spans: []*tracepb.Span{span("4"), span("5")}}}},
	}}
}

func TestCountSpansCountsWhatADecoderFinds(t *testing.T) {
	b, err := proto.Marshal(export())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := countSpans(b); err != nil || n != 5 {
		t.Errorf("countSpans = %d, %v; want 5", n, err)
	}
	if n, err := countSpans(nil); err != nil || n != 0 {
		t.Errorf("countSpans(empty) = %d, %v; want 0", n, err)
	}
	if _, err := countSpans(b[:len(b)-3]); err == nil {
		t.Error("countSpans of a truncated request: no error")
	}
}

func TestServeCountsHTTPExports(t *testing.T) {
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, stop := Serve(grpcLis, httpLis)
	defer stop()
	b, err := proto.Marshal(export())
	if err != nil {
		t.Fatal(err)
	}
	post := func(body []byte) int {
		resp, err := http.Post("http://"+httpLis.Addr().String()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 2 {
		if code := post(b); code != http.StatusOK {
			t.Fatalf("export: HTTP %d", code)
		}
	}
	if code := post([]byte{0x0a, 0x05, 0x01}); code != http.StatusBadRequest {
		t.Errorf("a malformed export: HTTP %d, want 400", code)
	}
	if spans, requests := r.Counts(); spans != 10 || requests != 2 {
		t.Errorf("Counts = %d spans, %d requests; want 10, 2", spans, requests)
	}
}
