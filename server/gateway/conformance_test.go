package gateway_test

import (
	"net/http"
	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/conformance"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// TestConformanceOverHTTP runs testdata/conformance against the HTTP/JSON API of a real server: every Can* case
// through its own route and as an item of /v1/checkBatch, plans through /v1/evaluatePlan, audits as NDJSON.
func TestConformanceOverHTTP(t *testing.T) {
	conformance.Run(t, "../../testdata/conformance", func(t *testing.T, d *directory.Directory) conformance.Target {
		return &httpTarget{base: servertest.StartWith(t, servertest.Options{HTTP: true}, d).HTTPURL}
	})
}

type httpTarget struct{ base string }

// post sends req as protobuf JSON and reads the answer into resp, or returns the error status's code.
func (h *httpTarget) post(t *testing.T, route string, req, resp proto.Message) codes.Code {
	t.Helper()
	a := do(t, h.base, call{path: route, body: protojson.Format(req)})
	if a.code != http.StatusOK {
		st := statusOf(t, a.body)
		if st.Code() == codes.OK {
			t.Fatalf("HTTP %d with status OK: %s", a.code, a.body)
		}
		return st.Code()
	}
	if err := protojson.Unmarshal(a.body, resp); err != nil {
		t.Fatalf("%s answered %s: %v", route, a.body, err)
	}
	return codes.OK
}

func (h *httpTarget) Check(t *testing.T, item *pb.CheckBatchItem) (*pb.Decision, codes.Code) {
	var req proto.Message
	var resp interface {
		proto.Message
		GetDecision() *pb.Decision
	}
	var route, tenant string
	switch q := item.GetCheck().(type) {
	case *pb.CheckBatchItem_CanAddMember:
		req, resp, route, tenant = q.CanAddMember, &pb.CanAddMemberResponse{}, "canAddMember", q.CanAddMember.GetTenantId()
	case *pb.CheckBatchItem_CanApplyLabel:
		req, resp, route, tenant = q.CanApplyLabel, &pb.CanApplyLabelResponse{}, "canApplyLabel", q.CanApplyLabel.GetTenantId()
	case *pb.CheckBatchItem_CanChangeLabel:
		req, resp, route, tenant = q.CanChangeLabel, &pb.CanChangeLabelResponse{}, "canChangeLabel", q.CanChangeLabel.GetTenantId()
	case *pb.CheckBatchItem_CanCreateRoleGroup:
		req, resp, route, tenant = q.CanCreateRoleGroup, &pb.CanCreateRoleGroupResponse{}, "canCreateRoleGroup", q.CanCreateRoleGroup.GetTenantId()
	case *pb.CheckBatchItem_CanModifyUser:
		req, resp, route, tenant = q.CanModifyUser, &pb.CanModifyUserResponse{}, "canModifyUser", q.CanModifyUser.GetTenantId()
	default:
		t.Fatalf("unknown check %T", item.GetCheck())
	}
	code := h.post(t, "/v1/"+route, req, resp)
	// The same question inside a batch must give the same answer (or the same error, as a per-item status).
	var batch pb.CheckBatchResponse
	if bc := h.post(t, "/v1/checkBatch", &pb.CheckBatchRequest{TenantId: tenant, Checks: []*pb.CheckBatchItem{item}}, &batch); bc != codes.OK {
		t.Fatalf("checkBatch: %v", bc)
	}
	res := batch.GetResults()[0]
	switch {
	case code != codes.OK && codes.Code(res.GetError().GetCode()) != code:
		t.Errorf("/v1/%s answered %v, checkBatch item %v", route, code, res.GetError())
	case code == codes.OK && !sameDecision(resp.GetDecision(), res.GetDecision()):
		t.Errorf("/v1/%s and checkBatch disagree:\n%v\n%v", route, resp.GetDecision(), res.GetDecision())
	}
	if code != codes.OK {
		return nil, code
	}
	return resp.GetDecision(), code
}

func (h *httpTarget) Plan(t *testing.T, req *pb.EvaluatePlanRequest) ([]*pb.PlanStepResult, codes.Code) {
	var resp pb.EvaluatePlanResponse
	code := h.post(t, "/v1/evaluatePlan", req, &resp)
	return resp.GetResults(), code
}

func (h *httpTarget) Audit(t *testing.T, req *pb.AuditRequest) ([]*pb.Finding, codes.Code) {
	code, _, lines := stream(t, h.base, "/v1/audit", "", protojson.Format(req))
	if code != http.StatusOK {
		if len(lines) != 1 || lines[0]["error"] == nil {
			t.Fatalf("HTTP %d without an error line: %v", code, lines)
		}
		return nil, statusOf(t, lines[0]["error"]).Code()
	}
	var out []*pb.Finding
	var rev int64 = -1
	for _, l := range lines {
		if l["error"] != nil {
			t.Fatalf("audit stream failed midway: %s", l["error"])
		}
		var r pb.AuditResponse
		if err := protojson.Unmarshal(l["result"], &r); err != nil {
			t.Fatalf("line %s: %v", l["result"], err)
		}
		if rev != -1 && r.GetRevision() != rev {
			t.Errorf("audit stream changed revision %d -> %d", rev, r.GetRevision())
		}
		rev = r.GetRevision()
		out = append(out, r.GetFindings()...)
	}
	return out, codes.OK
}

func (h *httpTarget) EffectiveGroups(t *testing.T, req *pb.EffectiveGroupsRequest) ([]*pb.EffectiveGroup, codes.Code) {
	code, _, lines := stream(t, h.base, "/v1/effectiveGroups", "", protojson.Format(req))
	if code != http.StatusOK {
		if len(lines) != 1 || lines[0]["error"] == nil {
			t.Fatalf("HTTP %d without an error line: %v", code, lines)
		}
		return nil, statusOf(t, lines[0]["error"]).Code()
	}
	var out []*pb.EffectiveGroup
	var rev int64 = -1
	for _, l := range lines {
		if l["error"] != nil {
			t.Fatalf("effectiveGroups stream failed midway: %s", l["error"])
		}
		var r pb.EffectiveGroupsResponse
		if err := protojson.Unmarshal(l["result"], &r); err != nil {
			t.Fatalf("line %s: %v", l["result"], err)
		}
		if rev != -1 && r.GetRevision() != rev {
			t.Errorf("effectiveGroups stream changed revision %d -> %d", rev, r.GetRevision())
		}
		rev = r.GetRevision()
		out = append(out, r.GetGroups()...)
	}
	return out, codes.OK
}

// sameDecision says whether two decisions are the same but for their decision ids, which both must have.
func sameDecision(a, b *pb.Decision) bool {
	if a.GetDecisionId() == "" || b.GetDecisionId() == "" {
		return false
	}
	a, b = proto.CloneOf(a), proto.CloneOf(b)
	a.DecisionId, b.DecisionId = "", ""
	return proto.Equal(a, b)
}
