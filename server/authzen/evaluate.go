package authzen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// entity is a subject or a resource (AuthZEN §Subject, §Resource): ids are directory object ids.
type entity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Properties map[string]any `json:"properties,omitempty"`
}

// action is AuthZEN §Action.
type action struct {
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties,omitempty"`
}

// evaluationRequest is AuthZEN §Access Evaluation API Request (and one item of a batch). Unknown fields are
// ignored (§JSON Serialization: receivers MUST ignore them).
type evaluationRequest struct {
	Subject  *entity        `json:"subject"`
	Action   *action        `json:"action"`
	Resource *entity        `json:"resource"`
	Context  map[string]any `json:"context"`
}

// decision is AuthZEN §Decision.
type decision struct {
	Decision bool           `json:"decision"`
	Context  map[string]any `json:"context,omitempty"`
}

// The action names of SPEC §17 and what they ask.
const (
	actMember  = "member"
	actOwner   = "owner"
	actAdd     = "add_member"
	actApply   = "apply_label"
	actChange  = "change_label"
	actResetPW = "reset_password"
	actResetMF = "reset_mfa"
	actSensAtt = "update_sensitive_attributes"
)

var userActions = map[string]pb.UserAction{
	actResetPW: pb.UserAction_USER_ACTION_RESET_PASSWORD,
	actResetMF: pb.UserAction_USER_ACTION_RESET_MFA,
	actSensAtt: pb.UserAction_USER_ACTION_UPDATE_SENSITIVE_ATTRIBUTES,
}

var subjectTypes = []string{"user", "group", "service_principal"}

func badRequest(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// decode reads body into v: a mistyped field is a 400 naming it (§JSON Serialization).
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest("field %s: got a JSON %s, want %s", te.Field, te.Value, jsonKind(te.Type.Kind().String()))
		}
		return badRequest("the body is not a valid JSON object: %v", err)
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "map", "struct", "ptr":
		return "an object"
	case "slice":
		return "an array"
	case "bool":
		return "a boolean"
	}
	return "a number"
}

// check refuses a request that lacks a required field or names a type or action groupgate does not answer: a 400
// (§JSON Serialization: a missing required attribute is a Bad Request).
func (e *evaluationRequest) check() error {
	switch {
	case e.Subject == nil:
		return badRequest("subject is required")
	case e.Subject.Type == "":
		return badRequest("subject.type is required")
	case e.Subject.ID == "":
		return badRequest("subject.id is required")
	case e.Action == nil:
		return badRequest("action is required")
	case e.Action.Name == "":
		return badRequest("action.name is required")
	case e.Resource == nil:
		return badRequest("resource is required")
	case e.Resource.Type == "":
		return badRequest("resource.type is required")
	case e.Resource.ID == "":
		return badRequest("resource.id is required")
	}
	if !slices.Contains(subjectTypes, e.Subject.Type) {
		return badRequest("subject.type %q: want user, group or service_principal", e.Subject.Type)
	}
	want := "group"
	switch e.Action.Name {
	case actMember, actOwner, actAdd, actApply, actChange:
	case actResetPW, actResetMF, actSensAtt:
		want = "user"
	default:
		return badRequest("action.name %q: groupgate answers member, owner, add_member, apply_label, change_label, reset_password, reset_mfa and update_sensitive_attributes", e.Action.Name)
	}
	if e.Resource.Type != want {
		return badRequest("resource.type %q: action %s is asked of a %s resource", e.Resource.Type, e.Action.Name, want)
	}
	switch e.Action.Name {
	case actAdd:
		if _, err := e.property("member_id", true); err != nil {
			return err
		}
	case actApply:
		if _, err := e.property("label_id", true); err != nil {
			return err
		}
	case actChange:
		// An empty (or absent) label_id removes the label, as in CanChangeLabel.
		if _, err := e.property("label_id", false); err != nil {
			return err
		}
	}
	if v, ok := e.Context["verdict"]; ok && v != "strict" && v != "entra" {
		return badRequest(`context.verdict %v: want "strict" (the default) or "entra"`, jsonValue(v))
	}
	if v, ok := e.Context["min_revision"]; ok {
		if f, isNum := v.(float64); !isNum || f < 0 || f != float64(int64(f)) {
			return badRequest("context.min_revision %v: want a non-negative integer", jsonValue(v))
		}
	}
	return nil
}

