package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/groupgate/groupgate/bench"
	"github.com/groupgate/groupgate/internal/workload"
)

// TestRateCapsRequests: with --rate, the workers together send rate × duration requests, not as many as the
// (no-op) server answers, which is thousands per second.
func TestRateCapsRequests(t *testing.T) {
	addr, stop, err := bench.NoOpServer()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	p, _ := workload.Preset("tiny")
	const rate, seconds = 200, 1
	r, err := bench.Run(context.Background(), "noop", bench.Config{Addr: addr, Tenant: p.TenantID, Params: p, Concurrency: 4,
		Duration: seconds * time.Second, Mix: bench.Mix{CheckMembership: 1}, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	// At most one request per slot (plus the slots taken as the run ends); at least half, however busy the machine.
	if r.Requests > rate*seconds+4 || r.Requests < rate*seconds/2 || r.Errors != 0 {
		t.Errorf("%d requests (%d errors) in %.2fs at --rate %d, want about %d", r.Requests, r.Errors, r.Seconds, rate, rate*seconds)
	}
}
