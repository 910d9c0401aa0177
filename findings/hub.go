package findings

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/store"
)

// Options bound what the hubs keep.
type Options struct {
	// SubscriberBuffer is how many revisions with events a subscriber may trail the hub by before it is ended
	// (ErrSlowSubscriber) rather than buffered without bound; 0: 256.
	SubscriberBuffer int
	// HistoryRevisions and HistoryEvents bound the per-revision events kept so that a subscriber can start from
	// an earlier revision (the open set at any kept revision is rebuilt from them); 0: 10 000 revisions (the
	// memory store's change log) and 1 000 000 events.
	HistoryRevisions, HistoryEvents int
	Logger                          *slog.Logger
	// Observe, when set, hears of every revision evaluated: how many changes it had, how many events it made,
	// and how long the evaluation took (metrics).
	Observe func(tenantID string, changes, events int, took time.Duration)
}

func (o Options) withDefaults() Options {
	if o.SubscriberBuffer <= 0 {
		o.SubscriberBuffer = 256
	}
	if o.HistoryRevisions <= 0 {
		o.HistoryRevisions = 10_000
	}
	if o.HistoryEvents <= 0 {
		o.HistoryEvents = 1_000_000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ErrSlowSubscriber ends a subscription that fell more than Options.SubscriberBuffer revisions behind: the hub
// never waits for a subscriber, so that a slow reader cannot hold back the others (or anything else).
var ErrSlowSubscriber = errors.New("the subscriber fell too far behind")

// TooOldError is a start revision older than the findings history a hub holds: it began evaluating at a later
// revision (when the first subscriber came, or the process started), or the history was trimmed.
type TooOldError struct {
	TenantID string
	After    int64 // the revision asked for
	Oldest   int64 // the oldest revision a subscription can start from
}

func (e *TooOldError) Error() string {
	return fmt.Sprintf("tenant %q: the findings at revision %d are no longer known; this server holds the findings history from revision %d on (start from after_revision %d or later, or 0 for the newest)",
		e.TenantID, e.After, e.Oldest, e.Oldest)
}

// Hubs hands out one Hub per tenant, started on first use. Safe for concurrent use.
type Hubs struct {
	store  store.Store
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	hubs map[string]*Hub
}

// NewHubs returns the hubs of the tenants in st.
func NewHubs(st store.Store, opts Options) *Hubs {
	ctx, cancel := context.WithCancel(context.Background())
	return &Hubs{store: st, opts: opts.withDefaults(), ctx: ctx, cancel: cancel, hubs: map[string]*Hub{}}
}

// Close stops every hub; their subscriptions end.
func (hs *Hubs) Close() { hs.cancel() }

// Hub returns the tenant's hub, starting it when it is not running: it evaluates the newest revision in full,
// then every later one as the store hears of it. An unknown tenant is a *directory.NotFoundError.
func (hs *Hubs) Hub(ctx context.Context, tenantID string) (*Hub, error) {
	hs.mu.Lock()
	h := hs.hubs[tenantID]
	hs.mu.Unlock()
	if h != nil {
		return h, nil
	}
	if _, err := hs.store.Directory(ctx, tenantID, 0); err != nil {
		return nil, err
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if h := hs.hubs[tenantID]; h != nil {
		return h, nil
	}
	h = &Hub{tenant: tenantID, store: hs.store, opts: hs.opts, changed: make(chan struct{}), subs: map[*Subscription]struct{}{}, done: hs.ctx.Done()}
	hs.hubs[tenantID] = h
	go h.run(hs.ctx)
	return h, nil
}

// Hub follows one tenant's findings: it evaluates each revision once, off the write path (it follows the store's
// change log like any watcher), keeps a bounded history of what each revision opened and resolved, and fans the
// events out to its subscribers.
type Hub struct {
	tenant string
	store  store.Store
	opts   Options
	done   <-chan struct{}

	mu      sync.Mutex
	started bool  // the first full evaluation is done
	rev     int64 // the revision evaluated last
	oldest  int64 // the oldest revision whose open set can be rebuilt
	open    map[string]*pb.Finding
	history []*Revision // ascending; only revisions that changed something
	events  int         // events in history
	subs    map[*Subscription]struct{}
	changed chan struct{} // closed and replaced whenever rev moves
}

// Revision is what one revision did to the findings.
type Revision struct {
	Revision int64
	// Events are the OPENED and RESOLVED events, shared by every subscriber: never modify them.
	Events []*pb.FindingEvent
	// updated holds the earlier form of the findings whose evidence changed (see Diff.Updated).
	updated []*pb.Finding
}

func (h *Hub) run(ctx context.Context) {
	var ev *Evaluator
	for ctx.Err() == nil {
		err := h.follow(ctx, &ev)
		if ctx.Err() != nil {
			break
		}
		h.opts.Logger.Warn("findings: following the tenant failed; retrying", "tenant", h.tenant, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	h.mu.Lock()
	for s := range h.subs {
		s.end(ctx.Err())
	}
	h.subs = nil
	h.mu.Unlock()
}

// follow evaluates the tenant from where *ev stands (from scratch when nil) and follows its change log until ctx
// ends or the store fails. A log that no longer reaches back to the evaluator's revision (the hub fell behind by
// more than the store keeps) is caught up by a full evaluation of the newest revision, as an import would be.
func (h *Hub) follow(ctx context.Context, ev **Evaluator) error {
	if *ev == nil {
		dir, err := h.store.Directory(ctx, h.tenant, 0)
		if err != nil {
			return err
		}
		start := time.Now()
		*ev = NewEvaluator(dir)
		h.opts.Logger.Info("findings: tenant evaluated", "tenant", h.tenant, "revision", dir.Revision(),
			"open", len((*ev).Open()), "took", time.Since(start))
		h.mu.Lock()
		h.started, h.rev, h.oldest, h.open = true, dir.Revision(), dir.Revision(), maps.Clone((*ev).Open())
		h.wake()
		h.mu.Unlock()
	}
	e := *ev
	for {
		err := h.store.Watch(ctx, h.tenant, e.Directory().Revision(), func(r store.Revision) error {
			return h.step(ctx, e, r)
		})
		var compacted *store.CompactedError
		if !errors.As(err, &compacted) {
			return err
		}
		dir, err := h.store.Directory(ctx, h.tenant, 0)
		if err != nil {
			return err
		}
		start, prev := time.Now(), e.Directory()
		h.publish(e, prev, dir, nil, e.Advance(dir, nil), start)
	}
}

// step evaluates one revision of the change log.
func (h *Hub) step(ctx context.Context, ev *Evaluator, r store.Revision) error {
	prev := ev.Directory()
	if r.Revision <= prev.Revision() {
		return nil // already evaluated: an import was caught up beyond it
	}
	start := time.Now()
	var next *directory.Directory
	var delta *directory.Delta
	changes := r.Changes
	if !r.Replaced && r.Revision == prev.Revision()+1 {
		if head, err := h.store.Directory(ctx, h.tenant, 0); err == nil && head.Revision() == r.Revision && head.Lineage() == prev.Lineage() {
			// The hub keeps up: evaluate the store's own directory of this revision (the memory decisions
			// share), told what changed by the changes themselves rather than by applying them a second time.
			next, delta = head, ChangeDelta(prev, head, r.Changes)
		} else if next, delta, err = prev.Apply(r.Changes, r.Revision); err != nil {
			// The hub trails the store: derive this revision from the last one.
			h.opts.Logger.Error("findings: a logged revision does not apply; evaluating the newest in full", "tenant", h.tenant, "revision", r.Revision, "err", err)
			next, delta = nil, nil
		}
	}
	if next == nil {
		// A replaced tenant (or a log entry that does not follow or does not apply): its directory is the
		// store's. If the store has moved on, evaluate the newest revision and skip the ones in between.
		var err error
		if next, err = h.store.Directory(ctx, h.tenant, r.Revision); err != nil {
			return err
		}
		delta, changes = nil, nil
	}
	h.publish(ev, prev, next, changes, ev.Advance(next, delta), start)
	return nil
}

// publish turns a revision's diff into events, records them and hands them to every subscriber.
func (h *Hub) publish(ev *Evaluator, prev, next *directory.Directory, changes []*pb.Change, diff *Diff, start time.Time) {
	rec := &Revision{Revision: next.Revision(), updated: diff.Updated}
	for _, f := range diff.Opened {
		rec.Events = append(rec.Events, &pb.FindingEvent{Kind: pb.FindingEventKind_FINDING_EVENT_KIND_OPENED, Finding: f,
			FindingId: ID(f), Revision: rec.Revision, CausedBy: causes(ev.res, prev, next, changes, f)})
	}
	for _, f := range diff.Resolved {
		rec.Events = append(rec.Events, &pb.FindingEvent{Kind: pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED, Finding: f,
			FindingId: ID(f), Revision: rec.Revision, CausedBy: causes(ev.res, prev, next, changes, f)})
	}
	open := ev.Open()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range diff.Opened {
		h.open[ID(f)] = f
	}
	for _, f := range diff.Resolved {
		delete(h.open, ID(f))
	}
	for _, f := range diff.Updated {
		h.open[ID(f)] = open[ID(f)]
	}
	h.rev = rec.Revision
	if !diff.Empty() {
		h.history = append(h.history, rec)
		h.events += len(rec.Events) + len(rec.updated)
		for len(h.history) > h.opts.HistoryRevisions || (h.events > h.opts.HistoryEvents && len(h.history) > 1) {
			// Dropping a revision's record keeps every later one: the open set can still be rebuilt from there on.
			h.oldest = h.history[0].Revision
			h.events -= len(h.history[0].Events) + len(h.history[0].updated)
			h.history[0] = nil
			h.history = h.history[1:]
		}
	}
	if len(rec.Events) > 0 {
		for s := range h.subs {
			select {
			case s.c <- rec:
			default:
				s.end(ErrSlowSubscriber)
				delete(h.subs, s)
			}
		}
	}
	h.wake()
	if h.opts.Observe != nil {
		h.opts.Observe(h.tenant, len(changes), len(rec.Events), time.Since(start))
	}
}

// wake tells everyone waiting for a revision that rev moved. The caller holds h.mu.
func (h *Hub) wake() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// Subscription is one subscriber's view of a hub.
type Subscription struct {
	// Start is the starting revision; Current the findings that held at it (OPENED events, current set), in
	// the order a reader scans them (group, rule, id).
	Start   int64
	Current []*pb.FindingEvent
	// Backlog are the revisions after Start the hub had already evaluated, oldest first; later ones arrive on C.
	Backlog []*Revision

	hub  *Hub
	c    chan *Revision
	done chan struct{}
	err  error
}

// C delivers the revisions after the backlog, each one that opened or resolved a finding, in order.
func (s *Subscription) C() <-chan *Revision { return s.c }

// Done is closed when the subscription is ended by the hub: see Err.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why the subscription ended: ErrSlowSubscriber, or the hub stopping.
func (s *Subscription) Err() error {
	<-s.done
	return s.err
}

func (s *Subscription) end(err error) {
	s.err = err
	close(s.done)
}

// Close ends the subscription.
func (s *Subscription) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		s.end(context.Canceled)
	}
}

// Subscribe starts a subscription after revision after (0: the tenant's newest revision): it waits until the
// hub has evaluated that revision (like Watch, for a revision not yet written), then rebuilds the open set at it.
// A revision older than the hub's history is a *TooOldError.
func (h *Hub) Subscribe(ctx context.Context, after int64) (*Subscription, error) {
	target := after
	if target == 0 {
		dir, err := h.store.Directory(ctx, h.tenant, 0)
		if err != nil {
			return nil, err
		}
		target = dir.Revision()
	}
	for {
		h.mu.Lock()
		if h.started && h.rev >= target {
			break
		}
		ch := h.changed
		h.mu.Unlock()
		select {
		case <-ch:
		case <-h.done:
			return nil, context.Canceled
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer h.mu.Unlock()
	if h.subs == nil {
		return nil, context.Canceled // the hub stopped
	}
	if target < h.oldest {
		return nil, &TooOldError{TenantID: h.tenant, After: target, Oldest: h.oldest}
	}
	at := maps.Clone(h.open)
	first := len(h.history)
	for first > 0 && h.history[first-1].Revision > target {
		first--
		rec := h.history[first]
		for _, e := range rec.Events {
			if e.GetKind() == pb.FindingEventKind_FINDING_EVENT_KIND_OPENED {
				delete(at, e.GetFindingId())
			} else {
				at[e.GetFindingId()] = e.GetFinding()
			}
		}
		for _, f := range rec.updated {
			at[ID(f)] = f
		}
	}
	current := make([]*pb.Finding, 0, len(at))
	for _, f := range at {
		current = append(current, f)
	}
	sortFindings(current)
	s := &Subscription{Start: target, hub: h, c: make(chan *Revision, h.opts.SubscriberBuffer), done: make(chan struct{})}
	s.Current = make([]*pb.FindingEvent, len(current))
	for i, f := range current {
		s.Current[i] = &pb.FindingEvent{Kind: pb.FindingEventKind_FINDING_EVENT_KIND_OPENED, Finding: f, FindingId: ID(f), Revision: target, Current: true}
	}
	for _, rec := range h.history[first:] {
		if len(rec.Events) > 0 {
			s.Backlog = append(s.Backlog, rec)
		}
	}
	h.subs[s] = struct{}{}
	return s, nil
}
