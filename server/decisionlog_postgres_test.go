package server_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/groupgate/groupgate/decisionlog"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/pgtest"
	"github.com/groupgate/groupgate/server/servertest"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/jackc/pgx/v5"
)

// TestPostgresDecisionLog: decisions served from a Postgres store are recorded in its decision_log table,
// ListDecisions and QueryDecisions read them back, and while the database is down decisions go on (answered from
// the replica's memory) while their records are lost and counted; after it returns, records are written again.
// The pruner deletes records older than Retention.DecisionLog.
func TestPostgresDecisionLog(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	url := pg.NewDatabase()
	var st *postgres.Store
	var dl *decisionlog.Logger
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	st, err = postgres.Open(ctx, url, postgres.Options{Logger: quiet, Retention: postgres.Retention{DecisionLog: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Import(ctx, d.Snapshot(), nil); err != nil {
		t.Fatal(err)
	}
	dl = decisionlog.New(st.DecisionLog(), decisionlog.Options{Logger: quiet, WriteTimeout: time.Second})
	t.Cleanup(func() { dl.Close(); st.Close() })
	srv := servertest.StartWith(t, servertest.Options{DecisionLog: dl, DecisionLogReader: st.DecisionLog(), Metrics: true,
		Store: func(store.ChangeListener) store.Store { return st }})
	ask := func(group string) *pb.Decision {
		t.Helper()
		resp, err := srv.Client.Decisions.CanAddMember(ctx, &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: group, MemberId: "u-gina", ActorId: "u-oscar"})
		if err != nil {
			t.Fatalf("CanAddMember: %v", err)
		}
		return resp.GetDecision()
	}
	denied := ask("grp-finance") // the label blocks guests
	waitFor(t, func() bool { return dl.Stats().Written == 1 })

	resp, err := srv.Client.Decisions.ListDecisions(ctx, &pb.ListDecisionsRequest{TenantId: "contoso", GroupId: "grp-finance"})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetRecords()) != 1 {
		t.Fatalf("ListDecisions: %d records, want 1", len(resp.GetRecords()))
	}
	r := resp.GetRecords()[0]
	if r.GetDecisionId() != denied.GetDecisionId() || r.GetVerdict() != pb.Verdict_VERDICT_DENY || r.GetMemberId() != "u-gina" ||
		len(r.GetViolations()) != 1 || r.GetViolations()[0] != pb.Rule_RULE_LABEL_BLOCKS_GUESTS || r.GetRpc() != "CanAddMember" {
		t.Fatalf("ListDecisions record %v, want the denial %s of u-gina", r, denied.GetDecisionId())
	}
	if other, err := srv.Client.Decisions.ListDecisions(ctx, &pb.ListDecisionsRequest{TenantId: "contoso", GroupId: "grp-engineering"}); err != nil || len(other.GetRecords()) != 0 {
		t.Fatalf("ListDecisions of another group: %v, %v; want none", other, err)
	}

	// The database goes away: decisions are still answered, at once; their records fail and are counted.
	pg.Stop()
	start := time.Now()
	for range 50 {
		ask("grp-eng-contractors")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("50 decisions took %s with the decision log's database down", took)
	}
	waitFor(t, func() bool { return dl.Stats().Failed == 50 })
	if got := metricValue(t, srv, "groupgate_decision_log_dropped_total", "write_failed"); got != 50 {
		t.Fatalf("groupgate_decision_log_dropped_total{reason=write_failed} = %v, want 50", got)
	}
	pg.Restart()
	back := ask("grp-eng-contractors")
	waitFor(t, func() bool { return dl.Stats().Written == 2 })
	got, err := st.DecisionLog().QueryDecisions(ctx, decisionlog.Query{DecisionID: back.GetDecisionId()})
	if err != nil || len(got) != 1 || got[0].Verdict != "ALLOW" || got[0].GroupID != "grp-eng-contractors" {
		t.Fatalf("QueryDecisions(--id %s) = %v, %v; want u-gina allowed into grp-eng-contractors", back.GetDecisionId(), got, err)
	}
	got, err = st.DecisionLog().QueryDecisions(ctx, decisionlog.Query{Verdict: "DENY"})
	if err != nil || len(got) != 1 || got[0].DecisionID != denied.GetDecisionId() {
		t.Fatalf("QueryDecisions(--verdict deny) = %v, %v; want the one denial", got, err)
	}

	// The pruner deletes what is older than the retention, and only that.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE decision_log SET time = now() - interval '2 hours' WHERE decision_id = $1", denied.GetDecisionId()); err != nil {
		t.Fatal(err)
	}
	ps, err := st.Prune(ctx)
	if err != nil || ps.Decisions != 1 {
		t.Fatalf("Prune: %+v, %v; want 1 decision record deleted", ps, err)
	}
	if got, err := st.DecisionLog().QueryDecisions(ctx, decisionlog.Query{}); err != nil || len(got) != 1 || got[0].DecisionID != back.GetDecisionId() {
		t.Fatalf("after pruning: %v, %v; want only the recent record", got, err)
	}
}
