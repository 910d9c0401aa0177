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
	"context"
	"errors"
	"math"
	"net/http"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/gen/openapiv2"
	"github.com/groupgate/groupgate/server"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
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
		root = NoRoute
	}
	mux.Handle("/", root)
	return &Gateway{conn: conn, handler: newBrowserGuard(mux, opts.Browser)}, nil
}

// forwardedHeader says which request headers become the call's metadata: Grpc-Metadata-{key} as {key} (gRPC
// metadata an HTTP client sends explicitly), except the key the gateway sets itself. The Authorization header
// is always forwarded (grpc-gateway does so before asking). grpc-gateway's default would also forward the
// standard headers (Content-Type, User-Agent, Accept, …) as grpcgateway-{name}; nothing in the server reads
// them, and building them was a tenth of the gateway's allocations per call.
func forwardedHeader(key string) (string, bool) {
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

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", jsonContentType)
	_, _ = w.Write(openapiv2.JSON)
}
