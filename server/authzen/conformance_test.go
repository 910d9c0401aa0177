package authzen_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/conformance"
	"github.com/groupgate/groupgate/server/servertest"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestConformanceOverAuthZEN runs testdata/conformance against a real server's HTTP listener and asks every
// CanAddMember, CanApplyLabel, CanChangeLabel and CanModifyUser case twice: natively (POST /v1/…, whose answer the
// fixture judges) and through POST /tenants/{tenant}/access/v1/evaluations as two items, strict and
// context.verdict "entra" (SPEC §17's mapping), which must agree with it — decision, both verdicts, the rules and
// paths of violations and warnings, the revision; a native error must be the AuthZEN item's context.error with
// the same HTTP status. Every EffectiveGroups case is also asked as a resource search, which must find the same
// groups, and each group it lists as a member evaluation, which must permit it (the fixtures have no
// CheckMembership cases of their own). CanCreateRoleGroup has no AuthZEN shape and is asked natively only.
func TestConformanceOverAuthZEN(t *testing.T) {
	conformance.Run(t, "../../testdata/conformance", func(t *testing.T, d *directory.Directory) conformance.Target {
		return &authzenTarget{base: servertest.StartWith(t, servertest.Options{HTTP: true}, d).HTTPURL}
	})
}

type authzenTarget struct{ base string }

// native posts req to /v1/{route} and reads the answer into resp, or returns the error's code.
func (a *authzenTarget) native(t *testing.T, route string, req, resp proto.Message) codes.Code {
	t.Helper()
	ans := post(t, a.base+"/v1/"+route, protojson.Format(req))
	if ans.code != http.StatusOK {
		var s struct {
			Code int `json:"code"`
		}
		if err := json.Unmarshal(ans.body, &s); err != nil || s.Code == 0 {
			t.Fatalf("/v1/%s: HTTP %d %s", route, ans.code, ans.body)
		}
		return codes.Code(s.Code)
	}
	if err := protojson.Unmarshal(ans.body, resp); err != nil {
		t.Fatalf("/v1/%s answered %s: %v", route, ans.body, err)
	}
	return codes.OK
}

// question is a Can* item as AuthZEN subject, action and resource.
func question(item *pb.CheckBatchItem) (tenant string, q map[string]any, ok bool) {
	ent := func(typ, id string) map[string]any { return map[string]any{"type": typ, "id": id} }
	act := func(name string, props map[string]any) map[string]any {
		return map[string]any{"name": name, "properties": props}
	}
	switch c := item.GetCheck().(type) {
	case *pb.CheckBatchItem_CanAddMember:
		r := c.CanAddMember
		return r.GetTenantId(), map[string]any{"subject": ent("user", r.GetActorId()), "resource": ent("group", r.GetGroupId()),
			"action": act("add_member", map[string]any{"member_id": r.GetMemberId()})}, true
	case *pb.CheckBatchItem_CanApplyLabel:
		r := c.CanApplyLabel
		return r.GetTenantId(), map[string]any{"subject": ent("user", r.GetActorId()), "resource": ent("group", r.GetGroupId()),
			"action": act("apply_label", map[string]any{"label_id": r.GetLabelId()})}, true
	case *pb.CheckBatchItem_CanChangeLabel:
		r := c.CanChangeLabel
		return r.GetTenantId(), map[string]any{"subject": ent("user", r.GetActorId()), "resource": ent("group", r.GetGroupId()),
			"action": act("change_label", map[string]any{"label_id": r.GetLabelId()})}, true
	case *pb.CheckBatchItem_CanModifyUser:
		r := c.CanModifyUser
		name := map[pb.UserAction]string{
			pb.UserAction_USER_ACTION_RESET_PASSWORD:              "reset_password",
			pb.UserAction_USER_ACTION_RESET_MFA:                   "reset_mfa",
			pb.UserAction_USER_ACTION_UPDATE_SENSITIVE_ATTRIBUTES: "update_sensitive_attributes",
			pb.UserAction_USER_ACTION_UNSPECIFIED:                 "",
		}[r.GetAction()]
		return r.GetTenantId(), map[string]any{"subject": ent("user", r.GetActorId()), "resource": ent("user", r.GetTargetUserId()),
			"action": act(name, nil)}, true
	}
	return "", nil, false
}

