// Package gateway is the HTTP/JSON face of the gRPC server (SPEC §11): POST /v1/{rpc} for every RPC, newline-
// delimited JSON for server streams, GET /healthz, GET /openapi.json, and whatever handler is given for the rest
// (the explorer page at GET /). The routes are grpc-gateway reverse proxies generated from the proto's
// google.api.http annotations. They reach the server through its interceptor chain, never around it: every call
// goes through server.Server.Conn, which runs it in-process through the gRPC server's own chained interceptor.
// So every HTTP call passes the same auth, roles, validation, limits, logging, metrics and recovery as a gRPC call
// (grpc-gateway's Register…HandlerServer, which calls the implementations directly, is not used for that
// reason).
package gateway

import (
	"context"
	"net/http"
	"strings"
	"sync"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/gen/openapiv2"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/authzen"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
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
	// AuthZENBaseURL is the AuthZEN PDP identifier discovery announces (--authzen-base-url); "": the listener's
	// own URL as each request reached it.
	AuthZENBaseURL string
}

// Gateway is an http.Handler for the HTTP/JSON API.
type Gateway struct {
	handler http.Handler
}

// New puts a gateway in front of srv. The calls never leave the process (server.Server.Conn): gRPC's client,
// HTTP/2 framing, protobuf encoding and server transport between the gateway and the server took about a fifth
// of all CPU under HTTP load by pprof, and a one-message stream cost twice a unary call.
func New(srv *server.Server, opts Options) (*Gateway, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 16 << 20
	}
	conn := srv.Conn()
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
	if err := pb.RegisterDecisionServiceHandlerClient(ctx, api, pb.NewDecisionServiceClient(conn)); err != nil {
		return nil, err
	}
	if err := pb.RegisterDirectoryServiceHandlerClient(ctx, api, pb.NewDirectoryServiceClient(conn)); err != nil {
		return nil, err
	}
	limited := limitBody(api, opts.MaxBodyBytes)
	mux := http.NewServeMux()
	mux.Handle("/v1/", limited)
	// AuthZEN (SPEC §17): the same connection, so the same interceptor chain; the same body limit and error form.
	az := limitBody(authzen.New(conn, authzen.Options{
		BaseURL:    opts.AuthZENBaseURL,
		WriteError: writeAuthZENError,
		// The metadata of a /v1/… call, built by the same mux options (forwardedHeader, clientAddress).
		Annotate: func(r *http.Request) (context.Context, error) {
			return runtime.AnnotateContext(r.Context(), api, r, "AuthZEN "+r.URL.Path)
		},
	}), opts.MaxBodyBytes)
	mux.Handle(authzen.AccessPrefix, az)
	mux.Handle(authzen.TenantsPrefix, az)
	mux.Handle(authzen.WellKnown, az)
	mux.Handle(authzen.WellKnown+"/", az)
	mux.Handle("GET /healthz", limited)
	mux.HandleFunc("GET /openapi.json", serveOpenAPI)
	root := opts.Root
	if root == nil {
		root = NoRoute
	}
	mux.Handle("/", root)
	return &Gateway{handler: newBrowserGuard(mux, opts.Browser)}, nil
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

// ServeHTTP answers one HTTP request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// openAPI is the generated document with the AuthZEN routes merged in (authzen.MergeOpenAPI: they are not RPCs of
// the proto, so the generator does not see them); the generated one alone if merging failed, which a test rules out.
var openAPI = sync.OnceValue(func() []byte {
	doc, err := authzen.MergeOpenAPI(openapiv2.JSON)
	if err != nil {
		return openapiv2.JSON
	}
	return doc
})

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", jsonContentType)
	_, _ = w.Write(openAPI())
}

// writeAuthZENError answers an AuthZEN request that failed as a whole in the gateway's error form (the spec's
// "error message string" is the status's message): the HTTP status of its gRPC code, or the one authzen fixed.
func writeAuthZENError(w http.ResponseWriter, r *http.Request, err error) {
	if code, ok := authzen.HTTPStatusOf(err); ok {
		writeStatus(w, r, code, status.Convert(err))
		return
	}
	writeError(r.Context(), nil, nil, w, r, err)
}
