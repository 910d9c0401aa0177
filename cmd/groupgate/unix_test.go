package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/testcerts"
	"github.com/groupgate/groupgate/internal/workload"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// startSocketServer runs `groupgate serve` as a process of its own (this test binary, see TestMain) on a unix
// socket, and waits until it is serving.
func startSocketServer(t *testing.T, path string, env []string, extraArgs ...string) *replica {
	t.Helper()
	r := &replica{t: t, addr: "unix://" + path}
	r.args = append([]string{"serve", "--listen", r.addr, "--http-listen", "", "--log-level", "warn"}, extraArgs...)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v) // the child inherits the test's environment
	}
	r.serve(syscall.SIGKILL) // the kill at the end is a no-op when the test stopped it already
	return r
}

// startServe runs serve with f in this process until ctx ends, and returns the target it serves at and the
// channel its error comes on; the test fails, rather than waits forever, when serve returns before it is ready.
func startServe(t *testing.T, ctx context.Context, f *serveFlags) (string, <-chan error) {
	t.Helper()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, f, ready) }()
	select {
	case target := <-ready:
		return target, done
	case err := <-done:
		t.Fatal(err)
		return "", nil
	}
}

// socketHTTPClient is an HTTP client that connects to the unix socket at path whatever the URL's host.
func socketHTTPClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
}

// socketMode is the permission bits of the socket file at path; the test fails when it is not a socket.
func socketMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("%s is %v, want a socket", path, fi.Mode())
	}
	return fi.Mode().Perm()
}

// grpcurlPath finds grpcurl: $GROUPGATE_GRPCURL (.ci/run sets it to the grpcurl it installs), else $PATH.
func grpcurlPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GROUPGATE_GRPCURL"); p != "" {
		return p
	}
	p, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl not found (set GROUPGATE_GRPCURL or put it on PATH: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4); .ci/run installs it and runs this test with it")
	}
	return p
}

