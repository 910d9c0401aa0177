package server

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// InProcessAddr is the peer address of calls that come from inside the process: the HTTP gateway's. Their
// client's address is in their HTTPClientMetadata.
type InProcessAddr struct{}

// Network is "in-process".
func (InProcessAddr) Network() string { return "in-process" }
func (InProcessAddr) String() string  { return "in-process" }

// HTTPClientMetadata is the metadata key in which the HTTP gateway passes the address of a call's HTTP client
// (the connection's remote address, never a header the client sent) to the server's logs.
const HTTPClientMetadata = "groupgate-http-client"

// ErrNotInProcess is returned by Invoke for a method it does not serve in-process (streams, health).
var ErrNotInProcess = errors.New("not served in-process")

// unaryMethod is one unary RPC of the server: its implementation and the generated handler that decodes the
// request and runs the interceptor.
type unaryMethod struct {
	impl    any
	handler func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error)
}

// streamMethod is one server-streaming RPC of the server (a single request, a stream of answers).
type streamMethod struct {
	impl    any
	handler grpc.StreamHandler
}

func (s *Server) registerInProcess(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		s.unaryMethods["/"+desc.ServiceName+"/"+m.MethodName] = unaryMethod{impl: impl, handler: m.Handler}
	}
	for _, st := range desc.Streams {
		if st.ServerStreams && !st.ClientStreams {
			s.streamMethods["/"+desc.ServiceName+"/"+st.StreamName] = streamMethod{impl: impl, handler: st.Handler}
		}
	}
}

// inProcessContext is what the context of a gRPC call to method carries, made from the caller's context: the
// caller's metadata as incoming metadata, the method (grpc.Method), a peer (InProcessAddr), and the deadline and
// cancellation, which it keeps.
func inProcessContext(ctx context.Context, method string) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewIncomingContext(ctx, md)
	ctx = peer.NewContext(ctx, inProcessPeer)
	return grpc.NewContextWithServerTransportStream(ctx, &inProcessStream{method: method})
}

var inProcessPeer = &peer.Peer{Addr: InProcessAddr{}, AuthInfo: InProcessAuth}

// Invoke calls the unary method (a full method name, "/groupgate.v1.DecisionService/CanAddMember") in-process
// and fills reply: the HTTP gateway's fast path for unary calls, which skips the HTTP/2 framing and protobuf
// encoding of a gRPC call but not its checks. The call runs through the very interceptor the gRPC server runs
// (one chained function used by both), with what a gRPC call's context carries: the caller's metadata as
// incoming metadata, the method (grpc.Method), a peer (InProcessAddr) and the deadline. The request and the
// answer are copied, as decoding and encoding them would. A method that is not a unary RPC of DecisionService
// or DirectoryService returns ErrNotInProcess.
//
// What the gRPC transport alone does is not repeated: the MaxRecvBytes limit (the gateway bounds request
// bodies to the same size instead) and HTTP/2 stream limits.
func (s *Server) Invoke(ctx context.Context, method string, req, reply any) error {
	m, ok := s.unaryMethods[method]
	if !ok {
		return ErrNotInProcess
	}
	ctx = inProcessContext(ctx, method)
	in, ok := req.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process call with a %T", req)
	}
	dec := func(m any) error {
		proto.Merge(m.(proto.Message), in)
		return nil
	}
	resp, err := m.handler(m.impl, ctx, dec, s.unary)
	if err != nil {
		return status.Convert(err).Err()
	}
	out, ok := resp.(proto.Message)
	if !ok { // a handler answering neither a message nor an error: gRPC would fail to encode it
		return status.Errorf(codes.Internal, "%s answered %T and no error", method, resp)
	}
	proto.Merge(reply.(proto.Message), out)
	return nil
}

// InProcessAuthInfo is the AuthInfo of calls from inside the process (Invoke, NewStream, and the gateway's
// in-memory connection): they never leave the process, so they count as private and intact.
type InProcessAuthInfo struct{ credentials.CommonAuthInfo }

// AuthType is "in-process".
func (InProcessAuthInfo) AuthType() string { return "in-process" }

