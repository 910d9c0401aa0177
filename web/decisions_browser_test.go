package web_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"github.com/groupgate/groupgate/internal/pgtest"
)

// TestExplorerShowsAGroupsDecisions: with a Postgres decision log, a group's page lists the decisions about it,
// newest first, with their verdicts, rules and ids; without one (the memory store), the panel is not shown.
func TestExplorerShowsAGroupsDecisions(t *testing.T) {
	pg := pgtest.Start(t)
	snap := filepath.Join(t.TempDir(), "contoso.json")
	if err := directory.WriteSnapshotFile(snap, demo.Snapshot()); err != nil {
		t.Fatal(err)
	}
	base := serve(t, "--store", pg.NewDatabase(), "--snapshot", snap, "--decision-log", "postgres")
	resp, err := http.Post(base+"/v1/canAddMember", "application/json",
		strings.NewReader(`{"tenantId":"contoso","groupId":"grp-finance","memberId":"u-gina","actorId":"u-oscar"}`))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Decision struct {
			DecisionID string `json:"decisionId"`
		} `json:"decision"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	id := answer.Decision.DecisionID
	if err != nil || id == "" {
		t.Fatalf("canAddMember: %v, decision id %q", err, id)
	}
	ctx := browser(t)
	// The record is written asynchronously: reload until it is there.
	var row string
	for range 50 {
		do(t, ctx, "open Finance", chromedp.Navigate(base+"/#/o/grp-finance"), chromedp.Reload(), chromedp.WaitVisible(css(`#decisions h2`)))
		waitFor(t, ctx, "the decisions panel loads", `!document.querySelector('#decisions .loading')`)
		row = eval[string](t, ctx, `(document.querySelector('#decisions-table tbody tr') || {}).textContent || ''`)
		if row != "" {
			break
		}
	}
	if !strings.Contains(row, id) || !strings.Contains(row, "DENY") || !strings.Contains(row, "u-oscar") || !strings.Contains(row, "u-gina") ||
		!strings.Contains(row, "guest") {
		t.Fatalf("first decision row %q: want %s, DENY, u-oscar adding u-gina, the guest rule", row, id)
	}

	// The memory store keeps no decision log the server can read: no panel.
	mem := serve(t)
	do(t, ctx, "open Finance on the memory store", chromedp.Navigate(mem+"/#/o/grp-finance"), chromedp.WaitVisible(css(`#guests-h`)))
	waitFor(t, ctx, "the decisions panel goes away", `!document.querySelector('#decisions')`)
}
