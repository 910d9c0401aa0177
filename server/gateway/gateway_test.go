package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/syncbuf"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/gateway"
	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

const (
	checkerToken = "checker-token-0123456789"
	writerToken  = "writer-token-0123456789ab"
)

func tokens(t *testing.T) *server.Tokens {
	t.Helper()
	tok, err := server.ParseTokens(strings.NewReader("checker:" + checkerToken + "\nwriter:" + writerToken + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call is one HTTP request to the API.
type call struct {
	method, path, token, body string
	header                    map[string]string
	// chunked sends the body without a Content-Length.
	chunked bool
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func do(t *testing.T, base string, c call) answer {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	var body io.Reader = strings.NewReader(c.body)
	if c.chunked {
		body = io.MultiReader(strings.NewReader(c.body)) // hides the length from net/http
	}
	req, err := http.NewRequest(c.method, base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: b}
}

// statusOf parses an error body: a google.rpc.Status in JSON.
func statusOf(t *testing.T, b []byte) *status.Status {
	t.Helper()
	var st spb.Status
	if err := protojson.Unmarshal(b, &st); err != nil {
		t.Fatalf("error body %s is not a google.rpc.Status: %v", b, err)
	}
	return status.FromProto(&st)
}

func TestHTTPErrorsCarryTheStatusOfTheirCode(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens(t), Limits: server.Limits{MaxRecvBytes: 64 << 10}})
	big := `{"tenantId":"contoso","groupId":"grp-finance","memberId":"u-erin","actorId":"` + strings.Repeat("a", 100<<10) + `"}`
	tests := []struct {
		name     string
		call     call
		httpCode int
		grpcCode codes.Code
		// detail checks the status's details; nil checks nothing more.
		detail func(t *testing.T, details []any)
	}{
		{name: "no token", call: call{path: "/v1/canAddMember", body: `{"tenantId":"contoso","groupId":"grp-finance","memberId":"u-erin","actorId":"u-oscar"}`},
			httpCode: 401, grpcCode: codes.Unauthenticated},
		{name: "unknown token", call: call{path: "/v1/canAddMember", token: "not-a-token-of-this-server", body: `{}`},
			httpCode: 401, grpcCode: codes.Unauthenticated},
		{name: "a checker writing", call: call{path: "/v1/writeChanges", token: checkerToken,
			body: `{"tenantId":"contoso","changes":[{"addMember":{"groupId":"grp-finance","memberId":"u-erin"}}]}`},
			httpCode: 403, grpcCode: codes.PermissionDenied},
		{name: "a checker reading status", call: call{path: "/v1/getStatus", token: checkerToken, body: `{"tenantId":"contoso"}`},
			httpCode: 403, grpcCode: codes.PermissionDenied},
		{name: "oversized body with its length", call: call{path: "/v1/canAddMember", token: checkerToken, body: big},
			httpCode: 413, grpcCode: codes.ResourceExhausted},
		{name: "oversized body, chunked", call: call{path: "/v1/canAddMember", token: checkerToken, body: big, chunked: true},
			httpCode: 413, grpcCode: codes.ResourceExhausted},
		{name: "malformed id", call: call{path: "/v1/canAddMember", token: checkerToken,
			body: `{"tenantId":"contoso","groupId":"grp finance!","memberId":"u-erin","actorId":"u-oscar"}`},
			httpCode: 400, grpcCode: codes.InvalidArgument, detail: func(t *testing.T, details []any) {
				br := detailOf[*errdetails.BadRequest](t, details)
				if len(br.GetFieldViolations()) != 1 || br.GetFieldViolations()[0].GetField() != "group_id" {
					t.Errorf("BadRequest %v, want one violation of group_id", br)
				}
			}},
		{name: "unknown JSON field", call: call{path: "/v1/canAddMember", token: checkerToken, body: `{"tenantId":"contoso","group":"grp-finance"}`},
			httpCode: 400, grpcCode: codes.InvalidArgument},
		{name: "not JSON", call: call{path: "/v1/canAddMember", token: checkerToken, body: `tenant=contoso`},
			httpCode: 400, grpcCode: codes.InvalidArgument},
		{name: "unknown group", call: call{path: "/v1/canAddMember", token: checkerToken,
			body: `{"tenantId":"contoso","groupId":"grp-nope","memberId":"u-erin","actorId":"u-oscar"}`},
			httpCode: 404, grpcCode: codes.NotFound, detail: func(t *testing.T, details []any) {
				ri := detailOf[*errdetails.ResourceInfo](t, details)
				if ri.GetResourceType() != "group" || ri.GetResourceName() != "grp-nope" {
					t.Errorf("ResourceInfo %v, want group grp-nope", ri)
				}
			}},
		{name: "min_revision not reached in time", call: call{path: "/v1/checkMembership", token: checkerToken,
			header: map[string]string{"Grpc-Timeout": "200m"},
			body:   `{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-erin","consistency":{"minRevision":"99"}}`},
			httpCode: 504, grpcCode: codes.DeadlineExceeded},
		{name: "expected_revision not met", call: call{path: "/v1/writeChanges", token: writerToken,
			body: `{"tenantId":"contoso","expectedRevision":"7","changes":[{"addMember":{"groupId":"grp-finance","memberId":"u-erin"}}]}`},
			httpCode: 412, grpcCode: codes.FailedPrecondition, detail: func(t *testing.T, details []any) {
				if pf := detailOf[*errdetails.PreconditionFailure](t, details); pf.GetViolations()[0].GetSubject() != "expected_revision" {
					t.Errorf("PreconditionFailure %v, want subject expected_revision", pf)
				}
			}},
		{name: "unknown route", call: call{path: "/v1/canDoAnything", token: checkerToken, body: `{}`},
			httpCode: 404, grpcCode: codes.NotFound},
		{name: "GET on a POST route", call: call{method: http.MethodGet, path: "/v1/canAddMember", token: checkerToken},
			httpCode: 405, grpcCode: codes.Unimplemented},
		{name: "outside the API without a root handler", call: call{method: http.MethodGet, path: "/"},
			httpCode: 404, grpcCode: codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, srv.HTTPURL, tt.call)
			if a.code != tt.httpCode {
				t.Fatalf("HTTP %d %s, want %d", a.code, a.body, tt.httpCode)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q, want application/json; charset=utf-8", ct)
			}
			st := statusOf(t, a.body)
			if st.Code() != tt.grpcCode || st.Message() == "" {
				t.Fatalf("status %v, want %v with a message", st.Proto(), tt.grpcCode)
			}
			if tt.detail != nil {
				tt.detail(t, st.Details())
			}
			if tt.httpCode == 401 && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", a.header.Get("WWW-Authenticate"))
			}
		})
	}
}

