package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/otlptest"
	"github.com/groupgate/groupgate/server/servertest"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/metadata"
)

// TestTracing: a caller's W3C traceparent is continued over gRPC (otelgrpc's stats handler) and over HTTP (the
// gateway forwards the header; the in-process call gets its span from the interceptor); the server span is the
// caller's span's child, the policy and resolver spans are the server span's children with their attributes, and
// the decision record carries the trace id.
func TestTracing(t *testing.T) {
	recv := otlptest.Start(t)
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(recv.Endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	log := &capturedLog{}
	srv := servertest.StartWith(t, servertest.Options{TracerProvider: tp, DecisionLog: log, HTTP: true})

	for _, tc := range []struct {
		name, traceID, parentID, transport string
		call                               func(traceparent string)
	}{
		{"grpc", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "", func(traceparent string) {
			c := metadata.AppendToOutgoingContext(ctx, "traceparent", traceparent)
			if _, err := srv.Client.Decisions.CanAddMember(c, &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-finance", MemberId: "u-gina", ActorId: "u-oscar"}); err != nil {
				t.Fatal(err)
			}
		}},
		{"http", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "http-gateway", func(traceparent string) {
			req, _ := http.NewRequest(http.MethodPost, srv.HTTPURL+"/v1/canAddMember",
				strings.NewReader(`{"tenantId":"contoso","groupId":"grp-finance","memberId":"u-gina","actorId":"u-oscar"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Traceparent", traceparent)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d", resp.StatusCode)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.call("00-" + tc.traceID + "-" + tc.parentID + "-01")
			rpc := recv.WaitFor(t, tc.traceID, "groupgate.v1.DecisionService/CanAddMember")
			if rpc.ParentSpanID != tc.parentID {
				t.Errorf("server span's parent %s, want the caller's span %s", rpc.ParentSpanID, tc.parentID)
			}
			if tc.transport == "" && rpc.Attributes["rpc.response.status_code"] != "OK" { // otelgrpc's, at the call's end
				t.Errorf("server span's attributes %v, want rpc.response.status_code OK", rpc.Attributes)
			}
			if tc.transport != "" && rpc.Attributes["groupgate.transport"] != tc.transport {
				t.Errorf("server span's attributes %v, want groupgate.transport %s", rpc.Attributes, tc.transport)
			}
			policy := recv.WaitFor(t, tc.traceID, "policy.can_add_member")
			if policy.ParentSpanID != rpc.SpanID {
				t.Errorf("policy span's parent %s, want the server span %s", policy.ParentSpanID, rpc.SpanID)
			}
			if policy.Attributes["groupgate.tenant"] != "contoso" || policy.Attributes["groupgate.rule_count"] != "1" ||
				!strings.Contains(policy.Attributes["groupgate.rules"], "RULE_LABEL_BLOCKS_GUESTS") {
				t.Errorf("policy span's attributes %v, want tenant contoso, one rule, RULE_LABEL_BLOCKS_GUESTS", policy.Attributes)
			}
			recs := log.take()
			if len(recs) != 1 || recs[0].TraceID != tc.traceID {
				t.Fatalf("records %v, want one in trace %s", recs, tc.traceID)
			}
			if policy.Attributes["groupgate.decision_id"] != recs[0].DecisionID {
				t.Errorf("policy span's decision_id %q, want the record's %q", policy.Attributes["groupgate.decision_id"], recs[0].DecisionID)
			}
		})
	}

	// The depth the resolver's walks reached inside a Can* question: Engineering holds guest Frank two levels
	// down (Engineering → Engineering Contractors → Frank), so adding it to Finance walks at least that deep.
	for _, tc := range []struct {
		traceID, member string
		wantDepth       string
	}{
		{"33333333333333333333333333333333", "grp-engineering", "2"},
		{"44444444444444444444444444444444", "u-gina", "0"},
	} {
		c := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+tc.traceID+"-5555555555555555-01")
		if _, err := srv.Client.Decisions.CanAddMember(c, &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-finance", MemberId: tc.member, ActorId: "u-oscar"}); err != nil {
			t.Fatal(err)
		}
		policy := recv.WaitFor(t, tc.traceID, "policy.can_add_member")
		if got := policy.Attributes["groupgate.depth_reached"]; got != tc.wantDepth {
			t.Errorf("adding %s: policy span's depth_reached %s, want %s (attributes %v)", tc.member, got, tc.wantDepth, policy.Attributes)
		}
		log.take()
	}

	// A resolver walk: CheckMembership of a member two levels down.
	traceID := "11111111111111111111111111111111"
	c := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+traceID+"-2222222222222222-01")
	if _, err := srv.Client.Decisions.CheckMembership(c, &pb.CheckMembershipRequest{TenantId: "contoso", GroupId: "grp-finance", PrincipalId: "u-erin"}); err != nil {
		t.Fatal(err)
	}
	rpc := recv.WaitFor(t, traceID, "groupgate.v1.DecisionService/CheckMembership")
	walk := recv.WaitFor(t, traceID, "resolver.member_path")
	if walk.ParentSpanID != rpc.SpanID || walk.Attributes["groupgate.depth_reached"] != "2" {
		t.Errorf("resolver span %+v, want the server span's child with depth_reached 2", walk)
	}
	// Calls without a traceparent start traces of their own.
	if _, err := srv.Client.CheckMembership(ctx, "contoso", "grp-finance", "u-dave"); err != nil {
		t.Fatal(err)
	}
	var root *otlptest.Span
	waitFor(t, func() bool { // the server span ends (and is exported) just after the answer is sent
		for _, s := range recv.Spans() {
			if s.Name == "groupgate.v1.DecisionService/CheckMembership" && s.TraceID != traceID {
				root = s
			}
		}
		return root != nil
	})
	if root.TraceID == traceID || root.ParentSpanID != "" {
		t.Errorf("a call without traceparent: span %+v, want a root span of a new trace", root)
	}
}
