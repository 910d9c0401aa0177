package authzen

import (
	"encoding/json"
	"maps"
)

// The AuthZEN routes are not RPCs of the proto, so protoc-gen-openapiv2 does not describe them: this is a
// hand-written OpenAPI 2.0 fragment (paths and definitions) that MergeOpenAPI adds to the generated document at
// serve time. Each operation has an operationId and a summary, as the generated ones do, so a Power Automate or
// Logic Apps custom connector imports them too.

type op struct {
	id, summary, description, request, response string
}

var ops = []struct {
	path string
	op
}{
	{"evaluation", op{"AuthZENEvaluation", "AuthZEN access evaluation", "May the subject do the action on the resource? SPEC §17 maps subject, action and resource onto CheckMembership, the owners of a group, CanAddMember, CanApplyLabel, CanChangeLabel and CanModifyUser.", "authzenEvaluationRequest", "authzenDecision"}},
	{"evaluations", op{"AuthZENEvaluations", "AuthZEN access evaluations in one call", "Several evaluations; the top-level subject, action, resource and context are defaults each item overrides. options.evaluations_semantic: execute_all (default), deny_on_first_deny, permit_on_first_permit.", "authzenEvaluationsRequest", "authzenEvaluationsResponse"}},
	{"search/subject", op{"AuthZENSearchSubject", "AuthZEN subject search", "With action member, the effective members of the resource group of subject.type (user includes guests); with owner, its owners.", "authzenSearchRequest", "authzenSearchResponse"}},
	{"search/resource", op{"AuthZENSearchResource", "AuthZEN resource search", "With action member, the groups the subject is a transitive member of.", "authzenSearchRequest", "authzenSearchResponse"}},
	{"search/action", op{"AuthZENSearchAction", "AuthZEN action search", "Which of member and owner hold for the subject on the resource group.", "authzenSearchRequest", "authzenSearchResponse"}},
}

func operation(o op, tenant bool) map[string]any {
	params := []any{map[string]any{"name": "body", "in": "body", "required": true, "schema": ref(o.request)}}
	id, summary := o.id, o.summary
	if tenant {
		params = append(params, map[string]any{"name": "tenant_id", "in": "path", "required": true, "type": "string"})
		id, summary = id+"ForTenant", summary+" for one tenant"
	} else {
		summary += " (single-tenant server)"
	}
	return map[string]any{"post": map[string]any{
		"summary": summary, "description": o.description, "operationId": id, "tags": []string{"AuthZEN"},
		"parameters": params,
		"responses": map[string]any{
			"200":     map[string]any{"description": "The answer (a deny is decision false).", "schema": ref(o.response)},
			"default": map[string]any{"description": "An error of the whole request (400 for a missing or mistyped field).", "schema": ref("rpcStatus")},
		},
	}}
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/definitions/" + name} }

func obj(props map[string]any, required ...string) map[string]any {
	m := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		m["required"] = required
	}
	return m
}

var (
	str     = map[string]any{"type": "string"}
	anyObj  = map[string]any{"type": "object", "additionalProperties": map[string]any{}}
	integer = map[string]any{"type": "integer", "format": "int64"}
)

func definitions() map[string]any {
	entity := obj(map[string]any{"type": str, "id": str, "properties": anyObj}, "type")
	action := obj(map[string]any{"name": str, "properties": anyObj}, "name")
	evaluation := obj(map[string]any{"subject": ref("authzenEntity"), "action": ref("authzenAction"), "resource": ref("authzenEntity"), "context": anyObj})
	return map[string]any{
		"authzenEntity":            entity,
		"authzenAction":            action,
		"authzenEvaluationRequest": evaluation,
		"authzenEvaluationsRequest": obj(map[string]any{
			"subject": ref("authzenEntity"), "action": ref("authzenAction"), "resource": ref("authzenEntity"), "context": anyObj,
			"evaluations": map[string]any{"type": "array", "items": ref("authzenEvaluationRequest")},
			"options":     obj(map[string]any{"evaluations_semantic": map[string]any{"type": "string", "enum": []string{"execute_all", "deny_on_first_deny", "permit_on_first_permit"}}}),
		}),
		"authzenDecision":            obj(map[string]any{"decision": map[string]any{"type": "boolean"}, "context": anyObj}, "decision"),
		"authzenEvaluationsResponse": obj(map[string]any{"evaluations": map[string]any{"type": "array", "items": ref("authzenDecision")}}),
		"authzenSearchRequest": obj(map[string]any{
			"subject": ref("authzenEntity"), "action": ref("authzenAction"), "resource": ref("authzenEntity"), "context": anyObj,
			"page": obj(map[string]any{"token": str, "limit": integer}),
		}),
		"authzenSearchResponse": obj(map[string]any{
			"page":    obj(map[string]any{"next_token": str, "count": integer, "total": integer}),
			"context": anyObj,
			"results": map[string]any{"type": "array", "items": obj(map[string]any{"type": str, "id": str, "name": str})},
		}, "results"),
	}
}

// MergeOpenAPI returns doc (the generated OpenAPI 2.0 document) with the AuthZEN routes and their definitions
// added, and the discovery document's GET (no token needed).
func MergeOpenAPI(doc []byte) ([]byte, error) {
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, err
	}
	paths, _ := d["paths"].(map[string]any)
	if paths == nil {
		paths = map[string]any{}
	}
	for _, o := range ops {
		paths[AccessPrefix+o.path] = operation(o.op, false)
		paths[TenantsPrefix+"{tenant_id}"+AccessPrefix+o.path] = operation(o.op, true)
	}
	discovery := func(tenant bool) map[string]any {
		id, summary := "AuthZENConfiguration", "AuthZEN PDP metadata (single-tenant server)"
		var params []any
		if tenant {
			id, summary = id+"ForTenant", "AuthZEN PDP metadata for one tenant"
			params = []any{map[string]any{"name": "tenant_id", "in": "path", "required": true, "type": "string"}}
		}
		g := map[string]any{
			"summary": summary, "operationId": id, "tags": []string{"AuthZEN"}, "security": []any{},
			"description": "policy_decision_point (--authzen-base-url, or this listener's URL) and the endpoints.",
			"responses":   map[string]any{"200": map[string]any{"description": "The metadata.", "schema": anyObj}},
		}
		if params != nil {
			g["parameters"] = params
		}
		return map[string]any{"get": g}
	}
	paths[WellKnown] = discovery(false)
	paths[WellKnown+TenantsPrefix+"{tenant_id}"] = discovery(true)
	d["paths"] = paths
	defs, _ := d["definitions"].(map[string]any)
	if defs == nil {
		defs = map[string]any{}
	}
	maps.Copy(defs, definitions())
	d["definitions"] = defs
	tags, _ := d["tags"].([]any)
	d["tags"] = append(tags, map[string]any{"name": "AuthZEN", "description": "The OpenID AuthZEN Authorization 1.0 interface (SPEC §17), under the same tokens and rules."})
	if info, ok := d["info"].(map[string]any); ok {
		if desc, ok := info["description"].(string); ok {
			info["description"] = desc + " AuthZEN 1.0 routes (/access/v1/..., per tenant under /tenants/{tenant_id}) answer in AuthZEN's own JSON form."
		}
	}
	return json.Marshal(d)
}
