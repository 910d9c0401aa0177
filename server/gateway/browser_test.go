package gateway_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/server/gateway"
	"github.com/groupgate/groupgate/server/servertest"
)

// The attack: a page the operator merely opens posts a write that adds the guest u-frank to the labelled group
// grp-finance. The JSON is the same in every form; only how the page can get a browser to send it changes.
// authzenQuestion asks whether Gary may add Engineering to Finance, as an AuthZEN evaluation.
const authzenQuestion = `{"subject":{"type":"user","id":"u-gary"},"action":{"name":"add_member","properties":{"member_id":"grp-engineering"}},"resource":{"type":"group","id":"grp-finance"}}`

const attackWrite = `{"tenantId":"contoso","changes":[{"addMember":{"groupId":"grp-finance","memberId":"u-frank"}}]}`

// browserRequest is one request as a browser (or a page's script) would send it.
type browserRequest struct {
	name                 string
	method, path         string
	contentType, body    string
	host, origin, fetchS string // Host, Origin, Sec-Fetch-Site headers ("" leaves them as net/http sets them)
	preflightMethod      string // Access-Control-Request-Method
	wantCode             int
	wantCORS             bool // Access-Control-Allow-Origin names the origin
}

func send(t *testing.T, base string, r browserRequest) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.host != "" {
		req.Host = r.host
	}
	if r.origin != "" {
		req.Header.Set("Origin", r.origin)
	}
	if r.fetchS != "" {
		req.Header.Set("Sec-Fetch-Site", r.fetchS)
	}
	if r.preflightMethod != "" {
		req.Header.Set("Access-Control-Request-Method", r.preflightMethod)
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func multipartBody(t *testing.T) (string, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	if err := w.WriteField("json", attackWrite); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return w.FormDataContentType(), b.String()
}

// TestWebPagesCannotWriteOrRead reproduces what a page can make a browser send to a server on 127.0.0.1 (SPEC §13):
// the bodies that need no CORS preflight (text/plain, a form, multipart), a script's JSON from a foreign origin, and
// a DNS-rebinding page whose requests carry its own name as Host — on a write, a read, a stream and the explorer.
// Each is refused, and afterwards the directory is as it was: same revision, the guest still outside the group.
func TestWebPagesCannotWriteOrRead(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true,
		HTTPRoot: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "explorer page") })})
	u, _ := url.Parse(srv.HTTPURL)
	port := u.Port()
	multipartType, multipartText := multipartBody(t)
	const evil = "http://evil.example"
	for _, r := range []browserRequest{
		{name: "text/plain write (a form's enctype, or fetch with no-cors: no preflight)", method: "POST", path: "/v1/writeChanges",
			contentType: "text/plain;charset=UTF-8", body: attackWrite, origin: evil, fetchS: "cross-site", wantCode: 403},
		{name: "text/plain write without Origin or Sec-Fetch headers (an older browser)", method: "POST", path: "/v1/writeChanges",
			contentType: "text/plain", body: attackWrite, wantCode: 415},
		{name: "urlencoded form write", method: "POST", path: "/v1/writeChanges",
			contentType: "application/x-www-form-urlencoded", body: "json=" + url.QueryEscape(attackWrite), wantCode: 415},
		{name: "multipart form write", method: "POST", path: "/v1/writeChanges",
			contentType: multipartType, body: multipartText, wantCode: 415},
		{name: "no Content-Type at all", method: "POST", path: "/v1/writeChanges", body: attackWrite, wantCode: 415},
		{name: "JSON from a foreign origin (a script; its preflight would fail too)", method: "POST", path: "/v1/writeChanges",
			contentType: "application/json", body: attackWrite, origin: evil, wantCode: 403},
		{name: "JSON marked cross-site without an Origin", method: "POST", path: "/v1/writeChanges",
			contentType: "application/json", body: attackWrite, fetchS: "cross-site", wantCode: 403},
		{name: "Origin null (a sandboxed frame or a file)", method: "POST", path: "/v1/writeChanges",
			contentType: "application/json", body: attackWrite, origin: "null", wantCode: 403},
		{name: "another local port is another origin", method: "POST", path: "/v1/writeChanges",
			contentType: "application/json", body: attackWrite, origin: "http://127.0.0.1:3000", fetchS: "same-site", wantCode: 403},
		{name: "preflight from a foreign origin", method: "OPTIONS", path: "/v1/writeChanges",
			origin: evil, fetchS: "cross-site", preflightMethod: "POST", wantCode: 403},
		{name: "rebinding: the page's own name as Host, same-origin write", method: "POST", path: "/v1/writeChanges",
			contentType: "application/json", body: attackWrite, host: "evil.example:" + port, origin: "http://evil.example:" + port,
			fetchS: "same-origin", wantCode: 403},
		{name: "rebinding: a read", method: "POST", path: "/v1/effectiveGroups", contentType: "application/json",
			body: `{"tenantId":"contoso","principalId":"u-gina"}`, host: "evil.example:" + port, wantCode: 403},
		{name: "rebinding: a stream", method: "POST", path: "/v1/effectiveMembers", contentType: "application/json",
			body: `{"tenantId":"contoso","groupId":"grp-engineering"}`, host: "evil.example:" + port, wantCode: 403},
		{name: "rebinding: the explorer", method: "GET", path: "/", host: "evil.example:" + port, wantCode: 403},
		{name: "rebinding: the OpenAPI document", method: "GET", path: "/openapi.json", host: "evil.example", wantCode: 403},
		{name: "rebinding: a name that merely starts like localhost", method: "GET", path: "/", host: "localhost.evil.example", wantCode: 403},
		{name: "rebinding: a GET of the API", method: "GET", path: "/v1/getStatus", host: "evil.example:" + port, wantCode: 403},
		// The live findings stream (SPEC §16) is an API route like the others: a page may not open it.
		{name: "findings stream: text/plain from a foreign page", method: "POST", path: "/v1/watchFindings",
			contentType: "text/plain;charset=UTF-8", body: `{"tenantId":"contoso"}`, origin: evil, fetchS: "cross-site", wantCode: 403},
		{name: "findings stream: JSON from a foreign origin", method: "POST", path: "/v1/watchFindings",
			contentType: "application/json", body: `{"tenantId":"contoso"}`, origin: evil, wantCode: 403},
		{name: "findings stream: rebinding", method: "POST", path: "/v1/watchFindings", contentType: "application/json",
			body: `{"tenantId":"contoso"}`, host: "evil.example:" + port, wantCode: 403},
		// The AuthZEN routes are the API too (SPEC §17: its certification wants 400, not 415, for a non-JSON body).
		{name: "AuthZEN: text/plain evaluation from a foreign page", method: "POST", path: "/access/v1/evaluation",
			contentType: "text/plain", body: authzenQuestion, origin: evil, fetchS: "cross-site", wantCode: 403},
		{name: "AuthZEN: a form without Origin", method: "POST", path: "/access/v1/evaluation",
			contentType: "application/x-www-form-urlencoded", body: "q=" + url.QueryEscape(authzenQuestion), wantCode: 400},
		{name: "AuthZEN: JSON from a foreign origin", method: "POST", path: "/tenants/contoso/access/v1/evaluation",
			contentType: "application/json", body: authzenQuestion, origin: evil, wantCode: 403},
		{name: "AuthZEN rebinding: an evaluation", method: "POST", path: "/access/v1/evaluation", contentType: "application/json",
			body: authzenQuestion, host: "evil.example:" + port, wantCode: 403},
		{name: "AuthZEN rebinding: a subject search", method: "POST", path: "/access/v1/search/subject", contentType: "application/json",
			body: `{"subject":{"type":"user"},"action":{"name":"member"},"resource":{"type":"group","id":"grp-engineering"}}`,
			host: "evil.example:" + port, wantCode: 403},
		{name: "AuthZEN rebinding: discovery", method: "GET", path: "/.well-known/authzen-configuration", host: "evil.example:" + port, wantCode: 403},
	} {
		t.Run(r.name, func(t *testing.T) {
			code, h, body := send(t, srv.HTTPURL, r)
			if code != r.wantCode {
				t.Fatalf("HTTP %d %s, want %d", code, body, r.wantCode)
			}
			if h.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("CORS answer %q for a refused request", h.Get("Access-Control-Allow-Origin"))
			}
			for _, leak := range []string{"u-frank", "grp-", "explorer page", "swagger"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("the refusal shows %q: %s", leak, body)
				}
			}
		})
	}
	st, err := srv.Client.Directory.GetStatus(context.Background(), &pb.GetStatusRequest{TenantId: "contoso"})
	if err != nil {
		t.Fatal(err)
	}
	if rev := st.GetRevision(); rev != 1 {
		t.Errorf("revision %d after the attacks, want 1: something was written", rev)
	}
	m, err := srv.Client.Decisions.CheckMembership(context.Background(), &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: "grp-finance", PrincipalId: "u-frank"})
	if err != nil {
		t.Fatal(err)
	}
	if m.GetIsMember() {
		t.Error("u-frank is in grp-finance after the attacks")
	}
}