// TestServeOnUnixSocket serves the demo tenant on a socket in a real process: the Go client and grpcurl -unix
// get answers, the socket has mode 0660, a SIGKILLed server's stale socket is replaced by the next one on the
// same path, and SIGTERM removes the socket file.
func TestServeOnUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gg.sock")
	r := startSocketServer(t, path, nil)
	if mode := socketMode(t, path); mode != 0o660 {
		t.Errorf("socket mode %v, want the default 0660", mode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := r.client.CheckMembership(ctx, "contoso", "grp-finance", "u-erin")
	if err != nil || !resp.GetIsMember() || strings.Join(resp.GetPath(), ">") != "grp-finance>grp-finance-emea>u-erin" {
		t.Fatalf("CheckMembership over the socket: %v, %v", resp, err)
	}
	// unix:/path, gRPC's other spelling, and the CLI's --addr reach the same server.
	for _, addr := range []string{"unix:" + path, "unix://" + path} {
		out := runCLI(t, "members", "grp-finance", "--principal", "u-erin", "--addr", addr)
		if !strings.Contains(out, "path: grp-finance -> grp-finance-emea -> u-erin") {
			t.Errorf("groupgate members --addr %s:\n%s", addr, out)
		}
	}

	t.Run("grpcurl -unix", func(t *testing.T) {
		grpcurl := grpcurlPath(t)
		// -unix is a boolean: the address argument is then the socket's path.
		for _, tc := range []struct {
			flags  []string
			method string
			want   string
		}{
			{nil, "grpc.health.v1.Health/Check", `"status": "SERVING"`},
			{[]string{"-d", `{"tenant_id":"contoso","group_id":"grp-finance","principal_id":"u-erin"}`}, "groupgate.v1.DecisionService/CheckMembership", `"isMember": true`},
		} {
			args := append(append([]string{"-plaintext", "-unix"}, tc.flags...), path, tc.method)
			out, err := exec.Command(grpcurl, args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.want) {
				t.Errorf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	// SIGKILL leaves the socket file behind; the next server on the path replaces it.
	r.kill(syscall.SIGKILL)
	if mode := socketMode(t, path); mode != 0o660 {
		t.Fatalf("stale socket mode %v", mode)
	}
	if _, err := r.client.CheckMembership(ctx, "contoso", "grp-finance", "u-erin"); status.Code(err) != codes.Unavailable {
		t.Fatalf("a call to the killed server: %v, want UNAVAILABLE", err)
	}
	r.restart()
	if _, err := r.client.CheckMembership(ctx, "contoso", "grp-finance", "u-erin"); err != nil {
		t.Fatalf("after restarting on the stale socket: %v", err)
	}

	// SIGTERM: a graceful stop, exit status 0, the socket file gone.
	r.kill(syscall.SIGTERM)
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after SIGTERM: %v, want it removed", err)
	}
}

// TestHTTPOnUnixSocket: --http-listen takes a socket as --listen does: the HTTP/JSON API answers on it with the
// socket mode of --socket-mode, and SIGTERM removes its file.
func TestHTTPOnUnixSocket(t *testing.T) {
	dir := t.TempDir()
	httpPath := filepath.Join(dir, "http.sock")
	r := startSocketServer(t, filepath.Join(dir, "gg.sock"), nil, "--http-listen", "unix://"+httpPath, "--socket-mode", "0600")
	if mode := socketMode(t, httpPath); mode != 0o600 {
		t.Errorf("HTTP socket mode %v, want --socket-mode's 0600", mode)
	}
	web := socketHTTPClient(httpPath)
	resp, err := web.Get("http://groupgate/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz over the socket: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = web.Post("http://groupgate/v1/checkMembership", "application/json",
		strings.NewReader(`{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-erin"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"isMember":true`) {
		t.Errorf("POST /v1/checkMembership over the socket: %d %s", resp.StatusCode, body)
	}
	r.kill(syscall.SIGTERM)
	if _, err := os.Lstat(httpPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("HTTP socket file after SIGTERM: %v, want it removed", err)
	}
}

// TestServeSocketModeFromFlagAndEnvironment: --socket-mode and GROUPGATE_SOCKET_MODE set the socket's mode.
func TestServeSocketModeFromFlagAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "flag.sock")
	startSocketServer(t, flag, nil, "--socket-mode", "0600")
	if mode := socketMode(t, flag); mode != 0o600 {
		t.Errorf("--socket-mode 0600: mode %v", mode)
	}
	env := filepath.Join(dir, "env.sock")
	startSocketServer(t, env, []string{"GROUPGATE_SOCKET_MODE=0666"})
	if mode := socketMode(t, env); mode != 0o666 {
		t.Errorf("GROUPGATE_SOCKET_MODE=0666: mode %v", mode)
	}
	err := serve(context.Background(), &serveFlags{listen: "unix://" + filepath.Join(dir, "bad.sock"), socketMode: "0999",
		logLevel: "error", logFormat: "text"}, nil)
	if err == nil || !strings.Contains(err.Error(), "--socket-mode") {
		t.Errorf("--socket-mode 0999: %v, want a --socket-mode error", err)
	}
}

// TestServeRefusesWhatIsNotAStaleSocket: a regular file at the path is refused and left as it was, and so is the
// socket of a server still running there (which keeps serving), before any tenant is loaded.
func TestServeRefusesWhatIsNotAStaleSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("keep me"), 0o640); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "--listen", "unix://"+file)
	cmd.Env = append(os.Environ(), "GROUPGATE_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is not a socket (it is a regular file): refusing to replace it") {
		t.Errorf("serve on a regular file: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file now holds %q, %v", b, err)
	}

	live := filepath.Join(dir, "gg.sock")
	r := startSocketServer(t, live, nil)
	// Refused before the tenants load: the snapshot file named does not even exist.
	err = serve(context.Background(), &serveFlags{listen: "unix://" + live, socketMode: "0660", snapshots: []string{filepath.Join(dir, "missing.pb")},
		logLevel: "error", logFormat: "text"}, nil)
	if err == nil || !strings.Contains(err.Error(), "another server is listening") {
		t.Errorf("second server on a live socket: %v, want the socket refused before the snapshot is read", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.client.CheckMembership(ctx, "contoso", "grp-finance", "u-erin"); err != nil {
		t.Errorf("the first server after the refused second one: %v", err)
	}
}

// TestSocketIsLocal: a socket needs neither TLS nor tokens (like loopback), and when they are configured they
// work over it: the token is sent over the plaintext socket, and TLS verifies the server as localhost.
func TestSocketIsLocal(t *testing.T) {
	// (That a socket passes the loopback rule without TLS or tokens: server/app TestListenAddressGuard.)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte("checker:checker-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testcerts.NewCA(t, "groupgate-test")
	cert, key := ca.Issue(t, "groupgate", true)
	tlsCreds, err := client.TLSFromFiles(ca.CertFile, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		flags serveFlags
		opts  client.Options
		want  codes.Code
	}{
		{"token", serveFlags{tokenFile: tokenFile}, client.Options{Token: "checker-0123456789abcdef"}, codes.OK},
		{"no token", serveFlags{tokenFile: tokenFile}, client.Options{}, codes.Unauthenticated},
		{"TLS and token", serveFlags{tokenFile: tokenFile, tlsCert: cert, tlsKey: key}, client.Options{TLS: tlsCreds, Token: "checker-0123456789abcdef"}, codes.OK},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.flags
			f.listen = "unix://" + filepath.Join(dir, string(rune('a'+i))+".sock")
			f.socketMode, f.logLevel, f.logFormat, f.shutdownTimeout = "0660", "error", "text", time.Second
			ctx, cancel := context.WithCancel(context.Background())
			target, done := startServe(t, ctx, &f)
			defer func() { cancel(); <-done }()
			if target != f.listen {
				t.Errorf("serving at %q, want %q", target, f.listen)
			}
			c, err := client.Dial(target, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.CheckMembership(ctx, "contoso", "grp-finance", "u-erin")
			if status.Code(err) != tt.want {
				t.Errorf("CheckMembership: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDialRefusesAnAuthorityInAUnixTarget(t *testing.T) {
	_, err := client.Dial("unix://gg.sock", client.Options{})
	if err == nil || !strings.Contains(err.Error(), "unix:gg.sock") {
		t.Errorf("Dial(unix://gg.sock): %v, want an error suggesting unix:gg.sock", err)
	}
}

// TestBenchOverBothTransports: --transport both loads groupgate and the no-op handler over loopback TCP and over a
// unix socket in one run, without errors, and compares the two (the HTTP/JSON run, on the first server, once);
// --addr accepts a socket.
func TestBenchOverBothTransports(t *testing.T) {
	for _, extra := range [][]string{nil, {"--separate"}} {
		t.Run(strings.Join(append([]string{"transport both"}, extra...), " "), func(t *testing.T) {
			out := runCLI(t, append([]string{"bench", "--preset", "tiny", "-c", "4", "-n", "2000", "--transport", "both"}, extra...)...)
			requestLines := 0
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "requests in") {
					requestLines++
					if !strings.Contains(line, "errors 0 ") {
						t.Errorf("errors in %q", line)
					}
				}
			}
			if requestLines != 5 {
				t.Errorf("%d runs, want groupgate and no-op over tcp and unix, and http once:\n%s", requestLines, out)
			}
			for _, want := range []string{"groupgate  tcp ", "groupgate  unix ", "http       http ", "no-op      tcp ", "no-op      unix ",
				"http / groupgate throughput: ",
				"groupgate / no-op throughput: tcp ", "groupgate over unix socket vs loopback tcp: throughput ",
				"no-op over unix socket vs loopback tcp: throughput "} {
				if !strings.Contains(out, want) {
					t.Errorf("bench output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	t.Run("--addr unix:///path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gg.sock")
		p, ok := workload.Preset("tiny")
		if !ok {
			t.Fatal("no tiny preset")
		}
		snap, cleanup, err := snapshotFile(p, "")
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		startSocketServer(t, path, nil, "--snapshot", snap)
		out := runCLI(t, "bench", "--preset", "tiny", "-c", "2", "-n", "500", "--addr", "unix://"+path)
		if !strings.Contains(out, "groupgate  unix ") || !strings.Contains(out, "no-op      unix ") || strings.Contains(out, " tcp ") {
			t.Errorf("bench --addr unix://…: want groupgate and the no-op over unix only:\n%s", out)
		}
	})
}

func TestParseTransports(t *testing.T) {
	tests := []struct {
		transport, addr string
		changed         bool
		want            string // joined with ","; "error" for an error
	}{
		{"tcp", "", false, "tcp"},
		{"unix", "", true, "unix"},
		{"both", "", true, "tcp,unix"},
		{"unix,tcp", "", true, "unix,tcp"},
		{"tcp,tcp", "", true, "error"},
		{"udp", "", true, "error"},
		{"", "", true, "error"},
		{"tcp", "unix:///run/gg.sock", false, "unix"},
		{"tcp", "127.0.0.1:50051", false, "tcp"},
		{"both", "127.0.0.1:50051", true, "error"},
	}
	for _, tt := range tests {
		got, err := parseTransports(tt.transport, tt.addr, tt.changed)
		s := strings.Join(got, ",")
		if err != nil {
			s = "error"
		}
		if s != tt.want {
			t.Errorf("parseTransports(%q, addr %q) = %v, %v; want %s", tt.transport, tt.addr, got, err, tt.want)
		}
	}
}

// TestMetricsOnUnixSocket: --metrics takes a socket too (scraped over HTTP on it), with --socket-mode, and its file
// goes away with the server.
func TestMetricsOnUnixSocket(t *testing.T) {
	dir := t.TempDir()
	grpcSock, metricsSock := filepath.Join(dir, "gg.sock"), filepath.Join(dir, "metrics.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	target, done := startServe(t, ctx, &serveFlags{listen: "unix://" + grpcSock, metrics: "unix://" + metricsSock, socketMode: "0640",
		logLevel: "error", logFormat: "text", shutdownTimeout: time.Second})
	c, err := client.Dial(target, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CheckMembership(ctx, "contoso", "grp-finance", "u-erin"); err != nil {
		t.Fatal(err)
	}
	httpc := socketHTTPClient(metricsSock)
	resp, err := httpc.Get("http://groupgate/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `grpc_server_handled_total{grpc_code="OK",grpc_method="CheckMembership"`) {
		t.Errorf("metrics over the socket lack the call:\n%.2000s", body)
	}
	for _, p := range []string{grpcSock, metricsSock} {
		if mode := socketMode(t, p); mode != 0o640 {
			t.Errorf("%s: mode %v, want --socket-mode 0640", p, mode)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{grpcSock, metricsSock} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after shutdown: %v, want it removed", p, err)
		}
	}
}

// TestGracefulStopOnSocket: when the server stops accepting, the socket file goes at once (new clients are
// refused, a replacement could take the path) while a call in flight still finishes with its own answer.
func TestGracefulStopOnSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gg.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	target, done := startServe(t, ctx, &serveFlags{listen: "unix://" + path, logLevel: "error", logFormat: "text", shutdownTimeout: 10 * time.Second})
	c, err := client.Dial(target, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CheckMembership(context.Background(), "contoso", "grp-finance", "u-erin"); err != nil {
		t.Fatal(err)
	}
	// In flight: a revision the tenant never reaches, so the server waits for it until the call's deadline.
	callErr := make(chan error, 1)
	go func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer ccancel()
		_, err := c.Decisions.CheckMembership(cctx, &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: "grp-finance",
			PrincipalId: "u-erin", Consistency: &pb.Consistency{MinRevision: 1000}})
		callErr <- err
	}()
	time.Sleep(500 * time.Millisecond) // the call reaches the server (it waits there until its deadline)
	cancel()                           // as SIGTERM does
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socket file still there 3 s into the graceful stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-callErr:
		t.Fatalf("the call in flight ended (%v) before the socket file was gone", err)
	case err := <-done:
		t.Fatalf("serve returned (%v) while a call was in flight", err)
	default:
	}
	if err := <-callErr; status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("the call in flight: %v, want its own DEADLINE_EXCEEDED (it finished, not cut off)", err)
	}
	if err := <-done; err != nil {
		t.Error(err)
	}
}
