package deploy

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestImageHonoursMemoryLimit runs the image on the medium tenant (100k users, 10k groups, ~1M edges) three
// times under a load of full EffectiveMembers lists of the top group (110k members each, 4 at a time):
//
//  1. without a memory limit, collecting at GOGC=5 with gctrace on, to measure the live heap at its highest
//     (loading the snapshot is the peak: the decoded snapshot and the directory are live together);
//  2. with --memory at 1.5x that live heap: groupgate reads the limit, sets the Go memory limit to 90% of it and
//     keeps its collector headroom inside, and must answer every list and keep running;
//  3. the same --memory with GOMEMLIMIT=off, i.e. without the limit-awareness: the heap grows by the collector's
//     headroom (up to 256 MiB, following the live heap) as it did before, and the kernel must OOM-kill it. Since
//     snapshots load straight from the wire format the loader's garbage fits under the limit: the kill comes under
//     the lists, which is why runs 2 and 3 list many more times (limitedRounds) than run 1.
func TestImageHonoursMemoryLimit(t *testing.T) {
	eng := engine(t)
	tag := image(t, eng)
	if testing.Short() {
		t.Skip("-short: three runs on the medium tenant")
	}

	dir := t.TempDir()
	p, _ := workload.Preset("medium")
	if err := directory.WriteSnapshotFile(filepath.Join(dir, "medium.pb.gz"), workload.Generate(p)); err != nil {
		t.Fatal(err)
	}
	// The container runs as uid 65532: the directory and file must be readable by it.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "medium.pb.gz"), 0o644); err != nil {
		t.Fatal(err)
	}
	// limitedRounds: enough lists that their garbage outgrows the limit when nothing bounds the heap; 3 rounds
	// of 4 did until the loader stopped making garbage of its own, 15 until EffectiveMembers took its pages from
	// gRPC's buffer pool (then the kill came after 168–313 lists at 99–101m, ~150–270 KiB of garbage a list;
	// 800 leave a margin, ~20 s).
	const streams, rounds, limitedRounds = 4, 3, 200
	container := func(memory string, env ...string) (id, addr string) {
		port := freePort(t)
		args := []string{"--network", "host", "--read-only", "-v", dir + ":/data:ro",
			"-e", "GROUPGATE_INSECURE=true", "-e", fmt.Sprintf("GROUPGATE_LISTEN=127.0.0.1:%d", port), "-e", "GROUPGATE_HTTP_LISTEN="}
		if memory != "" {
			args = append(args, "--memory", memory, "--memory-swap", memory)
		}
		for _, e := range env {
			args = append(args, "-e", e)
		}
		args = append(args, tag, "serve", "--snapshot", "/data/medium.pb.gz")
		return start(t, eng, args...), fmt.Sprintf("127.0.0.1:%d", port)
	}

	// 1. The live heap at its highest.
	id, addr := container("", "GOGC=5", "GODEBUG=gctrace=1", "GROUPGATE_GC_HEADROOM_BYTES=0")
	conn := waitHealthy(t, addr, 90*time.Second)
	members, errs := lists(conn, streams, rounds)
	if len(errs) > 0 || len(members) != streams*rounds || members[0] < 100_000 {
		t.Fatalf("without a limit: lists of %v members, errors %v", members, errs)
	}
	peak, after := liveHeap(t, eng, id)
	memory := (peak*3/2 + 1<<20 - 1) >> 20 // MiB, rounded up
	t.Logf("live heap: %d MiB at its highest, %d MiB after the last collection; each list %d members; --memory %dm",
		peak>>20, after>>20, members[0], memory)

	// 2. With the limit: every list answered, still running.
	id, addr = container(fmt.Sprintf("%dm", memory))
	conn = waitHealthy(t, addr, 90*time.Second)
	pid := run(t, eng, "inspect", id, "--format", "{{.State.Pid}}")
	start := time.Now()
	got, errs := lists(conn, streams, limitedRounds)
	hwm := procStatus(pid, "VmHWM")
	if len(errs) > 0 || len(got) != streams*limitedRounds || got[0] != members[0] {
		t.Errorf("with --memory %dm: lists of %v members (want %d each), errors %v", memory, got, members[0], errs)
	}
	if state := run(t, eng, "inspect", id, "--format", "{{.State.Status}} {{.State.ExitCode}}"); state != "running 0" {
		t.Errorf("with --memory %dm: the container is %q after the lists, want running", memory, state)
	}
	logs, _ := exec.Command(eng, "logs", id).CombinedOutput()
	t.Logf("with --memory %dm: %d lists in %s, peak RSS %s; %s", memory, len(got), time.Since(start).Round(time.Millisecond),
		hwm, firstLine(string(logs), `"memory limit"`))

	// 3. Without the limit-awareness: OOM-killed, while loading (the collector headroom lets the loader's garbage
	// pile up) or under the lists.
	id, addr = container(fmt.Sprintf("%dm", memory), "GOMEMLIMIT=off")
	start = time.Now()
	state := "running 0"
	when := "while loading the snapshot"
	if serving(t, eng, id, addr, 90*time.Second) {
		when = "under the lists"
		got, errs = lists(mustConn(t, addr), streams, limitedRounds)
		t.Logf("with --memory %dm and GOMEMLIMIT=off: %d lists answered, %d failed", memory, len(got), len(errs))
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if state = run(t, eng, "inspect", id, "--format", "{{.State.Status}} {{.State.ExitCode}}"); state != "running 0" {
			break
		}
	}
	t.Logf("with --memory %dm and GOMEMLIMIT=off: %q %s, %s after start", memory, state, when, time.Since(start).Round(time.Millisecond))
	// podman reports "stopped" for a moment before "exited": the exit code is what tells the kernel's OOM kill.
	if state != "exited 137" && state != "stopped 137" {
		t.Errorf("with --memory %dm and GOMEMLIMIT=off: the container is %q, want OOM-killed (exited 137): then the test shows nothing", memory, state)
	}
}