func (e *evaluationRequest) property(name string, required bool) (string, error) {
	v, ok := e.Action.Properties[name]
	if !ok || v == nil {
		if required {
			return "", badRequest("action.properties.%s is required for action %s", name, e.Action.Name)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok || (required && s == "") {
		return "", badRequest("action.properties.%s %v: want a non-empty string (a directory object id)", name, jsonValue(v))
	}
	return s, nil
}

func jsonValue(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 100 {
		b = append(b[:100], "…"...)
	}
	return string(b)
}

// consistency is context.min_revision as the server's Consistency (nil without it).
func (e *evaluationRequest) consistency() *pb.Consistency {
	if f, ok := e.Context["min_revision"].(float64); ok && f > 0 {
		return &pb.Consistency{MinRevision: int64(f)}
	}
	return nil
}

// evaluation answers POST …/access/v1/evaluation.
func (h *Handler) evaluation(ctx context.Context, tenant string, body []byte) (any, error) {
	var req evaluationRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if err := req.check(); err != nil {
		return nil, err
	}
	return h.evaluate(ctx, tenant, &req)
}

// evaluate answers one checked question. An unknown subject or resource id is a deny with context.error
// {status: 404, message} (SPEC §17); any other error of the server's is the request's.
func (h *Handler) evaluate(ctx context.Context, tenant string, e *evaluationRequest) (*decision, error) {
	d, err := h.ask(ctx, tenant, e)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return errorDecision(err), nil
		}
		return nil, err
	}
	return d, nil
}

func errorDecision(err error) *decision {
	st := status.Convert(err)
	return &decision{Context: map[string]any{"error": map[string]any{"status": httpStatus(st.Code()), "message": st.Message()}}}
}

func (h *Handler) ask(ctx context.Context, tenant string, e *evaluationRequest) (*decision, error) {
	cons := e.consistency()
	subject, resource := e.Subject.ID, e.Resource.ID
	switch e.Action.Name {
	case actMember:
		resp, err := h.dec.CheckMembership(ctx, &pb.CheckMembershipRequest{TenantId: tenant, Consistency: cons, GroupId: resource, PrincipalId: subject})
		if err != nil {
			return nil, err
		}
		c := map[string]any{"revision": resp.GetRevision()}
		if resp.GetIsMember() {
			c["path"] = resp.GetPath()
			c["reason_admin"] = map[string]string{"en": fmt.Sprintf("%s is a member of %s through %s", subject, resource, strings.Join(resp.GetPath(), " → "))}
		} else {
			c["reason_admin"] = map[string]string{"en": fmt.Sprintf("%s is not a member of %s, directly or through nested groups", subject, resource)}
		}
		return &decision{Decision: resp.GetIsMember(), Context: c}, nil
	case actOwner:
		owns, rev, err := h.owns(ctx, tenant, cons, subject, resource)
		if err != nil {
			return nil, err
		}
		c := map[string]any{"revision": rev}
		if owns {
			c["reason_admin"] = map[string]string{"en": fmt.Sprintf("%s owns %s", subject, resource)}
		} else {
			c["reason_admin"] = map[string]string{"en": fmt.Sprintf("%s is not an owner of %s", subject, resource)}
		}
		return &decision{Decision: owns, Context: c}, nil
	case actAdd:
		member, _ := e.property("member_id", true)
		resp, err := h.dec.CanAddMember(ctx, &pb.CanAddMemberRequest{TenantId: tenant, Consistency: cons, GroupId: resource, MemberId: member, ActorId: subject})
		if err != nil {
			return nil, err
		}
		return fromDecision(resp.GetDecision(), e), nil
	case actApply:
		label, _ := e.property("label_id", true)
		resp, err := h.dec.CanApplyLabel(ctx, &pb.CanApplyLabelRequest{TenantId: tenant, Consistency: cons, GroupId: resource, LabelId: label, ActorId: subject})
		if err != nil {
			return nil, err
		}
		return fromDecision(resp.GetDecision(), e), nil
	case actChange:
		label, _ := e.property("label_id", false)
		resp, err := h.dec.CanChangeLabel(ctx, &pb.CanChangeLabelRequest{TenantId: tenant, Consistency: cons, GroupId: resource, LabelId: label, ActorId: subject})
		if err != nil {
			return nil, err
		}
		return fromDecision(resp.GetDecision(), e), nil
	default: // the user actions; check has refused anything else
		resp, err := h.dec.CanModifyUser(ctx, &pb.CanModifyUserRequest{TenantId: tenant, Consistency: cons, TargetUserId: resource, ActorId: subject, Action: userActions[e.Action.Name]})
		if err != nil {
			return nil, err
		}
		return fromDecision(resp.GetDecision(), e), nil
	}
}

