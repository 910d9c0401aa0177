package server

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
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
}

// LoadTokenFile reads a token file: one ROLE:TOKEN per line, roles checker or writer, '#' starts a comment line,
// blank lines are ignored. Errors name the line, never the token.
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
		roleName, token, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want ROLE:TOKEN", line)
		}
		var role Role
		switch strings.TrimSpace(roleName) {
		case "checker":
			role = RoleChecker
		case "writer":
			role = RoleWriter
		default:
			return nil, fmt.Errorf("line %d: unknown role %q: want checker or writer", line, strings.TrimSpace(roleName))
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
		t.entries = append(t.entries, tokenEntry{digest: d, role: role})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("no tokens")
	}
	return t, nil
}

// role returns the role of a token, or roleNone. It compares against every entry without stopping early, on
// fixed-length digests, so the time taken says nothing about which token matched or how much of one did.
func (t *Tokens) role(token string) Role {
	d := sha256.Sum256([]byte(token))
	found := roleNone
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			found = e.role
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

type roleKey struct{}

// CallerRole is the authenticated role of the caller of a request (RoleWriter when auth is off).
func CallerRole(ctx context.Context) Role {
	if r, ok := ctx.Value(roleKey{}).(Role); ok {
		return r
	}
	return RoleWriter
}

// authFunc authenticates a call: UNAUTHENTICATED without a valid token, PERMISSION_DENIED for a checker on a
// writer's method.
func (t *Tokens) authFunc(ctx context.Context) (context.Context, error) {
	method, _ := grpc.Method(ctx)
	need := requiredRole(method)
	if need == roleNone {
		return ctx, nil
	}
	token, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "missing bearer token: send 'authorization: Bearer <token>'")
	}
	have := t.role(token)
	if have == roleNone {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	if have < need {
		return nil, status.Errorf(codes.PermissionDenied, "%s needs the %s role; this token has the %s role", method, need, have)
	}
	return context.WithValue(ctx, roleKey{}, have), nil
}
