// Package gateway is the HTTP/JSON face of the gRPC server (SPEC §11): POST /v1/{rpc} for every RPC, newline-
// delimited JSON for server streams, GET /healthz, GET /openapi.json, and whatever handler is given for the rest
// (the explorer page at GET /). The routes are grpc-gateway reverse proxies generated from the proto's
// google.api.http annotations. They reach the server through its interceptor chain, never around it: unary calls
// through server.Server.Invoke (in-process, the gRPC server's own chained interceptor), streams as gRPC calls over
// an InProcess listener. So every HTTP call passes the same auth, roles, validation, limits, logging, metrics and
// recovery as a gRPC call (grpc-gateway's Register…HandlerServer, which calls the implementations directly, is not
// used for that reason).
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/gen/openapiv2"
	"github.com/groupgate/groupgate/server"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Options configure a Gateway.
type Options struct {
	// MaxBodyBytes bounds a request body; a larger one is refused with 413 and a RESOURCE_EXHAUSTED status. Give
	// it the gRPC server's MaxRecvBytes, so that both transports accept the same requests (the JSON form of a
	// message is larger than its binary form, so a body under the limit never exceeds the gRPC one). 0: 16 MiB.
	MaxBodyBytes int64
	// Root serves every path outside the API (/v1/…, /healthz, /openapi.json): the explorer page at GET / and its
	// assets. nil answers 404 there.
	Root http.Handler
	// Browser widens the rules that keep web pages out (BrowserRules); they apply to every path.
	Browser BrowserRules
}

// Gateway is an http.Handler for the HTTP/JSON API.
type Gateway struct {
	conn    *grpc.ClientConn
	handler http.Handler
}

// New connects a gateway to srv, whose gRPC server serves lis. Close it after the HTTP server has stopped.
func New(srv *server.Server, lis *InProcess, opts Options) (*Gateway, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 16 << 20
	}
	conn, err := grpc.NewClient("passthrough:///groupgate-in-process",
		grpc.WithContextDialer(lis.dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The server enforces the limits; the gateway must not add a lower one of its own (grpc-go's default
		// 4 MiB receive limit would cut off a large ExportSnapshot part or CheckBatch answer).
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
	if err != nil {
		return nil, err
	}
	api := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler()),
		runtime.WithErrorHandler(writeError),
		runtime.WithRoutingErrorHandler(routingError),
		runtime.WithHealthzEndpoint(healthpb.NewHealthClient(conn)),
		// The server sends no header metadata meant for HTTP clients; without this its content-type would
		// come out as Grpc-Metadata-Content-Type.
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithForwardResponseOption(startStream),
		// A unary answer goes out with its Content-Length rather than chunked (net/http chunks anything over
		// 2 KiB written without one, e.g. a CheckBatch answer).
		runtime.WithWriteContentLength(),
		// The server's logs name the HTTP client by the connection's address, which the client cannot choose;
		// a Grpc-Metadata- header of the same name is not forwarded.
		runtime.WithMetadata(clientAddress),
		runtime.WithIncomingHeaderMatcher(forwardedHeader),
	)
	ctx := context.Background()
	calls := serverConn{ClientConn: conn, srv: srv}
	if err := pb.RegisterDecisionServiceHandlerClient(ctx, api, pb.NewDecisionServiceClient(calls)); err != nil {
		conn.Close()
		return nil, err
	}
	if err := pb.RegisterDirectoryServiceHandlerClient(ctx, api, pb.NewDirectoryServiceClient(calls)); err != nil {
		conn.Close()
		return nil, err
	}
	limited := limitBody(api, opts.MaxBodyBytes)
	mux := http.NewServeMux()
	mux.Handle("/v1/", limited)
	mux.Handle("GET /healthz", limited)
	mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	root := opts.Root
	if root == nil {
		root = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeStatus(w, r, http.StatusNotFound, status.New(codes.NotFound, noRoute))
		})
	}
	mux.Handle("/", root)
	return &Gateway{conn: conn, handler: newBrowserGuard(mux, opts.Browser)}, nil
}

