package notify_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/syncbuf"
	"github.com/groupgate/groupgate/notify"
	"github.com/groupgate/groupgate/notify/notifytest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
)

var secret = []byte("s3cret-of-the-webhook")

type run struct {
	d      *notify.Deliverer
	reg    *prometheus.Registry
	logs   *syncbuf.Buffer
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs a deliverer for tenant contoso against conn, posting to url, until the test ends.
func start(t *testing.T, conn grpc.ClientConnInterface, url string, ledgers notify.Ledgers, edit func(*notify.Config)) *run {
	t.Helper()
	r := &run{reg: prometheus.NewRegistry(), logs: &syncbuf.Buffer{}, done: make(chan struct{})}
	cfg := notify.Config{URL: url, Secret: secret, Conn: conn, Token: "internal-token-0123456789",
		Tenants: func() []string { return []string{"contoso"} }, Ledgers: ledgers,
		Logger:     slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: r.reg, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		LeaseEvery: 20 * time.Millisecond, TenantsEvery: 50 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	d, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); d.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *run) stop() {
	r.cancel()
	<-r.done
}

// summary is "kind findingID@revision" for each event: what a test compares.
func summary(es []notifytest.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmt.Sprintf("%s %s@%d", strings.TrimPrefix(e.Type, "io.groupgate.finding."), e.Finding.GetFindingId(), e.Finding.GetRevision())
	}
	return out
}

func atLeast(n int) func([]notifytest.Event) bool {
	return func(es []notifytest.Event) bool { return len(es) >= n }
}

// TestDeliversSignedCloudEventsInOrder: a first start announces what is open (at the newest revision), then
// each later revision's events in order, every one a signed CloudEvent whose data is the FindingEvent; the
// stream is opened with the deliverer's bearer token.
func TestDeliversSignedCloudEventsInOrder(t *testing.T) {
	fake := newFake(0)
	a, b, c := finding("grp-a", "g1"), finding("grp-b", "g2"), finding("grp-c", "g3")
	fake.commit([]*pb.Finding{a}, nil) // 1
	recv := notifytest.New(t, secret)
	r := start(t, fake.serve(t), recv.URL+"/hook", notify.NewMemoryLedgers(), nil)
	recv.WaitFor(t, 5*time.Second, "the open finding announced", atLeast(1))
	fake.commit([]*pb.Finding{b}, nil)              // 2
	fake.commit([]*pb.Finding{c}, []*pb.Finding{a}) // 3
	fake.commit(nil, []*pb.Finding{b, c})           // 4
	es := recv.WaitFor(t, 5*time.Second, "every event", atLeast(6))
	want := []string{"opened grp-a.g1@1", "opened grp-b.g2@2", "resolved grp-a.g1@3", "opened grp-c.g3@3", "resolved grp-b.g2@4", "resolved grp-c.g3@4"}
	if got := summary(es); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if bad := recv.Bad(); len(bad) > 0 {
		t.Fatalf("refused posts: %v", bad)
	}
	e := es[1]
	if e.Source != "/tenants/contoso" || e.Subject != "grp-b" || e.ID != "grp-b.g2-opened-2" || e.Type != notify.TypeOpened {
		t.Errorf("event attributes: source %q subject %q id %q type %q", e.Source, e.Subject, e.ID, e.Type)
	}
	waitMetric(t, r.d.Metrics().Delivered, 6)
	if got := testutil.ToFloat64(r.d.Metrics().Delivered); got != 6 {
		t.Errorf("delivered counter %v, want 6", got)
	}
	fake.mu.Lock()
	tokens := fake.tokens
	fake.mu.Unlock()
	if len(tokens) == 0 || tokens[0] != "Bearer internal-token-0123456789" {
		t.Errorf("streams came with authorization %v, want the deliverer's token", tokens)
	}
}

