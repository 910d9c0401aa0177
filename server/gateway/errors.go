package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/groupgate/groupgate/server"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// NoRoute answers every path outside the API 404 with a google.rpc.Status that points at the API: the root of a
// gateway without an explorer.
var NoRoute http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	writeStatus(w, r, http.StatusNotFound, status.New(codes.NotFound, noRoute))
})

// noRoute answers a path that is neither the API nor served by Options.Root.
const noRoute = "no such route: the API is POST /v1/{rpc}, described at /openapi.json"

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