func detailOf[T proto.Message](t *testing.T, details []any) T {
	t.Helper()
	for _, d := range details {
		if v, ok := d.(T); ok {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T among the details %v", zero, details)
	return zero
}

func TestHTTPAnswersLikeGRPC(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens(t)})
	ctx := context.Background()
	// A DENY with its evidence path (README's example): the same decision as over gRPC.
	req := &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-finance", MemberId: "grp-engineering", ActorId: "u-gary"}
	a := do(t, srv.HTTPURL, call{path: "/v1/canAddMember", token: checkerToken, body: protojson.Format(req)})
	if a.code != 200 {
		t.Fatalf("HTTP %d %s", a.code, a.body)
	}
	var got pb.CanAddMemberResponse
	if err := protojson.Unmarshal(a.body, &got); err != nil {
		t.Fatal(err)
	}
	want, err := srv.Client.Decisions.CanAddMember(withToken(ctx, checkerToken), req)
	if err != nil {
		t.Fatal(err)
	}
	// Each decision has its own id: the rest is the same.
	if got.GetDecision().GetDecisionId() == "" || got.GetDecision().GetDecisionId() == want.GetDecision().GetDecisionId() {
		t.Errorf("decision ids %q over HTTP and %q over gRPC: want two different ones", got.GetDecision().GetDecisionId(), want.GetDecision().GetDecisionId())
	}
	got.Decision.DecisionId, want.Decision.DecisionId = "", ""
	if !proto.Equal(&got, want) {
		t.Errorf("HTTP answered\n%v\ngRPC answered\n%v", &got, want)
	}
	if got.GetDecision().GetVerdict() != pb.Verdict_VERDICT_DENY || len(got.GetDecision().GetViolations()[0].GetPath()) == 0 {
		t.Errorf("want a DENY with an evidence path, got %v", &got)
	}
	// Field names are lowerCamelCase and zero values are present: a workflow reads isMember false, not nothing.
	b := do(t, srv.HTTPURL, call{path: "/v1/checkMembership", token: checkerToken, body: `{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-oscar"}`})
	var raw map[string]any
	if err := json.Unmarshal(b.body, &raw); err != nil {
		t.Fatal(err)
	}
	if v, ok := raw["isMember"]; !ok || v != false || raw["path"] == nil || raw["revision"] != "1" {
		t.Errorf("checkMembership answered %s, want isMember false, an empty path and revision \"1\"", b.body)
	}
	// A writer's write is visible to the next read, through the same routes.
	w := do(t, srv.HTTPURL, call{path: "/v1/writeChanges", token: writerToken,
		body: `{"tenantId":"contoso","requestId":"http-1","changes":[{"addMember":{"groupId":"grp-finance","memberId":"u-oscar"}}]}`})
	if w.code != 200 || !strings.Contains(string(w.body), `"revision":"2"`) {
		t.Fatalf("writeChanges: HTTP %d %s", w.code, w.body)
	}
	m := do(t, srv.HTTPURL, call{path: "/v1/checkMembership", token: checkerToken,
		body: `{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-oscar","consistency":{"minRevision":"2"}}`})
	if !strings.Contains(string(m.body), `"isMember":true`) {
		t.Errorf("after the write: %s", m.body)
	}
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// stream posts to a server-streaming route and returns its NDJSON lines, each {"result": …} or {"error": …}.
func stream(t *testing.T, base, path, token, body string) (int, http.Header, []map[string]json.RawMessage) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lines []map[string]json.RawMessage
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var line map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, lines
}

