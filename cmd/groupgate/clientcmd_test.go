package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/internal/testcerts"
)

// runCLIError runs the groupgate command in-process and returns its error (nil if it succeeded) and what it
// printed on standard output.
func runCLIError(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	root := newRootCmd()
	root.SetArgs(args)
	runErr := root.Execute()
	os.Stdout = saved
	w.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(r)
	return buf.String(), runErr
}

// TestClientWithoutCertificateAgainstMTLS: a client command against a server that requires a client certificate
// (serve --client-ca), given the CA but no certificate, says that the server requires one and names the flags that
// give it, for unary calls and streams alike (gRPC alone said "Unavailable: … broken pipe"). With the
// certificate the same commands work, and a server that is not there is not blamed on certificates.
func TestClientWithoutCertificateAgainstMTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "groupgate-test")
	serverCert, serverKey := ca.Issue(t, "server", true)
	clientCert, clientKey := ca.Issue(t, "client", false)
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := startServe(t, ctx, &serveFlags{listen: "127.0.0.1:0", tlsCert: serverCert, tlsKey: serverKey, clientCA: ca.CertFile,
		logLevel: "error", logFormat: "text", shutdownTimeout: time.Second})
	defer func() { cancel(); <-done }()

	commands := [][]string{
		{"status"},
		{"check", "add-member", "grp-finance", "grp-engineering", "--actor", "u-gary"},
		{"members", "grp-engineering"}, // a stream
		{"audit"},                      // a stream
	}
	for _, args := range commands {
		t.Run(strings.Join(args[:1], " ")+" without a certificate", func(t *testing.T) {
			_, err := runCLIError(t, append(args, "--addr", addr, "--tls-ca", ca.CertFile, "--timeout", "10s")...)
			if err == nil {
				t.Fatal("succeeded without a client certificate")
			}
			for _, want := range []string{"requires a client certificate", "--tls-client-cert", "--tls-client-key"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q: want it to say %q", err, want)
				}
			}
		})
		t.Run(strings.Join(args[:1], " ")+" with a certificate", func(t *testing.T) {
			if _, err := runCLIError(t, append(args, "--addr", addr, "--tls-ca", ca.CertFile, "--tls-client-cert", clientCert, "--tls-client-key", clientKey)...); err != nil {
				t.Fatalf("with the client certificate: %v", err)
			}
		})
	}
	t.Run("no server", func(t *testing.T) {
		_, err := runCLIError(t, "status", "--addr", freePort(t), "--tls-ca", ca.CertFile, "--timeout", "2s")
		if err == nil || strings.Contains(err.Error(), "certificate") {
			t.Errorf("nothing listening: %v, want an error that does not mention certificates", err)
		}
	})
}

// TestBenchStream: bench --stream reads EffectiveMembers of the top group from groupgate and from a no-op handler
// replaying the same messages, in this process and with --separate (where the no-op process records the answer
// from the groupgate process itself), and prints both and their ratio.
func TestBenchStream(t *testing.T) {
	for _, extra := range [][]string{nil, {"--separate"}} {
		t.Run(strings.Join(append([]string{"stream"}, extra...), " "), func(t *testing.T) {
			out := runCLI(t, append([]string{"bench", "--preset", "tiny", "--stream", "--stream-repeat", "2", "--stream-page-size", "300"}, extra...)...)
			// tiny: 2,000 users and 199 groups below the top one, in a first page of 100 and 7 of up to 300.
			for _, want := range []string{"groupgate  tcp       2199 members in     8 messages", "no-op      tcp       2199 members in     8 messages",
				"EffectiveMembers / no-op stream (tcp): "} {
				if !strings.Contains(out, want) {
					t.Errorf("bench --stream output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	if _, err := runCLIError(t, "bench", "--preset", "tiny", "--stream", "--mix", "add-member=1"); err == nil || !strings.Contains(err.Error(), "--mix") {
		t.Errorf("--stream with --mix: %v, want a refusal naming --mix", err)
	}
}
