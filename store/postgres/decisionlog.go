package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/groupgate/groupgate/decisionlog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DecisionLog is the decision_log table: a decisionlog.Sink (serve --decision-log postgres) and what
// `groupgate decisions` and ListDecisions read.
type DecisionLog struct {
	pool *pgxpool.Pool
	own  bool // the pool is this DecisionLog's (OpenDecisionLog), not a Store's
}

// DecisionLog is the decision log in the store's database, on the store's connections: close it before the
// store.
func (s *Store) DecisionLog() *DecisionLog { return &DecisionLog{pool: s.pool} }

// OpenDecisionLog connects to the decision log of the database at url, to read it (groupgate decisions). It does
// not migrate: a database no groupgate has served a decision log from has no table yet, which QueryDecisions says.
func OpenDecisionLog(ctx context.Context, url string) (*DecisionLog, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &DecisionLog{pool: pool, own: true}, nil
}

var decisionLogColumns = []string{"decision_id", "time", "tenant_id", "revision", "rpc", "group_id", "member_id", "label_id",
	"actor_id", "action", "verdict", "entra_verdict", "violations", "warnings", "caller", "trace_id", "latency_ms"}

// Write inserts a batch with COPY: one round trip however many records it holds.
func (l *DecisionLog) Write(ctx context.Context, batch []*decisionlog.Record) error {
	rows := make([][]any, 0, len(batch))
	for _, r := range batch {
		id, err := uuid.Parse(r.DecisionID)
		if err != nil {
			return fmt.Errorf("decision log: decision_id %q: %w", r.DecisionID, err)
		}
		var caller any // NULL without one
		if r.Caller != nil {
			b, err := json.Marshal(r.Caller)
			if err != nil {
				return err
			}
			caller = string(b)
		}
		rows = append(rows, []any{[16]byte(id), r.Time, r.TenantID, r.Revision, r.RPC, r.GroupID, r.MemberID, r.LabelID,
			r.ActorID, r.Action, r.Verdict, r.EntraVerdict, nonNil(r.Violations), nonNil(r.Warnings), caller, r.TraceID, r.LatencyMS})
	}
	_, err := l.pool.CopyFrom(ctx, pgx.Identifier{"decision_log"}, decisionLogColumns, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("decision log: postgres: %w", err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Close closes the connections of a DecisionLog from OpenDecisionLog; a Store's stay open.
func (l *DecisionLog) Close() error {
	if l.own {
		l.pool.Close()
	}
	return nil
}

// ErrNoDecisionLog says that the database holds no decision log: no server has run with --decision-log postgres
// on it.
var ErrNoDecisionLog = errors.New("this database has no decision log (serve --decision-log postgres creates it)")

// QueryDecisions returns the records q selects, newest first.
func (l *DecisionLog) QueryDecisions(ctx context.Context, q decisionlog.Query) ([]*decisionlog.Record, error) {
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if !q.Since.IsZero() {
		arg("time >= $?", q.Since)
	}
	if q.TenantID != "" {
		arg("tenant_id = $?", q.TenantID)
	}
	if q.GroupID != "" {
		arg("group_id = $?", q.GroupID)
	}
	if q.ActorID != "" {
		arg("actor_id = $?", q.ActorID)
	}
	if q.Verdict != "" {
		arg("verdict = $?", q.Verdict)
	}
	if q.DecisionID != "" {
		id, err := uuid.Parse(q.DecisionID)
		if err != nil {
			return nil, fmt.Errorf("decision id %q: %w", q.DecisionID, err)
		}
		arg("decision_id = $?", [16]byte(id))
	}
	sql := "SELECT " + strings.Join(decisionLogColumns, ", ") + " FROM decision_log"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY time DESC, decision_id DESC"
	if q.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(q.Limit)
	}
	rows, err := l.pool.Query(ctx, sql, args...)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
			return nil, ErrNoDecisionLog
		}
		return nil, storeError(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*decisionlog.Record, error) {
		r := &decisionlog.Record{}
		var id [16]byte
		var caller []byte
		err := row.Scan(&id, &r.Time, &r.TenantID, &r.Revision, &r.RPC, &r.GroupID, &r.MemberID, &r.LabelID, &r.ActorID,
			&r.Action, &r.Verdict, &r.EntraVerdict, &r.Violations, &r.Warnings, &caller, &r.TraceID, &r.LatencyMS)
		if err != nil {
			return nil, err
		}
		r.DecisionID = uuid.UUID(id).String()
		r.Time = r.Time.UTC()
		if len(r.Violations) == 0 {
			r.Violations = nil
		}
		if len(r.Warnings) == 0 {
			r.Warnings = nil
		}
		if caller != nil {
			r.Caller = &decisionlog.Caller{}
			if err := json.Unmarshal(caller, r.Caller); err != nil {
				return nil, err
			}
		}
		return r, nil
	})
	if err != nil {
		return nil, storeError(err)
	}
	return out, nil
}

// pruneDecisionLog deletes the records older than keep, a batch at a time (each DELETE its own short
// transaction, as the change log's).
func pruneDecisionLog(ctx context.Context, conn *pgxpool.Conn, keep time.Duration) (int64, error) {
	var deleted int64
	for {
		tag, err := conn.Exec(ctx, `DELETE FROM decision_log WHERE decision_id IN
			(SELECT decision_id FROM decision_log WHERE time < now() - make_interval(secs => $1) LIMIT $2)`, keep.Seconds(), pruneBatch*5)
		if err != nil {
			return deleted, err
		}
		deleted += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch*5 {
			return deleted, nil
		}
	}
}