// owns: subject is among the group's owners (DescribeObject lists them all; its page is the direct members',
// kept to one). A subject that is not an owner must exist, or the answer is the 404 of an unknown id.
func (h *Handler) owns(ctx context.Context, tenant string, cons *pb.Consistency, subject, group string) (bool, int64, error) {
	resp, err := h.dec.DescribeObject(ctx, &pb.DescribeObjectRequest{TenantId: tenant, Consistency: cons, Id: group, PageSize: 1})
	if err != nil {
		return false, 0, err
	}
	g := resp.GetGroup()
	if g == nil {
		return false, 0, status.Errorf(codes.NotFound, "group %s not found (it is a %s)", group, kindName(resp.GetObject().GetKind()))
	}
	for _, o := range g.GetOwners() {
		if o.GetId() == subject {
			return true, resp.GetRevision(), nil
		}
	}
	look, err := h.dec.LookupObjects(ctx, &pb.LookupObjectsRequest{TenantId: tenant, Consistency: &pb.Consistency{MinRevision: resp.GetRevision()}, Ids: []string{subject}})
	if err != nil {
		return false, 0, err
	}
	if len(look.GetNotFound()) > 0 {
		return false, 0, status.Errorf(codes.NotFound, "principal %s not found", subject)
	}
	return false, resp.GetRevision(), nil
}

func kindName(k pb.ObjectKind) string {
	switch k {
	case pb.ObjectKind_OBJECT_KIND_USER:
		return "user"
	case pb.ObjectKind_OBJECT_KIND_GROUP:
		return "group"
	case pb.ObjectKind_OBJECT_KIND_SERVICE_PRINCIPAL:
		return "service_principal"
	}
	return "object"
}

// fromDecision maps a Decision (SPEC §17): decision is the strict verdict, or Entra's when context.verdict is
// "entra"; the context carries both verdicts, the evidence and a reason for an administrator.
func fromDecision(d *pb.Decision, e *evaluationRequest) *decision {
	allow := d.GetVerdict() == pb.Verdict_VERDICT_ALLOW
	if e.Context["verdict"] == "entra" {
		allow = d.GetEntraVerdict() == pb.Verdict_VERDICT_ALLOW
	}
	c := map[string]any{
		"revision":      d.GetRevision(),
		"verdict":       d.GetVerdict().String(),
		"entra_verdict": d.GetEntraVerdict().String(),
		"violations":    violations(d.GetViolations()),
		"warnings":      violations(d.GetWarnings()),
	}
	if id := decisionID(d); id != "" {
		c["decision_id"] = id
	}
	var reasons []string
	for _, v := range d.GetViolations() {
		reasons = append(reasons, v.GetMessage())
	}
	reason := "allowed: no rule is broken"
	if len(reasons) > 0 {
		reason = strings.Join(reasons, "; ")
	} else if len(d.GetWarnings()) > 0 {
		reason = "allowed, with warnings: " + d.GetWarnings()[0].GetMessage()
	}
	c["reason_admin"] = map[string]string{"en": reason}
	return &decision{Decision: allow, Context: c}
}