func TestHTTPStreamsAreNDJSON(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens(t)})
	ctx := withToken(context.Background(), checkerToken)

	t.Run("EffectiveMembers", func(t *testing.T) {
		code, h, lines := stream(t, srv.HTTPURL, "/v1/effectiveMembers", checkerToken, `{"tenantId":"contoso","groupId":"grp-all-staff","pageSize":2}`)
		if code != 200 || h.Get("Content-Type") != "application/x-ndjson; charset=utf-8" {
			t.Fatalf("HTTP %d, Content-Type %q", code, h.Get("Content-Type"))
		}
		var got []string
		revs := map[int64]bool{}
		for _, l := range lines {
			var r pb.EffectiveMembersResponse
			if err := protojson.Unmarshal(l["result"], &r); err != nil {
				t.Fatalf("line %s: %v", l["result"], err)
			}
			if len(r.GetMembers()) > 2 {
				t.Errorf("a line of %d members with pageSize 2", len(r.GetMembers()))
			}
			revs[r.GetRevision()] = true
			for _, m := range r.GetMembers() {
				got = append(got, m.GetId())
			}
		}
		var want []string
		if err := srv.Client.EachMember(ctx, &pb.EffectiveMembersRequest{TenantId: "contoso", GroupId: "grp-all-staff"}, func(r *pb.EffectiveMembersResponse) error {
			for _, m := range r.GetMembers() {
				want = append(want, m.GetId())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		slices.Sort(want)
		if len(lines) < 2 || len(revs) != 1 || !slices.Equal(got, want) {
			t.Errorf("%d lines on revisions %v with members %v; gRPC streams %v", len(lines), revs, got, want)
		}
	})

	t.Run("Audit", func(t *testing.T) {
		code, _, lines := stream(t, srv.HTTPURL, "/v1/audit", checkerToken, `{"tenantId":"contoso"}`)
		if code != 200 || len(lines) == 0 {
			t.Fatalf("HTTP %d, %d lines", code, len(lines))
		}
		var got []string
		for _, l := range lines {
			var r pb.AuditResponse
			if err := protojson.Unmarshal(l["result"], &r); err != nil {
				t.Fatalf("line %s: %v", l["result"], err)
			}
			for _, f := range r.GetFindings() {
				got = append(got, f.GetRule().String()+" "+f.GetGroupId())
			}
		}
		s, err := srv.Client.Decisions.Audit(ctx, &pb.AuditRequest{TenantId: "contoso"})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for {
			r, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range r.GetFindings() {
				want = append(want, f.GetRule().String()+" "+f.GetGroupId())
			}
		}
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("HTTP findings %v, gRPC %v", got, want)
		}
	})

	t.Run("an unknown group before the first line", func(t *testing.T) {
		code, _, lines := stream(t, srv.HTTPURL, "/v1/effectiveMembers", checkerToken, `{"tenantId":"contoso","groupId":"grp-nope"}`)
		if code != 404 || len(lines) != 1 || lines[0]["error"] == nil {
			t.Fatalf("HTTP %d %v, want 404 and one error line", code, lines)
		}
		st := statusOf(t, lines[0]["error"])
		if st.Code() != codes.NotFound || detailOf[*errdetails.ResourceInfo](t, st.Details()).GetResourceName() != "grp-nope" {
			t.Errorf("error line %s", lines[0]["error"])
		}
	})

	t.Run("a watch of an unknown tenant", func(t *testing.T) {
		code, _, lines := stream(t, srv.HTTPURL, "/v1/watch", writerToken, `{"tenantId":"nope"}`)
		if code != 404 || len(lines) != 1 || statusOf(t, lines[0]["error"]).Code() != codes.NotFound {
			t.Errorf("HTTP %d %v, want 404 and one NOT_FOUND line", code, lines)
		}
	})

	t.Run("a checker may not watch", func(t *testing.T) {
		code, _, _ := stream(t, srv.HTTPURL, "/v1/watch", checkerToken, `{"tenantId":"contoso"}`)
		if code != 403 {
			t.Errorf("HTTP %d, want 403", code)
		}
	})

	t.Run("ExportSnapshot", func(t *testing.T) {
		code, _, lines := stream(t, srv.HTTPURL, "/v1/exportSnapshot", writerToken, `{"tenantId":"contoso"}`)
		if code != 200 || len(lines) == 0 {
			t.Fatalf("HTTP %d, %d lines", code, len(lines))
		}
		snap := &pb.Snapshot{}
		for _, l := range lines {
			var r pb.ExportSnapshotResponse
			if err := protojson.Unmarshal(l["result"], &r); err != nil {
				t.Fatal(err)
			}
			proto.Merge(snap, r.GetSnapshot())
		}
		if snap.GetTenantId() != "contoso" || len(snap.GetGroups()) == 0 || len(snap.GetUsers()) == 0 {
			t.Errorf("exported snapshot: tenant %q, %d groups, %d users", snap.GetTenantId(), len(snap.GetGroups()), len(snap.GetUsers()))
		}
	})
}

func TestHTTPHealthz(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens(t)})
	a := do(t, srv.HTTPURL, call{method: http.MethodGet, path: "/healthz"}) // no token: probes send none
	if a.code != 200 || !strings.Contains(string(a.body), "SERVING") {
		t.Fatalf("healthz: HTTP %d %s", a.code, a.body)
	}
	// A draining server (NOT_SERVING; Shutdown starts with it). Once the gRPC server has stopped, server/app
	// stops the HTTP listener too.
	srv.Server.MarkNotServing()
	a = do(t, srv.HTTPURL, call{method: http.MethodGet, path: "/healthz"})
	if a.code != 503 {
		t.Fatalf("healthz while not serving: HTTP %d %s, want 503", a.code, a.body)
	}
}

