// Package postgres is the shared, durable store: PostgreSQL holds each tenant's change log (and the snapshots
// that imports wrote) as the source of truth, and every groupgate replica keeps the tenants in memory, loaded
// at start and then kept current by following the log (LISTEN/NOTIFY, plus polling in case a notification is
// lost). Decisions never touch the database; writes go through it, serialised per tenant by a row lock.
package postgres

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/cowmap"
	"github.com/groupgate/groupgate/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgxlisten"
	"google.golang.org/protobuf/proto"
)

// channel is the NOTIFY channel; the payload is the tenant id.
const channel = "groupgate_changes"

// logBatch is how many log entries one query reads while catching up or replaying a Watch.
const logBatch = 500

// Options configure a Store.
type Options struct {
	// OnChange hears of every new revision before readers can see it (cache invalidation).
	OnChange store.ChangeListener
	// PollInterval is how often the log is read even without a notification; 0 means 1 s.
	PollInterval time.Duration
	// Logger receives follower errors (database down, reconnects); nil discards them.
	Logger *slog.Logger
	// CheckpointEvery makes the replica that writes revision N×CheckpointEvery also store the tenant's snapshot
	// at it, in the background, so that a starting replica replays at most that many log entries; 0 means
	// 10,000, a negative value never.
	CheckpointEvery int64
	// Retention prunes the change log and superseded snapshots (see Retention); the zero value keeps everything.
	Retention Retention
	// QueryTracer, when set, sees every query (tracing; tests count round trips with it).
	QueryTracer pgx.QueryTracer
}

// Store is a replica of the tenants in one PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	opts Options
	log  *slog.Logger

	tenants cowmap.Map[string, *tenant] // the read path takes no lock

	wake     chan struct{} // asks the follower for a pass now
	lastSync atomic.Int64  // unix nanoseconds of the follower's last complete pass
	cancel   context.CancelFunc
	done     sync.WaitGroup
	// checkpoints are in flight; Close lets them finish (they are seconds at most) before closing the pool
	checkpoints sync.WaitGroup
}

type tenant struct {
	id   string
	head *store.Head
	// applyMu serialises changes to head: the follower's and this replica's own writes.
	applyMu sync.Mutex
	// storeRevision is the newest revision the database was last seen to hold (by the follower's pass, or this
	// replica's own write); behindSince is when this replica first saw it ahead of head (unix ns, 0 when
	// current). Status reads both, so a metrics scrape costs no query.
	storeRevision atomic.Int64
	behindSince   atomic.Int64
}

