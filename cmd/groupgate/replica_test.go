package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/pgtest"
	"github.com/groupgate/groupgate/server/servertest"
	"github.com/groupgate/groupgate/store/storetest"
	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestMain lets a test start this test binary as a real groupgate process (GROUPGATE_TEST_MAIN=1, or a
// subcommand as first argument, as bench --separate passes to os.Executable()), so that replica tests can
// SIGKILL a server without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("GROUPGATE_TEST_MAIN") == "1" || (len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-")) {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// replica is a groupgate serve process.
type replica struct {
	t      *testing.T
	args   []string
	addr   string
	cmd    *exec.Cmd
	done   chan struct{}
	client *client.Client
}

func startReplica(t *testing.T, storeURL string, extraArgs ...string) *replica {
	t.Helper()
	r := &replica{t: t, addr: freePort(t)}
	r.args = append([]string{"serve", "--store", storeURL, "--listen", r.addr, "--http-listen", "", "--log-level", "warn"}, extraArgs...)
	r.serve(syscall.SIGTERM)
	return r
}

// serve starts the process, connects a client to it and waits until it is serving; at the end of the test the
// client is closed and the process stopped with stopSig.
func (r *replica) serve(stopSig syscall.Signal) {
	r.t.Helper()
	r.start()
	c, err := client.Dial(r.addr, client.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	r.client = c
	r.t.Cleanup(func() {
		c.Close()
		r.kill(stopSig)
	})
	r.waitServing()
}

func (r *replica) start() {
	r.t.Helper()
	cmd := exec.Command(os.Args[0], r.args...)
	cmd.Env = append(os.Environ(), "GROUPGATE_TEST_MAIN=1")
	logPath := filepath.Join(r.t.TempDir(), "replica.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		r.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	logFile.Close()
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(r.done) }()
	r.t.Cleanup(func() {
		if r.t.Failed() {
			out, _ := os.ReadFile(logPath)
			r.t.Logf("replica %s log:\n%s", r.addr, out)
		}
	})
}

func (r *replica) waitServing() {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := r.client.Health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		select {
		case <-r.done:
			r.t.Fatalf("replica %s exited before serving", r.addr)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("replica %s not serving after 60 s: %v", r.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends sig and waits for the process to end.
func (r *replica) kill(sig syscall.Signal) {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

func (r *replica) restart() {
	r.t.Helper()
	r.start()
	r.waitServing()
}

func (r *replica) write(ctx context.Context, requestID string, changes ...*pb.Change) (int64, error) {
	resp, err := r.client.Directory.WriteChanges(ctx, &pb.WriteChangesRequest{TenantId: "contoso", RequestId: requestID, Changes: changes})
	return resp.GetRevision(), err
}

// status is GetStatus of the contoso tenant on r; the test fails when it errs.
func (r *replica) status(ctx context.Context) *pb.GetStatusResponse {
	r.t.Helper()
	st, err := r.client.Directory.GetStatus(ctx, &pb.GetStatusRequest{TenantId: "contoso"})
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

func isMember(t *testing.T, r *replica, minRevision int64, group, principal string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := r.client.Decisions.CheckMembership(ctx, &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: group, PrincipalId: principal,
		Consistency: &pb.Consistency{MinRevision: minRevision}})
	if err != nil {
		t.Fatalf("CheckMembership on %s at min revision %d: %v", r.addr, minRevision, err)
	}
	return resp.GetIsMember()
}

// TestReplicasOnPostgres runs two groupgate processes on one database: the demo tenant imported through one
// answers the same on both as on the memory store; writes through A are read through B with min_revision; B
// killed with SIGKILL catches up on restart; with PostgreSQL stopped both answer at their last revision and
// writes fail UNAVAILABLE, and everything catches up when it returns.
func TestReplicasOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase()
	metricsB := freePort(t)
	a, b := startReplica(t, url), startReplica(t, url, "--metrics", metricsB)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	d, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	rev, err := a.client.ImportSnapshot(ctx, d.Snapshot(), &zero)
	if err != nil {
		t.Fatal(err)
	}

	// The same question on the memory store and on both replicas gets the same decision.
	mem := servertest.Start(t)
	q := &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-engineering", MemberId: "grp-eng-contractors", ActorId: "sp-hr-provisioning",
		Consistency: &pb.Consistency{MinRevision: rev}}
	want, err := mem.Client.Decisions.CanAddMember(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*replica{"A": a, "B": b} {
		got, err := r.client.Decisions.CanAddMember(ctx, q)
		if err != nil {
			t.Fatalf("replica %s: %v", name, err)
		}
		got.Decision.Revision, got.Decision.DecisionId = want.Decision.Revision, want.Decision.DecisionId
		if !proto.Equal(got, want) {
			t.Errorf("replica %s decides\n%v\nthe memory store\n%v", name, got, want)
		}
	}

	// Read-your-writes across replicas.
	rev, err = a.write(ctx, "w-1", storetest.User("u-new-1"), storetest.AddMember("grp-finance", "u-new-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !isMember(t, b, rev, "grp-finance", "u-new-1") {
		t.Fatal("replica B does not see A's write at its revision")
	}

	// B is killed; writes go on through A; B restarted catches up with nothing missing.
	b.kill(syscall.SIGKILL)
	var last int64
	for i := range 10 {
		id := fmt.Sprintf("u-while-b-down-%d", i)
		if last, err = a.write(ctx, "w-b-down-"+id, storetest.User(id), storetest.AddMember("grp-finance", id)); err != nil {
			t.Fatal(err)
		}
	}
	b.restart()
	for i := range 10 {
		if !isMember(t, b, last, "grp-finance", fmt.Sprintf("u-while-b-down-%d", i)) {
			t.Errorf("restarted replica B misses write %d", i)
		}
	}
	statusA := a.status(ctx)
	statusB := b.status(ctx)
	if statusB.GetRevision() != last || !proto.Equal(statusA.GetCounts(), statusB.GetCounts()) || statusB.GetStore() != "postgres" {
		t.Errorf("after restart: A %v, B %v (want revision %d)", statusA, statusB, last)
	}
	// B's metrics report its revision, the store's, and no lag.
	resp, err := http.Get("http://" + metricsB + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`groupgate_tenant_revision{tenant="contoso"} %d`, last),
		fmt.Sprintf(`groupgate_tenant_store_revision{tenant="contoso"} %d`, last),
		`groupgate_tenant_replication_lag_seconds{tenant="contoso"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("replica B's metrics lack %q", want)
		}
	}

	// PostgreSQL goes away.
	pg.Stop()
	for name, r := range map[string]*replica{"A": a, "B": b} {
		if !isMember(t, r, last, "grp-finance", "u-while-b-down-9") {
			t.Errorf("replica %s with the database down no longer answers from revision %d", name, last)
		}
		_, err := r.write(ctx, "w-down-"+name, storetest.User("u-down-"+name))
		if status.Code(err) != codes.Unavailable {
			t.Errorf("replica %s write with the database down: %v, want UNAVAILABLE", name, err)
		}
	}
	pg.Restart()
	var afterOutage int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		afterOutage, err = b.write(ctx, "w-down-B", storetest.User("u-down-B"), storetest.AddMember("grp-finance", "u-down-B"))
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("write through B after the database returned: %v", err)
	}
	if afterOutage != last+1 {
		t.Errorf("the write refused during the outage took revision %d, want %d", afterOutage, last+1)
	}
	if !isMember(t, a, afterOutage, "grp-finance", "u-down-B") {
		t.Error("replica A did not catch up after the database returned")
	}
}

// TestKillDuringWrites SIGKILLs the server in the middle of a stream of writes, restarts it, and retries every
// write that was not acknowledged with its request id: every write must be there exactly once, and every
// acknowledged one with the revision it was acknowledged with.
func TestKillDuringWrites(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase()
	a := startReplica(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	base, err := a.client.ImportSnapshot(ctx, d.Snapshot(), nil)
	if err != nil {
		t.Fatal(err)
	}

	const writes, writers = 400, 4
	acked := make([]int64, writes) // revision acknowledged for write i, 0 if none
	var mu sync.Mutex
	var wg sync.WaitGroup
	killed := make(chan struct{})
	var once sync.Once
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < writes; i += writers {
				id := fmt.Sprintf("u-kill-%03d", i)
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				rev, err := a.write(rctx, "kill-"+id, storetest.User(id), storetest.AddMember("grp-finance", id))
				cancel()
				if err != nil {
					return // the server is gone: the rest is retried below
				}
				mu.Lock()
				acked[i] = rev
				n := 0
				for _, r := range acked {
					if r != 0 {
						n++
					}
				}
				mu.Unlock()
				if n == writes/4 {
					once.Do(func() { close(killed) })
				}
			}
		}()
	}
	<-killed
	a.kill(syscall.SIGKILL)
	wg.Wait()
	ackedBefore := 0
	for _, r := range acked {
		if r != 0 {
			ackedBefore++
		}
	}
	a.restart()
	for i := range writes {
		id := fmt.Sprintf("u-kill-%03d", i)
		rev, err := a.write(ctx, "kill-"+id, storetest.User(id), storetest.AddMember("grp-finance", id))
		if err != nil {
			t.Fatalf("retry of write %d: %v", i, err)
		}
		if acked[i] != 0 && rev != acked[i] {
			t.Errorf("write %d was acknowledged at revision %d, its retry answers %d", i, acked[i], rev)
		}
	}
	st := a.status(ctx)
	if st.GetRevision() != base+writes {
		t.Errorf("revision %d after %d distinct writes on revision %d: some were lost or written twice", st.GetRevision(), writes, base)
	}
	if want := d.Counts().Users + writes; st.GetCounts().GetUsers() != want {
		t.Errorf("%d users, want %d", st.GetCounts().GetUsers(), want)
	}
	t.Logf("killed after %d of %d writes were acknowledged; all %d present once after retries", ackedBefore, writes, writes)
}

// TestReplicaDownLongerThanTheRetentionWindow runs two replicas with a retention window of 5 revisions, pruning
// every 100 ms and a checkpoint every 10 revisions. Replica B is killed, 30 revisions are written through A and
// the log B stopped at is pruned; B restarted starts from the newest checkpoint and catches up, and a Watch from
// before the kept log answers OUT_OF_RANGE with the oldest revision kept, from which a Watch replays.
func TestReplicaDownLongerThanTheRetentionWindow(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase()
	retention := []string{"--checkpoint-every", "10", "--retain-revisions", "5", "--retain-for", "0s", "--prune-every", "100ms"}
	a, b := startReplica(t, url, retention...), startReplica(t, url, retention...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.ImportSnapshot(ctx, d.Snapshot(), nil); err != nil {
		t.Fatal(err)
	}
	down, err := a.write(ctx, "", storetest.User("u-before"), storetest.AddMember("grp-finance", "u-before"))
	if err != nil {
		t.Fatal(err)
	}
	if !isMember(t, b, down, "grp-finance", "u-before") {
		t.Fatal("replica B does not see A's write")
	}

	b.kill(syscall.SIGKILL)
	var last int64
	for i := range 30 {
		id := fmt.Sprintf("u-while-b-down-%02d", i)
		if last, err = a.write(ctx, "", storetest.User(id), storetest.AddMember("grp-finance", id)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for A's pruner: the log from B's revision on must be gone, or the test proves nothing.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var oldest int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := conn.QueryRow(ctx, `SELECT min(revision) FROM changes WHERE tenant_id = 'contoso'`).Scan(&oldest); err != nil {
			t.Fatal(err)
		}
		if oldest > down+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log still starts at revision %d, B stopped at %d: nothing pruned", oldest, down)
		}
	}

	b.restart()
	for i := range 30 {
		if !isMember(t, b, last, "grp-finance", fmt.Sprintf("u-while-b-down-%02d", i)) {
			t.Errorf("restarted replica B misses write %d", i)
		}
	}
	statusA := a.status(ctx)
	statusB := b.status(ctx)
	if statusB.GetRevision() != last || statusB.GetStoreRevision() != last || !proto.Equal(statusA.GetCounts(), statusB.GetCounts()) {
		t.Errorf("after restart: A %v, B %v (want revision %d)", statusA, statusB, last)
	}

	// A watcher that was down as long as B: OUT_OF_RANGE, and the ErrorInfo says where to start again.
	stream, err := b.client.Directory.Watch(ctx, &pb.WatchRequest{TenantId: "contoso", AfterRevision: down})
	if err == nil {
		_, err = stream.Recv()
	}
	st := status.Convert(err)
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok && i.GetReason() == "REVISION_COMPACTED" {
			info = i
		}
	}
	if st.Code() != codes.OutOfRange || info == nil {
		t.Fatalf("watch after revision %d: %v, want OUT_OF_RANGE with an ErrorInfo", down, err)
	}
	after, err := strconv.ParseInt(info.GetMetadata()["min_after_revision"], 10, 64)
	if err != nil || after <= down || after >= last {
		t.Fatalf("min_after_revision %q: want a revision after %d and before %d", info.GetMetadata()["min_after_revision"], down, last)
	}
	stream, err = b.client.Directory.Watch(ctx, &pb.WatchRequest{TenantId: "contoso", AfterRevision: after})
	if err != nil {
		t.Fatal(err)
	}
	for rev := after + 1; rev <= last; rev++ {
		if r, err := stream.Recv(); err != nil || r.GetRevision() != rev {
			t.Fatalf("watch after %d: got revision %d, %v; want %d", after, r.GetRevision(), err, rev)
		}
	}

	// B writes again, and A follows.
	rev, err := b.write(ctx, "", storetest.User("u-after"), storetest.AddMember("grp-finance", "u-after"))
	if err != nil || rev != last+1 {
		t.Fatalf("write through the restarted B: %d, %v; want %d", rev, err, last+1)
	}
	if !isMember(t, a, rev, "grp-finance", "u-after") {
		t.Error("replica A does not see B's write")
	}
}