func TestHTTPCallsPassTheInterceptors(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, Metrics: true})
	for range 3 {
		do(t, srv.HTTPURL, call{path: "/v1/checkMembership", body: `{"tenantId":"contoso","groupId":"grp-finance","principalId":"u-erin"}`})
	}
	do(t, srv.HTTPURL, call{path: "/v1/checkMembership", body: `{"tenantId":"contoso","groupId":"grp-nope","principalId":"u-erin"}`})
	rec := httptest.NewRecorder()
	srv.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="CheckMembership",grpc_service="groupgate.v1.DecisionService",grpc_type="unary"} 3`,
		`grpc_server_handled_total{grpc_code="NotFound",grpc_method="CheckMembership",grpc_service="groupgate.v1.DecisionService",grpc_type="unary"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestHTTPRootHandler(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<title>explorer</title>"+r.URL.Path)
	})
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, HTTPRoot: page})
	for _, path := range []string{"/", "/app.js"} {
		a := do(t, srv.HTTPURL, call{method: http.MethodGet, path: path})
		if a.code != 200 || string(a.body) != "<title>explorer</title>"+path {
			t.Errorf("GET %s: HTTP %d %s", path, a.code, a.body)
		}
	}
	if a := do(t, srv.HTTPURL, call{method: http.MethodGet, path: "/healthz"}); a.code != 200 {
		t.Errorf("healthz with a root handler: HTTP %d", a.code)
	}
}

