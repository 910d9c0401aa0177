package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// engine is podman, or docker with a running daemon; a test without either skips, or fails in CI.
func engine(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("podman"); err == nil {
		if os.Getenv("CONTAINERS_CONF") == "" {
			// The CI sandbox's settings (runc, cgroupfs, no ulimits); on a host of your own, set CONTAINERS_CONF
			// to your containers.conf (or /dev/null) to use podman's defaults instead.
			conf, err := filepath.Abs("podman/containers.conf")
			if err != nil {
				t.Fatal(err)
			}
			t.Setenv("CONTAINERS_CONF", conf)
		}
		return p
	}
	if p, err := exec.LookPath("docker"); err == nil && exec.Command(p, "info").Run() == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("neither podman nor a running docker: CI must run the container tests (apt-get install podman runc)")
	}
	t.Skip("neither podman nor a running docker (apt-get install podman runc); CI runs this test")
	return ""
}

var (
	buildOnce sync.Once
	imageTag  string
	buildErr  error
	buildOut  []byte
)

// image builds the image once per test binary with scripts/image and returns its version tag.
func image(t *testing.T, eng string) string {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("../scripts/image")
		cmd.Env = append(os.Environ(), "VERSION=test", "GROUPGATE_ENGINE="+filepath.Base(eng))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		buildOut, buildErr = cmd.Output()
		if buildErr != nil {
			buildErr = fmt.Errorf("scripts/image: %w\n%s", buildErr, stderr.String())
			return
		}
		lines := strings.Split(strings.TrimSpace(string(buildOut)), "\n")
		imageTag = lines[len(lines)-1]
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return imageTag
}

// run runs eng with args and returns its trimmed standard output.
func run(t *testing.T, eng string, args ...string) string {
	t.Helper()
	out, err := exec.Command(eng, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", filepath.Base(eng), strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(string(out))
}

// start runs a container detached (removed when the test ends) and returns its id.
func start(t *testing.T, eng string, args ...string) string {
	t.Helper()
	id := run(t, eng, append([]string{"run", "-d"}, args...)...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(eng, "logs", id).CombinedOutput()
			t.Logf("container %.12s logs:\n%s", id, out)
		}
		_ = exec.Command(eng, "rm", "-f", id).Run()
	})
	return id
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHealthy waits until the gRPC health service at addr answers SERVING.
func waitHealthy(t *testing.T, addr string, within time.Duration) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not SERVING after %s: %v", addr, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

