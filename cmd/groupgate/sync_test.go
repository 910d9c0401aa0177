package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"github.com/groupgate/groupgate/entra/graphtest"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/syncbuf"
	"google.golang.org/protobuf/proto"
)

const syncTenant = "contoso-sync"

// syncCmd is `groupgate sync` as a process of its own (this test binary, see TestMain), reading the stand-in
// with the token in GG_GRAPH_TOKEN.
func syncCmd(t *testing.T, g *graphtest.Server, token string, args ...string) (*exec.Cmd, *syncbuf.Buffer) {
	t.Helper()
	labels := filepath.Join(t.TempDir(), "labels.json")
	if err := os.WriteFile(labels, []byte(graphtest.LabelsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"sync", "--tenant", syncTenant, "--graph-endpoint", g.URL, "--token-env", "GG_GRAPH_TOKEN", "--labels", labels}, args...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GROUPGATE_TEST_MAIN=1", "GG_GRAPH_TOKEN="+token)
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

func TestSyncToSnapshotFile(t *testing.T) {
	g := graphtest.New(graphtest.Crafted())
	defer g.Close()
	path := filepath.Join(t.TempDir(), "contoso-sync.pb.gz")
	// Graph throttles, then is briefly unavailable: the sync waits as told and goes on.
	g.AddFault(graphtest.Fault{Path: "/v1.0/users/delta", Status: 429, RetryAfter: "1", Times: 1})
	g.AddFault(graphtest.Fault{Path: "/v1.0/groups/delta", Status: 503, RetryAfter: "1", Times: 1})
	cmd, out := syncCmd(t, g, g.Token, "-o", path)
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("sync -o: %v\n%s", err, out)
	}
	if took := time.Since(start); took < 2*time.Second || strings.Count(out.String(), "graph: retrying") != 2 {
		t.Errorf("sync took %v with 2 retries logged?\n%s", took, out)
	}
	d, err := directory.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.TenantID() != syncTenant || d.Counts().Users != 10 || d.Counts().Groups != 8 || d.Counts().Guests != 1 {
		t.Errorf("snapshot: tenant %s, counts %+v", d.TenantID(), d.Counts())
	}
	if !strings.Contains(out.String(), "sync round") || !strings.Contains(out.String(), "objects_read=") {
		t.Errorf("no progress line in the output:\n%s", out)
	}
	if !strings.Contains(out.String(), `msg="memory limit"`) {
		t.Errorf("sync did not say which memory limit it runs under:\n%s", out)
	}

	// A Go memory limit from the environment is the one sync runs under, and says so.
	cmd, out = syncCmd(t, g, g.Token, "-o", filepath.Join(t.TempDir(), "limited.pb.gz"))
	cmd.Env = append(cmd.Env, "GOMEMLIMIT=3GiB")
	if err := cmd.Run(); err != nil {
		t.Fatalf("sync with GOMEMLIMIT: %v\n%s", err, out)
	}
	if !strings.Contains(out.String(), `msg="memory limit" source=GOMEMLIMIT`) || !strings.Contains(out.String(), "go_limit_bytes=3221225472") {
		t.Errorf("sync under GOMEMLIMIT=3GiB did not log that limit:\n%s", out)
	}

	// A wrong token: the run fails naming the URL and the status, never the token.
	cmd, out = syncCmd(t, g, "tok-9f2e-secret", "-o", filepath.Join(t.TempDir(), "x.json"))
	if err := cmd.Run(); err == nil {
		t.Fatal("sync with a wrong token succeeded")
	}
	if s := out.String(); !strings.Contains(s, "/v1.0/users/delta") || !strings.Contains(s, "HTTP 401") || strings.Contains(s, "tok-9f2e-secret") {
		t.Errorf("wrong-token error: %s", s)
	}
}

func TestSyncIntoRunningServer(t *testing.T) {
	g := graphtest.New(graphtest.Crafted())
	defer g.Close()
	metrics := freePort(t)
	srv := startReplica(t, "memory", "--metrics", metrics)
	state := filepath.Join(t.TempDir(), "state.json")
	cmd, out := syncCmd(t, g, g.Token, "--addr", srv.addr, "--interval", "150ms", "--state", state)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if t.Failed() {
			t.Logf("sync log:\n%s", out)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := srv.client
	var imported int64
	waitFor(t, "the first round to be imported", func() bool {
		st, err := c.Directory.GetStatus(ctx, &pb.GetStatusRequest{TenantId: syncTenant})
		imported = st.GetRevision()
		return err == nil
	})

	// Decisions on the synced tenant prove each mapping.
	rules := func(vs []*pb.Violation) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.GetRule().String())
		}
		return out
	}
	for _, tc := range []struct {
		name                  string
		group, member, actor  string
		verdict, entraVerdict pb.Verdict
		rule, warning         string
	}{
		{"guest into labelled group, owner", graphtest.GroupConf, graphtest.UserGina, graphtest.UserOscar, deny, deny, "RULE_LABEL_BLOCKS_GUESTS", ""},
		{"tenant-wide Groups Administrator bypasses", graphtest.GroupConf, graphtest.UserGina, graphtest.UserAlice, deny, allow, "RULE_LABEL_BLOCKS_GUESTS", "RULE_PREVIEW_BYPASS"},
		// SPEC §18 through the sync: a role scoped to an administrative unit covers the groups in it, one scoped
		// to an object covers that object, and a restricted management unit refuses tenant-wide roles.
		{"AU-scoped Groups Administrator on a group in the unit", graphtest.GroupConf, graphtest.UserErin, graphtest.UserBob, allow, allow, "", ""},
		{"AU-scoped Groups Administrator on a group outside it", graphtest.GroupDyn, graphtest.UserErin, graphtest.UserBob, deny, deny, "RULE_INSUFFICIENT_PRIVILEGE", ""},
		{"Groups Administrator scoped to the group itself", graphtest.GroupM365, graphtest.UserErin, graphtest.UserBob, allow, allow, "", ""},
		{"tenant-wide Groups Administrator on a group in a restricted unit", graphtest.GroupVault, "u-m1", graphtest.UserAlice, deny, deny, "RULE_RESTRICTED_ADMINISTRATIVE_UNIT", ""},
		{"custom role with groups.security/members/update", graphtest.GroupDyn, "u-m1", graphtest.UserOscar, deny, deny, "RULE_DYNAMIC_MEMBERSHIP", ""},
		{"app with GroupMember.ReadWrite.All on a role-assignable group", graphtest.GroupRole, "u-m1", graphtest.SPApp, deny, deny, "RULE_ROLE_GROUP_PRIVILEGE", ""},
		{"app with GroupMember.ReadWrite.All on a Microsoft 365 group", graphtest.GroupM365, "u-m1", graphtest.SPApp, allow, allow, "", ""},
		{"Privileged Role Administrator on a role-assignable group", graphtest.GroupRole, "u-m1", graphtest.UserPriya, allow, allow, "", ""},
		{"dynamic", graphtest.GroupDyn, "u-m1", graphtest.UserAlice, deny, deny, "RULE_DYNAMIC_MEMBERSHIP", ""},
		{"mail-enabled security", graphtest.GroupMail, "u-m1", graphtest.UserAlice, deny, deny, "RULE_MAIL_ENABLED_GROUP", ""},
		{"distribution list", graphtest.GroupDL, "u-m1", graphtest.UserAlice, deny, deny, "RULE_MAIL_ENABLED_GROUP", ""},
		{"on-premises synced", graphtest.GroupOnPrem, "u-m1", graphtest.UserAlice, deny, deny, "RULE_ON_PREMISES_SYNCED", ""},
		{"group into Microsoft 365 group", graphtest.GroupM365, graphtest.GroupDyn, graphtest.UserAlice, deny, deny, "RULE_NESTING_NOT_SUPPORTED", ""},
	} {
		d, err := c.CanAddMember(ctx, syncTenant, tc.group, tc.member, tc.actor)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if d.GetVerdict() != tc.verdict || d.GetEntraVerdict() != tc.entraVerdict ||
			(tc.rule != "" && !slices.Contains(rules(d.GetViolations()), tc.rule)) ||
			(tc.warning != "" && !slices.Contains(rules(d.GetWarnings()), tc.warning)) ||
			(tc.warning == "" && len(d.GetWarnings()) > 0) {
			t.Errorf("%s: verdict %v, entra %v, violations %v, warnings %v; want %v, %v, %s, %q", tc.name, d.GetVerdict(), d.GetEntraVerdict(),
				rules(d.GetViolations()), rules(d.GetWarnings()), tc.verdict, tc.entraVerdict, tc.rule, tc.warning)
		}
	}
	// Erin holds Helpdesk Administrator through the role-assignable group: she may reset a plain user's password.
	for actor, want := range map[string]pb.Verdict{graphtest.UserErin: allow, graphtest.UserBob: deny} {
		resp, err := c.Decisions.CanModifyUser(ctx, &pb.CanModifyUserRequest{TenantId: syncTenant, TargetUserId: "u-m1", ActorId: actor,
			Action: pb.UserAction_USER_ACTION_RESET_PASSWORD})
		if err != nil || resp.GetDecision().GetVerdict() != want {
			t.Errorf("%s resets u-m1's password: %v, %v; want %v", actor, resp.GetDecision(), err, want)
		}
	}

	// A delta round arrives as one WriteChanges with the one change, not a re-import.
	g.Update(func(t *graphtest.Tenant) {
		m := t.Groups[graphtest.GroupM365]
		m.Members = append(m.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: graphtest.UserGina})
	})
	waitFor(t, "the added member", func() bool {
		r, err := c.CheckMembership(ctx, syncTenant, graphtest.GroupM365, graphtest.UserGina)
		return err == nil && r.GetIsMember()
	})
	watch, err := c.Directory.Watch(ctx, &pb.WatchRequest{TenantId: syncTenant, AfterRevision: imported})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watch.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if w.GetRevision() != imported+1 || w.GetTenantReplaced() || len(w.GetChanges()) != 1 ||
		w.GetChanges()[0].GetAddMember().GetMemberId() != graphtest.UserGina {
		t.Errorf("revision after the import: %v; want revision %d with the one add_member", w, imported+1)
	}

	// A failing round leaves the tenant exactly as it was; decisions go on being answered.
	g.AddFault(graphtest.Fault{Path: "/v1.0/subscribedSkus", Status: 500, Times: 1 << 30})
	g.Update(func(t *graphtest.Tenant) {
		conf := t.Groups[graphtest.GroupConf]
		conf.Members = slices.DeleteFunc(conf.Members, func(r graphtest.Ref) bool { return r.ID == "u-m1" })
	})
	waitFor(t, "a failed round in the sync log", func() bool { return strings.Contains(out.String(), "sync round failed") })
	time.Sleep(400 * time.Millisecond) // a few more failing rounds
	st, err := c.Directory.GetStatus(ctx, &pb.GetStatusRequest{TenantId: syncTenant})
	if err != nil || st.GetRevision() != imported+1 {
		t.Errorf("during failing rounds the tenant moved: %v, %v", st, err)
	}
	if r, err := c.CheckMembership(ctx, syncTenant, graphtest.GroupConf, "u-m1"); err != nil || !r.GetIsMember() {
		t.Errorf("during failing rounds: %v, %v", r, err)
	}
	g.ClearFaults()
	waitFor(t, "the removal after Graph recovered", func() bool {
		r, err := c.CheckMembership(ctx, syncTenant, graphtest.GroupConf, "u-m1")
		return err == nil && !r.GetIsMember()
	})

	// Graph forgets the delta links: the next round resyncs everything and still writes only the change.
	g.ExpireDeltaLinks()
	g.Update(func(t *graphtest.Tenant) { t.Users[graphtest.UserGina].DisplayName = "Gina G." })
	waitFor(t, "the round after the resync", func() bool {
		return strings.Contains(out.String(), "kind=resync") && strings.Contains(out.String(), "Graph asked for a full resync")
	})
	st, err = c.Directory.GetStatus(ctx, &pb.GetStatusRequest{TenantId: syncTenant})
	if err != nil || st.GetRevision() != imported+3 {
		t.Errorf("after the resync: %v, %v; want revision %d (one write for the renamed guest)", st, err, imported+3)
	}

	// Observability: status and metrics know the last round.
	status := runCLI(t, "status", "--addr", srv.addr, "--tenant", syncTenant)
	if !strings.Contains(status, "last sync round") || !strings.Contains(status, "sync lag") {
		t.Errorf("status:\n%s", status)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `groupgate_sync_lag_seconds{tenant="contoso-sync"}`) ||
		!strings.Contains(string(body), `groupgate_sync_last_success_timestamp_seconds{tenant="contoso-sync"}`) {
		t.Errorf("metrics lack the sync lag:\n%s", grepLines(string(body), "sync"))
	}
}