// Open connects, applies the schema migrations, loads every tenant and starts following the change log. It
// fails when the database cannot be reached: a replica that starts without its source of truth would serve
// nothing.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 10_000
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	if opts.QueryTracer != nil {
		cfg.ConnConfig.Tracer = opts.QueryTracer
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{pool: pool, opts: opts, log: opts.Logger, wake: make(chan struct{}, 1)}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	if err := s.sync(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: loading tenants: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(2)
	go s.listen(ctx, cfg.ConnConfig)
	go s.follow(ctx)
	if s.opts.Retention.Every > 0 {
		s.done.Add(1)
		go s.pruneEvery(ctx, s.opts.Retention.Every)
	}
	return s, nil
}

// Close finishes the checkpoints in flight, stops following the log and closes the connections.
func (s *Store) Close() {
	s.checkpoints.Wait()
	s.cancel()
	s.done.Wait()
	s.pool.Close()
}

func (s *Store) Name() string { return "postgres" }

// Tenants lists the tenants held by this replica, sorted.
func (s *Store) Tenants() []string {
	var ids []string
	for id, t := range s.tenants.All() {
		if t.head.Load().Revision() > 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (s *Store) tenant(id string, create bool) *tenant {
	if !create {
		t, _ := s.tenants.Load(id)
		return t
	}
	return s.tenants.LoadOrCreate(id, func() *tenant { return &tenant{id: id, head: store.NewHead(directory.Empty(id))} })
}

// Directory returns the tenant at a revision >= minRevision. A replica that is behind asks its follower for a
// pass at once (rather than at the next poll) and waits until ctx ends. A tenant this replica does not hold yet
// is looked up in the database, so that one created through another replica is found at once.
func (s *Store) Directory(ctx context.Context, tenantID string, minRevision int64) (*directory.Directory, error) {
	t := s.tenant(tenantID, false)
	if t != nil {
		if d := t.head.Load(); d.Revision() > 0 && d.Revision() >= minRevision {
			return d, nil
		}
	}
	if t == nil || t.head.Load().Revision() == 0 {
		// A tenant the database does not hold is NOT_FOUND even with min_revision: a caller holding a revision of
		// it got it from a committed write. Only tenants that exist get an entry here, so that requests for
		// made-up tenant ids cannot grow the map.
		var exists bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenants WHERE tenant_id = $1 AND revision > 0)`, tenantID).Scan(&exists)
		if err != nil {
			return nil, storeError(err)
		}
		if !exists {
			return nil, &directory.NotFoundError{Kind: "tenant", ID: tenantID}
		}
		t = s.tenant(tenantID, true) // the follower loads it; Tenants() lists it once it has a revision
	}
	s.nudge()
	return t.head.Wait(ctx, max(minRevision, 1))
}

// nudge asks the follower for a pass now; it never blocks.
func (s *Store) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Write applies a batch as the tenant's next revision, in one transaction that holds the tenant's row lock: the
// batch is validated against the directory at the database's newest revision (this replica catches up first
// inside the same transaction), then appended to the log. The new revision is visible here when Write returns.
func (s *Store) Write(ctx context.Context, w store.Write) (int64, error) {
	t := s.tenant(w.TenantID, true)
	var next *directory.Directory
	var delta *directory.Delta
	var rev int64
	t.applyMu.Lock()
	defer t.applyMu.Unlock()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		dbRev, err := lockTenant(ctx, tx, w.TenantID)
		if err != nil {
			return err
		}
		if w.RequestID != "" {
			err := tx.QueryRow(ctx, `SELECT revision FROM changes WHERE tenant_id = $1 AND request_id = $2`, w.TenantID, w.RequestID).Scan(&rev)
			if err == nil {
				return nil // a retry: the first result, nothing written
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if w.ExpectedRevision != nil && *w.ExpectedRevision != dbRev {
			return &store.RevisionMismatchError{Expected: *w.ExpectedRevision, Actual: dbRev}
		}
		if err := s.catchUpLocked(ctx, tx, t, dbRev); err != nil {
			return err
		}
		cur := t.head.Load()
		rev = dbRev + 1
		if next, delta, err = cur.Apply(w.Changes, rev); err != nil {
			return err
		}
		entry, err := proto.Marshal(&pb.WatchResponse{Revision: rev, Changes: w.Changes})
		if err != nil {
			return err
		}
		var requestID *string
		if w.RequestID != "" {
			requestID = &w.RequestID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO changes (tenant_id, revision, changes, request_id) VALUES ($1, $2, $3, $4)`,
			w.TenantID, rev, entry, requestID); err != nil {
			return err
		}
		return advance(ctx, tx, w.TenantID, rev)
	})
	if err != nil {
		return 0, storeError(err)
	}
	if next != nil {
		s.publishLocked(t, next, delta)
		if every := s.opts.CheckpointEvery; every > 0 && rev%every == 0 {
			s.checkpoints.Add(1)
			go s.checkpoint(next)
		}
	} else {
		s.nudge() // a retry of a write this replica may not have applied yet
	}
	return rev, nil
}

// Import replaces the whole tenant with a snapshot as its next revision.
func (s *Store) Import(ctx context.Context, snap *pb.Snapshot, expectedRevision *int64) (int64, error) {
	if !directory.ValidID(snap.GetTenantId()) {
		_, err := directory.FromSnapshot(snap, 1) // reports the bad tenant id with everything else
		return 0, err
	}
	data, err := encodeSnapshot(snap)
	if err != nil {
		return 0, err
	}
	t := s.tenant(snap.GetTenantId(), true)
	var next *directory.Directory
	t.applyMu.Lock()
	defer t.applyMu.Unlock()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		dbRev, err := lockTenant(ctx, tx, snap.GetTenantId())
		if err != nil {
			return err
		}
		if expectedRevision != nil && *expectedRevision != dbRev {
			return &store.RevisionMismatchError{Expected: *expectedRevision, Actual: dbRev}
		}
		if next, err = directory.FromSnapshot(snap, dbRev+1); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO snapshots (tenant_id, revision, data) VALUES ($1, $2, $3)`, snap.GetTenantId(), next.Revision(), data); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO changes (tenant_id, revision, replaced) VALUES ($1, $2, true)`, snap.GetTenantId(), next.Revision()); err != nil {
			return err
		}
		return advance(ctx, tx, snap.GetTenantId(), next.Revision())
	})
	if err != nil {
		return 0, storeError(err)
	}
	if t.head.Load().Revision() < next.Revision() {
		s.publishLocked(t, next, nil)
	}
	return next.Revision(), nil
}

