// Package otlptest is an OTLP trace receiver for tests and benchmarks: a gRPC server on 127.0.0.1 that implements
// the collector's TraceService and keeps every span it is sent (Start), or only counts them (Serve, for groupgate
// bench: over gRPC it decodes every request as a collector does; over HTTP it walks the wire format to the spans
// and decodes none; it keeps nothing).
package otlptest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Receiver collects spans. Endpoint is its host:port.
type Receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	Endpoint string
	mu       sync.Mutex
	spans    []*Span
	count    bool // Serve: count spans, keep none
	counted  int64
	requests int64
}

// Span is a received span, with its ids in hex and its attributes as strings.
type Span struct {
	Name, TraceID, SpanID, ParentSpanID string
	Kind                                tracepb.Span_SpanKind
	Service                             string
	Attributes                          map[string]string
}

// Start serves a receiver until the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{Endpoint: lis.Addr().String()}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return r
}

// Serve serves a counting receiver until stop: OTLP/gRPC on grpcLis and OTLP/HTTP (protobuf bodies on
// /v1/traces, gzip or not; counted without decoding the spans) on httpLis. Counts reads what it was sent. Endpoint is grpcLis's address.
func Serve(grpcLis, httpLis net.Listener) (r *Receiver, stop func()) {
	r = &Receiver{Endpoint: grpcLis.Addr().String(), count: true}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(grpcLis) }()
	mux := http.NewServeMux()
	mux.Handle("POST /v1/traces", r)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(httpLis) }()
	return r, func() { srv.Stop(); _ = hs.Close() }
}

// ServeHTTP receives an OTLP/HTTP export (binary protobuf, as the OTLP specification's /v1/traces).
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	var buf bytes.Buffer
	if req.ContentLength > 0 && req.Header.Get("Content-Encoding") == "" {
		buf.Grow(int(min(req.ContentLength, 64<<20)) + bytes.MinRead) // one buffer, not io.ReadAll's doublings of a ~100 KB batch
	}
	_, err := buf.ReadFrom(body)
	b := buf.Bytes()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var resp *coltracepb.ExportTraceServiceResponse
	if r.count {
		// Counting only: walk the wire format down to the spans (a collector would decode them all; groupgate
		// bench charges this receiver's CPU to the traced run, and it is not the server's cost).
		spans, err := countSpans(b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests++
		r.counted += spans
		r.mu.Unlock()
		resp = &coltracepb.ExportTraceServiceResponse{}
	} else {
		var export coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &export); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, _ = r.Export(req.Context(), &export)
	}
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// countSpans counts the spans in an encoded ExportTraceServiceRequest without decoding them: the request's
// resource_spans (field 1), their scope_spans (field 2), and these's spans (field 2).
func countSpans(b []byte) (int64, error) {
	var n int64
	err := eachField(b, 1, func(rs []byte) error {
		return eachField(rs, 2, func(ss []byte) error {
			return eachField(ss, 2, func([]byte) error { n++; return nil })
		})
	})
	return n, err
}

// eachField calls fn with the contents of every length-delimited field number num in the message b, and skips
// the other fields.
func eachField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
	}
	return nil
}

// Counts are the spans and export requests received so far.
func (r *Receiver) Counts() (spans, requests int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counted, r.requests
}

func (r *Receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.count {
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				r.counted += int64(len(ss.GetSpans()))
			}
		}
		return &coltracepb.ExportTraceServiceResponse{}, nil
	}
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, &Span{Name: s.GetName(), TraceID: hex.EncodeToString(s.GetTraceId()),
					SpanID: hex.EncodeToString(s.GetSpanId()), ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
					Kind: s.GetKind(), Service: service, Attributes: attributes(s.GetAttributes())})
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func attributes(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.GetStringValue()
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(v.GetIntValue(), 10)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = strconv.FormatBool(v.GetBoolValue())
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// Spans are the spans received so far.
func (r *Receiver) Spans() []*Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Span(nil), r.spans...)
}

// WaitFor waits up to 10 s for a span named name in trace traceID ("" for any) and returns it.
func (r *Receiver) WaitFor(t testing.TB, traceID, name string) *Span {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, s := range r.Spans() {
			if s.Name == name && (traceID == "" || s.TraceID == traceID) {
				return s
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range r.Spans() {
				names = append(names, s.Name+"@"+s.TraceID)
			}
			t.Fatalf("no span %q in trace %q after 10 s; received %v", name, traceID, names)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
