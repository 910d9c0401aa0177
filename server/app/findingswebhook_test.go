package app_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/client"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/notify/notifytest"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/server/app"
	"github.com/groupgate/groupgate/server/servertest"
)

const webhookSecret = "a-shared-secret-for-the-receiver"

func secretFile(t *testing.T, contents string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(contents), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// webhookServer serves the demo tenant with authentication on and the findings webhook posting to recv.
func webhookServer(t *testing.T, recv *notifytest.Receiver) *servertest.Server {
	t.Helper()
	tokens, err := server.ParseTokens(strings.NewReader("writer:ops:writer-token-0123456789\n"))
	if err != nil {
		t.Fatal(err)
	}
	return servertest.StartWith(t, servertest.Options{Tokens: tokens, Metrics: true,
		Client: client.Options{Token: "writer-token-0123456789"},
		FindingsWebhook: app.FindingsWebhook{URL: recv.URL + "/hook?sig=abc", SecretFile: secretFile(t, webhookSecret+"\n"),
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}})
}

func write(t *testing.T, srv *servertest.Server, c *pb.Change) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := srv.Client.Directory.WriteChanges(ctx, &pb.WriteChangesRequest{TenantId: "contoso", Changes: []*pb.Change{c}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetRevision()
}

func removeFrank() *pb.Change {
	return &pb.Change{Change: &pb.Change_RemoveMember{RemoveMember: &pb.MemberChange{GroupId: "grp-board", MemberId: "u-frank"}}}
}

func addFrank() *pb.Change {
	return &pb.Change{Change: &pb.Change_AddMember{AddMember: &pb.MemberChange{GroupId: "grp-board", MemberId: "u-frank"}}}
}

// TestFindingsWebhookAgainstTheServer: serve with the webhook (authentication on: the deliverer's in-process
// stream passes the auth interceptor with its own checker token) announces the demo tenant's open findings, then
// a write that resolves the guest in grp-board and one that brings it back arrive as RESOLVED and OPENED
// CloudEvents, signed, with the changes that caused them.
func TestFindingsWebhookAgainstTheServer(t *testing.T) {
	recv := notifytest.New(t, []byte(webhookSecret))
	srv := webhookServer(t, recv)
	recv.WaitFor(t, 10*time.Second, "the demo tenant's 4 open findings", func(es []notifytest.Event) bool { return len(es) >= 4 })
	r1 := write(t, srv, removeFrank())
	r2 := write(t, srv, addFrank())
	es := recv.WaitFor(t, 10*time.Second, "the two events", func(es []notifytest.Event) bool { return len(es) >= 6 })
	if bad := recv.Bad(); len(bad) > 0 {
		t.Fatalf("refused posts: %v", bad)
	}
	var start []string
	for _, e := range es[:4] {
		start = append(start, e.Subject)
	}
	sort.Strings(start)
	if want := []string{"grp-board", "grp-cycle-a", "grp-finance", "grp-vendors"}; !slices.Equal(start, want) {
		t.Errorf("announced findings of %v, want %v", start, want)
	}
	resolved, opened := es[4], es[5]
	if resolved.Type != "io.groupgate.finding.resolved" || resolved.Finding.GetRevision() != r1 || resolved.Subject != "grp-board" {
		t.Errorf("5th event %s %s at %d, want the grp-board finding resolved at %d", resolved.Type, resolved.Subject, resolved.Finding.GetRevision(), r1)
	}
	if opened.Type != "io.groupgate.finding.opened" || opened.Finding.GetRevision() != r2 || opened.Finding.GetFindingId() != resolved.Finding.GetFindingId() {
		t.Errorf("6th event %s %s at %d, want the same finding opened again at %d", opened.Type, opened.Finding.GetFindingId(), opened.Finding.GetRevision(), r2)
	}
	if len(opened.Finding.GetCausedBy()) != 1 || opened.Finding.GetCausedBy()[0].GetAddMember().GetMemberId() != "u-frank" {
		t.Errorf("caused_by %v, want the add of u-frank", opened.Finding.GetCausedBy())
	}
	if opened.Source != "/tenants/contoso" {
		t.Errorf("source %q", opened.Source)
	}
}

// TestHungWebhookDoesNotSlowWrites: while the receiver takes every post and never answers, writes and decisions
// take as long as they did while it answered (median within 3x + 5 ms, a bound noise on a shared machine keeps
// under and a write that waited on the webhook — 30 s client timeout — would blow), and what waits is counted.
func TestHungWebhookDoesNotSlowWrites(t *testing.T) {
	recv := notifytest.New(t, []byte(webhookSecret))
	srv := webhookServer(t, recv)
	recv.WaitFor(t, 10*time.Second, "the open findings", func(es []notifytest.Event) bool { return len(es) >= 4 })
	measure := func() time.Duration {
		var ds []time.Duration
		for i := range 20 {
			c := removeFrank()
			if i%2 == 1 {
				c = addFrank()
			}
			t0 := time.Now()
			write(t, srv, c)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := srv.Client.CanAddMember(ctx, "contoso", "grp-finance", "grp-engineering", "u-gary"); err != nil {
				t.Fatal(err)
			}
			cancel()
			ds = append(ds, time.Since(t0))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	answering := measure()
	recv.Hang()
	hung := measure()
	pending := metricValue(t, srv, "groupgate_findings_webhook_pending_events")
	if pending < 1 {
		t.Fatalf("pending events %v while the receiver hangs: the webhook was not stuck, the test proves nothing", pending)
	}
	t.Logf("median write+decision: %s while the webhook answers, %s while it hangs", answering, hung)
	if hung > 3*answering+5*time.Millisecond {
		t.Errorf("median write+decision %s while the webhook hangs, %s while it answers: the webhook slows writes", hung, answering)
	}
}

// TestFindingsWebhookFlags: what stops serve at start, and says why without echoing the URL's query.
func TestFindingsWebhookFlags(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte(" \n"), 0o600)
	good := secretFile(t, "s3cret")
	for _, c := range []struct {
		name string
		w    app.FindingsWebhook
		want string
	}{
		{"not http", app.FindingsWebhook{URL: "ftp://hooks.example.com/x", SecretFile: good}, "want an http:// or https:// URL"},
		{"plain http off loopback", app.FindingsWebhook{URL: "http://hooks.example.com/x?sig=SAS", SecretFile: good}, "use https"},
		{"no secret file", app.FindingsWebhook{URL: "https://hooks.example.com/x"}, "needs --findings-webhook-secret-file"},
		{"missing secret file", app.FindingsWebhook{URL: "https://hooks.example.com/x", SecretFile: filepath.Join(dir, "nope")}, "no such file"},
		{"empty secret file", app.FindingsWebhook{URL: "https://hooks.example.com/x", SecretFile: empty}, "is empty"},
		{"secret without URL", app.FindingsWebhook{SecretFile: good}, "need --findings-webhook"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := app.Open(context.Background(), app.Config{Listen: "127.0.0.1:0", FindingsWebhook: c.w, ShutdownTimeout: time.Second})
			if err == nil {
				a.Close()
				t.Fatalf("serve started; want an error saying %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "SAS") {
				t.Fatalf("error %q, want one saying %q (and never the query)", err, c.want)
			}
		})
	}
}

// metricValue reads a gauge or counter from the server's registry.
func metricValue(t *testing.T, srv *servertest.Server, name string) float64 {
	t.Helper()
	mfs, err := srv.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
