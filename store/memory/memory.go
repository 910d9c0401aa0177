// Package memory is the in-memory store: tenants live in this process only, seeded from snapshot files or the
// demo tenant, and are lost when it exits (the PostgreSQL store is the durable one).
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/cowmap"
	"github.com/groupgate/groupgate/store"
)

// Options configure a Store.
type Options struct {
	// LogLimit is how many recent revisions per tenant Watch can replay; 0 means 10 000.
	LogLimit int
	// RequestIDLimit is how many recent request ids per tenant are remembered for idempotent retries; 0 means
	// 100 000.
	RequestIDLimit int
	// OnChange hears of every new revision before readers can see it (cache invalidation).
	OnChange store.ChangeListener
}

// Store is the in-memory store.
type Store struct {
	opts    Options
	tenants cowmap.Map[string, *tenant] // the read path takes no lock
}

type tenant struct {
	id   string
	head *store.Head

	writeMu sync.Mutex // one writer at a time; readers never take it

	mu       sync.Mutex // guards the fields below
	log      []store.Revision
	requests map[string]int64
	reqOrder []string
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.LogLimit <= 0 {
		opts.LogLimit = 10_000
	}
	if opts.RequestIDLimit <= 0 {
		opts.RequestIDLimit = 100_000
	}
	return &Store{opts: opts}
}

func (s *Store) Name() string { return "memory" }

// Tenants lists the tenants, sorted.
func (s *Store) Tenants() []string {
	return slices.Sorted(s.tenants.Keys())
}

// Add puts a loaded directory in the store as a new tenant (at start-up). A tenant with its id must not exist.
func (s *Store) Add(d *directory.Directory) error {
	t := s.tenant(d.TenantID(), true)
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if prev := t.head.Load(); prev.Revision() != 0 {
		return fmt.Errorf("tenant %q is loaded twice", d.TenantID())
	}
	s.publish(t, nil, d, nil, store.Revision{Revision: d.Revision(), Replaced: true})
	return nil
}

func (s *Store) tenant(id string, create bool) *tenant {
	if !create {
		t, _ := s.tenants.Load(id)
		return t
	}
	return s.tenants.LoadOrCreate(id, func() *tenant {
		return &tenant{id: id, head: store.NewHead(directory.Empty(id)), requests: map[string]int64{}}
	})
}

// Directory returns the tenant at a revision >= minRevision, waiting until ctx ends for one.
func (s *Store) Directory(ctx context.Context, tenantID string, minRevision int64) (*directory.Directory, error) {
	t := s.tenant(tenantID, false)
	if t == nil || t.head.Load().Revision() == 0 {
		return nil, &directory.NotFoundError{Kind: "tenant", ID: tenantID}
	}
	return t.head.Wait(ctx, minRevision)
}

// Write applies a batch atomically. A tenant comes into existence with its first write.
func (s *Store) Write(ctx context.Context, w store.Write) (int64, error) {
	t := s.tenant(w.TenantID, true)
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if w.RequestID != "" {
		t.mu.Lock()
		rev, seen := t.requests[w.RequestID]
		t.mu.Unlock()
		if seen {
			return rev, nil
		}
	}
	cur := t.head.Load()
	if w.ExpectedRevision != nil && *w.ExpectedRevision != cur.Revision() {
		return 0, &store.RevisionMismatchError{Expected: *w.ExpectedRevision, Actual: cur.Revision()}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	next, delta, err := cur.Apply(w.Changes, cur.Revision()+1)
	if err != nil {
		return 0, err
	}
	s.publish(t, cur, next, delta, store.Revision{Revision: next.Revision(), Changes: w.Changes})
	if w.RequestID != "" {
		t.mu.Lock()
		t.requests[w.RequestID] = next.Revision()
		t.reqOrder = append(t.reqOrder, w.RequestID)
		if len(t.reqOrder) > s.opts.RequestIDLimit {
			delete(t.requests, t.reqOrder[0])
			t.reqOrder = t.reqOrder[1:]
		}
		t.mu.Unlock()
	}
	return next.Revision(), nil
}

// Import replaces a whole tenant with a snapshot, as the tenant's next revision.
func (s *Store) Import(ctx context.Context, snap *pb.Snapshot, expectedRevision *int64) (int64, error) {
	if !directory.ValidID(snap.GetTenantId()) {
		_, err := directory.FromSnapshot(snap, 1) // reports the bad tenant id with everything else
		return 0, err
	}
	t := s.tenant(snap.GetTenantId(), true)
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	cur := t.head.Load()
	if expectedRevision != nil && *expectedRevision != cur.Revision() {
		return 0, &store.RevisionMismatchError{Expected: *expectedRevision, Actual: cur.Revision()}
	}
	next, err := directory.FromSnapshot(snap, cur.Revision()+1)
	if err != nil {
		return 0, err
	}
	s.publish(t, cur, next, nil, store.Revision{Revision: next.Revision(), Replaced: true})
	return next.Revision(), nil
}

// publish makes next the tenant's current revision. The caller holds t.writeMu.
func (s *Store) publish(t *tenant, prev, next *directory.Directory, delta *directory.Delta, entry store.Revision) {
	if s.opts.OnChange != nil && prev != nil && prev.Revision() > 0 {
		s.opts.OnChange(prev, next, delta)
	}
	t.mu.Lock()
	t.log = append(t.log, entry)
	if len(t.log) > s.opts.LogLimit {
		t.log = slices.Delete(t.log, 0, len(t.log)-s.opts.LogLimit)
	}
	t.mu.Unlock()
	t.head.Publish(next) // after the log entry, so a watcher woken by it finds the entry
}

// Watch replays the revisions after afterRevision, then follows new ones until ctx ends or fn fails.
func (s *Store) Watch(ctx context.Context, tenantID string, afterRevision int64, fn func(store.Revision) error) error {
	t := s.tenant(tenantID, false)
	if t == nil {
		return &directory.NotFoundError{Kind: "tenant", ID: tenantID}
	}
	for {
		ch := t.head.Changed()
		t.mu.Lock()
		var pending []store.Revision
		if len(t.log) > 0 && t.log[0].Revision > afterRevision+1 {
			oldest := t.log[0].Revision
			t.mu.Unlock()
			return &store.CompactedError{TenantID: tenantID, After: afterRevision, Oldest: oldest}
		}
		for _, e := range t.log {
			if e.Revision > afterRevision {
				pending = append(pending, e)
			}
		}
		t.mu.Unlock()
		for _, e := range pending {
			if err := fn(e); err != nil {
				return err
			}
			afterRevision = e.Revision
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Status reports on a tenant.
func (s *Store) Status(ctx context.Context, tenantID string) (store.Status, error) {
	d, err := s.Directory(ctx, tenantID, 0)
	if err != nil {
		return store.Status{}, err
	}
	return store.Status{Revision: d.Revision(), Counts: d.Counts(), Store: s.Name(), StoreRevision: d.Revision(), Lag: time.Duration(0)}, nil
}
