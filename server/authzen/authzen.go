// Package authzen answers the OpenID AuthZEN Authorization API 1.0 (SPEC §17) on the HTTP listener: access
// evaluation(s), the three searches and PDP discovery, per tenant under /tenants/{tenant_id}/… and unprefixed
// when the server holds exactly one tenant.
//
// It is a translation layer only. Every question goes to the server through the grpc.ClientConnInterface it is
// given — server.Server.Conn, the in-process connection through the gRPC server's own interceptor chain — with
// generated clients, carrying the caller's Authorization header as `authorization` metadata and the HTTP client's
// address as server.HTTPClientMetadata, exactly as the grpc-gateway routes do. So auth, roles, validation,
// limits, logging and metrics apply to an AuthZEN call as to POST /v1/{rpc}.
//
// Errors that concern the whole request (a missing or mistyped field, a non-JSON body, 401, 403, 429, …) keep the
// gateway's form: the HTTP status of the gRPC code and a google.rpc.Status JSON body whose "message" is the
// spec's "error message string" (one error form on the listener, WWW-Authenticate on a 401 included). Errors of
// one evaluation (an unknown id) are the spec's: decision false with context.error {status, message}.
package authzen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Paths the handler answers (SPEC §17); the gateway routes them here.
const (
	// AccessPrefix is the unprefixed form's root: /access/v1/evaluation, …
	AccessPrefix = "/access/v1/"
	// TenantsPrefix starts the per-tenant form: /tenants/{tenant_id}/access/v1/…
	TenantsPrefix = "/tenants/"
	// WellKnown is the discovery document (RFC 8615), /tenants/{tenant_id} appended for one tenant.
	WellKnown = "/.well-known/authzen-configuration"
)

// IsAPIPath says whether path is one of the AuthZEN API routes (POST, JSON), as opposed to discovery (GET).
func IsAPIPath(path string) bool {
	if strings.HasPrefix(path, AccessPrefix) {
		return true
	}
	if rest, ok := strings.CutPrefix(path, TenantsPrefix); ok {
		if i := strings.IndexByte(rest, '/'); i > 0 {
			return strings.HasPrefix(rest[i:], AccessPrefix)
		}
	}
	return false
}

// Options configure a Handler.
type Options struct {
	// BaseURL is the PDP's identifier in discovery (--authzen-base-url), without a trailing slash; "": the
	// listener's own URL as the request reached it (scheme and Host).
	BaseURL string
	// Annotate is the context of the calls for an HTTP request: the gateway gives grpc-gateway's own
	// (runtime.AnnotateContext on its mux), so an AuthZEN call carries exactly the metadata of a /v1/… call —
	// Authorization, the client's address, Grpc-Metadata-* headers, a Grpc-Timeout deadline. nil: the request's
	// context with the Authorization header and the client's address (outgoing).
	Annotate func(r *http.Request) (context.Context, error)
	// WriteError answers a whole request with an error (a gRPC status, or the request body's read error): the
	// gateway's error form. nil: a google.rpc.Status-shaped body written here.
	WriteError func(w http.ResponseWriter, r *http.Request, err error)
}

// Handler is the AuthZEN http.Handler.
type Handler struct {
	dec  pb.DecisionServiceClient
	opts Options

	mu         sync.Mutex
	soleTenant string    // the tenant when the server held exactly one at soleAt
	soleAt     time.Time // when soleTenant was learnt
}

// soleTenantTTL is how long the answer of ListTenants (exactly one tenant: which) is reused for unprefixed
// calls. Tenants come and go with a restart, not per request, and every call still runs through the chain (and
// its auth) for the question itself.
const soleTenantTTL = 5 * time.Second

// New answers AuthZEN over conn (server.Server.Conn).
func New(conn grpc.ClientConnInterface, opts Options) *Handler {
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	return &Handler{dec: pb.NewDecisionServiceClient(conn), opts: opts}
}