const (
	allow = pb.Verdict_VERDICT_ALLOW
	deny  = pb.Verdict_VERDICT_DENY
)

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestGraphEndpointMustKeepTheTokenSafe(t *testing.T) {
	for endpoint, ok := range map[string]bool{
		"https://graph.microsoft.com": true,
		"https://graph.microsoft.us/": true,
		"http://127.0.0.1:8080":       true,
		"http://localhost:9000":       true,
		"http://graph.microsoft.com":  false,
		"http://10.0.0.5":             false,
		"graph.microsoft.com":         false,
		"ftp://graph.microsoft.com":   false,
	} {
		if err := checkGraphEndpoint(endpoint); (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", endpoint, err, ok)
		}
	}
}

func TestSyncOnceIntoServerWithTokens(t *testing.T) {
	g := graphtest.New(graphtest.Crafted())
	defer g.Close()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("writer:writer-token-0123456789\nchecker:checker-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startReplica(t, "memory", "--token-file", tokens)
	// A checker token may not write: the round fails, naming the refusal.
	cmd, out := syncCmd(t, g, g.Token, "--addr", srv.addr, "--token", "checker-token-0123456789", "--once")
	if err := cmd.Run(); err == nil || !strings.Contains(out.String(), "PermissionDenied") {
		t.Fatalf("sync with a checker token: %v\n%s", err, out)
	}
	cmd, out = syncCmd(t, g, g.Token, "--addr", srv.addr, "--token", "writer-token-0123456789", "--once")
	if err := cmd.Run(); err != nil {
		t.Fatalf("sync --once: %v\n%s", err, out)
	}
	status := runCLI(t, "status", "--addr", srv.addr, "--tenant", syncTenant, "--token", "writer-token-0123456789")
	if !strings.Contains(status, "users 10 (guests 1), groups 8") || !strings.Contains(status, "last sync round") {
		t.Errorf("status after one round:\n%s", status)
	}
	if strings.Contains(out.String(), "writer-token-0123456789") || strings.Contains(out.String(), g.Token) {
		t.Errorf("a token in the sync's output:\n%s", out)
	}
}

// The sync (and `groupgate write import`) import through client.ImportSnapshotRound, which streams a snapshot
// in parts: role definitions, role assignments and administrative units must travel with it (SPEC §18).
func TestSyncClientImportCarriesUnitsAndAssignments(t *testing.T) {
	srv := startReplica(t, "memory")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := demo.Snapshot()
	if len(want.GetAdministrativeUnits()) == 0 || len(want.GetRoleAssignments()) == 0 {
		t.Fatal("the demo tenant has no units or role assignments to carry")
	}
	if _, err := srv.client.ImportSnapshot(ctx, want, nil); err != nil {
		t.Fatal(err)
	}
	stream, err := srv.client.Directory.ExportSnapshot(ctx, &pb.ExportSnapshotRequest{TenantId: want.GetTenantId()})
	if err != nil {
		t.Fatal(err)
	}
	got := &pb.Snapshot{}
	for {
		part, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		proto.Merge(got, part.GetSnapshot())
	}
	if len(got.GetAdministrativeUnits()) != len(want.GetAdministrativeUnits()) || len(got.GetRoleAssignments()) != len(want.GetRoleAssignments()) ||
		len(got.GetRoleDefinitions()) != len(want.GetRoleDefinitions()) {
		t.Errorf("exported %d units, %d assignments, %d definitions; imported %d, %d, %d", len(got.GetAdministrativeUnits()),
			len(got.GetRoleAssignments()), len(got.GetRoleDefinitions()), len(want.GetAdministrativeUnits()), len(want.GetRoleAssignments()),
			len(want.GetRoleDefinitions()))
	}
}
