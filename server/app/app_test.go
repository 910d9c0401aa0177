package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/server"
)

func TestListenAddressGuard(t *testing.T) {
	tests := []struct {
		addr    string
		allowed bool
		ok      bool
	}{
		{"127.0.0.1:50051", false, true},
		{"[::1]:50051", false, true},
		{"localhost:50051", false, true},
		{"0.0.0.0:50051", false, false},
		{"10.1.2.3:50051", false, false},
		{"0.0.0.0:50051", true, true},
		{"nonsense", false, false},
		{"unix:///run/gg.sock", false, true}, // a socket is local: its file mode decides who connects
	}
	for _, tt := range tests {
		err := checkListenAddress("--listen", tt.addr, tt.allowed)
		if (err == nil) != tt.ok {
			t.Errorf("checkListenAddress(%q, allowed=%v) = %v, want ok=%v", tt.addr, tt.allowed, err, tt.ok)
		}
	}
}

// TestHostCheckedWithoutTokens: a listener that answers without a token checks the Host wherever it listens (the
// container's 0.0.0.0 with --insecure), so a DNS-rebinding page cannot reach it under its own name; with tokens
// off loopback the Host is left alone (a page has no token to send).
func TestHostCheckedWithoutTokens(t *testing.T) {
	tokens, err := server.ParseTokens(strings.NewReader("checker:checker-token-0123456789\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		tokens    *server.Tokens
		token     string
		wantEvil  int // the answer to Host evil.example
		wantLocal int // to Host localhost
	}{
		{"insecure, no tokens", nil, "", 403, 200},
		{"tokens", tokens, "checker-token-0123456789", 200, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Open(context.Background(), Config{Listen: "127.0.0.1:0", HTTPListen: "0.0.0.0:0", Insecure: true, Tokens: tt.tokens,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ShutdownTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			defer func() { cancel(); <-done }()
			<-a.Serving()
			_, port, _ := net.SplitHostPort(a.HTTPAddr())
			for host, want := range map[string]int{"evil.example:" + port: tt.wantEvil, "localhost:" + port: tt.wantLocal} {
				req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+port+"/v1/checkMembership",
					strings.NewReader(`{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-erin"}`))
				req.Host = host
				req.Header.Set("Content-Type", "application/json")
				if tt.token != "" {
					req.Header.Set("Authorization", "Bearer "+tt.token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("Host %s: HTTP %d, want %d", host, resp.StatusCode, want)
				}
			}
		})
	}
}
