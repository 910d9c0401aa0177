package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/groupgate/groupgate/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Retention says how much of the change log, and which snapshots, the database keeps.
//
// The log above a tenant's newest snapshot (an import or a checkpoint) is always kept: a starting replica loads
// that snapshot and replays the log after it, so nothing it needs is ever pruned. At or below the newest
// snapshot, a revision is pruned once it is older than both bounds: more than Revisions behind the tenant's
// newest revision and committed more than For ago. Watch can replay what is kept; from further back it answers
// store.CompactedError. A superseded snapshot is deleted with the log below it, and only once it is older than
// For too, a grace period for a replica that has just read it. A tenant without any snapshot keeps its whole
// log (it is the only copy of the tenant).
type Retention struct {
	Revisions int64
	For       time.Duration
	// DecisionLog is how long decision_log records are kept (serve --decision-log-retain-for); 0 keeps them all.
	DecisionLog time.Duration
	// Every is how often a replica tries to prune; 0 never prunes. Replicas sharing a database take turns
	// through an advisory lock: at most one prunes at a time, the others skip that round.
	Every time.Duration
}

// PruneStats is what one pruning pass did.
type PruneStats struct {
	// Skipped is set when another replica held the pruning lock: this pass did nothing.
	Skipped   bool
	Tenants   int
	Changes   int64 // log rows deleted
	Snapshots int64 // snapshots deleted
	Decisions int64 // decision_log records deleted
}

// pruneLock is the advisory lock key held by the one replica pruning.
const pruneLock = migrationLock + 1

// pruneBatch is how many log rows one DELETE removes. Each DELETE is its own short transaction: it takes no
// lock a writer waits for (writers insert above the pruned range and lock only the tenants row), and pruning a
// long backlog never holds one snapshot of the database for long.
const pruneBatch = 1000

// Prune deletes what Options.Retention no longer keeps, tenant by tenant, unless another replica is pruning.
// Replicas call it every Retention.Every; it is exported for tests and tools.
func (s *Store) Prune(ctx context.Context) (PruneStats, error) {
	var st PruneStats
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return st, storeError(err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", pruneLock).Scan(&locked); err != nil {
		return st, storeError(err)
	}
	if !locked {
		st.Skipped = true
		return st, nil
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", pruneLock); err != nil {
			// A session lock must not go back to the pool with the connection: close it, which releases it.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	rows, err := conn.Query(ctx, `SELECT tenant_id FROM tenants`)
	if err != nil {
		return st, storeError(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return st, storeError(err)
	}
	var errs []error
	for _, id := range ids {
		changes, snapshots, err := s.pruneTenant(ctx, conn, id)
		st.Changes += changes
		st.Snapshots += snapshots
		st.Tenants++
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %q: %w", id, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	if keep := s.opts.Retention.DecisionLog; keep > 0 && ctx.Err() == nil {
		n, err := pruneDecisionLog(ctx, conn, keep)
		st.Decisions = n
		if err != nil {
			errs = append(errs, fmt.Errorf("decision log: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return st, storeError(err)
	}
	return st, nil
}

func (s *Store) pruneTenant(ctx context.Context, conn *pgxpool.Conn, tenantID string) (changes, snapshots int64, err error) {
	r := s.opts.Retention
	keepFor := r.For.Seconds()
	var tip int64
	var checkpoint, oldest, firstRecent *int64
	// firstRecent walks the primary key from the oldest row and stops at the first one inside the time window:
	// it reads the rows about to be pruned, and needs no index on committed that every write would maintain.
	err = conn.QueryRow(ctx, `SELECT t.revision,
		(SELECT max(revision) FROM snapshots s WHERE s.tenant_id = t.tenant_id),
		(SELECT min(revision) FROM changes c WHERE c.tenant_id = t.tenant_id),
		(SELECT revision FROM changes c WHERE c.tenant_id = t.tenant_id AND c.committed >= now() - make_interval(secs => $2)
			ORDER BY revision LIMIT 1)
		FROM tenants t WHERE t.tenant_id = $1`, tenantID, keepFor).Scan(&tip, &checkpoint, &oldest, &firstRecent)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && checkpoint == nil) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	bound := min(*checkpoint, tip-r.Revisions) // prune revisions <= bound
	if firstRecent != nil {
		bound = min(bound, *firstRecent-1)
	}
	if oldest != nil {
		for lo := *oldest; lo <= bound; lo += pruneBatch {
			tag, err := conn.Exec(ctx, `DELETE FROM changes WHERE tenant_id = $1 AND revision >= $2 AND revision < $3 AND revision <= $4`,
				tenantID, lo, lo+pruneBatch, bound)
			if err != nil {
				return changes, 0, err
			}
			changes += tag.RowsAffected()
		}
	}
	// After the log: an import's log row must never outlive its snapshot.
	tag, err := conn.Exec(ctx, `DELETE FROM snapshots WHERE tenant_id = $1 AND revision < $2 AND revision <= $3
		AND created < now() - make_interval(secs => $4)`, tenantID, *checkpoint, bound, keepFor)
	if err != nil {
		return changes, 0, err
	}
	return changes, tag.RowsAffected(), nil
}

// pruneEvery runs Prune at every interval until ctx ends.
func (s *Store) pruneEvery(ctx context.Context, every time.Duration) {
	defer s.done.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pass, cancel := context.WithTimeout(ctx, 10*time.Minute)
		st, err := s.Prune(pass)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.logError("pruning the change log", err)
		}
		if st.Changes > 0 || st.Snapshots > 0 || st.Decisions > 0 {
			s.log.Debug("pruned the change log", "store", "postgres", "tenants", st.Tenants, "changes", st.Changes, "snapshots", st.Snapshots,
				"decisions", st.Decisions)
		}
	}
}

// compacted is the error of a Watch after a revision that retention pruned: it names the oldest one kept.
func (s *Store) compacted(ctx context.Context, tenantID string, after int64) error {
	var oldest *int64
	var tip int64
	err := s.pool.QueryRow(ctx, `SELECT t.revision, (SELECT min(revision) FROM changes c WHERE c.tenant_id = t.tenant_id)
		FROM tenants t WHERE t.tenant_id = $1`, tenantID).Scan(&tip, &oldest)
	if err != nil {
		return storeError(err)
	}
	e := &store.CompactedError{TenantID: tenantID, After: after, Oldest: tip + 1}
	if oldest != nil {
		e.Oldest = *oldest
	}
	return e
}