// TestRetriesKeepOrder: a receiver that fails the first posts gets every event, in order, once it answers; the
// failures are counted.
func TestRetriesKeepOrder(t *testing.T) {
	fake := newFake(0)
	recv := notifytest.New(t, secret)
	recv.FailNext(4)
	r := start(t, fake.serve(t), recv.URL, notify.NewMemoryLedgers(), nil)
	fake.waitSubscribed(t, 1)
	var want []string
	for i := range 5 {
		fd := finding("grp-x", fmt.Sprintf("g%d", i))
		rev := fake.commit([]*pb.Finding{fd}, nil)
		want = append(want, fmt.Sprintf("opened grp-x.g%d@%d", i, rev))
	}
	es := recv.WaitFor(t, 5*time.Second, "five events", atLeast(5))
	if got := summary(es); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	waitMetric(t, r.d.Metrics().Delivered, 5)
	if got := testutil.ToFloat64(r.d.Metrics().Failed); got != 4 {
		t.Errorf("failed attempts %v, want 4", got)
	}
	if got := recv.Attempts(); got != 9 {
		t.Errorf("%d posts, want 9 (4 refused, 5 taken)", got)
	}
}

// TestResumesAfterDeliveredRevision: with a position in the ledger (revision 2, grp-a open), a new deliverer
// starts after it: nothing at or before revision 2 again.
func TestResumesAfterDeliveredRevision(t *testing.T) {
	fake := newFake(0)
	a, b := finding("grp-a", "g1"), finding("grp-b", "g2")
	fake.commit([]*pb.Finding{a}, nil)
	fake.commit([]*pb.Finding{b}, nil)
	ledgers := notify.NewMemoryLedgers()
	l, _ := ledgers.Lease(context.Background())
	_ = l.Delivered(context.Background(), "contoso", 2, map[string]*pb.Finding{"grp-a.g1": a, "grp-b.g2": b}, nil)
	l.Release()
	recv := notifytest.New(t, secret)
	start(t, fake.serve(t), recv.URL, ledgers, nil)
	fake.commit(nil, []*pb.Finding{a})
	recv.WaitFor(t, 5*time.Second, "the event of revision 3", atLeast(1))
	time.Sleep(100 * time.Millisecond) // anything redelivered would be here by now
	if got, want := summary(recv.Events()), []string{"resolved grp-a.g1@3"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestOutOfRangeSendsTheDifference: the server's history starts after the delivered revision (a new process),
// so the deliverer starts at the newest revision and sends only the difference: RESOLVED for what the receiver
// holds open and is gone, OPENED for what is new; nothing for what is still open.
func TestOutOfRangeSendsTheDifference(t *testing.T) {
	fake := newFake(0)
	a, b, x := finding("grp-a", "g1"), finding("grp-b", "g2"), finding("grp-x", "g9")
	fake.commit([]*pb.Finding{a}, nil)   // 1
	fake.commit([]*pb.Finding{b}, nil)   // 2
	fake.oldest = 2                      // the history this process holds starts at 2
	ledgers := notify.NewMemoryLedgers() // the receiver was told up to revision 1: a and x open
	l, _ := ledgers.Lease(context.Background())
	_ = l.Delivered(context.Background(), "contoso", 1, map[string]*pb.Finding{"grp-a.g1": a, "grp-x.g9": x}, nil)
	l.Release()
	recv := notifytest.New(t, secret)
	r := start(t, fake.serve(t), recv.URL, ledgers, nil)
	recv.WaitFor(t, 5*time.Second, "the difference", atLeast(2))
	fake.commit(nil, []*pb.Finding{b}) // 3
	es := recv.WaitFor(t, 5*time.Second, "the difference, then revision 3", atLeast(3))
	if got, want := summary(es), []string{"resolved grp-x.g9@2", "opened grp-b.g2@2", "resolved grp-b.g2@3"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if !strings.Contains(r.logs.String(), "catching up by difference") {
		t.Errorf("the fallback was not logged:\n%s", r.logs)
	}
}

// TestResumesWhenTheStreamIsExhausted: a stream the server ends with RESOURCE_EXHAUSTED (the deliverer fell
// behind) is resumed from the delivered revision: every event arrives, each once.
func TestResumesWhenTheStreamIsExhausted(t *testing.T) {
	fake := newFake(0)
	fake.exhaustAfter = 2
	recv := notifytest.New(t, secret)
	start(t, fake.serve(t), recv.URL, notify.NewMemoryLedgers(), nil)
	fake.waitSubscribed(t, 1)
	var want []string
	for i := range 7 {
		rev := fake.commit([]*pb.Finding{finding("grp-y", fmt.Sprintf("g%d", i))}, nil)
		want = append(want, fmt.Sprintf("opened grp-y.g%d@%d", i, rev))
	}
	recv.WaitFor(t, 5*time.Second, "seven events", atLeast(7))
	time.Sleep(100 * time.Millisecond)
	if got := summary(recv.Events()); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.exhausted < 2 {
		t.Fatalf("the stream was exhausted %d times: the test did not exercise resuming", fake.exhausted)
	}
}

// TestNeverLogsSecretOrQuery: the URL's query (a Logic App's SAS signature) and the secret appear in no log line
// and no error, whether the receiver refuses posts or cannot be reached at all.
func TestNeverLogsSecretOrQuery(t *testing.T) {
	const sig = "SAS-SIGNATURE-VALUE"
	recv := notifytest.New(t, secret)
	recv.FailNext(3)
	dead := notifytest.New(t, secret)
	deadURL := dead.URL
	dead.Close() // connection refused: net/http's error names the whole URL
	for name, url := range map[string]string{"refusing": recv.URL + "/workflows/x/triggers/manual/paths/invoke?api-version=2016-10-01&sig=" + sig,
		"unreachable": deadURL + "/hook?sig=" + sig} {
		t.Run(name, func(t *testing.T) {
			fake := newFake(0)
			fake.commit([]*pb.Finding{finding("grp-a", "g1")}, nil)
			r := start(t, fake.serve(t), url, notify.NewMemoryLedgers(), nil)
			deadline := time.Now().Add(5 * time.Second)
			for testutil.ToFloat64(r.d.Metrics().Failed) < 3 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			r.stop()
			logs := r.logs.String()
			if !strings.Contains(logs, "delivery failed") {
				t.Fatalf("no failure logged: the test saw nothing:\n%s", logs)
			}
			for _, leak := range []string{sig, string(secret), "internal-token"} {
				if strings.Contains(logs, leak) {
					t.Errorf("the logs hold %q:\n%s", leak, logs)
				}
			}
		})
	}
}

// TestCheckURL: what serve refuses at start, with a message that never echoes the query.
func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url      string
		insecure bool
		wantErr  string
	}{
		{"https://hooks.example.com/x?sig=abc", false, ""},
		{"http://127.0.0.1:8080/hook", false, ""},
		{"http://localhost/hook", false, ""},
		{"http://hooks.example.com/x?sig=abc", false, "use https"},
		{"http://hooks.example.com/x?sig=abc", true, ""},
		{"ftp://hooks.example.com/x", false, "want an http:// or https:// URL"},
		{"hooks.example.com/x", false, "want an http:// or https:// URL"},
		{"https:///x?sig=abc", false, "names no host"},
	} {
		err := notify.CheckURL(c.url, c.insecure)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v, want accepted", c.url, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: %v, want an error saying %q", c.url, err, c.wantErr)
		case err != nil && strings.Contains(err.Error(), "abc"):
			t.Errorf("%s: the error echoes the query: %v", c.url, err)
		}
	}
}

