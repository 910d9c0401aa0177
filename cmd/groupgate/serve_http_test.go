package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/internal/testcerts"
)

// TestServeHTTPUnderTheSameRulesAsGRPC: with TLS, client certificates and a token file, the HTTP listener
// serves HTTPS with the same certificate, refuses clients without a certificate of the CA, and every API call
// needs a token; the gRPC port keeps working over TLS beside it (the in-memory connection of the gateway skips
// only its own handshake).
func TestServeHTTPUnderTheSameRulesAsGRPC(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "tokens")
	const token = "checker-0123456789abcdef"
	if err := os.WriteFile(tokenFile, []byte("checker:"+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testcerts.NewCA(t, "groupgate-test")
	serverCert, serverKey := ca.Issue(t, "server", true)
	clientCert, clientKey := ca.Issue(t, "client", false)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready, httpReady := make(chan string, 1), make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, &serveFlags{listen: "127.0.0.1:0", httpListen: "127.0.0.1:0", tokenFile: tokenFile,
			tlsCert: serverCert, tlsKey: serverKey, clientCA: ca.CertFile,
			logLevel: "error", logFormat: "text", shutdownTimeout: time.Second, httpReady: httpReady}, ready)
	}()
	var addr, httpAddr string
	select {
	case httpAddr = <-httpReady:
		addr = <-ready
	case err := <-done:
		t.Fatal(err)
	}

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.CertFile)
	pool.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}, ForceAttemptHTTP2: true}}
	withoutCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}}}
	post := func(c *http.Client, scheme, token string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodPost, scheme+"://"+httpAddr+"/v1/checkMembership",
			strings.NewReader(`{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-erin"}`))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Proto, nil
	}
	if code, proto, err := post(withCert, "https", token); err != nil || code != 200 || proto != "HTTP/2.0" {
		t.Errorf("HTTPS with certificate and token: %d %s %v, want 200 over HTTP/2", code, proto, err)
	}
	// Streams and health go over the in-memory gRPC connection, which skips the TLS handshake of the server's
	// credentials: they must work with TLS on.
	req, _ := http.NewRequest(http.MethodPost, "https://"+httpAddr+"/v1/effectiveMembers",
		strings.NewReader(`{"tenantId":"contoso","groupId":"grp-engineering","types":["MEMBER_TYPE_GUEST"]}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := withCert.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"u-frank"`) {
		t.Errorf("effectiveMembers over HTTPS: %d %s", resp.StatusCode, body)
	}
	health, err := withCert.Get("https://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	health.Body.Close()
	if health.StatusCode != 200 {
		t.Errorf("healthz over HTTPS: %d", health.StatusCode)
	}
	if code, _, err := post(withCert, "https", ""); err != nil || code != 401 {
		t.Errorf("HTTPS without a token: %d %v, want 401", code, err)
	}
	if _, _, err := post(withoutCert, "https", token); err == nil {
		t.Error("HTTPS without a client certificate was accepted")
	}
	if code, _, err := post(http.DefaultClient, "http", token); err == nil && code == 200 {
		t.Error("plain HTTP was answered on the TLS listener")
	}
	// The gRPC port, over TLS with the client certificate, beside it.
	creds, err := client.TLSFromFiles(ca.CertFile, clientCert, clientKey, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(addr, client.Options{TLS: creds, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CheckMembership(ctx, "contoso", "grp-finance", "u-erin"); err != nil {
		t.Errorf("gRPC over TLS beside the HTTP listener: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestServeHTTPListenRules(t *testing.T) {
	tests := []struct {
		name  string
		flags serveFlags
		err   string // substring; empty: serve starts
	}{
		{"non-loopback without TLS or tokens", serveFlags{listen: "127.0.0.1:0", httpListen: "0.0.0.0:0"}, "--http-listen 0.0.0.0:0 is not a loopback address"},
		{"malformed", serveFlags{listen: "127.0.0.1:0", httpListen: "8080"}, "--http-listen"},
		{"disabled", serveFlags{listen: "127.0.0.1:0", httpListen: ""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started, err := startOrRefuse(tt.flags)
			switch {
			case started && (tt.err != "" || err != nil):
				t.Errorf("serve started and stopped with %v; want error %q", err, tt.err)
			case !started && (tt.err == "" || err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("serve: %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

func TestHTTPListenFromEnvironment(t *testing.T) {
	t.Setenv("GROUPGATE_HTTP_LISTEN", "")
	cmd := newServeCmd()
	_ = cmd.Flags().Parse(nil)
	if get := cmd.Flags().Lookup("http-listen").Value.String(); get != "127.0.0.1:8080" {
		t.Errorf("default --http-listen %q, want 127.0.0.1:8080", get)
	}
	if err := bindEnv(cmd); err != nil {
		t.Fatal(err)
	}
	if get := cmd.Flags().Lookup("http-listen").Value.String(); get != "" {
		t.Errorf("GROUPGATE_HTTP_LISTEN=\"\" gave --http-listen %q, want it disabled", get)
	}
}

// startOrRefuse runs serve with f (quiet, a short shutdown) until it serves, then stops it: started, and the
// error serve returned on stopping; or until serve returns first: not started, and its refusal.
func startOrRefuse(f serveFlags) (started bool, err error) {
	f.logLevel, f.logFormat, f.shutdownTimeout = "error", "text", time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, &f, ready) }()
	select {
	case <-ready:
		cancel()
		return true, <-done
	case err := <-done:
		return false, err
	}
}