// forwardedHeader says which request headers become the call's metadata: Grpc-Metadata-{key} as {key} (gRPC
// metadata an HTTP client sends explicitly), except the key the gateway sets itself, and the W3C trace context
// headers traceparent and tracestate under their own names. The Authorization header
// is always forwarded (grpc-gateway does so before asking). grpc-gateway's default would also forward the
// standard headers (Content-Type, User-Agent, Accept, …) as grpcgateway-{name}; nothing in the server reads
// them, and building them was a tenth of the gateway's allocations per call.
func forwardedHeader(key string) (string, bool) {
	// W3C trace context: the server's span continues the HTTP client's trace (SPEC §14), as a gRPC client's.
	if strings.EqualFold(key, "traceparent") || strings.EqualFold(key, "tracestate") {
		return strings.ToLower(key), true
	}
	if len(key) <= len(runtime.MetadataHeaderPrefix) || !strings.EqualFold(key[:len(runtime.MetadataHeaderPrefix)], runtime.MetadataHeaderPrefix) {
		return "", false
	}
	name := key[len(runtime.MetadataHeaderPrefix):]
	if strings.EqualFold(name, server.HTTPClientMetadata) {
		return "", false
	}
	return name, true
}

// clientAddress is the HTTP client's address for the server's logs: the connection's remote address ("unix
// socket" on a socket, where it has none).
func clientAddress(_ context.Context, r *http.Request) metadata.MD {
	addr := r.RemoteAddr
	if addr == "" || addr == "@" {
		addr = "unix socket"
	}
	return metadata.Pairs(server.HTTPClientMetadata, addr)
}

// serverConn is how the gateway calls the server: unary calls through server.Invoke and server streams through
// server.NewStream, which run them in-process through the gRPC server's own interceptor chain (gRPC's client,
// HTTP/2 framing, protobuf encoding and server transport between the gateway and the server, in the same
// process, took about a fifth of all CPU under HTTP load by pprof, and a one-message stream cost twice a unary
// call); the client stream (ImportSnapshot) and health checks as gRPC calls over the in-memory connection.
type serverConn struct {
	*grpc.ClientConn
	srv *server.Server
}

func (c serverConn) Invoke(ctx context.Context, method string, req, reply any, opts ...grpc.CallOption) error {
	err := c.srv.Invoke(ctx, method, req, reply)
	if errors.Is(err, server.ErrNotInProcess) {
		return c.ClientConn.Invoke(ctx, method, req, reply, opts...)
	}
	return err
}

func (c serverConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := c.srv.NewStream(ctx, method)
	if errors.Is(err, server.ErrNotInProcess) {
		return c.ClientConn.NewStream(ctx, desc, method, opts...)
	}
	return cs, err
}

// ServeHTTP answers one HTTP request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// Close closes the gateway's connection to the gRPC server.
func (g *Gateway) Close() error { return g.conn.Close() }