// decisionID is the Decision's decision_id once the proto has one (another change adds it); until then, none.
func decisionID(d *pb.Decision) string {
	if x, ok := any(d).(interface{ GetDecisionId() string }); ok {
		return x.GetDecisionId()
	}
	return ""
}

type violation struct {
	Rule    string   `json:"rule"`
	Message string   `json:"message"`
	Path    []string `json:"path"`
}

func violations(vs []*pb.Violation) []violation {
	out := make([]violation, 0, len(vs))
	for _, v := range vs {
		p := v.GetPath()
		if p == nil {
			p = []string{}
		}
		out = append(out, violation{Rule: v.GetRule().String(), Message: v.GetMessage(), Path: p})
	}
	return out
}

// evaluationsRequest is AuthZEN §Access Evaluations API Request: the top-level subject, action, resource and
// context are defaults each item overrides.
type evaluationsRequest struct {
	evaluationRequest
	Evaluations []json.RawMessage `json:"evaluations"`
	Options     struct {
		Semantic string `json:"evaluations_semantic"`
	} `json:"options"`
}

type evaluationsResponse struct {
	Evaluations []*decision `json:"evaluations"`
}

// evaluations answers POST …/access/v1/evaluations (AuthZEN §Access Evaluations API): results in request order;
// a bad item is decision false with its error while the others are answered; deny_on_first_deny and
// permit_on_first_permit stop after the first deny (or error) / permit, which is then the last result.
func (h *Handler) evaluations(ctx context.Context, tenant string, body []byte) (any, error) {
	var req evaluationsRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.Evaluations) == 0 {
		// §Access Evaluations API Request: without items it is a single evaluation, answered as one.
		if err := req.evaluationRequest.check(); err != nil {
			return nil, err
		}
		return h.evaluate(ctx, tenant, &req.evaluationRequest)
	}
	semantic := req.Options.Semantic
	switch semantic {
	case "", "execute_all", "deny_on_first_deny", "permit_on_first_permit":
	default:
		return nil, badRequest("options.evaluations_semantic %q: want execute_all, deny_on_first_deny or permit_on_first_permit", semantic)
	}
	out := evaluationsResponse{Evaluations: make([]*decision, 0, len(req.Evaluations))}
	for i, raw := range req.Evaluations {
		d, err := h.item(ctx, tenant, &req.evaluationRequest, raw)
		if err != nil {
			// Auth, limits, an unavailable server: nothing else in the batch would fare better.
			return nil, err
		}
		out.Evaluations = append(out.Evaluations, d)
		if i < len(req.Evaluations)-1 && ((semantic == "deny_on_first_deny" && !d.Decision) || (semantic == "permit_on_first_permit" && d.Decision)) {
			break
		}
	}
	return out, nil
}

// item answers one item of a batch, its missing keys taken from the defaults. A malformed item, or one the server
// refuses as invalid or cannot find, is decision false with context.error; an error of the whole call (auth,
// limits, availability) is returned.
func (h *Handler) item(ctx context.Context, tenant string, defaults *evaluationRequest, raw json.RawMessage) (*decision, error) {
	var e evaluationRequest
	if err := decode(raw, &e); err != nil {
		return errorDecision(err), nil
	}
	if e.Subject == nil {
		e.Subject = defaults.Subject
	}
	if e.Action == nil {
		e.Action = defaults.Action
	}
	if e.Resource == nil {
		e.Resource = defaults.Resource
	}
	if e.Context == nil {
		e.Context = defaults.Context
	}
	if err := e.check(); err != nil {
		return errorDecision(err), nil
	}
	d, err := h.ask(ctx, tenant, &e)
	switch status.Code(err) {
	case codes.OK:
		return d, nil
	case codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition:
		return errorDecision(err), nil
	}
	return nil, err
}