func (a *authzenTarget) Check(t *testing.T, item *pb.CheckBatchItem) (*pb.Decision, codes.Code) {
	var resp interface {
		proto.Message
		GetDecision() *pb.Decision
	}
	var req proto.Message
	var route string
	switch c := item.GetCheck().(type) {
	case *pb.CheckBatchItem_CanAddMember:
		req, resp, route = c.CanAddMember, &pb.CanAddMemberResponse{}, "canAddMember"
	case *pb.CheckBatchItem_CanApplyLabel:
		req, resp, route = c.CanApplyLabel, &pb.CanApplyLabelResponse{}, "canApplyLabel"
	case *pb.CheckBatchItem_CanChangeLabel:
		req, resp, route = c.CanChangeLabel, &pb.CanChangeLabelResponse{}, "canChangeLabel"
	case *pb.CheckBatchItem_CanCreateRoleGroup:
		req, resp, route = c.CanCreateRoleGroup, &pb.CanCreateRoleGroupResponse{}, "canCreateRoleGroup"
	case *pb.CheckBatchItem_CanModifyUser:
		req, resp, route = c.CanModifyUser, &pb.CanModifyUserResponse{}, "canModifyUser"
	default:
		t.Fatalf("unknown check %T", item.GetCheck())
	}
	code := a.native(t, route, req, resp)
	tenant, q, ok := question(item)
	if !ok {
		if code != codes.OK {
			return nil, code
		}
		return resp.GetDecision(), code
	}
	strict, entra := maps(q), maps(q)
	entra["context"] = map[string]any{"verdict": "entra"}
	body, _ := json.Marshal(map[string]any{"evaluations": []any{strict, entra}})
	ans := post(t, a.base+"/tenants/"+tenant+"/access/v1/evaluations", string(body))
	if ans.code != http.StatusOK {
		t.Fatalf("AuthZEN evaluations: HTTP %d %s", ans.code, ans.body)
	}
	var got struct {
		Evaluations []struct {
			Decision bool           `json:"decision"`
			Context  map[string]any `json:"context"`
		} `json:"evaluations"`
	}
	if err := json.Unmarshal(ans.body, &got); err != nil || len(got.Evaluations) != 2 {
		t.Fatalf("AuthZEN evaluations answered %s: %v", ans.body, err)
	}
	if code != codes.OK {
		for _, ev := range got.Evaluations {
			e, _ := ev.Context["error"].(map[string]any)
			if ev.Decision || e == nil || e["status"] != float64(runtime.HTTPStatusFromCode(code)) {
				t.Errorf("native %v; AuthZEN %s", code, ans.body)
			}
		}
		return nil, code
	}
	d := resp.GetDecision()
	want := []bool{d.GetVerdict() == pb.Verdict_VERDICT_ALLOW, d.GetEntraVerdict() == pb.Verdict_VERDICT_ALLOW}
	for i, ev := range got.Evaluations {
		c := ev.Context
		if ev.Decision != want[i] || c["verdict"] != d.GetVerdict().String() || c["entra_verdict"] != d.GetEntraVerdict().String() ||
			c["revision"] != float64(d.GetRevision()) ||
			!slices.Equal(evidence(c["violations"]), nativeEvidence(d.GetViolations())) ||
			!slices.Equal(evidence(c["warnings"]), nativeEvidence(d.GetWarnings())) {
			t.Errorf("item %d: native %v\nAuthZEN %s", i, d, ans.body)
		}
	}
	return d, code
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func evidence(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		m := x.(map[string]any)
		out = append(out, fmt.Sprint(m["rule"], m["path"], m["message"]))
	}
	return out
}

func nativeEvidence(vs []*pb.Violation) []string {
	var out []string
	for _, v := range vs {
		path := make([]any, 0, len(v.GetPath()))
		for _, p := range v.GetPath() {
			path = append(path, p)
		}
		out = append(out, fmt.Sprint(v.GetRule().String(), path, v.GetMessage()))
	}
	return out
}