// marshaler is protojson with lowerCamelCase names (the proto JSON mapping: groupId, entraVerdict) and every
// field emitted, zero values and empty lists included: a workflow reads body('check')?['isMember'] and expects
// false, not a missing property.
func marshaler() runtime.Marshaler {
	return &ndjsonMarshaler{JSONPb: runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// startStream makes a Watch live: its 200 goes out as soon as the server has accepted the watch (sent its
// headers), before the first change, which may be long in coming (an HTTP client that sees no status by then gives
// up), and every change is flushed as it comes. grpc-gateway calls it with a nil message when a stream starts (and
// with each message, ignored here). A watch that fails before starting has no headers, so its error still gets its
// own HTTP status. Other streams stay buffered (see flushControl).
func startStream(ctx context.Context, w http.ResponseWriter, msg proto.Message) error {
	if msg != nil {
		return nil
	}
	if method, _ := runtime.RPCMethod(ctx); method != pb.DirectoryService_Watch_FullMethodName {
		return nil
	}
	if md, ok := runtime.ServerMetadataFromContext(ctx); !ok || md.HeaderMD == nil {
		return nil
	}
	if fc, ok := w.(*flushControl); ok {
		fc.live = true
	}
	w.Header().Set("Content-Type", streamContentType)
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
	return nil
}

// flushControl keeps grpc-gateway from flushing after every message of a stream, except for a Watch (live). The
// other streams (EffectiveMembers, Audit, ExportSnapshot, …) produce their messages at once, so flushing each one
// only costs a write system call apiece: net/http writes them as its buffer fills, and the last when the stream
// ends. Flushing per message made a one-message stream three writes (status, message, end) instead of one.
type flushControl struct {
	http.ResponseWriter
	live bool
}

func (f *flushControl) Flush() {
	if f.live {
		_ = http.NewResponseController(f.ResponseWriter).Flush()
	}
}

func (f *flushControl) FlushError() error {
	if f.live {
		return http.NewResponseController(f.ResponseWriter).Flush()
	}
	return nil
}

// Unwrap gives http.ResponseController the underlying writer for everything else.
func (f *flushControl) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// The answers name their charset, though JSON is always UTF-8 (RFC 8259): Windows PowerShell 5.1's
// Invoke-RestMethod reads a body without one as ISO-8859-1, and a display name such as "Zoë" would come out
// garbled. PowerShell 7 and Logic Apps compare the media type alone.
const (
	jsonContentType   = "application/json; charset=utf-8"
	streamContentType = "application/x-ndjson; charset=utf-8"
)

// noRoute answers a path that is neither the API nor served by Options.Root.
const noRoute = "no such route: the API is POST /v1/{rpc}, described at /openapi.json"

// ndjsonMarshaler labels server streams as newline-delimited JSON, one {"result": …} object per line, and
// writes compact JSON: protojson puts a space after some separators, differently in each build, on purpose, so
// that nobody relies on its bytes; the answers of an HTTP API are compared and quoted in documentation, so they
// are compacted to one stable form.
type ndjsonMarshaler struct{ runtime.JSONPb }

func (*ndjsonMarshaler) ContentType(any) string       { return jsonContentType }
func (*ndjsonMarshaler) StreamContentType(any) string { return streamContentType }

func (m *ndjsonMarshaler) Marshal(v any) ([]byte, error) {
	b, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	return compact(b), nil
}

// NewDecoder reads a request body. A unary request's body is one JSON object: it is read whole (the body limit
// bounds it) and handed to protojson at once, which costs half of what grpc-gateway's decoder does (that one
// scans the body with encoding/json first, to find where the object ends). A body that is not one message (a
// client stream's objects one after another, or bad JSON) goes to grpc-gateway's decoder after all, which splits
// the objects and words the error.
func (m *ndjsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return &bodyDecoder{r: r, m: m}
}

type bodyDecoder struct {
	r    io.Reader
	m    *ndjsonMarshaler
	read bool
	dec  runtime.Decoder // set once the body has gone to grpc-gateway's decoder
}

func (d *bodyDecoder) Decode(v any) error {
	if d.dec != nil {
		return d.dec.Decode(v)
	}
	msg, ok := v.(proto.Message)
	if !ok || d.read {
		d.dec = d.m.JSONPb.NewDecoder(d.r)
		return d.dec.Decode(v)
	}
	d.read = true
	body, err := io.ReadAll(d.r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return io.EOF
	}
	if err := d.m.UnmarshalOptions.Unmarshal(body, msg); err == nil {
		return nil
	}
	proto.Reset(msg)
	d.dec = d.m.JSONPb.NewDecoder(bytes.NewReader(body))
	return d.dec.Decode(v)
}

// compact drops the spaces protojson puts between tokens, in place. It is not json.Compact, which validates as
// it goes and cost 4% of an HTTP call's CPU: protojson's output is valid JSON whose only whitespace outside
// strings is those single spaces (it writes no newlines or indentation without Multiline).
func compact(b []byte) []byte {
	out := b[:0]
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && c == ' ':
			continue
		}
		out = append(out, c)
	}
	return out
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", jsonContentType)
	_, _ = w.Write(openapiv2.JSON)
}

