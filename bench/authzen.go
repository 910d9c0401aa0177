package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// authzenTarget sends the decision load through the AuthZEN routes (SPEC §17) of the HTTP listener, per tenant
// (/tenants/{tenant}/access/v1/…): CanAddMember and CheckMembership as single evaluations (add_member, member),
// a batch as one /evaluations call with the batch's items. The rest (EffectiveGroups, writes) has no AuthZEN form
// in the mix and goes to the native routes, as the HTTP target sends them.
type authzenTarget struct {
	*httpTarget
}

type azEntity struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type azAction struct {
	Name       string            `json:"name"`
	Properties map[string]string `json:"properties,omitempty"`
}

type azEvaluation struct {
	Subject  azEntity `json:"subject"`
	Action   azAction `json:"action"`
	Resource azEntity `json:"resource"`
}

func addMemberEvaluation(r *pb.CanAddMemberRequest) azEvaluation {
	return azEvaluation{
		Subject:  azEntity{"user", r.GetActorId()},
		Action:   azAction{Name: "add_member", Properties: map[string]string{"member_id": r.GetMemberId()}},
		Resource: azEntity{"group", r.GetGroupId()},
	}
}

func (t authzenTarget) CanAddMember(ctx context.Context, r *pb.CanAddMemberRequest) error {
	var d struct {
		Decision *bool `json:"decision"`
	}
	if err := t.postJSON(ctx, "/tenants/"+r.GetTenantId()+"/access/v1/evaluation", addMemberEvaluation(r), &d); err != nil {
		return err
	}
	if d.Decision == nil {
		return status.Error(codes.Internal, "an AuthZEN answer without a decision")
	}
	return nil
}

func (t authzenTarget) CheckMembership(ctx context.Context, r *pb.CheckMembershipRequest) error {
	var d struct {
		Decision *bool `json:"decision"`
	}
	e := azEvaluation{Subject: azEntity{"user", r.GetPrincipalId()}, Action: azAction{Name: "member"}, Resource: azEntity{"group", r.GetGroupId()}}
	if err := t.postJSON(ctx, "/tenants/"+r.GetTenantId()+"/access/v1/evaluation", e, &d); err != nil {
		return err
	}
	if d.Decision == nil {
		return status.Error(codes.Internal, "an AuthZEN answer without a decision")
	}
	return nil
}

func (t authzenTarget) CheckBatch(ctx context.Context, r *pb.CheckBatchRequest) error {
	items := make([]azEvaluation, 0, len(r.GetChecks()))
	for _, c := range r.GetChecks() {
		a := c.GetCanAddMember()
		if a == nil {
			return status.Errorf(codes.Unimplemented, "bench's AuthZEN target sends only add-member checks in a batch, not %T", c.GetCheck())
		}
		items = append(items, addMemberEvaluation(a))
	}
	var resp struct {
		Evaluations []json.RawMessage `json:"evaluations"`
	}
	if err := t.postJSON(ctx, "/tenants/"+r.GetTenantId()+"/access/v1/evaluations", map[string]any{"evaluations": items}, &resp); err != nil {
		return err
	}
	if len(resp.Evaluations) != len(items) {
		return status.Errorf(codes.Internal, "%d AuthZEN answers for %d items", len(resp.Evaluations), len(items))
	}
	return nil
}

// postJSON posts req as JSON and decodes the answer into resp; an error answer becomes its gRPC status.
func (t authzenTarget) postJSON(ctx context.Context, route string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hresp, err := t.sendBytes(ctx, route, body)
	if err != nil {
		return err
	}
	answer, err := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	if hresp.StatusCode != http.StatusOK {
		return statusError(hresp.StatusCode, answer)
	}
	if err := json.Unmarshal(answer, resp); err != nil {
		return status.Error(codes.Internal, fmt.Sprintf("%s answered %.200s: %v", route, answer, err))
	}
	return nil
}
