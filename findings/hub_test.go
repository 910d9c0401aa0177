package findings_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/findings"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/memory"
)

// writeRandom writes n random batches (the differential test's) through the store and returns a fresh Audit of
// every revision written, by revision.
func writeRandom(t *testing.T, st *memory.Store, tenant string, n int, seed uint64) map[int64]map[string]*pb.Finding {
	t.Helper()
	w := &writer{rng: rand.New(rand.NewPCG(seed, seed))}
	audits := map[int64]map[string]*pb.Finding{}
	for written := 0; written < n; {
		dir, err := st.Directory(context.Background(), tenant, 0)
		if err != nil {
			t.Fatal(err)
		}
		rev, err := st.Write(context.Background(), store.Write{TenantID: tenant, Changes: w.batch(dir)})
		var invalid *directory.ValidationError
		var notFound *directory.NotFoundError
		if errors.As(err, &invalid) || errors.As(err, &notFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dir, _ = st.Directory(context.Background(), tenant, rev)
		audits[rev] = audit(t, dir)
		written++
	}
	return audits
}

func subscribe(t *testing.T, h *findings.Hub, after int64) *findings.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := h.Subscribe(ctx, after)
	if err != nil {
		t.Fatalf("subscribe after %d: %v", after, err)
	}
	t.Cleanup(s.Close)
	return s
}

// replay applies one revision's events to an open set.
func replay(t *testing.T, open map[string]*pb.Finding, rec *findings.Revision) {
	t.Helper()
	for _, e := range rec.Events {
		if e.GetRevision() != rec.Revision || e.GetFindingId() != findings.ID(e.GetFinding()) {
			t.Fatalf("event %v in revision %d", e, rec.Revision)
		}
		switch e.GetKind() {
		case pb.FindingEventKind_FINDING_EVENT_KIND_OPENED:
			if _, ok := open[e.GetFindingId()]; ok {
				t.Fatalf("revision %d opens %s, which is open", rec.Revision, e.GetFindingId())
			}
			open[e.GetFindingId()] = e.GetFinding()
		case pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED:
			if _, ok := open[e.GetFindingId()]; !ok {
				t.Fatalf("revision %d resolves %s, which is not open", rec.Revision, e.GetFindingId())
			}
			delete(open, e.GetFindingId())
		}
	}
}

// TestHubRebuildsEveryKeptRevision: a subscription may start at any revision the hub has evaluated: its current
// findings are exactly a fresh Audit of that revision (evidence included, though later revisions renamed groups
// and moved guests), and replaying the events that follow gives the Audit of each later revision.
func TestHubRebuildsEveryKeptRevision(t *testing.T) {
	st := memory.New(memory.Options{})
	base := differentialTenant(t)
	if err := st.Add(base); err != nil {
		t.Fatal(err)
	}
	hubs := findings.NewHubs(st, findings.Options{})
	defer hubs.Close()
	h, err := hubs.Hub(context.Background(), base.TenantID())
	if err != nil {
		t.Fatal(err)
	}
	start := subscribe(t, h, 0) // the hub evaluates from here
	audits := writeRandom(t, st, base.TenantID(), 150, 3)
	audits[start.Start] = audit(t, base)
	head := start.Start + 150
	subscribe(t, h, head) // waits until the hub has evaluated every write
	for after := start.Start; after <= head; after += 7 {
		s := subscribe(t, h, after)
		open := map[string]*pb.Finding{}
		for _, e := range s.Current {
			open[e.GetFindingId()] = e.GetFinding()
		}
		if d := diffSets(open, audits[after]); d != "" {
			t.Fatalf("current findings at revision %d differ from its Audit:%s", after, d)
		}
		for _, rec := range s.Backlog {
			if rec.Revision <= after {
				t.Fatalf("subscription after %d replays revision %d", after, rec.Revision)
			}
			replay(t, open, rec)
			if d := diffSets(ids(open), ids(audits[rec.Revision])); d != "" {
				t.Fatalf("from %d, after replaying revision %d: the open ids differ from its Audit:%s", after, rec.Revision, d)
			}
		}
		if d := diffSets(ids(open), ids(audits[head])); d != "" {
			t.Fatalf("from %d, after the whole backlog: the open ids differ from the newest Audit:%s", after, d)
		}
	}
}

// ids reduces a set to its ids: replayed events keep the evidence of the revision that opened a finding, while
// Audit shows today's (a later rename); the ids must agree.
func ids(set map[string]*pb.Finding) map[string]*pb.Finding {
	out := make(map[string]*pb.Finding, len(set))
	for id := range set {
		out[id] = &pb.Finding{}
	}
	return out
}

// TestHubLiveEventsAndTrimmedHistory: live subscribers get every revision's events in order; once the history is
// trimmed, an older start is a TooOldError naming the oldest revision still possible, and that one works.
func TestHubLiveEventsAndTrimmedHistory(t *testing.T) {
	st := memory.New(memory.Options{})
	base := differentialTenant(t)
	if err := st.Add(base); err != nil {
		t.Fatal(err)
	}
	hubs := findings.NewHubs(st, findings.Options{HistoryRevisions: 10, SubscriberBuffer: 1000})
	defer hubs.Close()
	h, err := hubs.Hub(context.Background(), base.TenantID())
	if err != nil {
		t.Fatal(err)
	}
	live := subscribe(t, h, 0)
	open := map[string]*pb.Finding{}
	for _, e := range live.Current {
		open[e.GetFindingId()] = e.GetFinding()
	}
	audits := writeRandom(t, st, base.TenantID(), 60, 5)
	head := live.Start + 60
	last := live.Start
	for last < head {
		select {
		case rec := <-live.C():
			if rec.Revision <= last {
				t.Fatalf("revision %d after %d", rec.Revision, last)
			}
			replay(t, open, rec)
			if d := diffSets(ids(open), ids(audits[rec.Revision])); d != "" {
				t.Fatalf("live, after revision %d:%s", rec.Revision, d)
			}
			last = rec.Revision
		case <-time.After(10 * time.Second):
			// The last revisions may have opened or resolved nothing: then the audit agrees already.
			if d := diffSets(ids(open), ids(audits[head])); d != "" {
				t.Fatalf("no event after revision %d of %d, and the open set differs:%s", last, head, d)
			}
			last = head
		}
	}
	_, err = h.Subscribe(context.Background(), live.Start)
	var tooOld *findings.TooOldError
	if !errors.As(err, &tooOld) || tooOld.Oldest <= live.Start || tooOld.Oldest > head {
		t.Fatalf("subscribe at %d with 10 revisions of history: %v, want a TooOldError naming a revision in (%d, %d]", live.Start, err, live.Start, head)
	}
	s := subscribe(t, h, tooOld.Oldest)
	got := map[string]*pb.Finding{}
	for _, e := range s.Current {
		got[e.GetFindingId()] = e.GetFinding()
	}
	if d := diffSets(got, audits[tooOld.Oldest]); d != "" {
		t.Fatalf("at the oldest kept revision %d:%s", tooOld.Oldest, d)
	}
}
