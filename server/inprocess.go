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

// ErrNotInProcess is returned by Invoke for a method that is not a unary RPC of the server, and by NewStream for
// one that is not a streaming RPC of it.
var ErrNotInProcess = errors.New("not served in-process")

// unaryMethod is one unary RPC of the server: its implementation and the generated handler that decodes the
// request and runs the interceptor.
type unaryMethod struct {
	impl    any
	handler func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error)
}

// streamMethod is one streaming RPC of the server: server streams (a single request, a stream of answers) and
// client streams (a stream of requests, one answer).
type streamMethod struct {
	impl    any
	handler grpc.StreamHandler
	desc    grpc.StreamDesc
}

// register registers a service with the gRPC server and for in-process calls alike, so that both serve the same
// methods.
func (s *Server) register(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
	for _, m := range desc.Methods {
		s.unaryMethods["/"+desc.ServiceName+"/"+m.MethodName] = unaryMethod{impl: impl, handler: m.Handler}
	}
	for _, st := range desc.Streams {
		s.streamMethods["/"+desc.ServiceName+"/"+st.StreamName] = streamMethod{impl: impl, handler: st.Handler, desc: st}
	}
}

// Conn is the server as a gRPC client connection that never leaves the process: the HTTP gateway's way in. Every
// call runs through the interceptor chain the gRPC server runs (one chained function, used by both), with what a
// gRPC call's context carries (see Invoke). Unary calls and streams of every kind, health checks included; a
// method the server does not serve is UNIMPLEMENTED, as over the network.
func (s *Server) Conn() grpc.ClientConnInterface { return inProcessConn{s} }

type inProcessConn struct{ s *Server }

func (c inProcessConn) Invoke(ctx context.Context, method string, req, reply any, _ ...grpc.CallOption) error {
	err := c.s.Invoke(ctx, method, req, reply)
	if errors.Is(err, ErrNotInProcess) {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	return err
}

func (c inProcessConn) NewStream(ctx context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := c.s.NewStream(ctx, method)
	if errors.Is(err, ErrNotInProcess) {
		return nil, status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	return cs, err
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

// NewStream starts the streaming method (a full method name) in-process and returns the client's end of it, as
// grpc.ClientConn.NewStream would: the HTTP gateway's path for EffectiveMembers, Audit, Watch, ImportSnapshot and
// the like. The handler runs in its own goroutine through the very stream interceptor the gRPC server runs, with
// the context Invoke gives. Each message either end sends is copied (proto.Clone: a sender may reuse a message
// once Send has returned, as gRPC lets it) into a small buffer the other end reads from; a full buffer holds the
// sender back, so a slow reader slows the stream rather than filling memory. Cancelling ctx ends the handler.
// A method that is not a streaming RPC of the server returns ErrNotInProcess.
func (s *Server) NewStream(ctx context.Context, method string) (grpc.ClientStream, error) {
	m, ok := s.streamMethods[method]
	if !ok {
		return nil, ErrNotInProcess
	}
	// The handler's context ends with the caller's, and when the handler returns (releasing what it holds).
	serverCtx, cancel := context.WithCancel(ctx)
	requests := 1 // a server stream's one request never waits for the handler
	if m.desc.ClientStreams {
		requests = 4
	}
	p := &inProcessPipe{
		clientCtx:     ctx,
		serverCtx:     inProcessContext(serverCtx, method),
		cancel:        cancel,
		clientStreams: m.desc.ClientStreams,
		request:       make(chan proto.Message, requests),
		msgs:          make(chan proto.Message, 4),
		header:        make(chan struct{}),
		done:          make(chan struct{}),
	}
	info := &grpc.StreamServerInfo{FullMethod: method, IsServerStream: m.desc.ServerStreams, IsClientStream: m.desc.ClientStreams}
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
	clientStreams        bool               // the client may send any number of requests
	request              chan proto.Message // the requests; closed by CloseSend
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
	if s.requestRead && !s.clientStreams {
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
	case c.requestSent && !c.clientStreams:
		return status.Error(codes.Internal, "in-process stream: a server stream takes one request")
	}
	c.requestSent = true
	select {
	case c.request <- proto.Clone(msg):
		return nil
	case <-c.done:
		// The handler has returned (e.g. refused by an interceptor before reading), and RecvMsg says how. As grpc-go
		// does, a stream with one request gets nil here rather than io.EOF: its generated client returns SendMsg's
		// error as the call's, which would hide the status (an HTTP caller without a token got "EOF", not 401).
		if !c.clientStreams {
			return nil
		}
		return io.EOF
	case <-c.clientCtx.Done():
		return status.FromContextError(c.clientCtx.Err()).Err()
	}
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