// checkpoint stores the snapshot of a revision, so that replicas start from it rather than from the log's
// beginning. It is only an optimisation: a failure is logged, and the next checkpoint will do.
func (s *Store) checkpoint(d *directory.Directory) {
	defer s.checkpoints.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	data, err := encodeSnapshot(d.Snapshot())
	if err == nil {
		_, err = s.pool.Exec(ctx, `INSERT INTO snapshots (tenant_id, revision, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			d.TenantID(), d.Revision(), data)
	}
	if err != nil {
		s.logError("storing a checkpoint", fmt.Errorf("tenant %q revision %d: %w", d.TenantID(), d.Revision(), err))
	}
}

// lockTenant creates the tenant's row if needed and locks it until the transaction ends; it returns the
// tenant's newest revision.
func lockTenant(ctx context.Context, tx pgx.Tx, tenantID string) (int64, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, tenantID); err != nil {
		return 0, err
	}
	var rev int64
	err := tx.QueryRow(ctx, `SELECT revision FROM tenants WHERE tenant_id = $1 FOR UPDATE`, tenantID).Scan(&rev)
	return rev, err
}

// advance records the tenant's new revision and notifies every replica when the transaction commits.
func advance(ctx context.Context, tx pgx.Tx, tenantID string, rev int64) error {
	if _, err := tx.Exec(ctx, `UPDATE tenants SET revision = $2 WHERE tenant_id = $1`, tenantID, rev); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, tenantID)
	return err
}

// storeError passes groupgate's own errors through (validation, revision mismatch, cancelled calls) and turns
// everything the database said into ErrUnavailable: the write did not happen, or (a lost commit
// acknowledgement) may have, which is why clients retry with the same request id.
func storeError(err error) error {
	var invalid *directory.ValidationError
	var notFound *directory.NotFoundError
	var mismatch *store.RevisionMismatchError
	switch {
	case errors.As(err, &invalid), errors.As(err, &notFound), errors.As(err, &mismatch),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: postgres: %v", store.ErrUnavailable, err)
}

// publishLocked makes next the tenant's current directory. The caller holds t.applyMu.
func (s *Store) publishLocked(t *tenant, next *directory.Directory, delta *directory.Delta) {
	prev := t.head.Load()
	if s.opts.OnChange != nil && prev.Revision() > 0 {
		s.opts.OnChange(prev, next, delta)
	}
	if raise(&t.storeRevision, next.Revision()) {
		t.behindSince.Store(0)
	}
	t.head.Publish(next)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// logEntry is one row of the change log.
type logEntry struct {
	revision int64
	replaced bool
	changes  []byte
}

// readLog returns up to logBatch entries after a revision, in order.
func readLog(ctx context.Context, q querier, tenantID string, after int64) ([]logEntry, error) {
	rows, err := q.Query(ctx, `SELECT revision, replaced, changes FROM changes WHERE tenant_id = $1 AND revision > $2 ORDER BY revision LIMIT $3`,
		tenantID, after, logBatch)
	if err != nil {
		return nil, err
	}
	var out []logEntry
	for rows.Next() {
		var e logEntry
		if err := rows.Scan(&e.revision, &e.replaced, &e.changes); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// catchUpLocked applies the log after the tenant's local revision up to target. The caller holds t.applyMu.
func (s *Store) catchUpLocked(ctx context.Context, q querier, t *tenant, target int64) error {
	if t.head.Load().Revision() == 0 && target > 0 {
		// Never loaded here: start from the newest snapshot rather than from revision 1.
		if err := s.loadSnapshotLocked(ctx, q, t, target); err != nil {
			return err
		}
	}
	for t.head.Load().Revision() < target {
		cur := t.head.Load()
		entries, err := readLog(ctx, q, t.id, cur.Revision())
		if err != nil {
			return err
		}
		if len(entries) == 0 || entries[0].revision != cur.Revision()+1 {
			// Retention pruned the log after this replica's revision (it was down, or behind, for longer than the
			// retention window, or a checkpoint was pruned below while it started): only log above the newest
			// snapshot is always kept, so start again from that snapshot.
			if err := s.loadSnapshotLocked(ctx, q, t, target); err != nil {
				return err
			}
			if t.head.Load().Revision() == cur.Revision() {
				if len(entries) == 0 {
					return fmt.Errorf("tenant %q: change log ends at revision %d, before revision %d", t.id, cur.Revision(), target)
				}
				return fmt.Errorf("tenant %q: change log jumps from revision %d to %d and no snapshot covers the gap", t.id, cur.Revision(), entries[0].revision)
			}
			continue
		}
		for _, e := range entries {
			if e.revision != t.head.Load().Revision()+1 {
				return fmt.Errorf("tenant %q: change log jumps from revision %d to %d", t.id, t.head.Load().Revision(), e.revision)
			}
			if e.replaced {
				if err := s.loadSnapshotLocked(ctx, q, t, e.revision); err != nil {
					return err
				}
				continue
			}
			var w pb.WatchResponse
			if err := proto.Unmarshal(e.changes, &w); err != nil {
				return fmt.Errorf("tenant %q revision %d: %w", t.id, e.revision, err)
			}
			next, delta, err := t.head.Load().Apply(w.GetChanges(), e.revision)
			if err != nil {
				// The writer validated this batch against the same state: the log and this replica disagree.
				return fmt.Errorf("tenant %q revision %d does not apply: %w", t.id, e.revision, err)
			}
			s.publishLocked(t, next, delta)
		}
	}
	return nil
}

// loadSnapshotLocked replaces the tenant with the newest snapshot at or below atMost. The caller holds t.applyMu.
func (s *Store) loadSnapshotLocked(ctx context.Context, q querier, t *tenant, atMost int64) error {
	var rev int64
	var data []byte
	err := q.QueryRow(ctx, `SELECT revision, data FROM snapshots WHERE tenant_id = $1 AND revision <= $2 ORDER BY revision DESC LIMIT 1`,
		t.id, atMost).Scan(&rev, &data)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// The tenant was created by writes alone: replay from the start.
		if t.head.Load().Revision() != 0 {
			return fmt.Errorf("tenant %q: no snapshot at or below revision %d", t.id, atMost)
		}
		return nil
	case err != nil:
		return err
	}
	if rev <= t.head.Load().Revision() {
		return nil
	}
	snap, err := directory.ReadSnapshot(bytes.NewReader(data), "snapshot.pb.gz")
	if err != nil {
		return fmt.Errorf("tenant %q snapshot at revision %d: %w", t.id, rev, err)
	}
	next, err := directory.FromSnapshot(snap, rev)
	if err != nil {
		return fmt.Errorf("tenant %q snapshot at revision %d: %w", t.id, rev, err)
	}
	s.publishLocked(t, next, nil)
	return nil
}

func encodeSnapshot(snap *pb.Snapshot) ([]byte, error) {
	raw, err := proto.Marshal(snap)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// raise sets a to v unless it holds more, and reports whether it now holds v. The follower and a write (under
// applyMu, which the follower does not hold when it reads the database's revisions) both raise storeRevision:
// a compare-and-swap keeps the larger of two racing values, where a load and a store could put back the smaller.
func raise(a *atomic.Int64, v int64) bool {
	for {
		cur := a.Load()
		if cur > v {
			return false
		}
		if cur == v || a.CompareAndSwap(cur, v) {
			return true
		}
	}
}

// sync brings every tenant in the database up to its newest revision: one query for all revisions, then the
// log of each tenant that is behind.
func (s *Store) sync(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id, revision FROM tenants WHERE revision > 0`)
	if err != nil {
		return err
	}
	revisions := map[string]int64{}
	for rows.Next() {
		var id string
		var rev int64
		if err := rows.Scan(&id, &rev); err != nil {
			rows.Close()
			return err
		}
		revisions[id] = rev
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var errs []error
	for id, rev := range revisions {
		t := s.tenant(id, true)
		raise(&t.storeRevision, rev)
		if t.head.Load().Revision() >= rev {
			continue
		}
		t.applyMu.Lock()
		// Under applyMu, which every publish holds: a write that caught up meanwhile is seen, so behindSince is
		// never set for a tenant that is current.
		if t.head.Load().Revision() < rev {
			t.behindSince.CompareAndSwap(0, time.Now().UnixNano())
		}
		err := s.catchUpLocked(ctx, s.pool, t, rev)
		t.applyMu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.lastSync.Store(time.Now().UnixNano())
	return nil
}

// listen turns notifications into follower passes. pgxlisten reconnects after a lost connection; a pass after
// every (re)connect picks up whatever was written while no one listened.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	defer s.done.Done()
	l := &pgxlisten.Listener{
		Connect:        func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, cfg) },
		LogError:       func(_ context.Context, err error) { s.logError("listening for changes", err) },
		ReconnectDelay: s.opts.PollInterval,
	}
	l.Handle(channel, handler{s})
	_ = l.Listen(ctx)
}

