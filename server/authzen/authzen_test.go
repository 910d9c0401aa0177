package authzen_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"github.com/groupgate/groupgate/internal/syncbuf"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/authzen"
	"github.com/groupgate/groupgate/server/servertest"
)

// Section references are to the AuthZEN Authorization API 1.0 (openid/authzen api/authorization-api-1_0.md);
// the mapping is SPEC §17. Every test goes through a real HTTP listener on the demo tenant contoso.

type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("HTTP %d %s: %v", a.code, a.body, err)
	}
	return m
}

func send(t *testing.T, method, url, contentType, body string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, header: resp.Header, body: b}
}

func post(t *testing.T, url, body string, header ...string) answer {
	t.Helper()
	return send(t, http.MethodPost, url, "application/json", body, header...)
}

func start(t *testing.T, tenants ...*directory.Directory) string {
	t.Helper()
	return servertest.StartWith(t, servertest.Options{HTTP: true}, tenants...).HTTPURL
}

func wantOK(t *testing.T, a answer) map[string]any {
	t.Helper()
	if a.code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", a.code, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json (§HTTPS JSON Binding)", ct)
	}
	return a.json(t)
}

func ctxOf(m map[string]any) map[string]any { c, _ := m["context"].(map[string]any); return c }

// §Access Evaluation API: a permit and a deny (the deny is 200 {"decision": false}, §Error Responses), with the
// strict and Entra verdicts and the evidence in the context (SPEC §17).
func TestEvaluation(t *testing.T) {
	base := start(t)
	allow := wantOK(t, post(t, base+"/access/v1/evaluation", `{
		"subject": {"type": "user", "id": "u-gary"},
		"action": {"name": "add_member", "properties": {"member_id": "u-erin"}},
		"resource": {"type": "group", "id": "grp-engineering"}}`))
	if allow["decision"] != true || ctxOf(allow)["verdict"] != "VERDICT_ALLOW" {
		t.Errorf("add u-erin to grp-engineering by u-gary: %v", allow)
	}
	deny := wantOK(t, post(t, base+"/access/v1/evaluation", `{
		"subject": {"type": "user", "id": "u-gary"},
		"action": {"name": "add_member", "properties": {"member_id": "grp-engineering"}},
		"resource": {"type": "group", "id": "grp-finance"}}`))
	c := ctxOf(deny)
	if deny["decision"] != false || c["verdict"] != "VERDICT_DENY" {
		t.Fatalf("the README's deny: %v", deny)
	}
	vs, _ := c["violations"].([]any)
	if len(vs) == 0 {
		t.Fatalf("no violations: %v", c)
	}
	v := vs[0].(map[string]any)
	if v["rule"] != "RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE" || len(v["path"].([]any)) == 0 || v["message"] == "" {
		t.Errorf("violation %v", v)
	}
	if r, _ := c["reason_admin"].(map[string]any); r["en"] == "" || r["en"] == nil {
		t.Errorf("reason_admin %v", c["reason_admin"])
	}
	if _, ok := c["revision"].(float64); !ok {
		t.Errorf("revision %v", c["revision"])
	}
	// context.verdict "entra": the decision is what Entra itself does (SPEC §17).
	entra := wantOK(t, post(t, base+"/access/v1/evaluation", `{
		"subject": {"type": "user", "id": "u-gary"},
		"action": {"name": "add_member", "properties": {"member_id": "grp-engineering"}},
		"resource": {"type": "group", "id": "grp-finance"},
		"context": {"verdict": "entra"}}`))
	if want := ctxOf(entra)["entra_verdict"] == "VERDICT_ALLOW"; entra["decision"] != want {
		t.Errorf("entra decision %v, entra_verdict %v", entra["decision"], ctxOf(entra)["entra_verdict"])
	}
}