func httpPost(t *testing.T, url, body string) string {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// checkServes asks a server for health (gRPC and HTTP), a decision over gRPC and HTTP, and the explorer page.
func checkServes(t *testing.T, grpcAddr, httpAddr string) {
	t.Helper()
	conn := waitHealthy(t, grpcAddr, 30*time.Second)
	if got := httpGet(t, "http://"+httpAddr+"/healthz"); !strings.Contains(got, `"SERVING"`) {
		t.Errorf("/healthz: %s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := pb.NewDecisionServiceClient(conn).CanAddMember(ctx, &pb.CanAddMemberRequest{
		TenantId: "contoso", GroupId: "grp-finance", MemberId: "grp-engineering", ActorId: "u-gary"})
	if err != nil {
		t.Fatalf("CanAddMember over gRPC: %v", err)
	}
	if d.GetDecision().GetVerdict() != pb.Verdict_VERDICT_DENY {
		t.Errorf("CanAddMember over gRPC: %v, want DENY", d.GetDecision().GetVerdict())
	}
	got := httpPost(t, "http://"+httpAddr+"/v1/canAddMember",
		`{"tenantId":"contoso","groupId":"grp-finance","memberId":"grp-engineering","actorId":"u-gary"}`)
	if !strings.Contains(got, `"verdict":"VERDICT_DENY"`) {
		t.Errorf("POST /v1/canAddMember: %s", got)
	}
	if got := httpGet(t, "http://"+httpAddr+"/"); !strings.Contains(got, "<title>groupgate explorer</title>") {
		t.Errorf("GET /: not the explorer page:\n%.300s", got)
	}
}

// TestImage builds the image and runs it as a Kubernetes pod would: read-only root file system, no capabilities,
// configured by GROUPGATE_* variables. It must be small, carry its labels, have no shell, run as uid 65532 (seen
// from the host) and answer health, a decision and the explorer; without TLS, tokens or GROUPGATE_INSECURE it
// must refuse to listen on 0.0.0.0.
func TestImage(t *testing.T) {
	eng := engine(t)
	tag := image(t, eng)

	var info []struct {
		Size   int64
		Config struct {
			Labels     map[string]string
			User       string
			Entrypoint []string
			Cmd        []string
		}
		Labels map[string]string
	}
	if err := json.Unmarshal([]byte(run(t, eng, "image", "inspect", tag)), &info); err != nil || len(info) != 1 {
		t.Fatalf("image inspect: %v", err)
	}
	img := info[0]
	t.Logf("image %s: %.1f MiB", tag, float64(img.Size)/(1<<20))
	if img.Size >= 50<<20 {
		t.Errorf("image %s is %d bytes, want < 50 MB", tag, img.Size)
	}
	labels := img.Config.Labels
	if labels == nil {
		labels = img.Labels
	}
	rev := strings.TrimSpace(gitOutput(t, "rev-parse", "HEAD"))
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  "test",
		"org.opencontainers.image.revision": rev,
		"org.opencontainers.image.source":   "https://github.com/groupgate/groupgate",
	} {
		if labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, labels[k], want)
		}
	}
	if img.Config.User != "65532:65532" || strings.Join(img.Config.Entrypoint, " ") != "/groupgate" || strings.Join(img.Config.Cmd, " ") != "serve" {
		t.Errorf("user %q, entrypoint %q, cmd %q; want 65532:65532, /groupgate, serve", img.Config.User, img.Config.Entrypoint, img.Config.Cmd)
	}
	if out, err := exec.Command(eng, "run", "--rm", "--network", "host", "--entrypoint", "/bin/sh", tag, "-c", "true").CombinedOutput(); err == nil {
		t.Errorf("the image has a shell: /bin/sh ran\n%s", out)
	}
	if got := run(t, eng, "run", "--rm", "--network", "host", tag, "--version"); got != "groupgate version test" {
		t.Errorf("--version: %q", got)
	}

	// The image listens on 0.0.0.0 and keeps serve's rule: no TLS, no tokens, no GROUPGATE_INSECURE, no serving.
	out, err := exec.Command(eng, "run", "--rm", "--network", "host", "--read-only",
		"-e", "GROUPGATE_LISTEN=0.0.0.0:"+strconv.Itoa(freePort(t)), tag).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to serve it without TLS or tokens") {
		t.Errorf("0.0.0.0 without TLS, tokens or GROUPGATE_INSECURE: err %v, output\n%s", err, out)
	}

	grpcPort, httpPort := freePort(t), freePort(t)
	id := start(t, eng, "--network", "host", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"-e", "GROUPGATE_INSECURE=true",
		"-e", fmt.Sprintf("GROUPGATE_LISTEN=0.0.0.0:%d", grpcPort),
		"-e", fmt.Sprintf("GROUPGATE_HTTP_LISTEN=0.0.0.0:%d", httpPort),
		tag)
	checkServes(t, fmt.Sprintf("127.0.0.1:%d", grpcPort), fmt.Sprintf("127.0.0.1:%d", httpPort))
	pid := run(t, eng, "inspect", id, "--format", "{{.State.Pid}}")
	if uid := psUID(t, pid); uid != "65532" {
		t.Errorf("the container's process %s runs as uid %s, want 65532", pid, uid)
	}
	// SIGTERM: a graceful stop, exit 0.
	run(t, eng, "stop", "-t", "20", id)
	if code := run(t, eng, "inspect", id, "--format", "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("exit code after stop: %s, want 0", code)
	}
}

// psUID is the uid of process pid as the host sees it.
func psUID(t *testing.T, pid string) string {
	t.Helper()
	out, err := exec.Command("ps", "-o", "uid=", "-p", pid).Output()
	if err != nil {
		t.Fatalf("ps -o uid= -p %s: %v", pid, err)
	}
	return strings.TrimSpace(string(out))
}

func gitOutput(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}
