// Package decisionlog keeps a record of every decision (SPEC §14): what was asked, by whom, on which revision,
// and what was answered, so that an identity workflow can say later why a change was allowed.
//
// The server hands each Record to a Logger, which never blocks it: records go through a bounded buffer to one
// writer goroutine that writes them in batches to a Sink (JSON lines on stdout or in a rotated file, or a
// PostgreSQL table, see store/postgres). A full buffer drops the record and counts it; so does a write that
// fails (a full disk, a lost database): a decision never waits for, or fails because of, its record.
package decisionlog

import (
	"context"
	"time"
)

// Record is one decision. Its JSON form is one line of a file log and the `groupgate decisions -o json` output.
// It never holds a token or a request body beyond the ids below.
type Record struct {
	Time       time.Time `json:"time"`
	DecisionID string    `json:"decision_id"`
	TenantID   string    `json:"tenant_id"`
	Revision   int64     `json:"revision"`
	// RPC is the method's name (CanAddMember, CheckBatch, EvaluatePlan, …); a CheckBatch item or an EvaluatePlan
	// step is a record of its own, with its own ids.
	RPC string `json:"rpc"`
	// The request's ids: what the question was about. Action is CanModifyUser's action, or the change an
	// EvaluatePlan step makes (add_member, upsert_group, …).
	GroupID  string `json:"group_id,omitempty"`
	MemberID string `json:"member_id,omitempty"`
	LabelID  string `json:"label_id,omitempty"`
	ActorID  string `json:"actor_id,omitempty"`
	Action   string `json:"action,omitempty"`
	// Verdict and EntraVerdict are ALLOW or DENY.
	Verdict      string   `json:"verdict"`
	EntraVerdict string   `json:"entra_verdict"`
	Violations   []string `json:"violations,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
	// Caller is who asked (SPEC §13); nil when authentication is off.
	Caller    *Caller `json:"caller,omitempty"`
	TraceID   string  `json:"trace_id,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
}

// Caller is the authenticated caller of a decision: a static token's kind and name, or a JWT's tenant, object
// and application ids. Never the token.
type Caller struct {
	Kind     string `json:"kind"`
	Role     string `json:"role,omitempty"`
	Name     string `json:"name,omitempty"`
	TenantID string `json:"tid,omitempty"`
	ObjectID string `json:"oid,omitempty"`
	AppID    string `json:"appid,omitempty"`
}

// Sink is where a Logger's writer goroutine puts records, a batch at a time. Write is never called concurrently.
type Sink interface {
	Write(ctx context.Context, batch []*Record) error
	Close() error
}

// Query selects records: every set field must match. The newest come first.
type Query struct {
	Since    time.Time
	TenantID string
	GroupID  string
	ActorID  string
	// Verdict is ALLOW or DENY (the strict verdict).
	Verdict    string
	DecisionID string
	// Limit bounds the answer; 0 means no bound.
	Limit int
}

// Match reports whether r passes q's filters (Limit aside).
func (q *Query) Match(r *Record) bool {
	switch {
	case !q.Since.IsZero() && r.Time.Before(q.Since),
		q.TenantID != "" && r.TenantID != q.TenantID,
		q.GroupID != "" && r.GroupID != q.GroupID,
		q.ActorID != "" && r.ActorID != q.ActorID,
		q.Verdict != "" && r.Verdict != q.Verdict,
		q.DecisionID != "" && r.DecisionID != q.DecisionID:
		return false
	}
	return true
}
