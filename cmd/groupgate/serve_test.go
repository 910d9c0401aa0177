package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestServeRefusesASnapshotWithADanglingID(t *testing.T) {
	snap := demo.Snapshot()
	snap.Groups[1].Owners = append(snap.Groups[1].Owners, "u-left-the-company")
	path := filepath.Join(t.TempDir(), "contoso.json.gz")
	if err := directory.WriteSnapshotFile(path, snap); err != nil {
		t.Fatal(err)
	}
	err := serve(context.Background(), &serveFlags{listen: "127.0.0.1:0", snapshots: []string{path}, logLevel: "error", logFormat: "text"}, nil)
	if err == nil || !strings.Contains(err.Error(), "u-left-the-company") || !strings.Contains(err.Error(), path) {
		t.Fatalf("serve with a dangling owner: %v; want an error naming the file and the id", err)
	}
}

func TestServeTwoTenantsFromFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := demo.Snapshot(), demo.Snapshot()
	b.TenantId = "fabrikam"
	pa, pb := filepath.Join(dir, "a.pb"), filepath.Join(dir, "b.json")
	if err := directory.WriteSnapshotFile(pa, a); err != nil {
		t.Fatal(err)
	}
	if err := directory.WriteSnapshotFile(pb, b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, &serveFlags{listen: "127.0.0.1:0", snapshots: []string{pa, pb}, logLevel: "error", logFormat: "text", shutdownTimeout: time.Second}, ready)
	}()
	addr := <-ready
	c, err := client.Dial(addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tenant := range []string{"contoso", "fabrikam"} {
		resp, err := c.CheckMembership(ctx, tenant, "grp-finance", "u-erin")
		if err != nil || !resp.GetIsMember() {
			t.Errorf("tenant %s: %v, %v", tenant, resp, err)
		}
	}
	h, err := c.Health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health %v, %v", h, err)
	}
	cancel() // as SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("graceful stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop after its context ended")
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("GROUPGATE_LISTEN", "127.0.0.1:6000")
	t.Setenv("GROUPGATE_SNAPSHOT", "a.json,b.pb.gz")
	t.Setenv("GROUPGATE_RETAIN_FOR", "36h")
	t.Setenv("GROUPGATE_RETAIN_REVISIONS", "500")
	cmd := newServeCmd()
	if err := cmd.Flags().Parse([]string{"--log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	if err := bindEnv(cmd); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	if get("listen") != "127.0.0.1:6000" || get("snapshot") != "[a.json,b.pb.gz]" || get("log-level") != "debug" {
		t.Errorf("listen=%s snapshot=%s log-level=%s", get("listen"), get("snapshot"), get("log-level"))
	}
	if get("retain-for") != "36h0m0s" || get("retain-revisions") != "500" || get("prune-every") != "1m0s" {
		t.Errorf("retain-for=%s retain-revisions=%s prune-every=%s", get("retain-for"), get("retain-revisions"), get("prune-every"))
	}
	// A flag on the command line wins over the environment.
	t.Setenv("GROUPGATE_LOG_LEVEL", "error")
	cmd = newServeCmd()
	_ = cmd.Flags().Parse([]string{"--log-level", "debug"})
	_ = bindEnv(cmd)
	if get := cmd.Flags().Lookup("log-level").Value.String(); get != "debug" {
		t.Errorf("log-level = %s, want the command line's debug", get)
	}
}

func TestMembersCommandInProcess(t *testing.T) {
	out := runCLI(t, "members", "grp-engineering", "--snapshot", "demo", "--type", "guest")
	if !strings.Contains(out, "u-frank") || strings.Contains(out, "u-dave") {
		t.Errorf("guests of grp-engineering:\n%s", out)
	}
	out = runCLI(t, "members", "grp-finance", "--principal", "u-erin", "--snapshot", "demo")
	if !strings.Contains(out, "path: grp-finance -> grp-finance-emea -> u-erin") {
		t.Errorf("membership check:\n%s", out)
	}
}

