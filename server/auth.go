package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/oidc"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Role is what a caller may do (SPEC §8).
type Role int

const (
	roleNone Role = iota
	// RoleChecker may call the DecisionService and reflection.
	RoleChecker
	// RoleWriter may also call the DirectoryService.
	RoleWriter
)

func (r Role) String() string {
	switch r {
	case RoleChecker:
		return "checker"
	case RoleWriter:
		return "writer"
	}
	return "none"
}

// Tokens authenticates callers by bearer token. Tokens are held only as SHA-256 digests, compared in constant
// time, and never logged.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	digest [sha256.Size]byte
	role   Role
	name   string // the line's NAME in ROLE:NAME:TOKEN; "" for ROLE:TOKEN
}

// LoadTokenFile reads a token file: one ROLE:TOKEN or ROLE:NAME:TOKEN per line, roles checker or writer, '#'
// starts a comment line, blank lines are ignored. NAME says who holds the token (a workflow, a team) in logs and
// decision records, which never show the token. Errors name the line, never the token.
func LoadTokenFile(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTokens reads the token file format (see LoadTokenFile).
func ParseTokens(r io.Reader) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		parts := strings.SplitN(text, ":", 3)
		if len(parts) < 2 {
			return nil, fmt.Errorf("line %d: want ROLE:TOKEN or ROLE:NAME:TOKEN", line)
		}
		roleName, token, name := parts[0], parts[1], ""
		if len(parts) == 3 {
			// Two colons always mean a name: a token that holds a colon needs a name in front of it.
			name, token = strings.TrimSpace(parts[1]), parts[2]
			if !validCallerName(name) {
				return nil, fmt.Errorf("line %d: name %q: want 1 to 64 letters, digits, '.', '_', '-' or '@'", line, name)
			}
		}
		role, err := ParseRole(strings.TrimSpace(roleName))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		token = strings.TrimSpace(token)
		if len(token) < 16 {
			return nil, fmt.Errorf("line %d: token shorter than 16 characters", line)
		}
		d := sha256.Sum256([]byte(token))
		if first, dup := seen[d]; dup {
			return nil, fmt.Errorf("line %d: the same token as line %d", line, first)
		}
		seen[d] = line
		t.entries = append(t.entries, tokenEntry{digest: d, role: role, name: name})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("no tokens")
	}
	return t, nil
}

// WithInternalCaller returns tokens (nil: none) plus a new random token of the given role and name, and that
// token: how a part of the server that calls it in-process (the findings webhook, through Server.Conn) passes the
// same authentication as any caller. The token exists only in this process's memory.
func WithInternalCaller(t *Tokens, role Role, name string) (*Tokens, string, error) {
	if !validCallerName(name) {
		return nil, "", fmt.Errorf("internal caller name %q: want 1 to 64 letters, digits, '.', '_', '-' or '@'", name)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	token := hex.EncodeToString(raw)
	out := &Tokens{}
	if t != nil {
		out.entries = append(out.entries, t.entries...)
	}
	out.entries = append(out.entries, tokenEntry{digest: sha256.Sum256([]byte(token)), role: role, name: name})
	return out, token, nil
}

func validCallerName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return false
		}
	}
	return true
}

// lookup returns the entry of a token (role roleNone when there is none). It compares against every entry without
// stopping early, on fixed-length digests, so the time taken says nothing about which token matched or how much
// of one did.
func (t *Tokens) lookup(token string) tokenEntry {
	d := sha256.Sum256([]byte(token))
	var found tokenEntry
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			found = e
		}
	}
	return found
}

// requiredRole is the role a method needs; roleNone means open to all (health: Kubernetes probes send no token).
func requiredRole(fullMethod string) Role {
	switch {
	case strings.HasPrefix(fullMethod, "/"+healthpb.Health_ServiceDesc.ServiceName+"/"):
		return roleNone
	case strings.HasPrefix(fullMethod, "/"+pb.DirectoryService_ServiceDesc.ServiceName+"/"):
		return RoleWriter
	}
	return RoleChecker // DecisionService, reflection, and anything else
}

