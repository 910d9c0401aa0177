package server_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/syncbuf"
	"github.com/groupgate/groupgate/internal/testcerts"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

const (
	checkerToken = "checker-token-0123456789"
	writerToken  = "writer-token-0123456789ab"
)

func tokens(t *testing.T) *server.Tokens {
	t.Helper()
	tok, err := server.ParseTokens(strings.NewReader("# test tokens\n\nchecker:" + checkerToken + "\nwriter:" + writerToken + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenFileFormat(t *testing.T) {
	tests := []struct {
		name, file string
		err        string // substring of the error; empty: accepted
	}{
		{"two roles with comments", "# ops\nchecker:aaaaaaaaaaaaaaaa\n\nwriter: bbbbbbbbbbbbbbbb\n", ""},
		{"unknown role", "admin:aaaaaaaaaaaaaaaa\n", "line 1: unknown role"},
		{"no colon", "checker aaaaaaaaaaaaaaaa\n", "line 1: want ROLE:TOKEN"},
		{"named tokens beside a nameless one", "checker:logic-app.approvals:aaaaaaaaaaaaaaaa\nwriter:sync@contoso:bbbbbbbbbbbbbbbb\nchecker:cccccccccccccccc\n", ""},
		{"a name with a space", "checker:my app:aaaaaaaaaaaaaaaa\n", "line 1: name \"my app\""},
		{"an empty name", "checker::aaaaaaaaaaaaaaaa\n", "line 1: name \"\""},
		{"a short token after a name", "checker:ops:short\n", "line 1: token shorter"},
		{"short token", "checker:short\n", "line 1: token shorter"},
		{"duplicate token", "checker:aaaaaaaaaaaaaaaa\nwriter:aaaaaaaaaaaaaaaa\n", "line 2: the same token as line 1"},
		{"empty", "# nothing\n", "no tokens"},
	}
	for _, tt := range tests {
		_, err := server.ParseTokens(strings.NewReader(tt.file))
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.err)
		case err != nil && strings.Contains(err.Error(), "aaaaaaaaaaaaaaaa"):
			t.Errorf("%s: the error repeats the token: %v", tt.name, err)
		}
	}
}

func TestCallersNeedATokenWithTheRightRole(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{Tokens: tokens(t)})
	dial := func(token string) *client.Client {
		c, err := client.Dial(srv.Addr, client.Options{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	check := func(c *client.Client) error {
		_, err := c.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin")
		return err
	}
	status := func(c *client.Client) error {
		_, err := c.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
		return err
	}
	health := func(c *client.Client) error {
		_, err := c.Health.Check(ctx(t), &healthpb.HealthCheckRequest{})
		return err
	}
	tests := []struct {
		name  string
		token string
		call  func(*client.Client) error
		want  codes.Code
	}{
		{"no token, decision", "", check, codes.Unauthenticated},
		{"wrong token, decision", "not-a-token-at-all-xyz", check, codes.Unauthenticated},
		{"checker, decision", checkerToken, check, codes.OK},
		{"writer, decision", writerToken, check, codes.OK},
		{"checker, directory", checkerToken, status, codes.PermissionDenied},
		{"writer, directory", writerToken, status, codes.OK},
		{"no token, directory", "", status, codes.Unauthenticated},
		{"no token, health", "", health, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusCode(tt.call(dial(tt.token))); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func statusCode(err error) codes.Code { return status.Code(err) }

func TestMutualTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "groupgate-test")
	serverCert, serverKey := ca.Issue(t, "server", true)
	clientCert, clientKey := ca.Issue(t, "client", false)
	stranger := testcerts.NewCA(t, "stranger")
	strangerCert, strangerKey := stranger.Issue(t, "mallory", false)

	serverTLS, err := server.ServerTLSConfig(serverCert, serverKey, ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	good, err := client.TLSFromFiles(ca.CertFile, clientCert, clientKey, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.StartWith(t, servertest.Options{TLS: serverTLS, Client: client.Options{TLS: good}})
	if _, err := srv.Client.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin"); err != nil {
		t.Fatalf("client with a certificate from the trusted CA: %v", err)
	}

	tests := []struct {
		name            string
		certFile, keyFe string
	}{
		{"certificate from another CA", strangerCert, strangerKey},
		{"no client certificate", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := client.TLSFromFiles(ca.CertFile, tt.certFile, tt.keyFe, "")
			if err != nil {
				t.Fatal(err)
			}
			c, err := client.Dial(srv.Addr, client.Options{TLS: creds})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin")
			if code := status.Code(err); code != codes.Unavailable {
				t.Errorf("got %v (%v), want the handshake refused (Unavailable)", code, err)
			}
		})
	}

	plain, err := client.Dial(srv.Addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin"); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext client against a TLS server: %v, want Unavailable", err)
	}
}

func TestOversizedRequestIsRefusedNotCrashed(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{Limits: server.Limits{MaxRecvBytes: 64 << 10}})
	huge := strings.Repeat("x", 128<<10)
	_, err := srv.Client.CheckMembership(ctx(t), "contoso", huge, "u-erin")
	if code := status.Code(err); code != codes.ResourceExhausted {
		t.Fatalf("128 KiB request against a 64 KiB limit: %v, want ResourceExhausted", err)
	}
	// The server still answers.
	if _, err := srv.Client.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin"); err != nil {
		t.Fatalf("after an oversized request: %v", err)
	}
}

func TestConcurrencyLimitAnswersResourceExhausted(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{Limits: server.Limits{MaxConcurrentUnary: 1}})
	// Hold the only slot with a call that waits for a revision that does not exist yet.
	held := make(chan error, 1)
	go func() {
		for { // a probe below may hold the slot when this call arrives: then it is refused, and tries again
			_, err := srv.Client.Decisions.CheckMembership(context.Background(), &pb.CheckMembershipRequest{
				TenantId: "contoso", GroupId: "grp-finance", PrincipalId: "u-erin", Consistency: &pb.Consistency{MinRevision: 2}})
			if status.Code(err) != codes.ResourceExhausted {
				held <- err
				return
			}
		}
	}()
	refused := false
	for i := 0; i < 200 && !refused; i++ {
		_, err := srv.Client.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin")
		refused = status.Code(err) == codes.ResourceExhausted
	}
	if !refused {
		t.Error("no call was refused with ResourceExhausted while the only slot was held")
	}
	// Release the held call with a write (the directory service has its own slot once the first returns).
	if _, err := srv.Store.Write(ctx(t), storeWrite("contoso")); err != nil {
		t.Fatal(err)
	}
	if err := <-held; err != nil {
		t.Errorf("the held call: %v", err)
	}
}