// limitBody refuses bodies over max with 413: at once when Content-Length says so, and otherwise once the
// decoder has read past the limit (then writeError finds the mark on the request's body, which grpc-gateway
// hands it with the request).
func limitBody(next http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			writeStatus(w, r, http.StatusRequestEntityTooLarge, tooLarge(max))
			return
		}
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, max), max: max}
		next.ServeHTTP(&flushControl{ResponseWriter: w}, r)
	})
}

type limitedBody struct {
	io.ReadCloser
	max      int64
	exceeded bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		b.exceeded = true
	}
	return n, err
}

func tooLarge(max int64) *status.Status {
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("request body larger than %d bytes (the server's --max-recv-bytes)", max))
	if d, err := st.WithDetails(&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
		Subject: "request body", Description: fmt.Sprintf("at most %d bytes", max),
	}}}); err == nil {
		st = d
	}
	return st
}

// HTTPStatus is the HTTP status of a gRPC status (SPEC §11): grpc-gateway's mapping (400 InvalidArgument and
// FailedPrecondition, 401, 403, 404, 409 AlreadyExists/Aborted, 429 ResourceExhausted, 503, 504), except that a
// failed expected_revision is 412 Precondition Failed, as Microsoft Graph answers a stale If-Match.
func HTTPStatus(st *status.Status) int {
	if st.Code() == codes.FailedPrecondition {
		for _, d := range st.Details() {
			if pf, ok := d.(*errdetails.PreconditionFailure); ok && len(pf.GetViolations()) > 0 && pf.GetViolations()[0].GetType() == "REVISION" {
				return http.StatusPreconditionFailed
			}
		}
	}
	return runtime.HTTPStatusFromCode(st.Code())
}

// writeError is the gateway's error handler: the google.rpc.Status as JSON, with its details, under the HTTP
// status of its code.
func writeError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if b, ok := r.Body.(*limitedBody); ok && b.exceeded {
		writeStatus(w, r, http.StatusRequestEntityTooLarge, tooLarge(b.max))
		return
	}
	var withHTTP *runtime.HTTPStatusError
	if errors.As(err, &withHTTP) {
		writeStatus(w, r, withHTTP.HTTPStatus, status.Convert(withHTTP.Err))
		return
	}
	st := status.Convert(err)
	writeStatus(w, r, HTTPStatus(st), st)
}

// routingError answers an unknown route 404 and a known route with the wrong method 405.
func routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	var st *status.Status
	switch code {
	case http.StatusNotFound:
		st = status.New(codes.NotFound, noRoute)
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
		st = status.New(codes.Unimplemented, "method not allowed: the API is POST /v1/{rpc}")
	default:
		st = status.New(codes.InvalidArgument, http.StatusText(code))
	}
	writeError(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: code, Err: st.Err()})
}

// statusJSON leaves out empty fields: a google.rpc.Status reads {"code":5,"message":…,"details":[…]}.
var statusJSON = protojson.MarshalOptions{}

func writeStatus(w http.ResponseWriter, _ *http.Request, httpStatus int, st *status.Status) {
	body, err := statusJSON.Marshal(st.Proto())
	if err != nil {
		body = []byte(`{"code":13,"message":"failed to marshal the error"}`)
		httpStatus = http.StatusInternalServerError
	} else {
		body = compact(body)
	}
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Set("Content-Type", jsonContentType)
	if st.Code() == codes.Unauthenticated {
		h.Set("WWW-Authenticate", bearerChallenge(st))
	}
	w.WriteHeader(httpStatus)
	_, _ = w.Write(append(body, '\n'))
}

// bearerChallenge is the WWW-Authenticate of a 401 (RFC 6750 §3): a bare challenge when no token came, and
// error="invalid_token" with what was wrong (expired, audience, issuer, signature, …) when one did.
func bearerChallenge(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == server.InvalidTokenReason {
			return `Bearer realm="groupgate", error="invalid_token", error_description="` +
				strings.ReplaceAll(info.GetMetadata()["reason"], `"`, "'") + `"`
		}
	}
	return `Bearer realm="groupgate"`
}