func (a *authzenTarget) Plan(t *testing.T, req *pb.EvaluatePlanRequest) ([]*pb.PlanStepResult, codes.Code) {
	var resp pb.EvaluatePlanResponse
	code := a.native(t, "evaluatePlan", req, &resp)
	return resp.GetResults(), code
}

// Audit is native only (AuthZEN has no audit question): /v1/audit as NDJSON.
func (a *authzenTarget) Audit(t *testing.T, req *pb.AuditRequest) ([]*pb.Finding, codes.Code) {
	lines, code := a.ndjson(t, "audit", req)
	var out []*pb.Finding
	for _, l := range lines {
		var r pb.AuditResponse
		if err := protojson.Unmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r.GetFindings()...)
	}
	return out, code
}

// EffectiveGroups answers natively, and the AuthZEN resource search for the principal must find the same groups
// when the request asks for all of them.
func (a *authzenTarget) EffectiveGroups(t *testing.T, req *pb.EffectiveGroupsRequest) ([]*pb.EffectiveGroup, codes.Code) {
	lines, code := a.ndjson(t, "effectiveGroups", req)
	var out []*pb.EffectiveGroup
	for _, l := range lines {
		var r pb.EffectiveGroupsResponse
		if err := protojson.Unmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r.GetGroups()...)
	}
	if req.GetLabelledOnly() || req.GetRoleAssignableOnly() || req.GetConsistency() != nil || req.GetPrincipalId() == "" {
		return out, code
	}
	body, _ := json.Marshal(map[string]any{"subject": map[string]any{"type": "user", "id": req.GetPrincipalId()},
		"action": map[string]any{"name": "member"}, "resource": map[string]any{"type": "group"}})
	ans := post(t, a.base+"/tenants/"+req.GetTenantId()+"/access/v1/search/resource", string(body))
	if ans.code != http.StatusOK {
		if code == codes.OK || code == codes.NotFound {
			t.Errorf("AuthZEN resource search: HTTP %d %s (native %v)", ans.code, ans.body, code)
		}
		return out, code
	}
	var got []string
	for _, r := range ans.json(t)["results"].([]any) {
		got = append(got, r.(map[string]any)["id"].(string))
	}
	var want []string
	for _, g := range out {
		want = append(want, g.GetId())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("AuthZEN resource search %v, EffectiveGroups %v (native %v)", got, want, code)
	}
	// The fixtures have no CheckMembership cases of their own: every group EffectiveGroups lists is asked as a
	// member evaluation, which must permit it (SPEC §17: member is CheckMembership).
	if len(want) > 0 {
		var items []any
		for _, g := range want {
			items = append(items, map[string]any{"resource": map[string]any{"type": "group", "id": g}})
		}
		body, _ := json.Marshal(map[string]any{"subject": map[string]any{"type": "user", "id": req.GetPrincipalId()},
			"action": map[string]any{"name": "member"}, "evaluations": items})
		m := wantOK(t, post(t, a.base+"/tenants/"+req.GetTenantId()+"/access/v1/evaluations", string(body)))
		for i, ev := range m["evaluations"].([]any) {
			if ev.(map[string]any)["decision"] != true {
				t.Errorf("member of %s (listed by EffectiveGroups): %v", want[i], ev)
			}
		}
	}
	return out, code
}

// ndjson posts a server-stream route and returns each line's result, or the error line's code.
func (a *authzenTarget) ndjson(t *testing.T, route string, req proto.Message) ([][]byte, codes.Code) {
	t.Helper()
	ans := post(t, a.base+"/v1/"+route, protojson.Format(req))
	var out [][]byte
	dec := json.NewDecoder(bytes.NewReader(ans.body))
	for dec.More() {
		var line struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("/v1/%s: %v in %s", route, err, ans.body)
		}
		if line.Error != nil {
			st := &structpb.Struct{}
			_ = protojson.Unmarshal(line.Error, st)
			return nil, codes.Code(int(st.GetFields()["code"].GetNumberValue()))
		}
		out = append(out, line.Result)
	}
	if ans.code != http.StatusOK {
		t.Fatalf("/v1/%s: HTTP %d without an error line: %s", route, ans.code, ans.body)
	}
	return out, codes.OK
}
