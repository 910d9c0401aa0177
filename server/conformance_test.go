package server_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/conformance"
	"github.com/groupgate/groupgate/internal/pgtest"
	"github.com/groupgate/groupgate/server/servertest"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/postgres"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestConformanceOverGRPC runs testdata/conformance against a real server on loopback. Each Can* case is asked
// twice, through its own RPC and as an item of CheckBatch, and both answers must meet the fixture.
func TestConformanceOverGRPC(t *testing.T) {
	conformance.Run(t, "../testdata/conformance", func(t *testing.T, d *directory.Directory) conformance.Target {
		return &grpcTarget{srv: servertest.Start(t, d)}
	})
}

// TestConformanceOnPostgres runs the fixtures against servers on the PostgreSQL store: each fixture tenant is
// imported into a fresh database by one store, and answered by a server whose store loaded it back from there.
func TestConformanceOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	conformance.Run(t, "../testdata/conformance", func(t *testing.T, d *directory.Directory) conformance.Target {
		url := pg.NewDatabase()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		seed, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := seed.Import(ctx, d.Snapshot(), nil); err != nil {
			t.Fatal(err)
		}
		seed.Close()
		srv := servertest.StartWith(t, servertest.Options{Store: func(onChange store.ChangeListener) store.Store {
			st, err := postgres.Open(ctx, url, postgres.Options{OnChange: onChange})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(st.Close)
			return st
		}})
		return &grpcTarget{srv: srv}
	})
}

type grpcTarget struct{ srv *servertest.Server }

func (g *grpcTarget) Check(t *testing.T, item *pb.CheckBatchItem) (*pb.Decision, codes.Code) {
	ctx := context.Background()
	c := g.srv.Client.Decisions
	var d *pb.Decision
	var err error
	switch q := item.GetCheck().(type) {
	case *pb.CheckBatchItem_CanAddMember:
		var r *pb.CanAddMemberResponse
		r, err = c.CanAddMember(ctx, q.CanAddMember)
		d = r.GetDecision()
	case *pb.CheckBatchItem_CanApplyLabel:
		var r *pb.CanApplyLabelResponse
		r, err = c.CanApplyLabel(ctx, q.CanApplyLabel)
		d = r.GetDecision()
	case *pb.CheckBatchItem_CanChangeLabel:
		var r *pb.CanChangeLabelResponse
		r, err = c.CanChangeLabel(ctx, q.CanChangeLabel)
		d = r.GetDecision()
	case *pb.CheckBatchItem_CanCreateRoleGroup:
		var r *pb.CanCreateRoleGroupResponse
		r, err = c.CanCreateRoleGroup(ctx, q.CanCreateRoleGroup)
		d = r.GetDecision()
	case *pb.CheckBatchItem_CanModifyUser:
		var r *pb.CanModifyUserResponse
		r, err = c.CanModifyUser(ctx, q.CanModifyUser)
		d = r.GetDecision()
	}
	// The same question inside a batch must give the same answer (or the same error, as a per-item status).
	batch, berr := c.CheckBatch(ctx, &pb.CheckBatchRequest{TenantId: tenantOf(item), Checks: []*pb.CheckBatchItem{item}})
	if berr != nil {
		t.Fatalf("CheckBatch: %v", berr)
	}
	res := batch.GetResults()[0]
	switch {
	case err != nil && codes.Code(res.GetError().GetCode()) != status.Code(err):
		t.Errorf("RPC answered %v, CheckBatch item %v", status.Code(err), res.GetError())
	case err == nil && !sameDecision(d, res.GetDecision()):
		t.Errorf("RPC and CheckBatch disagree:\n%v\n%v", d, res.GetDecision())
	}
	return d, status.Code(err)
}

func tenantOf(item *pb.CheckBatchItem) string {
	switch q := item.GetCheck().(type) {
	case *pb.CheckBatchItem_CanAddMember:
		return q.CanAddMember.GetTenantId()
	case *pb.CheckBatchItem_CanApplyLabel:
		return q.CanApplyLabel.GetTenantId()
	case *pb.CheckBatchItem_CanChangeLabel:
		return q.CanChangeLabel.GetTenantId()
	case *pb.CheckBatchItem_CanCreateRoleGroup:
		return q.CanCreateRoleGroup.GetTenantId()
	case *pb.CheckBatchItem_CanModifyUser:
		return q.CanModifyUser.GetTenantId()
	}
	return ""
}

func sameDecision(a, b *pb.Decision) bool {
	if a.GetVerdict() != b.GetVerdict() || a.GetEntraVerdict() != b.GetEntraVerdict() || len(a.GetViolations()) != len(b.GetViolations()) {
		return false
	}
	for i := range a.GetViolations() {
		if a.GetViolations()[i].GetRule() != b.GetViolations()[i].GetRule() {
			return false
		}
	}
	return true
}

func (g *grpcTarget) Plan(t *testing.T, req *pb.EvaluatePlanRequest) ([]*pb.PlanStepResult, codes.Code) {
	resp, err := g.srv.Client.Decisions.EvaluatePlan(context.Background(), req)
	return resp.GetResults(), status.Code(err)
}

func (g *grpcTarget) Audit(t *testing.T, req *pb.AuditRequest) ([]*pb.Finding, codes.Code) {
	stream, err := g.srv.Client.Decisions.Audit(context.Background(), req)
	if err != nil {
		return nil, status.Code(err)
	}
	var out []*pb.Finding
	var rev int64 = -1
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, codes.OK
		}
		if err != nil {
			return nil, status.Code(err)
		}
		if rev != -1 && resp.GetRevision() != rev {
			t.Errorf("audit stream changed revision %d -> %d", rev, resp.GetRevision())
		}
		rev = resp.GetRevision()
		out = append(out, resp.GetFindings()...)
	}
}

func (g *grpcTarget) EffectiveGroups(t *testing.T, req *pb.EffectiveGroupsRequest) ([]*pb.EffectiveGroup, codes.Code) {
	var out []*pb.EffectiveGroup
	revisions := map[int64]bool{}
	err := g.srv.Client.EachGroup(context.Background(), req, func(r *pb.EffectiveGroupsResponse) error {
		revisions[r.GetRevision()] = true
		out = append(out, r.GetGroups()...)
		return nil
	})
	if err == nil && len(revisions) != 1 {
		t.Errorf("one call's messages carry revisions %v, want one", revisions)
	}
	return out, status.Code(err)
}
