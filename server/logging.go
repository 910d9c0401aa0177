package server

import (
	"context"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// callLevel is the level a finished call is logged at: successes at debug, client errors at info, server errors
// at error.
func callLevel(code codes.Code) slog.Level {
	switch code {
	case codes.OK:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// loggingInterceptors log every finished call at callLevel. When debug is on (every call is logged), that is
// go-grpc-middleware's logging interceptor. Otherwise only failed calls can be logged, and a slim interceptor that
// looks at a call only once it has failed does it: the middleware's interceptor builds its fields (peer address,
// formatted start time, context fields) before every call whether or not it is logged, a cost on the order of
// the handlers' own (README, Design notes: Logging).
func loggingInterceptors(l *slog.Logger) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		logger := logging.LoggerFunc(func(ctx context.Context, level logging.Level, msg string, fields ...any) {
			l.Log(ctx, slog.Level(level), msg, fields...)
		})
		opts := []logging.Option{
			logging.WithLogOnEvents(logging.FinishCall),
			logging.WithLevels(func(code codes.Code) logging.Level { return logging.Level(callLevel(code)) }),
			logging.WithFieldsFromContext(func(ctx context.Context) logging.Fields {
				var fields logging.Fields
				if client, ok := httpClient(ctx); ok {
					fields = append(fields, "http.client", client)
				}
				if caller, ok := loggedCaller(ctx); ok {
					fields = append(fields, "caller", caller.String())
				}
				if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
					fields = append(fields, "trace_id", sc.TraceID().String())
				}
				return fields
			}),
		}
		return logging.UnaryServerInterceptor(logger, opts...), logging.StreamServerInterceptor(logger, opts...)
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		if err != nil {
			logFailedCall(ctx, l, info.FullMethod, "unary", start, err)
		}
		return resp, err
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		if err != nil {
			kind := "server_stream"
			switch {
			case info.IsClientStream && info.IsServerStream:
				kind = "bidi_stream"
			case info.IsClientStream:
				kind = "client_stream"
			}
			logFailedCall(ss.Context(), l, info.FullMethod, kind, start, err)
		}
		return err
	}
	return unary, stream
}

// logFailedCall logs a failed call with the fields go-grpc-middleware's logging interceptor uses, so that log
// queries work the same at every level.
func logFailedCall(ctx context.Context, l *slog.Logger, fullMethod, kind string, start time.Time, err error) {
	st, _ := status.FromError(err)
	level := callLevel(st.Code())
	if !l.Enabled(ctx, level) {
		return
	}
	service, method := path.Split(fullMethod)
	fields := []any{
		"protocol", "grpc", "grpc.component", "server",
		"grpc.service", strings.Trim(service, "/"), "grpc.method", method, "grpc.method_type", kind,
	}
	if p, ok := peer.FromContext(ctx); ok {
		fields = append(fields, "peer.address", p.Addr.String())
	}
	if client, ok := httpClient(ctx); ok {
		fields = append(fields, "http.client", client)
	}
	if caller, ok := loggedCaller(ctx); ok {
		fields = append(fields, "caller", caller.String())
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		fields = append(fields, "trace_id", sc.TraceID().String())
	}
	fields = append(fields, "grpc.start_time", start.Format(time.RFC3339), "grpc.code", st.Code().String(),
		"grpc.error", st.Message(), "grpc.time_ms", float64(time.Since(start).Microseconds())/1000)
	l.Log(ctx, level, "finished call", fields...)
}

// httpClient is the address of the HTTP client of a call that came through the HTTP gateway. The gateway's calls
// come from inside the process (peer address InProcessAddr), so the peer address says nothing; the gateway puts
// the connection's remote address in HTTPClientMetadata (not x-forwarded-for, which an HTTP client can fill with
// anything). That metadata is believed only from inside the process: any gRPC client could send it.
func httpClient(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	if _, inProcess := p.Addr.(InProcessAddr); !inProcess {
		return "", false
	}
	if v := metadata.ValueFromIncomingContext(ctx, HTTPClientMetadata); len(v) > 0 {
		return v[len(v)-1], true
	}
	return "", false
}
