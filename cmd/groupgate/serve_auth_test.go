package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/internal/oidc/oidctest"
	"github.com/groupgate/groupgate/server/gateway"
)

// TestServeRefusesBadCallerFlags: flags that would leave callers unchecked, or a token's path to the issuer open,
// stop serve at start and say which flag (SPEC §13).
func TestServeRefusesBadCallerFlags(t *testing.T) {
	tests := []struct {
		name  string
		flags serveFlags
		err   string
	}{
		{"an http issuer off loopback", serveFlags{oidcIssuers: []string{"http://login.example.com/tid"}, oidcAudiences: []string{"api://groupgate"}}, "https"},
		{"an issuer without an audience", serveFlags{oidcIssuers: []string{"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47"}}, "audience"},
		{"an audience without an issuer", serveFlags{oidcAudiences: []string{"api://groupgate"}}, "--oidc-audience without --oidc-issuer"},
		{"a role mapping without =", serveFlags{oidcIssuers: []string{"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47"},
			oidcAudiences: []string{"api://groupgate"}, oidcRoles: []string{"GroupGate.Check"}}, "--oidc-role \"GroupGate.Check\": want VALUE=ROLE"},
		{"a role mapping to an unknown role", serveFlags{oidcIssuers: []string{"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47"},
			oidcAudiences: []string{"api://groupgate"}, oidcRoles: []string{"GroupGate.Admin=admin"}}, "unknown role \"admin\""},
		{"an allowed origin with a path", serveFlags{browser: browserRules("https://portal.example/app")}, "--http-allowed-origins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.flags
			f.listen = "127.0.0.1:0"
			started, err := startOrRefuse(f)
			if started || err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("serve: started %v, %v; want it refused with an error containing %q", started, err, tt.err)
			}
		})
	}
}

// TestServeAcceptsEntraTokens: serve with the stand-in's v1 issuer answers a managed identity's token over HTTP,
// and the same listener refuses a token for another audience with its reason.
func TestServeAcceptsEntraTokens(t *testing.T) {
	issuer := oidctest.New(t, oidctest.Options{})
	f := serveFlags{listen: "127.0.0.1:0", httpListen: "127.0.0.1:0", logLevel: "error", logFormat: "text", shutdownTimeout: time.Second,
		oidcIssuers: []string{issuer.V1URL()}, oidcAudiences: []string{"api://groupgate"},
		oidcRoles: []string{"GroupGate.Check=checker", "GroupGate.Write=writer"}}
	httpReady := make(chan string, 1)
	f.httpReady = httpReady
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, &f, nil) }()
	defer func() { cancel(); <-done }()
	var addr string
	select {
	case addr = <-httpReady:
	case err := <-done:
		t.Fatal(err)
	}
	post := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/checkMembership",
			strings.NewReader(`{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-erin"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate") + " " + string(body)
	}
	if code, body := post(issuer.Token(oidctest.TokenOptions{Roles: []string{"GroupGate.Check"}})); code != 200 || !strings.Contains(body, `"isMember":true`) {
		t.Errorf("a managed identity's v1 token: HTTP %d %s", code, body)
	}
	if code, body := post(issuer.Token(oidctest.TokenOptions{Audience: "https://graph.microsoft.com", Roles: []string{"GroupGate.Check"}})); code != 401 ||
		!strings.Contains(body, `error="invalid_token", error_description="audience"`) {
		t.Errorf("a Graph token: HTTP %d %s", code, body)
	}
}

func browserRules(origins ...string) gateway.BrowserRules {
	return gateway.BrowserRules{AllowedOrigins: origins}
}
