// Package pgstate keeps a groupgate sync's state in PostgreSQL (the database of a replica set), with a lease so
// that of several sync processes for one tenant only one reads Graph and writes at a time; the others wait and
// take over when its lease expires. It owns two tables, created when missing, apart from the server's schema:
// groupgate_sync_state holds a tenant's lease and the state's head (delta links, overlay, labels), and
// groupgate_sync_objects one row per mirrored user, group and administrative unit, so that a round updates
// the rows of what it changed, in one transaction with the links that cover them.
package pgstate

import (
	"context"
	"encoding/json"
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
	// last is the state the rows hold, as loaded or saved: a round that started from it saves only its delta.
	last *entra.State
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
	);
	-- Before the rows per object, the whole state was one gzipped JSON value in state; it moves to head and
	-- the rows on the first load (migrate in Load).
	ALTER TABLE groupgate_sync_state ADD COLUMN IF NOT EXISTS head bytea;
	CREATE TABLE IF NOT EXISTS groupgate_sync_objects (
		tenant text NOT NULL,
		kind   "char" NOT NULL, -- 'u' user, 'g' group, 'a' administrative unit
		id     text NOT NULL,
		data   bytea NOT NULL,  -- the object as the state file's JSON holds it
		PRIMARY KEY (tenant, kind, id)
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
	s.last = nil
	var old, head []byte
	err := s.pool.QueryRow(ctx, `
		INSERT INTO groupgate_sync_state (tenant, holder, lease_until) VALUES ($1, $2, now() + $3 * interval '1 millisecond')
		ON CONFLICT (tenant) DO UPDATE SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until
			WHERE groupgate_sync_state.holder = EXCLUDED.holder OR groupgate_sync_state.lease_until < now()
		RETURNING state, head`, s.tenant, s.holder, s.ttl.Milliseconds()).Scan(&old, &head)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, fmt.Errorf("sync state: %w", err)
	}
	if old != nil {
		// A state saved whole by an older groupgate (every Save here clears the column, so it is newer than any
		// head and rows): rewrite it as head and rows now.
		st, err := entra.UnmarshalState(old, true)
		if err != nil || st == nil {
			return nil, err
		}
		if err := s.Save(ctx, st); err != nil {
			return nil, fmt.Errorf("sync state of tenant %s: migrating to rows: %w", s.tenant, err)
		}
		return st, nil
	}
	if head == nil {
		return nil, nil
	}
	st, err := entra.UnmarshalState(head, true)
	if err != nil {
		return nil, fmt.Errorf("sync state of tenant %s: %w", s.tenant, err)
	}
	if st == nil {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT kind, id, data FROM groupgate_sync_objects WHERE tenant = $1`, s.tenant)
	if err != nil {
		return nil, fmt.Errorf("sync state: %w", err)
	}
	defer rows.Close()
	m := st.Mirror
	m.Units = map[string]*entra.Unit{}
	for rows.Next() {
		var kind byte
		var id string
		var data []byte
		if err := rows.Scan(&kind, &id, &data); err != nil {
			return nil, fmt.Errorf("sync state: %w", err)
		}
		switch kind {
		case 'u':
			var u entra.User
			err = json.Unmarshal(data, &u)
			m.Users[id] = u
		case 'g':
			g := &entra.Group{}
			err = json.Unmarshal(data, g)
			m.Groups[id] = g
		case 'a':
			u := &entra.Unit{}
			err = json.Unmarshal(data, u)
			m.Units[id] = u
		}
		if err != nil {
			return nil, fmt.Errorf("sync state of tenant %s: %c %s: %w", s.tenant, kind, id, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sync state: %w", err)
	}
	s.last = st
	return st, nil
}

// Save stores the state and renews the lease, or returns ErrLeaseLost. A round that started from the state the
// rows hold updates the rows of the objects it changed; any other state replaces them all. Either way the
// head (with the delta links) and the rows change in one transaction.
func (s *Store) Save(ctx context.Context, st *entra.State) error {
	h := *st
	h.Mirror = &entra.Mirror{Users: map[string]entra.User{}, Groups: map[string]*entra.Group{}}
	head, err := entra.MarshalState(&h, true)
	if err != nil {
		return err
	}
	d := st.Delta()
	whole := d == nil || s.last == nil || d.From != s.last
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // after Commit a no-op
	tag, err := tx.Exec(ctx, `UPDATE groupgate_sync_state SET head = $4, state = NULL, saved = now(), lease_until = now() + $3 * interval '1 millisecond'
		WHERE tenant = $1 AND holder = $2 AND lease_until >= now()`, s.tenant, s.holder, s.ttl.Milliseconds(), head)
	if err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrLeaseLost
	}
	if whole {
		err = s.saveAll(ctx, tx, st.Mirror)
	} else {
		err = s.saveDelta(ctx, tx, st.Mirror, d)
	}
	if err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sync state: %w", err)
	}
	s.last = st
	return nil
}

// saveAll replaces the tenant's rows with the mirror's objects, streamed with COPY.
func (s *Store) saveAll(ctx context.Context, tx pgx.Tx, m *entra.Mirror) error {
	if _, err := tx.Exec(ctx, `DELETE FROM groupgate_sync_objects WHERE tenant = $1`, s.tenant); err != nil {
		return err
	}
	var rows [][]any
	add := func(kind byte, id string, v any) error {
		data, err := json.Marshal(v)
		rows = append(rows, []any{s.tenant, kind, id, data})
		return err
	}
	for id, u := range m.Users {
		if err := add('u', id, u); err != nil {
			return err
		}
	}
	for id, g := range m.Groups {
		if err := add('g', id, g); err != nil {
			return err
		}
	}
	for id, u := range m.Units {
		if err := add('a', id, u); err != nil {
			return err
		}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"groupgate_sync_objects"}, []string{"tenant", "kind", "id", "data"}, pgx.CopyFromRows(rows))
	return err
}

// saveDelta upserts the rows of the objects the round changed and deletes those of the objects it removed.
func (s *Store) saveDelta(ctx context.Context, tx pgx.Tx, m *entra.Mirror, d *entra.Delta) error {
	var kinds []string
	var ids []string
	var data [][]byte
	var gone [][2]string
	put := func(kind byte, id string, v any, ok bool) error {
		if !ok {
			gone = append(gone, [2]string{string(kind), id})
			return nil
		}
		b, err := json.Marshal(v)
		kinds, ids, data = append(kinds, string(kind)), append(ids, id), append(data, b)
		return err
	}
	for _, id := range d.Users {
		u, ok := m.Users[id]
		if err := put('u', id, u, ok); err != nil {
			return err
		}
	}
	for _, id := range d.Groups {
		g, ok := m.Groups[id]
		if err := put('g', id, g, ok); err != nil {
			return err
		}
	}
	for _, id := range d.Units {
		u, ok := m.Units[id]
		if err := put('a', id, u, ok); err != nil {
			return err
		}
	}
	if len(ids) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO groupgate_sync_objects (tenant, kind, id, data)
			SELECT $1, k::"char", i, v FROM unnest($2::text[], $3::text[], $4::bytea[]) AS t(k, i, v)
			ON CONFLICT (tenant, kind, id) DO UPDATE SET data = EXCLUDED.data`, s.tenant, kinds, ids, data); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		var gk, gi []string
		for _, g := range gone {
			gk, gi = append(gk, g[0]), append(gi, g[1])
		}
		if _, err := tx.Exec(ctx, `DELETE FROM groupgate_sync_objects o USING unnest($2::text[], $3::text[]) AS t(k, i)
			WHERE o.tenant = $1 AND o.kind = t.k::"char" AND o.id = t.i`, s.tenant, gk, gi); err != nil {
			return err
		}
	}
	return nil
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
