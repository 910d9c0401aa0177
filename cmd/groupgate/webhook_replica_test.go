package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/pgtest"
	"github.com/groupgate/groupgate/notify/notifytest"
)

// scrape reads one metric's value from a replica's /metrics (0 when absent).
func scrape(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0 // a killed replica
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestFindingsWebhookFailover: two replicas on one database, both with the findings webhook; one holds the lease
// and delivers. Writes go on through the other while the delivering one is killed with SIGKILL mid-stream; the
// other takes the lease over, resumes after the stored revision (its findings history reaches back there: it
// has followed the tenant since the import) and delivers the rest. The receiver checks every signature; every
// OPENED/RESOLVED of every revision arrives, in revision order, and the only duplicates are of the one revision in
// flight at the kill.
func TestFindingsWebhookFailover(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase()
	secret := []byte("failover-secret-0123456789")
	secretPath := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretPath, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	recv := notifytest.New(t, secret)
	metrics := [2]string{freePort(t), freePort(t)}
	var reps [2]*replica
	for i := range reps {
		reps[i] = startReplica(t, url, "--findings-webhook", recv.URL+"/hook", "--findings-webhook-secret-file", secretPath, "--metrics", metrics[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	if _, err := reps[0].client.ImportSnapshot(ctx, d.Snapshot(), &zero); err != nil {
		t.Fatal(err)
	}
	// Both replicas follow the tenant's findings before the writes begin (the deliverer's Prepare does it within
	// 2 s of the tenant appearing; a subscription here makes it certain now).
	for _, r := range reps {
		sub, cancelSub := context.WithCancel(ctx)
		err := r.client.WatchFindings(sub, &pb.WatchFindingsRequest{TenantId: "contoso"}, func(resp *pb.WatchFindingsResponse) error {
			if resp.GetCurrentDone() {
				cancelSub()
			}
			return nil
		})
		cancelSub()
		if err != nil && sub.Err() == nil {
			t.Fatal(err)
		}
	}
	recv.WaitFor(t, 60*time.Second, "the demo tenant's 4 open findings", func(es []notifytest.Event) bool { return len(es) >= 4 })
	delivering := -1
	deadline := time.Now().Add(30 * time.Second)
	for delivering < 0 && time.Now().Before(deadline) {
		for i := range reps {
			if scrape(t, metrics[i], "groupgate_findings_webhook_delivered_events_total") > 0 {
				delivering = i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if delivering < 0 {
		t.Fatal("no replica reports delivered events")
	}
	killed, writer := reps[delivering], reps[1-delivering]

	// Writes through the other replica: u-frank leaves and rejoins grp-board, one finding resolving and opening.
	const writes = 40
	var mu sync.Mutex
	var revs []int64
	wrote := make(chan error, 1)
	go func() {
		for i := range writes {
			c := boardMember(i%2 == 1)
			rev, err := writer.write(ctx, fmt.Sprintf("w%d", i), c)
			if err != nil {
				wrote <- err
				return
			}
			mu.Lock()
			revs = append(revs, rev)
			mu.Unlock()
			time.Sleep(25 * time.Millisecond)
		}
		wrote <- nil
	}()
	recv.WaitFor(t, 60*time.Second, "ten events of the writes", func(es []notifytest.Event) bool { return len(es) >= 14 })
	killed.kill(syscall.SIGKILL)
	atKill := len(recv.Events())
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	last := revs[len(revs)-1]
	es := recv.WaitFor(t, 90*time.Second, "the event of the last write", func(es []notifytest.Event) bool {
		return len(es) > 0 && es[len(es)-1].Finding.GetRevision() == last
	})
	if bad := recv.Bad(); len(bad) > 0 {
		t.Fatalf("refused posts (bad signature or shape): %v", bad)
	}
	if atKill >= 4+writes {
		t.Fatalf("every event had arrived before the kill (%d): the test did not kill mid-stream", atKill)
	}

	// Every write's event, at least once.
	seen := map[string]int{}
	for _, e := range es[4:] {
		seen[e.ID]++
	}
	id := es[4].Finding.GetFindingId()
	for i, rev := range revs {
		kind := "resolved"
		if i%2 == 1 {
			kind = "opened"
		}
		if want := fmt.Sprintf("%s-%s-%d", id, kind, rev); seen[want] == 0 {
			t.Errorf("event %s (write %d) never arrived; arrived: %v", want, i, notifytest.IDs(es[4:]))
		}
	}
	// In revision order, and duplicates only of the one revision in flight at the kill.
	var dups []string
	var prev int64
	first := map[string]bool{}
	for _, e := range es[4:] {
		if first[e.ID] {
			dups = append(dups, e.ID)
			continue
		}
		first[e.ID] = true
		if r := e.Finding.GetRevision(); r <= prev {
			t.Errorf("event %s after revision %d: out of order; arrived: %v", e.ID, prev, notifytest.IDs(es[4:]))
		} else {
			prev = r
		}
	}
	if len(dups) > 1 {
		t.Errorf("duplicates %v: want at most the revision in flight at the kill", dups)
	}
	t.Logf("%d events, %d before the kill, duplicates %v; the survivor delivered %v", len(es), atKill, dups,
		scrape(t, metrics[1-delivering], "groupgate_findings_webhook_delivered_events_total"))

	// Every webhook replica stops; a write happens through one without the webhook. A new process with the
	// webhook holds no findings history back to the stored revision (OUT_OF_RANGE), so it sends the difference
	// between the stored open set and today's at the newest revision: the one finding that resolved, and not the
	// three that stayed open (no flood).
	writer.kill(syscall.SIGTERM)
	plain := startReplica(t, url)
	rev, err := plain.write(ctx, "after-stop", boardMember(false))
	if err != nil {
		t.Fatal(err)
	}
	plain.kill(syscall.SIGTERM)
	before := len(recv.Events())
	startReplica(t, url, "--findings-webhook", recv.URL+"/hook", "--findings-webhook-secret-file", secretPath)
	recv.WaitFor(t, 60*time.Second, "the difference after the restart", func(es []notifytest.Event) bool { return len(es) > before })
	time.Sleep(500 * time.Millisecond) // a flood would be arriving by now
	es = recv.Events()[before:]
	if want := fmt.Sprintf("%s-resolved-%d", id, rev); len(es) != 1 || es[0].ID != want {
		t.Fatalf("after the restart the receiver got %v, want only %s", notifytest.IDs(es), want)
	}
}