// SPEC §17 mapping: member (transitive), owner, labels and the user actions.
func TestEvaluationActions(t *testing.T) {
	base := start(t)
	for _, c := range []struct {
		name, body string
		want       bool
	}{
		{"transitive member", `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`, true},
		{"not a member", `{"subject":{"type":"user","id":"u-gina"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`, false},
		{"group member", `{"subject":{"type":"group","id":"grp-finance-emea"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`, true},
		{"owner", `{"subject":{"type":"user","id":"u-oscar"},"action":{"name":"owner"},"resource":{"type":"group","id":"grp-finance"}}`, true},
		{"not owner", `{"subject":{"type":"user","id":"u-dave"},"action":{"name":"owner"},"resource":{"type":"group","id":"grp-finance"}}`, false},
		{"apply label", `{"subject":{"type":"user","id":"u-alice"},"action":{"name":"apply_label","properties":{"label_id":"lbl-general"}},"resource":{"type":"group","id":"grp-berlin"}}`, true},
		{"label not synced", `{"subject":{"type":"user","id":"u-alice"},"action":{"name":"apply_label","properties":{"label_id":"lbl-draft"}},"resource":{"type":"group","id":"grp-berlin"}}`, false},
		{"reset password, privileged", `{"subject":{"type":"user","id":"u-paul"},"action":{"name":"reset_password"},"resource":{"type":"user","id":"u-dave"}}`, true},
		{"reset password, nobody", `{"subject":{"type":"user","id":"u-mallory"},"action":{"name":"reset_password"},"resource":{"type":"user","id":"u-dave"}}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := wantOK(t, post(t, base+"/access/v1/evaluation", c.body))
			if got["decision"] != c.want {
				t.Errorf("decision %v, want %v: %v", got["decision"], c.want, got)
			}
		})
	}
}

// SPEC §17: an unknown subject or resource id is decision false with context.error {status: 404, message}.
func TestEvaluationUnknownID(t *testing.T) {
	base := start(t)
	for _, body := range []string{
		`{"subject":{"type":"user","id":"u-nobody"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`,
		`{"subject":{"type":"user","id":"u-dave"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-nowhere"}}`,
		`{"subject":{"type":"user","id":"u-nobody"},"action":{"name":"owner"},"resource":{"type":"group","id":"grp-finance"}}`,
		`{"subject":{"type":"user","id":"u-gary"},"action":{"name":"add_member","properties":{"member_id":"u-dave"}},"resource":{"type":"group","id":"grp-nowhere"}}`,
	} {
		got := wantOK(t, post(t, base+"/access/v1/evaluation", body))
		e, _ := ctxOf(got)["error"].(map[string]any)
		if got["decision"] != false || e["status"] != float64(404) || e["message"] == "" {
			t.Errorf("%s: %s", body, mustJSON(got))
		}
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// §JSON Serialization and §Error Responses: 400 with a message for a missing or mistyped required field, an empty
// body or a non-JSON content type (SPEC §17: 400, where /v1/… answers 415); unknown fields are ignored.
func TestBadRequests(t *testing.T) {
	base := start(t)
	url := base + "/access/v1/evaluation"
	for _, c := range []struct{ name, contentType, body, inMessage string }{
		{"empty body", "application/json", "", "empty body"},
		{"not an object", "application/json", `[1]`, "JSON object"},
		{"no subject", "application/json", `{"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`, "subject is required"},
		{"no resource id", "application/json", `{"subject":{"type":"user","id":"u-dave"},"action":{"name":"member"},"resource":{"type":"group"}}`, "resource.id"},
		{"no action name", "application/json", `{"subject":{"type":"user","id":"u-dave"},"action":{},"resource":{"type":"group","id":"grp-finance"}}`, "action.name"},
		{"mistyped id", "application/json", `{"subject":{"type":"user","id":42},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`, "subject.id"},
		{"unknown action", "application/json", `{"subject":{"type":"user","id":"u-dave"},"action":{"name":"can_read"},"resource":{"type":"group","id":"grp-finance"}}`, "can_read"},
		{"no member_id", "application/json", `{"subject":{"type":"user","id":"u-gary"},"action":{"name":"add_member"},"resource":{"type":"group","id":"grp-finance"}}`, "member_id"},
		{"malformed JSON", "application/json", `{"subject":`, "not a valid JSON object"},
		{"subject a string", "application/json", `{"subject":"alice","action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`, "field subject: got a JSON string, want an object"},
		{"action.name a number", "application/json", `{"subject":{"type":"user","id":"u-dave"},"action":{"name":123},"resource":{"type":"group","id":"grp-finance"}}`, "action.name"},
		{"text/plain", "text/plain", `{}`, "Content-Type"},
		{"no content type", "", `{}`, "Content-Type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := send(t, http.MethodPost, url, c.contentType, c.body, "X-Request-ID", "req-"+c.name)
			if a.code != http.StatusBadRequest {
				t.Fatalf("HTTP %d, want 400: %s", a.code, a.body)
			}
			if m, _ := a.json(t)["message"].(string); !strings.Contains(m, c.inMessage) {
				t.Errorf("message %q, want it to mention %q", m, c.inMessage)
			}
			if a.header.Get("X-Request-ID") != "req-"+c.name {
				t.Errorf("X-Request-ID %q not echoed on a 400", a.header.Get("X-Request-ID"))
			}
		})
	}
	// Unknown fields, at every level, are ignored (§JSON Serialization).
	got := wantOK(t, post(t, url, `{"subject":{"type":"user","id":"u-erin","extra":1},"action":{"name":"member","x":[]},"resource":{"type":"group","id":"grp-finance"},"whatever":{"a":"b"}}`))
	if got["decision"] != true {
		t.Errorf("with unknown fields: %v", got)
	}
}

// §Request Identification: X-Request-ID comes back on the answer.
func TestRequestID(t *testing.T) {
	base := start(t)
	a := post(t, base+"/access/v1/evaluation", `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`,
		"X-Request-ID", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
	if got := a.header.Get("X-Request-ID"); got != "bfe9eb29-ab87-4ca3-be83-a1d5d8305716" {
		t.Errorf("X-Request-ID %q", got)
	}
}

// §Access Evaluations API: defaults at the top level that items override, results in request order, a bad item
// answered as decision false with its error while the others are answered, and the three semantics
// (§Evaluations semantics).
func TestEvaluations(t *testing.T) {
	base := start(t)
	url := base + "/access/v1/evaluations"
	batch := func(semantic string) []any {
		opts := ""
		if semantic != "" {
			opts = `,"options":{"evaluations_semantic":"` + semantic + `"}`
		}
		got := wantOK(t, post(t, url, `{
			"subject": {"type": "user", "id": "u-erin"},
			"action": {"name": "member"},
			"evaluations": [
				{"resource": {"type": "group", "id": "grp-finance"}},
				{"resource": {"type": "group", "id": "grp-engineering"}},
				{"resource": {"type": "group", "id": "grp-nowhere"}},
				{"subject": {"type": "user", "id": "u-oscar"}, "action": {"name": "owner"}, "resource": {"type": "group", "id": "grp-finance"}},
				{"resource": {"type": "group"}}
			]`+opts+`}`))
		return got["evaluations"].([]any)
	}
	decisions := func(evs []any) []any {
		var out []any
		for _, e := range evs {
			out = append(out, e.(map[string]any)["decision"])
		}
		return out
	}
	all := batch("")
	if got := decisions(all); !slices.Equal(got, []any{true, false, false, true, false}) {
		t.Errorf("execute_all: %v", mustJSON(all))
	}
	if e := ctxOf(all[2].(map[string]any))["error"].(map[string]any); e["status"] != float64(404) {
		t.Errorf("unknown group: %v", e)
	}
	if e := ctxOf(all[4].(map[string]any))["error"].(map[string]any); e["status"] != float64(400) || !strings.Contains(e["message"].(string), "resource.id") {
		t.Errorf("bad item: %v", e)
	}
	if got := decisions(batch("execute_all")); len(got) != 5 {
		t.Errorf("execute_all explicit: %v", got)
	}
	if got := decisions(batch("deny_on_first_deny")); !slices.Equal(got, []any{true, false}) {
		t.Errorf("deny_on_first_deny: %v", got)
	}
	if got := decisions(batch("permit_on_first_permit")); !slices.Equal(got, []any{true}) {
		t.Errorf("permit_on_first_permit: %v", got)
	}
	if a := post(t, url, `{"evaluations":[{}],"options":{"evaluations_semantic":"sometimes"}}`); a.code != http.StatusBadRequest {
		t.Errorf("unknown semantic: HTTP %d", a.code)
	}
	// Without items the request is a single evaluation (§Access Evaluations API Request).
	one := wantOK(t, post(t, url, `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`))
	if one["decision"] != true {
		t.Errorf("no items: %v", one)
	}
}

func ids(t *testing.T, m map[string]any) []string {
	t.Helper()
	var out []string
	for _, r := range m["results"].([]any) {
		r := r.(map[string]any)
		if r["id"] != nil {
			out = append(out, r["type"].(string)+":"+r["id"].(string))
		} else {
			out = append(out, r["name"].(string))
		}
	}
	slices.Sort(out)
	return out
}

// §Subject Search API, §Resource Search API, §Action Search API with SPEC §17's mapping; unknown ids are empty
// results.
func TestSearches(t *testing.T) {
	base := start(t)
	sub := wantOK(t, post(t, base+"/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-engineering"}}`))
	if got, want := ids(t, sub), []string{"user:u-dave", "user:u-frank", "user:u-mallory"}; !slices.Equal(got, want) {
		t.Errorf("users of grp-engineering (guests included): %v, want %v", got, want)
	}
	if p := sub["page"].(map[string]any); p["next_token"] != "" {
		t.Errorf("page %v", p)
	}
	grp := wantOK(t, post(t, base+"/access/v1/search/subject", `{"subject":{"type":"group"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`))
	if got, want := ids(t, grp), []string{"group:grp-finance-emea", "group:grp-finance-interns"}; !slices.Equal(got, want) {
		t.Errorf("groups in grp-finance: %v", got)
	}
	own := wantOK(t, post(t, base+"/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"owner"},"resource":{"type":"group","id":"grp-finance"}}`))
	if got := ids(t, own); !slices.Equal(got, []string{"user:u-oscar"}) {
		t.Errorf("owners: %v", got)
	}
	res := wantOK(t, post(t, base+"/access/v1/search/resource", `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group"}}`))
	if got := ids(t, res); !slices.Contains(got, "group:grp-finance") || !slices.Contains(got, "group:grp-finance-emea") {
		t.Errorf("groups of u-erin: %v", got)
	}
	act := wantOK(t, post(t, base+"/access/v1/search/action", `{"subject":{"type":"user","id":"u-oscar"},"resource":{"type":"group","id":"grp-finance"}}`))
	if got := ids(t, act); !slices.Equal(got, []string{"owner"}) {
		t.Errorf("actions of u-oscar on grp-finance: %v", got)
	}
	act = wantOK(t, post(t, base+"/access/v1/search/action", `{"subject":{"type":"user","id":"u-erin"},"resource":{"type":"group","id":"grp-finance"}}`))
	if got := ids(t, act); !slices.Equal(got, []string{"member"}) {
		t.Errorf("actions of u-erin on grp-finance: %v", got)
	}
	for _, c := range []struct{ path, body string }{
		{"subject", `{"subject":{"type":"user"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-nowhere"}}`},
		{"resource", `{"subject":{"type":"user","id":"u-nobody"},"action":{"name":"member"},"resource":{"type":"group"}}`},
		{"action", `{"subject":{"type":"user","id":"u-nobody"},"resource":{"type":"group","id":"grp-finance"}}`},
	} {
		got := wantOK(t, post(t, base+"/access/v1/search/"+c.path, c.body))
		if r := got["results"].([]any); len(r) != 0 {
			t.Errorf("%s search with an unknown id: %v", c.path, got)
		}
	}
	// An entity type or action groupgate does not know permits nothing: empty results, not a 400 (the AuthZEN
	// certification scenario, Empty results: unknown entity type).
	for _, c := range []struct{ path, body string }{
		{"subject", `{"subject":{"type":"spaceship"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`},
		{"subject", `{"subject":{"type":"user"},"action":{"name":"read"},"resource":{"type":"group","id":"grp-finance"}}`},
		{"resource", `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"record"}}`},
		{"action", `{"subject":{"type":"user","id":"u-erin"},"resource":{"type":"record","id":"grp-finance"}}`},
	} {
		got := wantOK(t, post(t, base+"/access/v1/search/"+c.path, c.body))
		if r := got["results"].([]any); len(r) != 0 {
			t.Errorf("%s search %s: %v", c.path, c.body, got)
		}
	}
	// Missing required fields are still a 400 (§Search APIs requests).
	if a := post(t, base+"/access/v1/search/subject", `{"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`); a.code != http.StatusBadRequest {
		t.Errorf("subject search without subject.type: HTTP %d", a.code)
	}
}

// §Pagination: page.limit, page.token → page.next_token, "" at the end; every page from one revision (SPEC §17);
// a changed request mid-pagination is an error.
func TestSearchPagination(t *testing.T) {
	base := start(t)
	url := base + "/access/v1/search/subject"
	req := func(token string) string {
		return `{"subject":{"type":"user"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-engineering"},"page":{"limit":2,"token":"` + token + `"}}`
	}
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("pagination does not end")
		}
		m := wantOK(t, post(t, url, req(token)))
		p := m["page"].(map[string]any)
		got = append(got, ids(t, m)...)
		if p["total"] != float64(3) {
			t.Errorf("page %v", p)
		}
		token = p["next_token"].(string)
		if token == "" {
			break
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"user:u-dave", "user:u-frank", "user:u-mallory"}) {
		t.Errorf("all pages: %v", got)
	}
	first := wantOK(t, post(t, url, req("")))
	tok := first["page"].(map[string]any)["next_token"].(string)
	changed := `{"subject":{"type":"user"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"},"page":{"limit":2,"token":"` + tok + `"}}`
	if a := post(t, url, changed); a.code != http.StatusBadRequest {
		t.Errorf("token with another resource: HTTP %d %s", a.code, a.body)
	}
	if a := post(t, url, req("garbage")); a.code != http.StatusBadRequest {
		t.Errorf("garbage token: HTTP %d %s", a.code, a.body)
	}
}

// §PDP Metadata: discovery per tenant and unprefixed, the PDP identifier from --authzen-base-url or the request.
func TestDiscovery(t *testing.T) {
	base := start(t)
	m := wantOK(t, send(t, http.MethodGet, base+"/.well-known/authzen-configuration", "", ""))
	if m["policy_decision_point"] != base || m["access_evaluation_endpoint"] != base+"/access/v1/evaluation" ||
		m["search_action_endpoint"] != base+"/access/v1/search/action" {
		t.Errorf("discovery: %v", m)
	}
	m = wantOK(t, send(t, http.MethodGet, base+"/.well-known/authzen-configuration/tenants/contoso", "", ""))
	pdp := base + "/tenants/contoso"
	if m["policy_decision_point"] != pdp || m["access_evaluations_endpoint"] != pdp+"/access/v1/evaluations" {
		t.Errorf("tenant discovery: %v", m)
	}
	// The announced endpoint answers.
	got := wantOK(t, post(t, m["access_evaluation_endpoint"].(string), `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`))
	if got["decision"] != true {
		t.Errorf("per-tenant evaluation: %v", got)
	}
	if a := post(t, base+"/tenants/nowhere/access/v1/evaluation", `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`); a.code == http.StatusOK && a.json(t)["decision"] == true {
		t.Errorf("unknown tenant answered %s", a.body)
	}
}

// SPEC §17: with two tenants the unprefixed routes answer 400 naming the prefixed form.
func TestUnprefixedNeedsOneTenant(t *testing.T) {
	d1, err := demo.Directory()
	if err != nil {
		t.Fatal(err)
	}
	snap := demo.Snapshot()
	snap.TenantId = "fabrikam"
	d2, err := directory.FromSnapshot(snap, 1)
	if err != nil {
		t.Fatal(err)
	}
	base := start(t, d1, d2)
	a := post(t, base+"/access/v1/evaluation", `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`)
	if a.code != http.StatusBadRequest || !strings.Contains(string(a.body), "/tenants/{tenant_id}/access/v1/evaluation") {
		t.Errorf("HTTP %d %s", a.code, a.body)
	}
	got := wantOK(t, post(t, base+"/tenants/fabrikam/access/v1/evaluation", `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`))
	if got["decision"] != true {
		t.Errorf("fabrikam: %v", got)
	}
}

// SPEC §13, §17: the same tokens as /v1/…: a checker's static token works, none is a 401 with a challenge, in the
// gateway's error form; browser rules hold (cross-site refused).
func TestAuth(t *testing.T) {
	tokens, err := server.ParseTokens(strings.NewReader("checker:pep:s3cret-s3cret-s3cret\n"))
	if err != nil {
		t.Fatal(err)
	}
	base := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens}).HTTPURL
	body := `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`
	for _, path := range []string{"/access/v1/evaluation", "/tenants/contoso/access/v1/evaluation"} {
		a := post(t, base+path, body)
		if a.code != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without a token: HTTP %d %s", path, a.code, a.body)
		}
		if got := wantOK(t, post(t, base+path, body, "Authorization", "Bearer s3cret-s3cret-s3cret")); got["decision"] != true {
			t.Errorf("%s with the checker's token: %v", path, got)
		}
	}
	if a := post(t, base+"/access/v1/evaluation", body, "Authorization", "Bearer wrong"); a.code != http.StatusUnauthorized {
		t.Errorf("bad token: HTTP %d", a.code)
	}
	if a := post(t, base+"/access/v1/evaluation", body, "Authorization", "Bearer s3cret-s3cret-s3cret", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); a.code != http.StatusForbidden {
		t.Errorf("cross-site: HTTP %d", a.code)
	}
	if a := send(t, http.MethodGet, base+"/access/v1/evaluation", "", ""); a.code != http.StatusMethodNotAllowed {
		t.Errorf("GET: HTTP %d", a.code)
	}
	// Discovery names routes, not data: no token needed.
	if a := send(t, http.MethodGet, base+"/.well-known/authzen-configuration", "", ""); a.code != http.StatusOK {
		t.Errorf("discovery with auth on: HTTP %d", a.code)
	}
}

// The gateway's body limit (SPEC §11 limits) holds for AuthZEN routes: 413 with RESOURCE_EXHAUSTED.
func TestBodyLimit(t *testing.T) {
	base := servertest.StartWith(t, servertest.Options{HTTP: true, Limits: server.Limits{MaxRecvBytes: 2048}}).HTTPURL
	big := `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"},"context":{"pad":"` + strings.Repeat("x", 4096) + `"}}`
	if a := post(t, base+"/access/v1/evaluation", big); a.code != http.StatusRequestEntityTooLarge {
		t.Errorf("HTTP %d %s, want 413", a.code, a.body)
	}
	// Sent chunked (no Content-Length), the limit trips while reading.
	req, _ := http.NewRequest(http.MethodPost, base+"/access/v1/evaluation", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: HTTP %d, want 413", resp.StatusCode)
	}
}

// SPEC §17: a page token pins the directory revision of the first page; once the directory has moved on, a later
// page is refused (400) rather than answered from another directory. context.min_revision waits for a revision.
func TestSearchTokenPinsRevision(t *testing.T) {
	tokens, err := server.ParseTokens(strings.NewReader("checker:pep:pep-token-0123456789\nwriter:ops:ops-token-0123456789\n"))
	if err != nil {
		t.Fatal(err)
	}
	base := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens}).HTTPURL
	pep := []string{"Authorization", "Bearer pep-token-0123456789"}
	req := func(token string) string {
		return `{"subject":{"type":"user"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-engineering"},"page":{"limit":2,"token":"` + token + `"}}`
	}
	first := wantOK(t, post(t, base+"/access/v1/search/subject", req(""), pep...))
	tok := first["page"].(map[string]any)["next_token"].(string)
	if tok == "" {
		t.Fatalf("one page only: %v", first)
	}
	w := post(t, base+"/v1/writeChanges", `{"tenantId":"contoso","requestId":"authzen-1","changes":[{"addMember":{"groupId":"grp-engineering","memberId":"u-oscar"}}]}`,
		"Authorization", "Bearer ops-token-0123456789")
	if w.code != http.StatusOK {
		t.Fatalf("writeChanges: HTTP %d %s", w.code, w.body)
	}
	a := post(t, base+"/access/v1/search/subject", req(tok), pep...)
	if a.code != http.StatusBadRequest || !strings.Contains(string(a.body), "start the search again") {
		t.Errorf("second page after a write: HTTP %d %s", a.code, a.body)
	}
	// Starting again answers from the new revision, u-oscar included.
	again := wantOK(t, post(t, base+"/access/v1/search/subject", `{"subject":{"type":"user"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-engineering"},"context":{"min_revision":2}}`, pep...))
	if got := ids(t, again); !slices.Contains(got, "user:u-oscar") || ctxOf(again)["revision"] != float64(2) {
		t.Errorf("after the write: %v", again)
	}
	ev := wantOK(t, post(t, base+"/access/v1/evaluation", `{"subject":{"type":"user","id":"u-oscar"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-engineering"},"context":{"min_revision":2}}`, pep...))
	if ev["decision"] != true || ctxOf(ev)["revision"] != float64(2) {
		t.Errorf("evaluation at min_revision 2: %v", ev)
	}
}