// InProcessAuth is the one InProcessAuthInfo every in-process call carries.
var InProcessAuth = InProcessAuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}

// inProcessStream is the grpc.ServerTransportStream of an in-process call: it names the method; headers and
// trailers the handlers set have nowhere to go (the gateway forwards none).
type inProcessStream struct{ method string }

func (s *inProcessStream) Method() string               { return s.method }
func (s *inProcessStream) SetHeader(metadata.MD) error  { return nil }
func (s *inProcessStream) SendHeader(metadata.MD) error { return nil }
func (s *inProcessStream) SetTrailer(metadata.MD) error { return nil }

// NewStream starts the server-streaming method (a full method name) in-process and returns the client's end of
// it, as grpc.ClientConn.NewStream would: the HTTP gateway's path for EffectiveMembers, Audit, Watch and the
// like. The handler runs in its own goroutine through the very stream interceptor the gRPC server runs, with the
// context Invoke gives. Each message it sends is copied (proto.Clone: a handler may reuse a message once Send has
// returned, as gRPC lets it) into a small buffer the client reads from; a full buffer holds the handler back, so
// a slow reader slows the stream rather than filling memory. Cancelling ctx ends the handler. Client-streaming
// methods and unknown ones return ErrNotInProcess.
func (s *Server) NewStream(ctx context.Context, method string) (grpc.ClientStream, error) {
	m, ok := s.streamMethods[method]
	if !ok {
		return nil, ErrNotInProcess
	}
	// The handler's context ends with the caller's, and when the handler returns (releasing what it holds).
	serverCtx, cancel := context.WithCancel(ctx)
	p := &inProcessPipe{
		clientCtx: ctx,
		serverCtx: inProcessContext(serverCtx, method),
		cancel:    cancel,
		request:   make(chan proto.Message, 1),
		msgs:      make(chan proto.Message, 4),
		header:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	info := &grpc.StreamServerInfo{FullMethod: method, IsServerStream: true}
	go func() {
		err := s.stream(m.impl, (*inProcessServerStream)(p), info, m.handler)
		if err != nil {
			err = status.Convert(err).Err()
		}
		p.err = err
		close(p.msgs)
		close(p.done)
		cancel()
	}()
	return (*inProcessClientStream)(p), nil
}

// inProcessPipe joins the two ends of an in-process stream.
type inProcessPipe struct {
	clientCtx, serverCtx context.Context
	cancel               context.CancelFunc
	request              chan proto.Message // the one request; closed by CloseSend
	sendMu               sync.Mutex
	sendClosed           bool // CloseSend has been called: the request channel is closed
	requestSent          bool
	requestRead          bool
	msgs                 chan proto.Message // the answers; closed when the handler has returned
	headerOnce           sync.Once
	header               chan struct{} // closed when the handler sends its headers or first message
	done                 chan struct{} // closed when the handler has returned, after err is set
	err                  error
}

func (p *inProcessPipe) sendHeader() { p.headerOnce.Do(func() { close(p.header) }) }

// inProcessServerStream is the handler's end: a grpc.ServerStream.
type inProcessServerStream inProcessPipe

func (s *inProcessServerStream) Context() context.Context    { return s.serverCtx }
func (s *inProcessServerStream) SetHeader(metadata.MD) error { return nil }
func (s *inProcessServerStream) SetTrailer(metadata.MD)      {}

func (s *inProcessServerStream) SendHeader(metadata.MD) error {
	(*inProcessPipe)(s).sendHeader()
	return nil
}

func (s *inProcessServerStream) SendMsg(m any) error {
	var msg proto.Message
	switch m := m.(type) {
	case *encodedMessage: // the gateway reads messages, not bytes
		decoded, err := m.message()
		if err != nil {
			return status.Errorf(codes.Internal, "in-process stream: decoding a pre-encoded message: %v", err)
		}
		msg = decoded
	case proto.Message:
		msg = proto.Clone(m)
	default:
		return status.Errorf(codes.Internal, "in-process stream sending a %T", m)
	}
	(*inProcessPipe)(s).sendHeader()
	select {
	case s.msgs <- msg:
		return nil
	case <-s.serverCtx.Done():
		return status.FromContextError(s.serverCtx.Err()).Err()
	}
}

func (s *inProcessServerStream) RecvMsg(m any) error {
	if s.requestRead {
		return io.EOF
	}
	select {
	case req, ok := <-s.request:
		if !ok {
			return io.EOF
		}
		s.requestRead = true
		proto.Merge(m.(proto.Message), req)
		return nil
	case <-s.serverCtx.Done():
		return status.FromContextError(s.serverCtx.Err()).Err()
	}
}

// inProcessClientStream is the caller's end: a grpc.ClientStream.
type inProcessClientStream inProcessPipe

func (c *inProcessClientStream) Context() context.Context { return c.clientCtx }
func (c *inProcessClientStream) Trailer() metadata.MD     { return nil }

// Header waits for the handler's headers (its first message brings them) and returns nil, nil when the handler
// ended without any, as gRPC does for a call that fails at once (the error then comes from RecvMsg).
func (c *inProcessClientStream) Header() (metadata.MD, error) {
	select {
	case <-c.header:
		return metadata.MD{}, nil
	case <-c.done:
		select {
		case <-c.header:
			return metadata.MD{}, nil
		default:
			return nil, nil
		}
	case <-c.clientCtx.Done():
		return nil, status.FromContextError(c.clientCtx.Err()).Err()
	}
}

func (c *inProcessClientStream) SendMsg(m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "in-process stream sending a %T", m)
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	switch {
	case c.sendClosed:
		return status.Error(codes.Internal, "in-process stream: SendMsg after CloseSend")
	case c.requestSent:
		return status.Error(codes.Internal, "in-process stream: a server stream takes one request")
	}
	c.requestSent = true
	c.request <- proto.Clone(msg) // the channel holds one: never blocks
	return nil
}

