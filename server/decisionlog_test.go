package server_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/decisionlog"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server/servertest"
)

// capturedLog is a server.DecisionLog that keeps what it is given.
type capturedLog struct {
	mu      sync.Mutex
	records []*decisionlog.Record
}

func (c *capturedLog) Log(r *decisionlog.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r)
}

func (c *capturedLog) Stats() decisionlog.Stats { return decisionlog.Stats{} }

func (c *capturedLog) take() []*decisionlog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.records
	c.records = nil
	return r
}

func mustV7(t *testing.T, id string) {
	t.Helper()
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		t.Fatalf("decision_id %q: want a UUIDv7 (%v)", id, err)
	}
}

// Every decision has its own UUIDv7 decision_id, and a record that carries it with the request's ids, both
// verdicts, the rule codes and the caller.
func TestDecisionIDsAndRecords(t *testing.T) {
	log := &capturedLog{}
	srv := servertest.StartWith(t, servertest.Options{Tokens: tokens(t), DecisionLog: log, Client: client.Options{Token: writerToken}})
	ctx := context.Background()
	d := srv.Client.Decisions

	deny, err := d.CanAddMember(ctx, &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-finance", MemberId: "u-gina", ActorId: "u-oscar"})
	if err != nil {
		t.Fatal(err)
	}
	mustV7(t, deny.GetDecision().GetDecisionId())
	recs := log.take()
	if len(recs) != 1 {
		t.Fatalf("%d records after one decision, want 1", len(recs))
	}
	r := recs[0]
	want := decisionlog.Record{DecisionID: deny.GetDecision().GetDecisionId(), TenantID: "contoso", Revision: deny.GetDecision().GetRevision(),
		RPC: "CanAddMember", GroupID: "grp-finance", MemberID: "u-gina", ActorID: "u-oscar", Verdict: "DENY", EntraVerdict: "DENY"}
	if r.DecisionID != want.DecisionID || r.TenantID != want.TenantID || r.Revision != want.Revision || r.RPC != want.RPC ||
		r.GroupID != want.GroupID || r.MemberID != want.MemberID || r.ActorID != want.ActorID || r.Verdict != want.Verdict ||
		r.EntraVerdict != want.EntraVerdict || r.LabelID != "" {
		t.Fatalf("record %+v, want %+v", r, want)
	}
	if len(r.Violations) != 1 || r.Violations[0] != "RULE_LABEL_BLOCKS_GUESTS" {
		t.Fatalf("record's violations %v, want [RULE_LABEL_BLOCKS_GUESTS]", r.Violations)
	}
	if r.Caller == nil || r.Caller.Kind != "token" || r.Caller.Role != "writer" {
		t.Fatalf("record's caller %+v, want the writer token", r.Caller)
	}
	if r.Time.IsZero() || r.LatencyMS < 0 {
		t.Fatalf("record's time %s, latency %v ms", r.Time, r.LatencyMS)
	}

	// CheckBatch: one id and one record per item; an item that fails has neither.
	batch, err := d.CheckBatch(ctx, &pb.CheckBatchRequest{TenantId: "contoso", Checks: []*pb.CheckBatchItem{
		{Check: &pb.CheckBatchItem_CanAddMember{CanAddMember: &pb.CanAddMemberRequest{GroupId: "grp-finance", MemberId: "u-gina", ActorId: "u-oscar"}}},
		{Check: &pb.CheckBatchItem_CanAddMember{CanAddMember: &pb.CanAddMemberRequest{GroupId: "grp-eng-contractors", MemberId: "u-gina", ActorId: "u-oscar"}}},
		{Check: &pb.CheckBatchItem_CanAddMember{CanAddMember: &pb.CanAddMemberRequest{GroupId: "grp-nope", MemberId: "u-gina", ActorId: "u-oscar"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	recs = log.take()
	if len(recs) != 2 {
		t.Fatalf("%d records after a batch of two decisions and an error, want 2", len(recs))
	}
	ids := map[string]bool{deny.GetDecision().GetDecisionId(): true}
	for i, res := range batch.GetResults()[:2] {
		id := res.GetDecision().GetDecisionId()
		mustV7(t, id)
		if ids[id] {
			t.Fatalf("item %d repeats decision_id %s", i, id)
		}
		ids[id] = true
		if recs[i].DecisionID != id || recs[i].RPC != "CheckBatch" {
			t.Fatalf("record %d: %+v, want decision %s of CheckBatch", i, recs[i], id)
		}
	}
	if recs[1].GroupID != "grp-eng-contractors" || recs[1].Verdict != "ALLOW" {
		t.Fatalf("second item's record %+v, want grp-eng-contractors allowed", recs[1])
	}

	// EvaluatePlan: each decided step.
	plan, err := d.EvaluatePlan(ctx, &pb.EvaluatePlanRequest{TenantId: "contoso", ActorId: "u-oscar", Steps: []*pb.PlanStep{
		{Change: &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: "grp-eng-contractors", MemberId: "u-gina"}}}},
		{Change: &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: "grp-finance", MemberId: "u-gina"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	recs = log.take()
	if len(recs) != 2 {
		t.Fatalf("%d records after a plan of two steps, want 2", len(recs))
	}
	for i, res := range plan.GetResults() {
		id := res.GetDecision().GetDecisionId()
		mustV7(t, id)
		if ids[id] {
			t.Fatalf("step %d repeats decision_id %s", i, id)
		}
		ids[id] = true
		if recs[i].DecisionID != id || recs[i].RPC != "EvaluatePlan" || recs[i].Action != "add_member" || recs[i].ActorID != "u-oscar" {
			t.Fatalf("step %d's record %+v, want decision %s of EvaluatePlan, add_member by u-oscar", i, recs[i], id)
		}
	}

	// Look-ups are not decisions.
	if _, err := srv.Client.CheckMembership(ctx, "contoso", "grp-finance", "u-dave"); err != nil {
		t.Fatal(err)
	}
	if recs := log.take(); len(recs) != 0 {
		t.Fatalf("CheckMembership left %d records, want none", len(recs))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricValue is the value of a counter of the server's registry with the given reason label ("" for none).
func metricValue(t *testing.T, srv *servertest.Server, name, reason string) float64 {
	t.Helper()
	families, err := srv.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := reason == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					match = true
				}
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{reason=%q}", name, reason)
	return 0
}