// JWTAuth accepts Entra ID / OpenID Connect access tokens (SPEC §13) beside the static tokens.
type JWTAuth struct {
	Verifier *oidc.Verifier
	// Roles maps values of the token's roles claim (Entra app roles) to groupgate roles; the highest wins.
	Roles map[string]Role
}

// DefaultJWTRoles are the app roles groupgate's app registration defines (README "Callers from Azure").
func DefaultJWTRoles() map[string]Role {
	return map[string]Role{"GroupGate.Check": RoleChecker, "GroupGate.Write": RoleWriter}
}

// ParseRole reads a role's name: checker or writer.
func ParseRole(name string) (Role, error) {
	switch name {
	case "checker":
		return RoleChecker, nil
	case "writer":
		return RoleWriter, nil
	}
	return roleNone, fmt.Errorf("unknown role %q: want checker or writer", name)
}

// authenticator is the auth interceptor's function: static tokens first (a digest compare), then JWTs.
type authenticator struct {
	tokens *Tokens
	jwt    *JWTAuth
}

// authFunc authenticates a call: UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a role too low for
// the method (a checker writing, a JWT without a mapped app role), UNAVAILABLE for a JWT while its issuer's keys
// cannot be had.
func (a *authenticator) authFunc(ctx context.Context) (context.Context, error) {
	method, _ := grpc.Method(ctx)
	need := requiredRole(method)
	if need == roleNone {
		return ctx, nil
	}
	token, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "missing bearer token: send 'authorization: Bearer <token>'")
	}
	caller, err := a.identify(ctx, token)
	if caller.Kind != "" {
		noteCaller(ctx, caller) // for the log line of the call, refused or not
	}
	if err != nil {
		return nil, err
	}
	if caller.Role < need {
		return nil, status.Errorf(codes.PermissionDenied, "%s needs the %s role; %s has the %s role", method, need, caller, caller.Role)
	}
	return context.WithValue(ctx, callerKey{}, caller), nil
}

func (a *authenticator) identify(ctx context.Context, token string) (Caller, error) {
	if a.tokens != nil {
		if e := a.tokens.lookup(token); e.role != roleNone {
			return Caller{Kind: CallerToken, Role: e.role, Name: e.name}, nil
		}
	}
	if a.jwt == nil || !oidc.LooksLikeJWT(token) {
		return Caller{}, invalidToken("not a token this server knows")
	}
	claims, err := a.jwt.Verifier.Verify(ctx, token)
	var invalid *oidc.InvalidTokenError
	switch {
	case errors.As(err, &invalid):
		return Caller{}, invalidToken(invalid.Reason)
	case err != nil:
		// The issuer's keys cannot be had (it is down, or answers nonsense): the caller may try again; static
		// tokens are still served meanwhile.
		return Caller{}, status.Error(codes.Unavailable, "cannot check the token now: its issuer's signing keys are not available (retry later)")
	}
	c := Caller{Kind: CallerJWT, TenantID: claims.TenantID, ObjectID: claims.ObjectID, AppID: claims.AppID}
	if c.ObjectID == "" {
		c.ObjectID = claims.Subject
	}
	for _, r := range claims.Roles {
		if role, ok := a.jwt.Roles[r]; ok && role > c.Role {
			c.Role = role
		}
	}
	if c.Role == roleNone {
		return c, status.Errorf(codes.PermissionDenied, "%s holds none of the app roles groupgate maps to a role (%s): assign one to its identity", c, strings.Join(roleValues(a.jwt.Roles), ", "))
	}
	return c, nil
}

func roleValues(m map[string]Role) []string {
	out := make([]string, 0, len(m))
	for v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// InvalidTokenReason is the ErrorInfo reason of an UNAUTHENTICATED status for a token that was sent but is not
// valid; the HTTP gateway answers it with WWW-Authenticate: Bearer error="invalid_token" (RFC 6750 §3.1).
const InvalidTokenReason = "INVALID_TOKEN"

// invalidToken says what is wrong with a token (expired, audience, issuer, signature, …) without echoing it.
func invalidToken(reason string) error {
	st := status.New(codes.Unauthenticated, "invalid token: "+reason)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: InvalidTokenReason, Domain: "groupgate", Metadata: map[string]string{"reason": reason}}); err == nil {
		st = d
	}
	return st.Err()
}
