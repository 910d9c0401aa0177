package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server/servertest"
)

// followCLI runs `groupgate args…` in-process until stop is called, collecting its standard output line by line.
type followCLI struct {
	mu    sync.Mutex
	lines []string
	done  chan error
	stop  context.CancelFunc
}

func startFollow(t *testing.T, args ...string) *followCLI {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	ctx, cancel := context.WithCancel(context.Background())
	f := &followCLI{done: make(chan error, 1), stop: cancel}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			f.mu.Lock()
			f.lines = append(f.lines, sc.Text())
			f.mu.Unlock()
		}
	}()
	go func() {
		root := newRootCmd()
		root.SetArgs(args)
		err := root.ExecuteContext(ctx)
		w.Close()
		<-read
		f.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		os.Stdout = saved
	})
	return f
}

// waitLines waits until the output holds n lines (or fails after 10 s) and returns them.
func (f *followCLI) waitLines(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		lines := append([]string(nil), f.lines...)
		f.mu.Unlock()
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines after 10 s, want %d:\n%s", len(lines), n, strings.Join(lines, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeChange(t *testing.T, srv *servertest.Server, c *pb.Change) int64 {
	t.Helper()
	resp, err := srv.Client.Directory.WriteChanges(context.Background(), &pb.WriteChangesRequest{TenantId: "contoso", Changes: []*pb.Change{c}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetRevision()
}

func boardMember(add bool) *pb.Change {
	m := &pb.MemberChange{GroupId: "grp-board", MemberId: "u-frank"}
	if add {
		return &pb.Change{Change: &pb.Change_AddMember{AddMember: m}}
	}
	return &pb.Change{Change: &pb.Change_RemoveMember{RemoveMember: m}}
}

// TestAuditFollow: `audit --follow -o json` against a real server prints the demo tenant's four open findings
// (current), then, as writes happen, the guest's finding in grp-board resolving and opening again, one JSON
// FindingEvent per line, and ends cleanly when cancelled (Ctrl-C). `--after-revision` from before the writes
// replays them; the text form names kind, revision, rule, group and cause.
func TestAuditFollow(t *testing.T) {
	srv := servertest.Start(t)
	start, err := srv.Client.Decisions.CheckMembership(context.Background(), &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: "grp-board", PrincipalId: "u-frank"})
	if err != nil {
		t.Fatal(err)
	}
	r0 := start.GetRevision()
	f := startFollow(t, "audit", "--follow", "--addr", srv.Addr, "-o", "json")
	f.waitLines(t, 4)
	r1 := writeChange(t, srv, boardMember(false))
	r2 := writeChange(t, srv, boardMember(true))
	lines := f.waitLines(t, 6)
	f.stop()
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("audit --follow ended with %v after Ctrl-C, want a clean end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("audit --follow did not end after Ctrl-C")
	}
	var events []map[string]any
	for _, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q is not one JSON event: %v", l, err)
		}
		events = append(events, e)
	}
	for i, e := range events[:4] {
		if e["current"] != true || e["kind"] != "FINDING_EVENT_KIND_OPENED" {
			t.Errorf("event %d %v: want a current OPENED finding", i, e)
		}
	}
	for i, want := range []struct {
		kind string
		rev  int64
	}{{"FINDING_EVENT_KIND_RESOLVED", r1}, {"FINDING_EVENT_KIND_OPENED", r2}} {
		e := events[4+i]
		if e["kind"] != want.kind || e["revision"] != jsonInt(want.rev) || e["finding"].(map[string]any)["group_id"] != "grp-board" {
			t.Errorf("event %d %v: want %s of grp-board at %d", 4+i, e, want.kind, want.rev)
		}
	}

	// Resuming from before the writes replays them after the findings of that revision; text this time.
	f = startFollow(t, "audit", "--follow", "--addr", srv.Addr, "--after-revision", jsonInt(r0))
	lines = f.waitLines(t, 0)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(strings.Join(lines, "\n"), "OPENED") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		lines = f.waitLines(t, 0)
	}
	f.stop()
	<-f.done
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"OPEN     r" + jsonInt(r0) + "  RULE_LABEL_BLOCKS_GUESTS  grp-board",
		"RESOLVED r" + jsonInt(r1) + "  RULE_LABEL_BLOCKS_GUESTS  grp-board",
		"OPENED   r" + jsonInt(r2) + "  RULE_LABEL_BLOCKS_GUESTS  grp-board",
		"path: grp-board -> u-frank",
		"caused by: add grp-board <- u-frank",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
}

// jsonInt is how protojson writes an int64: a string.
func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }
