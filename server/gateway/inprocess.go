package gateway

import (
	"context"
	"net"

	"github.com/groupgate/groupgate/server"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/test/bufconn"
)

// InProcess is an in-memory listener for the gRPC server: the gateway's streaming calls (and unary ones the server
// does not serve through server.Invoke) reach the server through it, with no socket, no TCP hop and no TLS in
// between, yet through the server's whole interceptor chain: a call over it is an ordinary gRPC call
// (grpc-gateway's in-process Register…HandlerServer would skip the interceptors). Serve it with the same
// *grpc.Server as the network listener.
type InProcess struct {
	lis *bufconn.Listener
}

// inProcessBuffer is the size of each direction's buffer of one in-memory connection: enough for a typical
// request or response to be written without waiting for the reader.
const inProcessBuffer = 1 << 20

// NewInProcess returns an in-memory listener.
func NewInProcess() *InProcess {
	return &InProcess{lis: bufconn.Listen(inProcessBuffer)}
}

// Accept waits for the gateway to connect.
func (l *InProcess) Accept() (net.Conn, error) {
	c, err := l.lis.Accept()
	if err != nil {
		return nil, err
	}
	return &inProcessConn{Conn: c, owner: l}, nil
}

// Close closes the listener; the gateway's connections fail from then on.
func (l *InProcess) Close() error { return l.lis.Close() }

// Addr is the listener's address ("bufconn").
func (l *InProcess) Addr() net.Addr { return l.lis.Addr() }

func (l *InProcess) dial(ctx context.Context, _ string) (net.Conn, error) {
	return l.lis.DialContext(ctx)
}

// inProcessConn marks a connection as accepted from an InProcess listener, for Credentials.
type inProcessConn struct {
	net.Conn
	owner *InProcess
}

// RemoteAddr is the gRPC server's peer address for the gateway's calls.
func (c *inProcessConn) RemoteAddr() net.Addr { return server.InProcessAddr{} }

// Credentials wraps the gRPC server's transport credentials (TLS) so that connections from this listener skip
// the handshake: they never leave the process, and the HTTP listener in front has done TLS (and mTLS) with the
// real client already. Every other connection goes through creds as before.
func (l *InProcess) Credentials(creds credentials.TransportCredentials) credentials.TransportCredentials {
	return &inProcessCredentials{TransportCredentials: creds, lis: l}
}

type inProcessCredentials struct {
	credentials.TransportCredentials
	lis *InProcess
}

func (c *inProcessCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if ipc, ok := conn.(*inProcessConn); ok && ipc.owner == c.lis {
		return conn, server.InProcessAuth, nil
	}
	return c.TransportCredentials.ServerHandshake(conn)
}

func (c *inProcessCredentials) Clone() credentials.TransportCredentials {
	return &inProcessCredentials{TransportCredentials: c.TransportCredentials.Clone(), lis: c.lis}
}