// TestBrowserRulesLetTheRightCallersIn: the explorer (same origin), curl and PowerShell (no Origin), names the
// operator listed, an allowed origin with CORS, and links to the explorer from elsewhere.
func TestBrowserRulesLetTheRightCallersIn(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true,
		HTTPRoot: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "explorer page") }),
		Browser:  gateway.BrowserRules{AllowedOrigins: []string{"https://portal.example"}, AllowedHosts: []string{"groupgate.internal"}}})
	u, _ := url.Parse(srv.HTTPURL)
	port := u.Port()
	read := `{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-erin"}`
	for _, r := range []browserRequest{
		{name: "curl --json", method: "POST", path: "/v1/checkMembership", contentType: "application/json", body: read, wantCode: 200},
		{name: "PowerShell 5.1 with a charset", method: "POST", path: "/v1/checkMembership", contentType: "application/json; charset=utf-8", body: read, wantCode: 200},
		{name: "the explorer: same origin by address", method: "POST", path: "/v1/checkMembership", contentType: "application/json", body: read,
			origin: srv.HTTPURL, fetchS: "same-origin", wantCode: 200},
		{name: "the explorer: same origin as localhost", method: "POST", path: "/v1/checkMembership", contentType: "application/json", body: read,
			host: "localhost:" + port, origin: "http://localhost:" + port, fetchS: "same-origin", wantCode: 200},
		{name: "Host [::1] with a port", method: "POST", path: "/v1/checkMembership", contentType: "application/json", body: read,
			host: "[::1]:" + port, wantCode: 200},
		{name: "Host 127.0.0.2 (all of 127/8 is loopback)", method: "GET", path: "/", host: "127.0.0.2", wantCode: 200},
		{name: "a listed host name", method: "POST", path: "/v1/checkMembership", contentType: "application/json", body: read,
			host: "groupgate.internal:" + port, wantCode: 200},
		{name: "a listed origin's script", method: "POST", path: "/v1/checkMembership", contentType: "application/json", body: read,
			origin: "https://portal.example", fetchS: "cross-site", wantCode: 200, wantCORS: true},
		{name: "a listed origin's preflight", method: "OPTIONS", path: "/v1/checkMembership",
			origin: "https://portal.example", fetchS: "cross-site", preflightMethod: "POST", wantCode: 204, wantCORS: true},
		{name: "a link to the explorer from another site", method: "GET", path: "/", origin: "", fetchS: "cross-site", wantCode: 200},
		{name: "health from a probe", method: "GET", path: "/healthz", wantCode: 200},
		{name: "ImportSnapshot's parts as NDJSON", method: "POST", path: "/v1/getStatus", contentType: "application/x-ndjson", body: `{"tenantId":"contoso"}`, wantCode: 200},
		{name: "GET of the API is still the wrong method", method: "GET", path: "/v1/checkMembership", wantCode: 405},
	} {
		t.Run(r.name, func(t *testing.T) {
			code, h, body := send(t, srv.HTTPURL, r)
			if code != r.wantCode {
				t.Fatalf("HTTP %d %s, want %d", code, body, r.wantCode)
			}
			if got := h.Get("Access-Control-Allow-Origin"); r.wantCORS != (got == r.origin && got != "") {
				t.Errorf("Access-Control-Allow-Origin %q", got)
			}
			if r.preflightMethod != "" && !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
				t.Errorf("preflight allows headers %q: the explorer's bearer token would be refused", h.Get("Access-Control-Allow-Headers"))
			}
		})
	}
}