func TestOpenAPIDocument(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens(t)})
	a := do(t, srv.HTTPURL, call{method: http.MethodGet, path: "/openapi.json"}) // no token: a connector wizard fetches it
	if a.code != 200 {
		t.Fatalf("HTTP %d", a.code)
	}
	var doc struct {
		Info struct {
			Title, Description string
		} `json:"info"`
		Swagger             string   `json:"swagger"`
		Consumes            []string `json:"consumes"`
		SecurityDefinitions map[string]struct {
			Type, In, Name string
		} `json:"securityDefinitions"`
		Security []map[string][]string                `json:"security"`
		Paths    map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Swagger != "2.0" || !slices.Equal(doc.Consumes, []string{"application/json"}) {
		t.Errorf("swagger %q consuming %v, want 2.0 and JSON", doc.Swagger, doc.Consumes)
	}
	// A connector's title has at most 30 characters, and neither it nor the description may say "API".
	if len(doc.Info.Title) == 0 || len(doc.Info.Title) > 30 || strings.Contains(doc.Info.Title+" "+doc.Info.Description, "API") {
		t.Errorf("info %+v: want a title of 1-30 characters and no word API", doc.Info)
	}
	if sd := doc.SecurityDefinitions["bearer"]; sd.Type != "apiKey" || sd.In != "header" || sd.Name != "Authorization" {
		t.Errorf("securityDefinitions %v, want bearer: an apiKey in the Authorization header", doc.SecurityDefinitions)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Errorf("security %v, want bearer on every operation", doc.Security)
	}
	// Every RPC of both services has its route, with an operationId and a summary.
	ids := map[string]bool{}
	for _, sd := range []protoreflect.ServiceDescriptor{
		pb.File_groupgate_v1_decision_proto.Services().ByName("DecisionService"),
		pb.File_groupgate_v1_directory_proto.Services().ByName("DirectoryService"),
	} {
		for i := range sd.Methods().Len() {
			name := string(sd.Methods().Get(i).Name())
			path := "/v1/" + strings.ToLower(name[:1]) + name[1:]
			op := doc.Paths[path]["post"]
			if op == nil {
				t.Errorf("no POST %s for %s", path, name)
				continue
			}
			id, _ := op["operationId"].(string)
			summary, _ := op["summary"].(string)
			if id != name || summary == "" || ids[id] {
				t.Errorf("POST %s: operationId %q (want %q, unique), summary %q", path, id, name, summary)
			}
			// The custom connector string guidance: the summary is the action's name in the flow designer, at
			// most 80 characters, no slash, ending in a letter or digit. It is the first paragraph of the
			// RPC's proto comment, followed by an empty comment line.
			if last := summary[len(summary)-1:]; len(summary) > 80 || strings.Contains(summary, "/") || !strings.ContainsAny(last, alnum) {
				t.Errorf("POST %s: summary %q: want at most 80 characters, no '/', a letter or digit at the end", path, summary)
			}
			ids[id] = true
		}
	}
	v1 := 0
	for p := range doc.Paths {
		if strings.HasPrefix(p, "/v1/") {
			v1++
		}
	}
	if v1 != len(ids) {
		t.Errorf("%d /v1/ paths for %d RPCs", v1, len(ids))
	}
	// The AuthZEN routes (SPEC §17), merged in at serve time: each POST with an operationId and a summary, per
	// tenant and unprefixed, and discovery's GET.
	for _, p := range []string{"evaluation", "evaluations", "search/subject", "search/resource", "search/action"} {
		for _, path := range []string{"/access/v1/" + p, "/tenants/{tenant_id}/access/v1/" + p} {
			op := doc.Paths[path]["post"]
			id, _ := op["operationId"].(string)
			summary, _ := op["summary"].(string)
			if op == nil || id == "" || ids[id] || summary == "" || len(summary) > 80 || strings.Contains(summary, "/") {
				t.Errorf("POST %s: %v", path, op)
			}
			ids[id] = true
		}
	}
	for _, path := range []string{"/.well-known/authzen-configuration", "/.well-known/authzen-configuration/tenants/{tenant_id}"} {
		if doc.Paths[path]["get"] == nil {
			t.Errorf("no GET %s", path)
		}
	}
	if len(doc.Paths) != v1+12 {
		t.Errorf("%d paths: %d /v1/ and 12 AuthZEN expected", len(doc.Paths), v1)
	}
}

