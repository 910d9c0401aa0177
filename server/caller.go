package server

import (
	"context"
	"strings"
)

// Caller is who made a call (SPEC §13): what logs and decision records say about a caller, never its token.
type Caller struct {
	// Kind is CallerToken, CallerJWT, or "" when authentication is off (every caller is a writer then).
	Kind string
	Role Role
	// Name is a static token's NAME (token file line ROLE:NAME:TOKEN); "" for a ROLE:TOKEN line.
	Name string
	// TenantID (tid), ObjectID (oid, else sub) and AppID (azp in v2 tokens, appid in v1) of a JWT's caller: for a
	// managed identity or a workload identity, ObjectID is its service principal.
	TenantID, ObjectID, AppID string
}

// The kinds of Caller.
const (
	CallerToken = "token"
	CallerJWT   = "jwt"
)

// String is the caller in one word for log lines and messages: token:NAME, token, jwt:tid/oid (app APPID), or
// anonymous.
func (c Caller) String() string {
	switch c.Kind {
	case CallerToken:
		if c.Name != "" {
			return "token:" + c.Name
		}
		return "token"
	case CallerJWT:
		var b strings.Builder
		b.WriteString("jwt:")
		b.WriteString(c.TenantID)
		b.WriteString("/")
		b.WriteString(c.ObjectID)
		if c.AppID != "" {
			b.WriteString(" (app ")
			b.WriteString(c.AppID)
			b.WriteString(")")
		}
		return b.String()
	}
	return "anonymous"
}

type callerKey struct{}

// CallerFrom is the authenticated caller of a request; ok is false when authentication is off.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// CallerRole is the authenticated role of the caller of a request (RoleWriter when auth is off).
func CallerRole(ctx context.Context) Role {
	if c, ok := CallerFrom(ctx); ok {
		return c.Role
	}
	return RoleWriter
}

// callerSlot is where the auth interceptor leaves the caller for the logging interceptor, which runs outside it
// (so that it logs refusals too) and so cannot see the context auth hands inward.
type callerSlot struct{ caller Caller }

type callerSlotKey struct{}

func withCallerSlot(ctx context.Context) context.Context {
	return context.WithValue(ctx, callerSlotKey{}, &callerSlot{})
}

func noteCaller(ctx context.Context, c Caller) {
	if s, ok := ctx.Value(callerSlotKey{}).(*callerSlot); ok {
		s.caller = c
	}
}

// loggedCaller is the caller that auth noted for this call, if any.
func loggedCaller(ctx context.Context) (Caller, bool) {
	if s, ok := ctx.Value(callerSlotKey{}).(*callerSlot); ok && s.caller.Kind != "" {
		return s.caller, true
	}
	return Caller{}, false
}
