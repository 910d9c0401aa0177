package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
)

// webhookLock is the advisory lock key held by the one replica delivering findings to the webhook (the pruner's
// pattern: a session lock on a connection held for as long as it delivers).
const webhookLock = migrationLock + 2

// ErrWebhookLeaseHeld is LeaseFindingsWebhook's answer while another replica delivers.
var ErrWebhookLeaseHeld = errors.New("another replica delivers the findings webhook")

// webhookPing is how often the lease's connection is checked: when its session dies, the lock is gone and another
// replica may take over, so this one must stop within about this long.
const webhookPing = time.Second

// WebhookLease is the right to deliver findings to the webhook, and the delivered positions. It holds one
// connection whose session holds the advisory lock; positions are read and written on that same connection, so
// a replica whose session (and so lock) is gone can record nothing more.
type WebhookLease struct {
	mu   sync.Mutex // the connection serves one statement at a time
	conn *pgxpool.Conn
	lost chan struct{}
	stop chan struct{}
	once sync.Once
	done sync.WaitGroup
}

// LeaseFindingsWebhook takes the webhook lease, or answers ErrWebhookLeaseHeld.
func (s *Store) LeaseFindingsWebhook(ctx context.Context) (*WebhookLease, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", webhookLock).Scan(&locked); err != nil {
		conn.Release()
		return nil, storeError(err)
	}
	if !locked {
		conn.Release()
		return nil, ErrWebhookLeaseHeld
	}
	l := &WebhookLease{conn: conn, lost: make(chan struct{}), stop: make(chan struct{})}
	l.done.Add(1)
	go l.watch()
	return l, nil
}

// watch pings the lease's connection until Release, and reports Lost when it fails.
func (l *WebhookLease) watch() {
	defer l.done.Done()
	t := time.NewTicker(webhookPing)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		ctx, cancel := context.WithTimeout(context.Background(), webhookPing)
		err := l.conn.Ping(ctx)
		cancel()
		l.mu.Unlock()
		if err != nil {
			close(l.lost)
			return
		}
	}
}

// Lost is closed when the lease's session died.
func (l *WebhookLease) Lost() <-chan struct{} { return l.lost }

// Release unlocks and gives the connection back (or closes it, if unlocking fails: a session lock must not go
// back to the pool).
func (l *WebhookLease) Release() {
	l.once.Do(func() {
		close(l.stop)
		l.done.Wait()
		l.mu.Lock()
		defer l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", webhookLock); err != nil {
			_ = l.conn.Conn().Close(ctx)
		}
		l.conn.Release()
	})
}

// Position is the tenant's delivered revision (0: none) and the findings delivered as open, by finding id.
func (l *WebhookLease) Position(ctx context.Context, tenant string) (int64, map[string]*pb.Finding, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var rev int64
	err := l.conn.QueryRow(ctx, `SELECT revision FROM findings_webhook_position WHERE tenant_id = $1`, tenant).Scan(&rev)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, storeError(err)
	}
	rows, err := l.conn.Query(ctx, `SELECT finding_id, finding FROM findings_webhook_open WHERE tenant_id = $1`, tenant)
	if err != nil {
		return 0, nil, storeError(err)
	}
	defer rows.Close()
	open := map[string]*pb.Finding{}
	for rows.Next() {
		var id string
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return 0, nil, storeError(err)
		}
		f := &pb.Finding{}
		if err := proto.Unmarshal(raw, f); err != nil {
			return 0, nil, err
		}
		open[id] = f
	}
	if err := rows.Err(); err != nil {
		return 0, nil, storeError(err)
	}
	return rev, open, nil
}

// Delivered records, in one transaction, that every event of revision rev was delivered: the position moves to
// rev, opened findings are inserted (or replaced), resolved ones deleted. The position never moves backwards.
func (l *WebhookLease) Delivered(ctx context.Context, tenant string, rev int64, opened map[string]*pb.Finding, resolved []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := pgx.BeginFunc(ctx, l.conn, func(tx pgx.Tx) error {
		var b pgx.Batch
		b.Queue(`INSERT INTO findings_webhook_position (tenant_id, revision) VALUES ($1, $2)
			ON CONFLICT (tenant_id) DO UPDATE SET revision = greatest(findings_webhook_position.revision, excluded.revision), updated = now()`, tenant, rev)
		for id, f := range opened {
			raw, err := proto.Marshal(f)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO findings_webhook_open (tenant_id, finding_id, finding) VALUES ($1, $2, $3)
				ON CONFLICT (tenant_id, finding_id) DO UPDATE SET finding = excluded.finding`, tenant, id, raw)
		}
		if len(resolved) > 0 {
			b.Queue(`DELETE FROM findings_webhook_open WHERE tenant_id = $1 AND finding_id = ANY($2)`, tenant, resolved)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return storeError(err)
	}
	return nil
}