// §PDP Metadata: --authzen-base-url (app.Config.AuthZENBaseURL) is the policy_decision_point, tenant path appended.
func TestDiscoveryBaseURL(t *testing.T) {
	base := servertest.StartWith(t, servertest.Options{HTTP: true, AuthZENBaseURL: "https://pdp.example.com/"}).HTTPURL
	m := wantOK(t, send(t, http.MethodGet, base+"/.well-known/authzen-configuration/tenants/contoso", "", ""))
	if m["policy_decision_point"] != "https://pdp.example.com/tenants/contoso" ||
		m["search_subject_endpoint"] != "https://pdp.example.com/tenants/contoso/access/v1/search/subject" {
		t.Errorf("discovery: %v", m)
	}
	if a := send(t, http.MethodPost, base+"/.well-known/authzen-configuration", "application/json", "{}"); a.code != http.StatusMethodNotAllowed {
		t.Errorf("POST discovery: HTTP %d", a.code)
	}
}

// SPEC §17, §11: an AuthZEN call passes the same interceptor chain as /v1/…: the server's log names the RPC it
// became and the HTTP client's address (the metadata grpc-gateway's routes send).
func TestCallsGoThroughTheChain(t *testing.T) {
	var logs syncbuf.Buffer
	base := servertest.StartWith(t, servertest.Options{HTTP: true, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}).HTTPURL
	wantOK(t, post(t, base+"/tenants/contoso/access/v1/evaluation", `{"subject":{"type":"user","id":"u-erin"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-finance"}}`))
	out := logs.String()
	if !strings.Contains(out, "grpc.method=CheckMembership") || !strings.Contains(out, "http.client=127.0.0.1:") {
		t.Errorf("no log line of the call with its HTTP client:\n%s", out)
	}
}

func TestValidateBaseURL(t *testing.T) {
	for _, ok := range []string{"", "https://pdp.example.com", "https://pdp.example.com/", "http://127.0.0.1:8080/pdp"} {
		if err := authzen.ValidateBaseURL(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"pdp.example.com", "ftp://pdp.example.com", "https://pdp.example.com/?a=b", "https://pdp.example.com/#x", "https://"} {
		if err := authzen.ValidateBaseURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
