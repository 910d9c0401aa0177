// Package pgstate keeps a groupgate sync's state in PostgreSQL (the database of a replica set), with a lease so
// that of several sync processes for one tenant only one reads Graph and writes at a time; the others wait and
// take over when its lease expires. It owns one table, created when missing, apart from the server's schema.
package pgstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/groupgate/groupgate/entra"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLeaseHeld is returned by Load while another process holds the tenant's lease.
var ErrLeaseHeld = errors.New("another groupgate sync holds this tenant's lease")

// ErrLeaseLost is returned by Save and Renew when the lease expired and another process took it.
var ErrLeaseLost = errors.New("this sync lost the tenant's lease to another process")

// Store is an entra.StateStore and entra.Lease on PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	tenant string
	holder string
	ttl    time.Duration
}

var _ interface {
	entra.StateStore
	entra.Lease
} = (*Store)(nil)

// Open connects and creates the table when missing. holder names this process (host and pid by default); ttl is
// how long the lease lasts without renewal: longer than a round plus the interval between rounds.
func Open(ctx context.Context, url, tenant, holder string, ttl time.Duration) (*Store, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, errors.New("sync state: cannot parse the PostgreSQL URL") // pgx's error may echo the password
	}
	if holder == "" {
		host, _ := os.Hostname()
		holder = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS groupgate_sync_state (
		tenant      text PRIMARY KEY,
		state       bytea,
		holder      text NOT NULL,
		lease_until timestamptz NOT NULL,
		saved       timestamptz
	)`); err != nil {
		pool.Close()
		return nil, fmt.Errorf("sync state: %w", err)
	}
	return &Store{pool: pool, tenant: tenant, holder: holder, ttl: ttl}, nil
}

// Close releases the lease (so another process can take over at once) and the connections.
func (s *Store) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.pool.Exec(ctx, `UPDATE groupgate_sync_state SET lease_until = now() WHERE tenant = $1 AND holder = $2`, s.tenant, s.holder)
	s.pool.Close()
}

// Load takes the lease (free, expired or already ours) and returns the saved state, or ErrLeaseHeld.
func (s *Store) Load(ctx context.Context) (*entra.State, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `
		INSERT INTO groupgate_sync_state (tenant, holder, lease_until) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
		ON CONFLICT (tenant) DO UPDATE SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until
			WHERE groupgate_sync_state.holder = EXCLUDED.holder OR groupgate_sync_state.lease_until < now()
		RETURNING state`, s.tenant, s.holder, s.ttl.Milliseconds()).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, fmt.Errorf("sync state: %w", err)
	}
	if data == nil {
		return nil, nil
	}
	st, err := entra.UnmarshalState(data, true)
	if err != nil {
		return nil, fmt.Errorf("sync state of tenant %s: %w", s.tenant, err)
	}
	return st, nil
}

// Save stores the state and renews the lease, or returns ErrLeaseLost.
func (s *Store) Save(ctx context.Context, st *entra.State) error {
	data, err := entra.MarshalState(st, true)
	if err != nil {
		return err
	}
	return s.exec(ctx, `UPDATE groupgate_sync_state SET state = $4, saved = now(), lease_until = now() + $3 * interval '1 millisecond'
		WHERE tenant = $1 AND holder = $2 AND lease_until >= now()`, data)
}

// Renew extends the lease, or returns ErrLeaseLost.
func (s *Store) Renew(ctx context.Context) error {
	return s.exec(ctx, `UPDATE groupgate_sync_state SET lease_until = now() + $3 * interval '1 millisecond'
		WHERE tenant = $1 AND holder = $2 AND lease_until >= now()`)
}

// exec runs an update of this tenant's row held by this process ($1 tenant, $2 holder, $3 lease in ms, then
// more), ErrLeaseLost when it matched none.
func (s *Store) exec(ctx context.Context, sql string, more ...any) error {
	tag, err := s.pool.Exec(ctx, sql, append([]any{s.tenant, s.holder, s.ttl.Milliseconds()}, more...)...)
	if err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrLeaseLost
	}
	return nil
}