// TestHungReceiverIsCounted: while the receiver hangs, what waits shows in the pending gauge; once it answers
// the gauge drains to zero and everything arrives in order.
func TestHungReceiverIsCounted(t *testing.T) {
	fake := newFake(0)
	recv := notifytest.New(t, secret)
	recv.Hang()
	r := start(t, fake.serve(t), recv.URL, notify.NewMemoryLedgers(), func(c *notify.Config) { c.Client = &http.Client{} })
	fake.waitSubscribed(t, 1)
	for i := range 5 {
		fake.commit([]*pb.Finding{finding("grp-z", fmt.Sprintf("g%d", i))}, nil)
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(r.d.Metrics().Pending) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(r.d.Metrics().Pending); got != 5 {
		t.Fatalf("pending %v while the receiver hangs, want 5", got)
	}
	recv.Release()
	recv.WaitFor(t, 5*time.Second, "five events", atLeast(5))
	deadline = time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(r.d.Metrics().Pending) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(r.d.Metrics().Pending); got != 0 {
		t.Fatalf("pending %v after delivery, want 0", got)
	}
}

// waitMetric waits (up to 5 s) for a metric to reach want: the receiver records an event before the deliverer
// has read its answer.
func waitMetric(t *testing.T, c prometheus.Collector, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(c) != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}