type handler struct{ s *Store }

func (h handler) HandleNotification(context.Context, *pgconn.Notification, *pgx.Conn) error {
	h.s.nudge()
	return nil
}

func (h handler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.s.nudge()
	return nil
}

// follow runs a pass when nudged and at every poll interval, until ctx ends.
func (s *Store) follow(ctx context.Context) {
	defer s.done.Done()
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		pass, cancel := context.WithTimeout(ctx, time.Minute)
		if err := s.sync(pass); err != nil && ctx.Err() == nil {
			s.logError("following the change log", err)
		}
		cancel()
	}
}

func (s *Store) logError(what string, err error) {
	if !errors.Is(err, context.Canceled) {
		s.log.Warn(what, "store", "postgres", "error", err)
	}
}

// Watch replays the log after afterRevision from the database, then follows it as this replica applies new
// revisions. Revisions that retention pruned answer a *store.CompactedError naming the oldest one kept.
func (s *Store) Watch(ctx context.Context, tenantID string, afterRevision int64, fn func(store.Revision) error) error {
	if _, err := s.Directory(ctx, tenantID, 0); err != nil {
		return err
	}
	t := s.tenant(tenantID, false)
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	for {
		changed := t.head.Changed()
		held := t.head.Load().Revision() // taken before reading: every revision up to it is committed
		entries, err := readLog(ctx, s.pool, tenantID, afterRevision)
		if err != nil {
			return storeError(err)
		}
		// Revisions are committed in order, and every one up to held before the read began, so a missing one
		// was pruned.
		if (len(entries) > 0 && entries[0].revision != afterRevision+1) || (len(entries) == 0 && afterRevision < held) {
			return s.compacted(ctx, tenantID, afterRevision)
		}
		for _, e := range entries {
			r := store.Revision{Revision: e.revision, Replaced: e.replaced}
			if !e.replaced {
				var w pb.WatchResponse
				if err := proto.Unmarshal(e.changes, &w); err != nil {
					return fmt.Errorf("tenant %q revision %d: %w", tenantID, e.revision, err)
				}
				r.Changes = w.GetChanges()
			}
			if err := fn(r); err != nil {
				return err
			}
			afterRevision = e.revision
		}
		if len(entries) == logBatch {
			continue
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Status reports on a tenant as this replica holds it, from what the follower already knows (no query, so a
// metrics scrape of many tenants costs the database nothing). StoreRevision is the newest revision the
// follower's last pass (or this replica's own write) saw in the database. Lag is how long ago the follower
// first saw a revision this replica has not applied yet (0 when current); when the follower has not completed a
// pass for five poll intervals and 10 s (database unreachable), it is at least the time since its last one.
func (s *Store) Status(ctx context.Context, tenantID string) (store.Status, error) {
	d, err := s.Directory(ctx, tenantID, 0)
	if err != nil {
		return store.Status{}, err
	}
	t := s.tenant(tenantID, false)
	st := store.Status{Revision: d.Revision(), Counts: d.Counts(), Store: s.Name(), StoreRevision: max(t.storeRevision.Load(), d.Revision())}
	if since := t.behindSince.Load(); since != 0 && d.Revision() < st.StoreRevision {
		st.Lag = max(time.Since(time.Unix(0, since)), 0)
	}
	// A pass may be late on a busy machine: only a follower silent for several polls (and 10 s) counts as cut off.
	if stale := time.Since(time.Unix(0, s.lastSync.Load())); stale > max(5*s.opts.PollInterval, 10*time.Second) {
		st.Lag = max(st.Lag, stale)
	}
	return st, nil
}

// IsURL says whether s names a PostgreSQL database (postgres:// or postgresql://), as serve's --store and sync's
// --state take it.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}