func TestCompactKeepsStrings(t *testing.T) {
	msg := &pb.Violation{Rule: pb.Rule_RULE_LABEL_BLOCKS_GUESTS, Message: `a "quoted" \ name, with: spaces , and ", "`, Path: []string{"g 1", "u-2"}}
	for _, opts := range []protojson.MarshalOptions{{}, {EmitUnpopulated: true}} {
		raw, err := opts.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		got := gateway.Compact(append([]byte(nil), raw...))
		var want bytes.Buffer
		if err := json.Compact(&want, raw); err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Errorf("compact(%s) = %s, want %s", raw, got, want.String())
		}
	}
}

// TestHTTPImportSnapshotTakesSeveralParts: the client-streaming route reads the body's JSON objects one after
// another, each a part of the snapshot, as the gRPC stream's messages.
func TestHTTPImportSnapshotTakesSeveralParts(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens(t)})
	snap := demo.Snapshot()
	snap.TenantId = "fabrikam"
	groups := snap.Groups
	snap.Groups = nil
	first := protojson.Format(&pb.ImportSnapshotRequest{TenantId: "fabrikam", Snapshot: snap})
	second := protojson.Format(&pb.ImportSnapshotRequest{Snapshot: &pb.Snapshot{Groups: groups}})
	a := do(t, srv.HTTPURL, call{path: "/v1/importSnapshot", token: writerToken, body: first + "\n" + second})
	if a.code != 200 || !strings.Contains(string(a.body), `"revision":"1"`) {
		t.Fatalf("importSnapshot: HTTP %d %s", a.code, a.body)
	}
	m := do(t, srv.HTTPURL, call{path: "/v1/checkMembership", token: checkerToken, body: `{"tenantId":"fabrikam","groupId":"grp-finance","principalId":"u-erin"}`})
	if !strings.Contains(string(m.body), `"isMember":true`) {
		t.Errorf("after the import: HTTP %d %s", m.code, m.body)
	}
}

