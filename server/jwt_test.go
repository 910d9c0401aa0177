package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/oidc"
	"github.com/groupgate/groupgate/internal/oidc/oidctest"
	"github.com/groupgate/groupgate/internal/syncbuf"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// jwtServer serves the demo tenant to static tokens and to Entra tokens of one stand-in tenant (v1 and v2
// issuers), over gRPC and HTTP, logging into logs.
func jwtServer(t *testing.T, issuer *oidctest.Server, logs io.Writer) *servertest.Server {
	t.Helper()
	v, err := oidc.New(context.Background(), oidc.Config{Issuers: []string{issuer.V1URL(), issuer.V2URL()},
		Audiences: []string{oidctest.DefaultAudience, "11111111-2222-3333-4444-555555555555"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	if logs == nil {
		logs = io.Discard
	}
	return servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens(t),
		JWT:    &server.JWTAuth{Verifier: v, Roles: server.DefaultJWTRoles()},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
}

// TestEntraTokensOverGRPCAndHTTP: an Entra ID token is a caller's proof on both transports, its app roles its
// groupgate role (SPEC §13); each failure has its status and, over HTTP, its RFC 6750 challenge.
func TestEntraTokensOverGRPCAndHTTP(t *testing.T) {
	issuer := oidctest.New(t, oidctest.Options{})
	srv := jwtServer(t, issuer, nil)
	hour := time.Now().Add(time.Hour)
	other := oidctest.New(t, oidctest.Options{}) // another tenant, whose keys groupgate was not told of
	outsider, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		token    string
		write    bool // GetStatus (writer) instead of CheckMembership (checker)
		grpcCode codes.Code
		httpCode int
		reason   string // WWW-Authenticate error_description, and in the message
	}{
		{name: "v1 token of a managed identity with the check role", token: issuer.Token(oidctest.TokenOptions{Roles: []string{"GroupGate.Check"}}),
			grpcCode: codes.OK, httpCode: 200},
		{name: "v2 token for the client id, ES256", token: issuer.Token(oidctest.TokenOptions{Version: "2.0", Alg: "ES256",
			Audience: "11111111-2222-3333-4444-555555555555", Roles: []string{"GroupGate.Check"}}), grpcCode: codes.OK, httpCode: 200},
		{name: "the check role may not write", token: issuer.Token(oidctest.TokenOptions{Roles: []string{"GroupGate.Check"}}), write: true,
			grpcCode: codes.PermissionDenied, httpCode: 403},
		{name: "the write role may write", token: issuer.Token(oidctest.TokenOptions{Roles: []string{"GroupGate.Check", "GroupGate.Write"}}), write: true,
			grpcCode: codes.OK, httpCode: 200},
		{name: "a valid token without a mapped role", token: issuer.Token(oidctest.TokenOptions{Roles: []string{"Directory.Read"}}),
			grpcCode: codes.PermissionDenied, httpCode: 403},
		{name: "expired beyond the leeway", token: issuer.Token(oidctest.TokenOptions{Roles: []string{"GroupGate.Check"},
			IssuedAt: time.Now().Add(-2 * time.Hour), NotBefore: time.Now().Add(-2 * time.Hour), Expiry: time.Now().Add(-10 * time.Minute)}),
			grpcCode: codes.Unauthenticated, httpCode: 401, reason: "expired"},
		{name: "for another API", token: issuer.Token(oidctest.TokenOptions{Audience: "api://other", Roles: []string{"GroupGate.Check"}}),
			grpcCode: codes.Unauthenticated, httpCode: 401, reason: "audience"},
		{name: "from another tenant's issuer", token: other.Token(oidctest.TokenOptions{Roles: []string{"GroupGate.Check"}}),
			grpcCode: codes.Unauthenticated, httpCode: 401, reason: "issuer"},
		{name: "signed by a key outside the set", token: issuer.Token(oidctest.TokenOptions{Roles: []string{"GroupGate.Check"}, Expiry: hour,
			KID: issuer.KID("RS256"), Key: outsider}), grpcCode: codes.Unauthenticated, httpCode: 401, reason: "signature"},
		{name: "the static checker token still works", token: checkerToken, grpcCode: codes.OK, httpCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.Dial(srv.Addr, client.Options{Token: tt.token})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.write {
				_, err = c.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
			} else {
				_, err = c.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin")
			}
			if status.Code(err) != tt.grpcCode {
				t.Errorf("gRPC: %v, want %v", err, tt.grpcCode)
			}
			if tt.reason != "" && !strings.Contains(status.Convert(err).Message(), tt.reason) {
				t.Errorf("gRPC message %q does not say %q", status.Convert(err).Message(), tt.reason)
			}
			if err != nil && strings.Contains(err.Error(), tt.token) {
				t.Error("the error repeats the token")
			}
			path, body := "/v1/checkMembership", `{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-erin"}`
			if tt.write {
				path, body = "/v1/getStatus", `{"tenantId":"contoso"}`
			}
			code, challenge, answer := postHTTP(t, srv.HTTPURL+path, tt.token, body)
			if code != tt.httpCode {
				t.Errorf("HTTP %d %s, want %d", code, answer, tt.httpCode)
			}
			switch {
			case tt.reason != "":
				want := `Bearer realm="groupgate", error="invalid_token", error_description="` + tt.reason + `"`
				if challenge != want {
					t.Errorf("WWW-Authenticate %q, want %q", challenge, want)
				}
			case challenge != "":
				t.Errorf("WWW-Authenticate %q on HTTP %d", challenge, code)
			}
		})
	}
}

func postHTTP(t *testing.T, url, token, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(b)
}

// TestIssuerOutage: while an issuer's keys cannot be had at all, its callers are told to retry (UNAVAILABLE,
// HTTP 503), static tokens and health are served, and the first call after it comes back is accepted.
func TestIssuerOutage(t *testing.T) {
	issuer := oidctest.New(t, oidctest.Options{})
	issuer.SetDown(true)
	srv := jwtServer(t, issuer, nil)
	token := issuer.Token(oidctest.TokenOptions{Roles: []string{"GroupGate.Check"}})
	dial := func(tok string) *client.Client {
		c, err := client.Dial(srv.Addr, client.Options{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if _, err := dial(token).CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin"); status.Code(err) != codes.Unavailable {
		t.Fatalf("JWT while the issuer is down: %v, want Unavailable", err)
	}
	if code, _, body := postHTTP(t, srv.HTTPURL+"/v1/checkMembership", token, `{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-erin"}`); code != 503 {
		t.Errorf("HTTP %d %s, want 503", code, body)
	}
	if _, err := dial(checkerToken).CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin"); err != nil {
		t.Errorf("static token while the issuer is down: %v", err)
	}
	if _, err := dial("").Health.Check(ctx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health while the issuer is down: %v", err)
	}
	issuer.SetDown(false)
	// The verifier fetches again at most every 10 s (SPEC §13) when a token needs keys it lacks.
	deadline := time.Now().Add(25 * time.Second)
	for {
		_, err := dial(token).CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin")
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("after the issuer came back: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestJWTCallerIsLogged: the log line of a JWT call names tid/oid and the app, never the token.
func TestJWTCallerIsLogged(t *testing.T) {
	issuer := oidctest.New(t, oidctest.Options{})
	var logs syncbuf.Buffer
	srv := jwtServer(t, issuer, &logs)
	token := issuer.Token(oidctest.TokenOptions{ObjectID: "0c6f5a1e-0000-4000-8000-00000000beef", AppID: "a1b2c3d4-0000-4000-8000-000000000001",
		Roles: []string{"GroupGate.Check"}})
	c, err := client.Dial(srv.Addr, client.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin"); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	want := `caller="jwt:` + issuer.TenantID() + `/0c6f5a1e-0000-4000-8000-00000000beef (app a1b2c3d4-0000-4000-8000-000000000001)"`
	if !strings.Contains(out, want) {
		t.Errorf("logs lack %s:\n%s", want, out)
	}
	if strings.Contains(out, token) || strings.Contains(out, token[:40]) {
		t.Error("the token is in the logs")
	}
}