// serving waits until the server in container id answers health at addr (true) or the container has stopped
// (false).
func serving(t *testing.T, eng, id, addr string, within time.Duration) bool {
	t.Helper()
	conn := mustConn(t, addr)
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return true
		}
		if run(t, eng, "inspect", id, "--format", "{{.State.Status}}") != "running" {
			return false
		}
	}
	t.Fatalf("container %.12s: neither serving nor stopped after %s", id, within)
	return false
}

func mustConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// lists runs rounds full EffectiveMembers lists of the top group on each of streams goroutines and returns the
// member count of each list that finished, and the errors of those that did not.
func lists(conn *grpc.ClientConn, streams, rounds int) (members []int, errs []error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	c := pb.NewDecisionServiceClient(conn)
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				n, err := list(c)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					members = append(members, n)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return members, errs
}

func list(c pb.DecisionServiceClient) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := c.EffectiveMembers(ctx, &pb.EffectiveMembersRequest{TenantId: "bench-medium", GroupId: workload.TopGroupID})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n += len(r.GetMembers())
	}
}

var gctrace = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB`)

// liveHeap reads the container's gctrace lines: the largest live heap a collection marked, and the last.
func liveHeap(t *testing.T, eng, id string) (peak, last uint64) {
	t.Helper()
	out, err := exec.Command(eng, "logs", id).CombinedOutput()
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	for _, m := range gctrace.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseUint(m[3], 10, 64)
		last = v << 20
		peak = max(peak, last)
	}
	if peak == 0 {
		t.Fatalf("no gctrace lines in the container's output:\n%s", out)
	}
	return peak, last
}

// procStatus is one field of /proc/PID/status ("" once the process is gone).
func procStatus(pid, field string) string {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func firstLine(s, containing string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, containing) {
			return l
		}
	}
	return ""
}