// CloseSend ends the requests; calling it again does nothing, as on a gRPC stream.
func (c *inProcessClientStream) CloseSend() error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if !c.sendClosed {
		c.sendClosed = true
		close(c.request)
	}
	return nil
}

// RecvMsg returns the next answer, then io.EOF or the handler's error once it has returned.
func (c *inProcessClientStream) RecvMsg(m any) error {
	select {
	case msg, ok := <-c.msgs:
		if !ok {
			if c.err != nil {
				return c.err
			}
			return io.EOF
		}
		proto.Merge(m.(proto.Message), msg)
		return nil
	case <-c.clientCtx.Done():
		return status.FromContextError(c.clientCtx.Err()).Err()
	}
}

// chainStream chains stream interceptors into one, outermost first, as grpc.ChainStreamInterceptor does.
func chainStream(ics []grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	if len(ics) == 0 {
		return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			return handler(srv, ss)
		}
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return ics[0](srv, ss, info, chainedStreamHandler(ics, 0, info, handler))
	}
}

func chainedStreamHandler(ics []grpc.StreamServerInterceptor, cur int, info *grpc.StreamServerInfo, final grpc.StreamHandler) grpc.StreamHandler {
	if cur == len(ics)-1 {
		return final
	}
	return func(srv any, ss grpc.ServerStream) error {
		return ics[cur+1](srv, ss, info, chainedStreamHandler(ics, cur+1, info, final))
	}
}

// chainUnary chains interceptors into one, outermost first, as grpc.ChainUnaryInterceptor does: the gRPC
// server and Invoke both run this one function.
func chainUnary(ics []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	if len(ics) == 0 {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return ics[0](ctx, req, info, chainedHandler(ics, 0, info, handler))
	}
}

func chainedHandler(ics []grpc.UnaryServerInterceptor, cur int, info *grpc.UnaryServerInfo, final grpc.UnaryHandler) grpc.UnaryHandler {
	if cur == len(ics)-1 {
		return final
	}
	return func(ctx context.Context, req any) (any, error) {
		return ics[cur+1](ctx, req, info, chainedHandler(ics, cur+1, info, final))
	}
}