// ServeHTTP routes an AuthZEN request. The gateway's browser guard has already checked the method (POST), the
// content type (JSON) and the origin of API routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get("X-Request-ID"); id != "" {
		// AuthZEN §Request Identification: the PEP's identifier comes back on every answer, errors included.
		w.Header().Set("X-Request-ID", id)
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, WellKnown); ok {
		h.discovery(w, r, rest)
		return
	}
	tenant, op, explicit := "", "", false
	if rest, ok := strings.CutPrefix(r.URL.Path, TenantsPrefix); ok {
		i := strings.IndexByte(rest, '/')
		if i <= 0 {
			h.fail(w, r, status.Error(codes.NotFound, "no such route: want /tenants/{tenant_id}/access/v1/…"))
			return
		}
		tenant, op, explicit = rest[:i], strings.TrimPrefix(rest[i:], AccessPrefix), true
	} else {
		op = strings.TrimPrefix(r.URL.Path, AccessPrefix)
	}
	var serve func(context.Context, string, []byte) (any, error)
	switch op {
	case "evaluation":
		serve = h.evaluation
	case "evaluations":
		serve = h.evaluations
	case "search/subject":
		serve = h.searchSubject
	case "search/resource":
		serve = h.searchResource
	case "search/action":
		serve = h.searchAction
	default:
		h.fail(w, r, status.Error(codes.NotFound, "no such AuthZEN route: the API is POST /access/v1/evaluation, /access/v1/evaluations and /access/v1/search/{subject,resource,action}, described at "+WellKnown))
		return
	}
	body, err := readBody(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := outgoing(r)
	if h.opts.Annotate != nil {
		if ctx, err = h.opts.Annotate(r); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if !explicit {
		if tenant, err = h.tenant(ctx, op); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	resp, err := serve(ctx, tenant, body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, resp)
}

// readBody reads the request's JSON object: an empty body, or one that is not a JSON object, is a 400 (AuthZEN
// §JSON Serialization: the top-level element is an object).
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	trimmed := strings.TrimSpace(string(b))
	if trimmed == "" {
		return nil, status.Error(codes.InvalidArgument, "empty body: send the request as a JSON object")
	}
	if trimmed[0] != '{' {
		return nil, status.Error(codes.InvalidArgument, "the body must be a JSON object")
	}
	return b, nil
}

// outgoing is the call's context without Options.Annotate: the request's (so a client that goes away cancels the
// call), with the metadata the server reads from a grpc-gateway call — the Authorization header and the HTTP
// client's connection address.
func outgoing(r *http.Request) context.Context {
	md := metadata.MD{}
	if a := r.Header.Get("Authorization"); a != "" {
		md.Set("authorization", a)
	}
	addr := r.RemoteAddr
	if addr == "" || addr == "@" {
		addr = "unix socket"
	}
	md.Set(server.HTTPClientMetadata, addr)
	return metadata.NewOutgoingContext(r.Context(), md)
}

// tenant is the server's only tenant, for an unprefixed route; with none or several it is a 400 naming the
// prefixed form.
func (h *Handler) tenant(ctx context.Context, op string) (string, error) {
	h.mu.Lock()
	if h.soleTenant != "" && time.Since(h.soleAt) < soleTenantTTL {
		t := h.soleTenant
		h.mu.Unlock()
		return t, nil
	}
	h.mu.Unlock()
	resp, err := h.dec.ListTenants(ctx, &pb.ListTenantsRequest{})
	if err != nil {
		return "", err
	}
	if n := len(resp.GetTenants()); n != 1 {
		return "", status.Errorf(codes.InvalidArgument, "this server holds %d tenants: name one, POST /tenants/{tenant_id}/access/v1/%s", n, op)
	}
	t := resp.GetTenants()[0].GetTenantId()
	h.mu.Lock()
	h.soleTenant, h.soleAt = t, time.Now()
	h.mu.Unlock()
	return t, nil
}

// discovery answers GET /.well-known/authzen-configuration[/tenants/{tenant_id}] (AuthZEN §PDP Metadata). It is
// static — it names routes, not tenants, so it needs no token and asks the server nothing; a tenant that does not
// exist shows when its routes are called.
func (h *Handler) discovery(w http.ResponseWriter, r *http.Request, rest string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		h.failHTTP(w, r, http.StatusMethodNotAllowed, status.Error(codes.Unimplemented, "discovery is GET "+WellKnown))
		return
	}
	tenantPath := ""
	if rest != "" {
		t, ok := strings.CutPrefix(rest, TenantsPrefix)
		if !ok || t == "" || strings.Contains(t, "/") {
			h.fail(w, r, status.Error(codes.NotFound, "no such discovery document: want "+WellKnown+" or "+WellKnown+"/tenants/{tenant_id}"))
			return
		}
		tenantPath = rest
	}
	base := h.opts.BaseURL
	if base == "" {
		scheme := "http://"
		if r.TLS != nil {
			scheme = "https://"
		}
		base = scheme + r.Host
	}
	pdp := base + tenantPath
	writeJSON(w, map[string]string{
		"policy_decision_point":       pdp,
		"access_evaluation_endpoint":  pdp + AccessPrefix + "evaluation",
		"access_evaluations_endpoint": pdp + AccessPrefix + "evaluations",
		"search_subject_endpoint":     pdp + AccessPrefix + "search/subject",
		"search_resource_endpoint":    pdp + AccessPrefix + "search/resource",
		"search_action_endpoint":      pdp + AccessPrefix + "search/action",
	})
}

// writeJSON writes v as the 200 answer, with its Content-Length; messages keep their arrows and quotes unescaped
// (no HTML-safe escaping: the answer is JSON for a program, not a page).
func writeJSON(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"code":13,"message":"failed to marshal the answer"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if h.opts.WriteError != nil {
		h.opts.WriteError(w, r, err)
		return
	}
	st := status.Convert(err)
	h.failHTTP(w, r, httpStatus(st.Code()), err)
}

// failHTTP answers with a given HTTP status (405 on discovery, where the gRPC code's status is not the one).
func (h *Handler) failHTTP(w http.ResponseWriter, r *http.Request, code int, err error) {
	if h.opts.WriteError != nil {
		h.opts.WriteError(w, r, &statusError{http: code, err: err})
		return
	}
	st := status.Convert(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]any{"code": int(st.Code()), "message": st.Message()})
	_, _ = w.Write(append(b, '\n'))
}

// statusError is an error with its HTTP status fixed (HTTPStatus reads it).
type statusError struct {
	http int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// GRPCStatus keeps status.Convert working through the wrapper.
func (e *statusError) GRPCStatus() *status.Status { return status.Convert(e.err) }

// HTTPStatusOf returns the HTTP status an error was given by this package, if any.
func HTTPStatusOf(err error) (int, bool) {
	var se *statusError
	if errors.As(err, &se) {
		return se.http, true
	}
	return 0, false
}

// httpStatus is the HTTP status of a gRPC code (grpc-gateway's mapping), for context.error.status.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499
	}
	return http.StatusInternalServerError
}

// ValidateBaseURL refuses a --authzen-base-url that cannot be a PDP identifier (AuthZEN §PDP Metadata: a URL
// without query or fragment; https, or http for a listener without TLS). "" is valid: the listener's own URL.
func ValidateBaseURL(base string) error {
	if base == "" {
		return nil
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("--authzen-base-url %q: want https://host[:port][/path], without query or fragment", base)
	}
	return nil
}
