package web_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
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

// cuttableProxy forwards TCP connections to target until cut closes every one open; later ones go through
// again. It stands for a network that drops the explorer's long-lived findings stream.
type cuttableProxy struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func newCuttableProxy(t *testing.T, target string) *cuttableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttableProxy{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

// cut closes every connection open through the proxy.
func (p *cuttableProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestAuditLiveReconnects: when the network drops the Audit view's findings stream, the page says so, resumes
// after the last revision it fully received, and applies what changed while it was away: a write made during
// the outage strikes the Board finding through once the stream is back.
func TestAuditLiveReconnects(t *testing.T) {
	base := serve(t)
	proxy := newCuttableProxy(t, strings.TrimPrefix(base, "http://"))
	ctx := browser(t)
	do(t, ctx, "open the audit", chromedp.Navigate("http://"+proxy.addr+"/#/audit"), chromedp.WaitVisible(css("#audit-table")))
	waitFor(t, ctx, "the live stream", `document.querySelector('#audit-live').textContent.includes('Following changes live')`)
	board := `[...document.querySelectorAll('#audit-table tbody tr')].filter(r => r.dataset.key.startsWith('RULE_LABEL_BLOCKS_GUESTS|grp-board|'))`

	proxy.cut()
	waitFor(t, ctx, "the page saying the stream dropped", `document.querySelector('#audit-live').textContent.includes('interrupted')`)
	postChange(t, base, `{"removeMember":{"groupId":"grp-board","memberId":"u-frank"}}`) // straight to the server
	waitFor(t, ctx, "the Board finding struck through after the reconnection", board+`.length === 1 && `+board+`[0].classList.contains('resolved')`)
	waitFor(t, ctx, "the live stream back", `document.querySelector('#audit-live').textContent.includes('Following changes live')`)
	if txt := eval[string](t, ctx, board+`[0].textContent`); !strings.Contains(txt, "resolved at revision 2") {
		t.Errorf("resolved row %q: want it badged resolved at revision 2", txt)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#audit-table tbody tr').length`); n != eval[int](t, ctx, `new Set([...document.querySelectorAll('#audit-table tbody tr')].map(r => r.dataset.key)).size`) {
		t.Errorf("%d rows, some shown twice after the reconnection", n)
	}
}
