package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/pgtest"
)

var decisionIDLine = regexp.MustCompile(`decision_id:\s+(\S+)`)

// askCLI runs groupgate check add-member against addr and returns the decision id it printed.
func askCLI(t *testing.T, addr, group, member string) string {
	t.Helper()
	out := runCLI(t, "check", "add-member", group, member, "--actor", "u-oscar", "--addr", addr)
	m := decisionIDLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("check printed no decision_id:\n%s", out)
	}
	return m[1]
}

// TestDecisionLogFile: serve --decision-log file:PATH records the decisions the CLI asks for, and
// groupgate decisions --file reads them back by verdict, group and id.
func TestDecisionLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	f := &serveFlags{listen: "127.0.0.1:0", logLevel: "error", logFormat: "text", shutdownTimeout: time.Second,
		decisionLog: decisionLogFlags{sink: "file:" + path, maxBytes: 100 << 20, keep: 10}}
	go func() { done <- serve(ctx, f, ready) }()
	addr := <-ready
	denied := askCLI(t, addr, "grp-finance", "u-gina")
	allowed := askCLI(t, addr, "grp-eng-contractors", "u-gina")
	cancel() // the decision log is flushed when serve returns
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := runCLI(t, "decisions", "--file", path, "--verdict", "deny")
	if !strings.Contains(out, denied) || strings.Contains(out, allowed) || !strings.Contains(out, "RULE_LABEL_BLOCKS_GUESTS") {
		t.Fatalf("decisions --verdict deny:\n%s\nwant %s (RULE_LABEL_BLOCKS_GUESTS) and not %s", out, denied, allowed)
	}
	out = runCLI(t, "decisions", "--file", path, "--id", allowed, "-o", "json")
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"decision_id":"`+allowed+`"`) || !strings.Contains(out, `"group_id":"grp-eng-contractors"`) {
		t.Fatalf("decisions --id %s -o json:\n%s", allowed, out)
	}
	if out := runCLI(t, "decisions", "--file", path, "--group", "grp-nope"); !strings.Contains(out, "no decisions match") {
		t.Fatalf("decisions --group grp-nope:\n%s", out)
	}
}

// TestDecisionLogUnwritablePathStopsServe: serve refuses to start, naming the path.
func TestDecisionLogUnwritablePathStopsServe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "decisions.jsonl")
	f := &serveFlags{listen: "127.0.0.1:0", logLevel: "error", logFormat: "text", decisionLog: decisionLogFlags{sink: "file:" + path}}
	err := serve(context.Background(), f, nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("serve --decision-log file:%s = %v, want an error naming the path", path, err)
	}
	f.decisionLog.sink = "postgres"
	if err := serve(context.Background(), f, nil); err == nil || !strings.Contains(err.Error(), "--store postgres://") {
		t.Fatalf("serve --decision-log postgres on the memory store = %v, want an error asking for --store postgres://", err)
	}
}

// TestDecisionLogPostgres: a replica with --decision-log postgres records into the store's database, and
// groupgate decisions --store reads it, by id and by group and actor.
func TestDecisionLogPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase()
	snap := filepath.Join(t.TempDir(), "contoso.json")
	if err := directory.WriteSnapshotFile(snap, demo.Snapshot()); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, url, "--snapshot", snap, "--decision-log", "postgres")
	ctx := context.Background()
	resp, err := r.client.Decisions.CanAddMember(ctx, &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-finance", MemberId: "u-gina", ActorId: "u-oscar"})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetDecision().GetDecisionId()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := runCLI(t, "decisions", "--store", url, "--group", "grp-finance", "--actor", "u-oscar", "--since", "1h")
		if strings.Contains(out, id) && strings.Contains(out, "RULE_LABEL_BLOCKS_GUESTS") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("decisions --store: %s not there after 10 s:\n%s", id, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := runCLI(t, "decisions", "--store", url, "--id", id, "-o", "json")
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"verdict":"DENY"`) {
		t.Fatalf("decisions --id %s -o json:\n%s", id, out)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"24h":                  now.Add(-24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"2026-12-01T08:00:00Z": time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC),
		"2026-12-01":           time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}