// TestHTTPWatchStreamsLiveChanges: a Watch over HTTP delivers each new revision as its own NDJSON line while the
// response is still open (the line is flushed, not held until the stream ends).
func TestHTTPWatchStreamsLiveChanges(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.HTTPURL+"/v1/watch", strings.NewReader(`{"tenantId":"contoso","afterRevision":"1"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+writerToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson; charset=utf-8" {
		t.Fatalf("watch: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan []byte)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(lines)
	}()
	w := do(t, srv.HTTPURL, call{path: "/v1/writeChanges", token: writerToken,
		body: `{"tenantId":"contoso","changes":[{"addMember":{"groupId":"grp-finance","memberId":"u-oscar"}}]}`})
	if w.code != 200 {
		t.Fatalf("writeChanges: HTTP %d %s", w.code, w.body)
	}
	select {
	case line := <-lines:
		var l struct{ Result json.RawMessage }
		var got pb.WatchResponse
		if err := json.Unmarshal(line, &l); err != nil || protojson.Unmarshal(l.Result, &got) != nil {
			t.Fatalf("line %s", line)
		}
		if got.GetRevision() != 2 || got.GetChanges()[0].GetAddMember().GetMemberId() != "u-oscar" {
			t.Errorf("watch line %v, want revision 2 adding u-oscar", &got)
		}
	case <-ctx.Done():
		t.Fatal("no watch line for the write")
	}
}

// TestHTTPWatchFindingsStreamsLiveEvents: WatchFindings over HTTP, as a checker, sends the starting findings and
// then each revision's events as NDJSON lines while the response stays open, the finding_id the same on the
// OPENED and the RESOLVED line.
func TestHTTPWatchFindingsStreamsLiveEvents(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true, Tokens: tokens(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.HTTPURL+"/v1/watchFindings",
		strings.NewReader(`{"tenantId":"contoso","rules":["RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE"]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+checkerToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson; charset=utf-8" {
		t.Fatalf("watchFindings: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan *pb.WatchFindingsResponse)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l struct{ Result json.RawMessage }
			var m pb.WatchFindingsResponse
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil || protojson.Unmarshal(l.Result, &m) != nil {
				t.Errorf("line %s", sc.Bytes())
				return
			}
			lines <- &m
		}
	}()
	next := func(what string) *pb.WatchFindingsResponse {
		t.Helper()
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("%s: the stream ended", what)
			}
			return m
		case <-ctx.Done():
			t.Fatalf("%s: no line", what)
		}
		return nil
	}
	// The demo tenant has no transitive guest finding: the starting findings are just the end marker.
	if m := next("start"); !m.GetCurrentDone() || m.GetRevision() != 1 || len(m.GetEvents()) != 0 {
		t.Fatalf("first line %v, want current_done at revision 1", m)
	}
	var ids []string
	for i, change := range []string{"addMember", "removeMember"} {
		w := do(t, srv.HTTPURL, call{path: "/v1/writeChanges", token: writerToken,
			body: `{"tenantId":"contoso","changes":[{"` + change + `":{"groupId":"grp-finance-interns","memberId":"u-gina"}}]}`})
		if w.code != 200 {
			t.Fatalf("%s: HTTP %d %s", change, w.code, w.body)
		}
		m := next(change)
		want := []pb.FindingEventKind{pb.FindingEventKind_FINDING_EVENT_KIND_OPENED, pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED}[i]
		if m.GetRevision() != int64(2+i) || len(m.GetEvents()) != 1 || m.GetEvents()[0].GetKind() != want ||
			m.GetEvents()[0].GetFinding().GetGroupId() != "grp-finance" {
			t.Fatalf("after %s: %v, want one %v event on grp-finance at revision %d", change, m, want, 2+i)
		}
		ids = append(ids, m.GetEvents()[0].GetFindingId())
	}
	if ids[0] != ids[1] || ids[0] == "" {
		t.Errorf("finding ids %v: want the same on OPENED and RESOLVED", ids)
	}
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// TestLogsNameTheConnectionNotAHeader: a failed HTTP call is logged with the HTTP client's address as the
// connection has it; what the client puts in X-Forwarded-For or a Grpc-Metadata- header of the key the gateway
// uses cannot stand in for it.
func TestLogsNameTheConnectionNotAHeader(t *testing.T) {
	logs := &syncbuf.Buffer{}
	srv := servertest.StartWith(t, servertest.Options{HTTP: true,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	a := do(t, srv.HTTPURL, call{path: "/v1/checkMembership", body: `{"tenantId":"contoso","groupId":"grp-nope","principalId":"u-erin"}`,
		header: map[string]string{"X-Forwarded-For": "203.0.113.7", "Grpc-Metadata-" + server.HTTPClientMetadata: "198.51.100.9"}})
	if a.code != http.StatusNotFound {
		t.Fatalf("unknown group: %d %s", a.code, a.body)
	}
	var line string
	for deadline := time.Now().Add(5 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "CheckMembership") && strings.Contains(l, "finished call") {
				line = l
			}
		}
	}
	if !strings.Contains(line, "http.client=127.0.0.1:") {
		t.Errorf("log line %q: want http.client=127.0.0.1:PORT, the connection's address", line)
	}
	for _, spoofed := range []string{"203.0.113.7", "198.51.100.9"} {
		if strings.Contains(line, spoofed) {
			t.Errorf("log line %q names %s, which the client made up", line, spoofed)
		}
	}
}
