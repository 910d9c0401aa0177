package server

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// InProcessAddr is the peer address of calls that come from inside the process: the HTTP gateway's. Their
// client's address is in their x-forwarded-for metadata.
type InProcessAddr struct{}

// Network is "in-process".
func (InProcessAddr) Network() string { return "in-process" }
func (InProcessAddr) String() string  { return "in-process" }

// ErrNotInProcess is returned by Invoke for a method it does not serve in-process (streams, health).
var ErrNotInProcess = errors.New("not served in-process")

// unaryMethod is one unary RPC of the server: its implementation and the generated handler that decodes the
// request and runs the interceptor.
type unaryMethod struct {
	impl    any
	handler func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error)
}

func (s *Server) registerInProcess(desc *grpc.ServiceDesc, impl any) {
	for _, m := range desc.Methods {
		s.unaryMethods["/"+desc.ServiceName+"/"+m.MethodName] = unaryMethod{impl: impl, handler: m.Handler}
	}
}

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
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewIncomingContext(ctx, md)
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: InProcessAddr{}, AuthInfo: inProcessAuthInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}})
	ctx = grpc.NewContextWithServerTransportStream(ctx, &inProcessStream{method: method})
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
	proto.Merge(reply.(proto.Message), resp.(proto.Message))
	return nil
}

type inProcessAuthInfo struct{ credentials.CommonAuthInfo }

func (inProcessAuthInfo) AuthType() string { return "in-process" }

// inProcessStream is the grpc.ServerTransportStream of an in-process call: it names the method; headers and
// trailers the handlers set have nowhere to go (the gateway forwards none).
type inProcessStream struct{ method string }

func (s *inProcessStream) Method() string               { return s.method }
func (s *inProcessStream) SetHeader(metadata.MD) error  { return nil }
func (s *inProcessStream) SendHeader(metadata.MD) error { return nil }
func (s *inProcessStream) SetTrailer(metadata.MD) error { return nil }

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
