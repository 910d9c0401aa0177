package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// postChange writes one change through the HTTP API (the explorer's server takes writes without a token on
// loopback).
func postChange(t *testing.T, base, change string) {
	t.Helper()
	resp, err := http.Post(base+"/v1/writeChanges", "application/json", strings.NewReader(`{"tenantId":"contoso","changes":[`+change+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("writeChanges %s: HTTP %d", change, resp.StatusCode)
	}
}

// TestAuditLiveInBrowser: with the Audit view open (it follows WatchFindings over HTTP NDJSON), a write that
// takes guest Frank out of Board resolves the Board finding, which the page strikes through; a write that puts
// him back opens it again, which the page shows marked new, with the revision line moved on, without a reload.
func TestAuditLiveInBrowser(t *testing.T) {
	base := serve(t)
	ctx := browser(t)
	do(t, ctx, "open the audit", chromedp.Navigate(base+"/#/audit"), chromedp.WaitVisible(css("#audit-table")))
	waitFor(t, ctx, "the live stream", `document.querySelector('#audit-live').textContent.includes('live')`)
	board := `[...document.querySelectorAll('#audit-table tbody tr')].filter(r => r.dataset.key.startsWith('RULE_LABEL_BLOCKS_GUESTS|grp-board|'))`
	if n := eval[int](t, ctx, board+`.length`); n != 1 {
		t.Fatalf("%d Board rows before the writes, want 1", n)
	}
	if eval[bool](t, ctx, board+`[0].classList.contains('resolved') || `+board+`[0].classList.contains('new')`) {
		t.Fatal("the Board row is marked before anything changed")
	}

	postChange(t, base, `{"removeMember":{"groupId":"grp-board","memberId":"u-frank"}}`)
	waitFor(t, ctx, "the Board finding struck through", board+`.length === 1 && `+board+`[0].classList.contains('resolved')`)
	if deco := eval[string](t, ctx, `getComputedStyle(`+board+`[0].cells[2]).textDecorationLine`); deco != "line-through" {
		t.Errorf("resolved row text decoration %q, want line-through", deco)
	}
	screenshot(t, ctx, "audit-resolved")

	postChange(t, base, `{"addMember":{"groupId":"grp-board","memberId":"u-frank"}}`)
	waitFor(t, ctx, "the Board finding back, marked new", board+`.length === 1 && `+board+`[0].classList.contains('new') && !`+board+`[0].classList.contains('resolved')`)
	if txt := eval[string](t, ctx, board+`[0].textContent`); !strings.Contains(txt, "new at revision 3") || !strings.Contains(txt, "Board") {
		t.Errorf("new row %q: want the Board finding, badged new at revision 3", txt)
	}
	if rev := textOf(t, ctx, "main .revision"); rev != "3" {
		t.Errorf("revision line %q, want 3", rev)
	}
	screenshot(t, ctx, "audit-new")
	accessible(t, ctx, "audit live")
}
