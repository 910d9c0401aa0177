package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/groupgate/groupgate/server/servertest"
)

func TestMetricsScrape(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{Metrics: true})
	for i := 0; i < 3; i++ {
		if _, err := srv.Client.CheckMembership(ctx(t), "contoso", "grp-finance", "u-erin"); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = srv.Client.CheckMembership(ctx(t), "contoso", "grp-nope", "u-erin") // NotFound
	web := httptest.NewServer(srv.Metrics.Handler())
	defer web.Close()
	resp, err := http.Get(web.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="CheckMembership",grpc_service="groupgate.v1.DecisionService",grpc_type="unary"} 3`,
		`grpc_server_handled_total{grpc_code="NotFound",grpc_method="CheckMembership",grpc_service="groupgate.v1.DecisionService",grpc_type="unary"} 1`,
		`groupgate_tenant_revision{tenant="contoso"} 1`,
		`groupgate_tenant_objects{kind="group",tenant="contoso"}`,
		`groupgate_tenant_replication_lag_seconds{tenant="contoso"} 0`,
		`grpc_server_handling_seconds_bucket`,
		`go_goroutines`,
		`groupgate_cache_hits_total`,
		`groupgate_cache_misses_total`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}
