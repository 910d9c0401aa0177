package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/server/app"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// clientFlags are shared by every command that talks to a server.
type clientFlags struct {
	addr      string
	tenant    string
	token     string
	tls       tlsFlags
	output    string
	timeout   time.Duration
	snapshots []string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:50051", "server address: host:port, or a unix socket as unix:///path/to.sock")
	fl.StringVarP(&f.tenant, "tenant", "t", "contoso", "tenant id")
	fl.StringVar(&f.token, "token", "", "bearer token")
	f.tls.register(fl)
	fl.StringVarP(&f.output, "output", "o", "text", "text or json")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "deadline of the call")
	fl.StringSliceVar(&f.snapshots, "snapshot", nil, "answer in-process from these snapshot files instead of a server ('demo' for the demo tenant)")
	annotateEnv(cmd)
}

// tlsFlags are the client's TLS flags, shared by every command that dials a server.
type tlsFlags struct {
	on                        bool
	ca, cert, key, serverName string
}

func (t *tlsFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&t.on, "tls", false, "connect with TLS (implied by the other --tls-* flags)")
	fl.StringVar(&t.ca, "tls-ca", "", "CA certificate (PEM) that signed the server's certificate (default: system roots)")
	fl.StringVar(&t.cert, "tls-client-cert", "", "client certificate (PEM) for mTLS")
	fl.StringVar(&t.key, "tls-client-key", "", "client private key (PEM) for mTLS")
	fl.StringVar(&t.serverName, "tls-server-name", "", "name to verify the server's certificate against (default: the host of --addr; localhost for a unix socket)")
}

// credentials are the TLS credentials the flags ask for, or nil for plaintext, and the dial options that explain
// a refused connection when the server asked for a client certificate that the flags did not give.
func (t *tlsFlags) credentials() (credentials.TransportCredentials, []grpc.DialOption, error) {
	if !t.on && t.ca == "" && t.cert == "" && t.key == "" && t.serverName == "" {
		return nil, nil, nil
	}
	cfg, err := client.TLSConfigFromFiles(t.ca, t.cert, t.key, t.serverName)
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.Certificates) > 0 {
		return credentials.NewTLS(cfg), nil, nil
	}
	// A server that requires a client certificate (serve --client-ca) asks for one in the handshake, which the
	// client completes without; the server then drops the connection, and gRPC reports only what the client saw
	// of that ("Unavailable: … broken pipe" or "… tls: certificate required", depending on timing). The request
	// is recorded here, so that the error can say what is missing.
	asked := &atomic.Bool{}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked.Store(true)
		return &tls.Certificate{}, nil // none: the server decides whether that is enough
	}
	explain := func(err error) error {
		st, ok := status.FromError(err)
		if !ok || st.Code() != codes.Unavailable || !asked.Load() {
			return err
		}
		return status.Errorf(codes.Unavailable, "the server requires a client certificate (mTLS) and none was given: pass --tls-client-cert and --tls-client-key (%s)", st.Message())
	}
	return credentials.NewTLS(cfg), []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return explain(invoker(ctx, method, req, reply, cc, opts...))
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, explain(err)
			}
			return explainedStream{s, explain}, nil
		}),
	}, nil
}

// explainedStream passes a stream's errors through explain.
type explainedStream struct {
	grpc.ClientStream
	explain func(error) error
}

func (s explainedStream) SendMsg(m any) error { return s.explain(s.ClientStream.SendMsg(m)) }
func (s explainedStream) RecvMsg(m any) error { return s.explain(s.ClientStream.RecvMsg(m)) }
func (s explainedStream) CloseSend() error    { return s.explain(s.ClientStream.CloseSend()) }
func (s explainedStream) Header() (metadata.MD, error) {
	md, err := s.ClientStream.Header()
	return md, s.explain(err)
}

// connect dials the server, or starts an in-process server on the snapshot files on a loopback port.
func (f *clientFlags) connect(cmd *cobra.Command) (*client.Client, func(), error) {
	if err := bindEnv(cmd); err != nil {
		return nil, nil, err
	}
	switch f.output {
	case "text", "json":
	default:
		return nil, nil, fmt.Errorf("--output %q: want text or json", f.output)
	}
	addr, stop := f.addr, func() {}
	if len(f.snapshots) > 0 {
		var err error
		if addr, stop, err = serveInProcess(f.snapshots); err != nil {
			return nil, nil, err
		}
	}
	opts := client.Options{Token: f.token}
	var err error
	if opts.TLS, opts.DialOptions, err = f.tls.credentials(); err != nil {
		stop()
		return nil, nil, err
	}
	c, err := client.Dial(addr, opts)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return c, func() { c.Close(); stop() }, nil
}

func serveInProcess(snapshots []string) (string, func(), error) {
	if len(snapshots) == 1 && snapshots[0] == "demo" {
		snapshots = nil
	}
	logger, err := newLogger("warn", "text")
	if err != nil {
		return "", nil, err
	}
	a, err := app.Open(context.Background(), app.Config{Listen: "127.0.0.1:0", Snapshots: snapshots, Logger: logger, ShutdownTimeout: time.Second})
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	stop := func() { cancel(); <-errc; a.Close() }
	select {
	case <-a.Serving():
		return a.Addr(), stop, nil
	case err := <-errc:
		stop()
		return "", nil, err
	}
}

// dial connects (see connect) and returns the client, a context with the call deadline (--timeout), and a
// function that releases both.
func (f *clientFlags) dial(cmd *cobra.Command) (context.Context, *client.Client, func(), error) {
	c, done, err := f.connect(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	return ctx, c, func() { cancel(); done() }, nil
}

// printJSON writes a message as protobuf JSON (field names as in the .proto files, zero values included).
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// exitError ends the program with a given code (e.g. a DENY verdict under --exit-code).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// exitCode is 1 for errors, or the code an exitError carries. gRPC errors print their code.
func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}

// describeError turns a gRPC error into a readable line with its code and details.
func describeError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := fmt.Sprintf("%s: %s", st.Code(), st.Message())
	return errors.New(msg)
}

func stdout() io.Writer { return os.Stdout }

func tempDir() (string, error) { return os.MkdirTemp("", "groupgate-bench-") }

// streamStats counts the messages and items of a streamed answer and times its first message and the whole
// stream, for --stats.
type streamStats struct {
	start           time.Time
	first           time.Duration
	messages, count int
}

func startStreamStats() *streamStats { return &streamStats{start: time.Now()} }

// message records the arrival of a message and reports whether it is the first.
func (s *streamStats) message() bool {
	s.messages++
	if s.messages == 1 {
		s.first = time.Since(s.start)
		return true
	}
	return false
}

// print writes the --stats line: "N <what> in M messages: first message after …, whole stream …".
func (s *streamStats) print(what string) {
	fmt.Fprintf(stdout(), "%d %s in %d messages: first message after %s, whole stream %s\n",
		s.count, what, s.messages, s.first.Round(time.Microsecond), time.Since(s.start).Round(time.Microsecond))
}