// TestLogsNameTheCallerNeverTheToken: a named static token's NAME is in the call's log line, for a call that
// succeeds and for one refused for its role, and the token is in neither (SPEC §13).
func TestLogsNameTheCallerNeverTheToken(t *testing.T) {
	const approvals, sync = "approvals-token-0123456789", "sync-token-0123456789abcd"
	tok, err := server.ParseTokens(strings.NewReader("checker:logic-app-approvals:" + approvals + "\nwriter:" + sync + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	srv := servertest.StartWith(t, servertest.Options{Tokens: tok,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	checker, err := client.Dial(srv.Addr, client.Options{Token: approvals})
	if err != nil {
		t.Fatal(err)
	}
	defer checker.Close()
	if _, err := checker.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin"); err != nil {
		t.Fatal(err)
	}
	_, err = checker.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"})
	if statusCode(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "token:logic-app-approvals has the checker role") {
		t.Fatalf("a checker writing: %v", err)
	}
	writer, err := client.Dial(srv.Addr, client.Options{Token: sync})
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	if _, err := writer.Directory.GetStatus(ctx(t), &pb.GetStatusRequest{TenantId: "contoso"}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []struct{ line, caller string }{
		{"grpc.method=CheckMembership", "caller=token:logic-app-approvals "},
		{"grpc.code=PermissionDenied", "caller=token:logic-app-approvals "},
		{"grpc.method=GetStatus grpc.method_type=unary peer.address=127.0.0.1:", ""}, // both GetStatus lines exist
	} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, want.line) {
				found = true
				if !strings.Contains(l, want.caller) {
					t.Errorf("log line lacks %q: %s", want.caller, l)
				}
			}
		}
		if !found {
			t.Errorf("no log line with %q:\n%s", want.line, out)
		}
	}
	if !strings.Contains(out, "caller=token protocol=grpc") && !strings.Contains(out, "caller=token grpc.") {
		t.Errorf("the nameless writer token is not logged as caller=token:\n%s", out)
	}
	if strings.Contains(out, approvals) || strings.Contains(out, sync) {
		t.Errorf("a token is in the logs:\n%s", out)
	}
}
