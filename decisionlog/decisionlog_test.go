package decisionlog_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groupgate/groupgate/decisionlog"
)

func record(i int) *decisionlog.Record {
	return &decisionlog.Record{Time: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC), DecisionID: fmt.Sprintf("id-%04d", i),
		TenantID: "contoso", RPC: "CanAddMember", GroupID: fmt.Sprintf("g-%d", i%3), ActorID: "u-oscar", Verdict: "ALLOW", EntraVerdict: "ALLOW"}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// blockingSink holds every Write until released, and fails them while failing is set.
type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	got     []*decisionlog.Record
	fail    error
}

func (s *blockingSink) Write(ctx context.Context, batch []*decisionlog.Record) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.got = append(s.got, batch...)
	return nil
}

func (s *blockingSink) Close() error { return nil }

// A stalled sink never blocks Log: the buffer fills, the rest are dropped and counted, and what was buffered is
// written once the sink moves again.
func TestLogNeverBlocksAndCountsDrops(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	l := decisionlog.New(sink, decisionlog.Options{Buffer: 8, Batch: 4, Logger: quiet})
	done := make(chan struct{})
	go func() {
		for i := range 100 {
			l.Log(record(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Log blocked on a stalled sink")
	}
	st := l.Stats()
	// The writer may hold one batch (up to 4) besides the 8 buffered.
	if st.Dropped < 100-8-4 || st.Dropped > 100-8 {
		t.Fatalf("dropped %d of 100 with a buffer of 8, want 88..92", st.Dropped)
	}
	close(sink.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st = l.Stats()
	if st.Written+st.Dropped != 100 || uint64(len(sink.got)) != st.Written {
		t.Fatalf("written %d + dropped %d != 100 (sink got %d)", st.Written, st.Dropped, len(sink.got))
	}
	l.Log(record(1)) // after Close: dropped, no panic
	if l.Stats().Dropped != st.Dropped+1 {
		t.Fatal("a record logged after Close was not counted as dropped")
	}
}

// A sink that fails (a full disk, a lost database) loses those records and counts them; later writes go on.
func TestFailedWritesAreCounted(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{}), fail: errors.New("no space left on device")}
	close(sink.release)
	l := decisionlog.New(sink, decisionlog.Options{Logger: quiet})
	for i := range 10 {
		l.Log(record(i))
	}
	waitFor(t, func() bool { return l.Stats().Failed == 10 })
	sink.mu.Lock()
	sink.fail = nil
	sink.mu.Unlock()
	l.Log(record(11))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Written != 1 || st.Failed != 10 {
		t.Fatalf("stats %+v, want 1 written after 10 failed", st)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The file rotates before a batch would take it past maxBytes, keeps `keep` rotated files, and ReadFiles reads
// them all back newest first.
func TestFileRotatesAndReadsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	line, _ := lineSize(record(0))
	f, err := decisionlog.OpenFile(path, int64(3*line), 2) // three records a file
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := f.Write(context.Background(), []*decisionlog.Record{record(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// 10 records, 3 a file: 0-2, 3-5, 6-8, 9. Two rotated files are kept: 3-5 (.2), 6-8 (.1), and 9 in PATH.
	for name, want := range map[string]int{"decisions.jsonl": 1, "decisions.jsonl.1": 3, "decisions.jsonl.2": 3} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), name))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n != want {
			t.Errorf("%s holds %d records, want %d", name, n, want)
		}
	}
	if _, err := os.Stat(path + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.3 exists (err %v): keep 2 allows two rotated files", path, err)
	}
	got, err := decisionlog.ReadFiles(path, decisionlog.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.DecisionID)
	}
	if want := "id-0009 id-0008 id-0007 id-0006 id-0005 id-0004 id-0003"; strings.Join(ids, " ") != want {
		t.Fatalf("read back %v, want %s", ids, want)
	}
	got, err = decisionlog.ReadFiles(path, decisionlog.Query{GroupID: "g-0", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].DecisionID != "id-0009" || got[1].DecisionID != "id-0006" {
		t.Fatalf("group g-0, limit 2: %v, want id-0009 and id-0006", got)
	}
}

func lineSize(r *decisionlog.Record) (int, error) {
	var sb strings.Builder
	err := decisionlog.NewJSONLines(&sb).Write(context.Background(), []*decisionlog.Record{r})
	return sb.Len(), err
}

// A path that cannot be written fails at open, naming the path.
func TestOpenFileUnwritable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "decisions.jsonl")
	_, err := decisionlog.OpenFile(path, 0, 1)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenFile(%s) = %v, want an error naming the path", path, err)
	}
}