// runCLI runs the groupgate command in-process and returns what it printed on standard output.
func runCLI(t *testing.T, args ...string) string {
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
	if runErr != nil {
		t.Fatalf("groupgate %s: %v\n%s", strings.Join(args, " "), runErr, buf.String())
	}
	return buf.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestServeWithTokenFileAndMetrics(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte("checker:checker-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	metricsAddr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, &serveFlags{listen: "127.0.0.1:0", tokenFile: tokenFile, metrics: metricsAddr,
			logLevel: "error", logFormat: "text", shutdownTimeout: time.Second}, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	for token, want := range map[string]codes.Code{"": codes.Unauthenticated, "checker-0123456789abcdef": codes.OK} {
		c, err := client.Dial(addr, client.Options{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.CheckMembership(ctx, "contoso", "grp-finance", "u-erin")
		c.Close()
		if status.Code(err) != want {
			t.Errorf("token %q: %v, want %v", token, err, want)
		}
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `grpc_server_handled_total{grpc_code="Unauthenticated",grpc_method="CheckMembership"`) {
		t.Errorf("metrics lack the refused call:\n%.2000s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// TestBenchCommand runs short loads with writes: every request must succeed (membership churn writes included),
// and the HTTP run, the no-op baseline and what each setup reports must be there.
func TestBenchCommand(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"in process, with resource samples",
			[]string{"-n", "3000", "--sample", "50ms", "--mix", "add-member=40,check-membership=20,batch=10,effective-groups=10,write=20"},
			[]string{"live heap"}},
		{"separate processes",
			[]string{"-n", "2000", "--separate", "--mix", "add-member=50,check-membership=20,effective-groups=10,write=20"},
			[]string{"server process rss", "server cpu/req"}},
		{"AuthZEN routes too (SPEC §17)",
			[]string{"-n", "2000", "--authzen"},
			[]string{"authzen ", "authzen / http throughput:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := runCLI(t, append([]string{"bench", "--preset", "tiny", "-c", "4"}, tc.args...)...)
			for _, want := range append([]string{"groupgate ", "http ", "no-op ", "groupgate / no-op throughput:", "http / groupgate throughput:"}, tc.want...) {
				if !strings.Contains(out, want) {
					t.Errorf("bench output lacks %q:\n%s", want, out)
				}
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "requests in") && !strings.Contains(line, "errors 0 ") {
					t.Errorf("errors in %q", line)
				}
			}
		})
	}
}

// TestServeRefusesAnUnknownStoreWithoutEchoingIt: the value may carry a password.
func TestServeRefusesAnUnknownStoreWithoutEchoingIt(t *testing.T) {
	err := serve(context.Background(), &serveFlags{listen: "127.0.0.1:0", storeURL: "mysql://app:s3cret@db/groupgate",
		logLevel: "warn", logFormat: "text"}, nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "--store") {
		t.Fatalf("got %v, want a --store error without the password", err)
	}
}

func TestServeRefusesBadRetention(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(f *serveFlags)
		want string
	}{
		{"NegativeRevisions", func(f *serveFlags) { f.retention.Revisions = -1 }, "--retain-revisions"},
		{"NegativeDuration", func(f *serveFlags) { f.retention.For = -time.Hour }, "--retain-for"},
		{"NegativeInterval", func(f *serveFlags) { f.retention.Every = -time.Second }, "--prune-every"},
		{"NoCheckpoints", func(f *serveFlags) { f.checkpointEvery = 0 }, "--checkpoint-every"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Refused before connecting: nothing listens on port 1.
			f := &serveFlags{listen: "127.0.0.1:0", storeURL: "postgres://postgres@127.0.0.1:1/groupgate", logLevel: "warn", logFormat: "text",
				checkpointEvery: 10_000}
			tc.set(f)
			if err := serve(context.Background(), f, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
