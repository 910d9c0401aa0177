package web_test

// Browser tests of the explorer: the real groupgate binary serving the demo tenant, driven through Chromium by
// chromedp. They need a Chromium (Debian's chromium, which scripts/test installs with apt): without one they
// skip, except in CI (CI=true), where a missing browser is a failure.
//
// GROUPGATE_UPDATE_SCREENSHOTS=1 writes the README's screenshots to docs/screenshots/.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

const (
	checkerToken = "checker-explorer-0123456789"
	wrongToken   = "not-the-token-0123456789"
)

// chromium finds a Chromium to drive.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GROUPGATE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "chromium-headless-shell", "headless_shell", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, p := range []string{"/usr/lib/chromium/chromium", "/usr/lib/chromium/headless_shell"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found (CI is set, so this fails instead of skipping): apt-get install chromium, or set GROUPGATE_CHROMIUM")
	}
	t.Skip("no Chromium found: apt-get install chromium (scripts/test does), or set GROUPGATE_CHROMIUM")
	return ""
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// groupgateBinary builds cmd/groupgate once per test run.
func groupgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "groupgate-web-test")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "groupgate")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/groupgate")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serve runs `groupgate serve` on the demo tenant with its HTTP listener on a free loopback port and returns
// the page's URL. It is stopped with SIGTERM when the test ends.
func serve(t *testing.T, args ...string) string {
	t.Helper()
	bin := groupgateBinary(t)
	httpAddr := freeAddr(t)
	var log bytes.Buffer
	cmd := exec.Command(bin, append([]string{"serve", "--listen", freeAddr(t), "--http-listen", httpAddr, "--log-level", "warn"}, args...)...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("serve's log:\n%s", log.String())
		}
	})
	base := "http://" + httpAddr
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			// Not log.String() here: serve is still writing to it. The cleanup prints it once serve has exited.
			t.Fatalf("serve did not answer /healthz: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// browser starts a headless Chromium; the returned context drives one tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("lang", "en-US"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	return ctx
}

// screenshot writes docs/screenshots/NAME.png when GROUPGATE_UPDATE_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("GROUPGATE_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

type step = chromedp.Action[chromedp.Void]

// css selects the first element matching a CSS selector.
func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// fail reports a failed step with the page's text, which says what the page showed instead.
func fail(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	t.Fatalf("%s: %v\npage text:\n%s", what, err, page)
}

func do(t *testing.T, ctx context.Context, what string, steps ...step) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		fail(t, ctx, what, err)
	}
}

// eval runs a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		fail(t, ctx, expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr)); err != nil {
		fail(t, ctx, what, err)
	}
}

// textOf returns the text of the first element matching sel, after waiting for it to be visible.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	do(t, ctx, "waiting for "+sel, chromedp.WaitVisible(css(sel)))
	s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
	if err != nil {
		fail(t, ctx, "reading "+sel, err)
	}
	return s
}

func attrOf(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	do(t, ctx, "waiting for "+sel, chromedp.WaitReady(css(sel)))
	r, err := chromedp.Run(ctx, chromedp.AttributeValue(css(sel), name))
	if err != nil {
		fail(t, ctx, "reading "+sel+"@"+name, err)
	}
	return r.Value
}

// accessible checks what a keyboard or screen-reader user needs on the view shown: every button and link has a
// name, every form control a label, every toggle an aria-expanded state, and colour never speaks alone (each
// guest mark says "guest" in words).
func accessible(t *testing.T, ctx context.Context, view string) {
	t.Helper()
	problems := eval[[]string](t, ctx, `(() => {
		const out = [];
		const name = (e) => (e.getAttribute('aria-label') || e.textContent || '').trim();
		for (const e of document.querySelectorAll('button, a[href]')) if (!name(e) && e.offsetParent !== null) out.push('unnamed ' + e.outerHTML.slice(0, 80));
		for (const e of document.querySelectorAll('input, select')) if (!e.labels?.length && !e.getAttribute('aria-label') && e.type !== 'hidden' && e.offsetParent !== null) out.push('unlabelled ' + e.outerHTML.slice(0, 80));
		for (const e of document.querySelectorAll('button.toggle')) if (!e.hasAttribute('aria-expanded')) out.push('toggle without aria-expanded ' + e.outerHTML.slice(0, 80));
		for (const e of document.querySelectorAll('.is-guest')) if (!/guest/.test(e.textContent)) out.push('guest marked by colour only ' + e.outerHTML.slice(0, 80));
		return out;
	})()`)
	for _, p := range problems {
		t.Errorf("%s view: %s", view, p)
	}
}

func TestExplorerInBrowser(t *testing.T) {
	base := serve(t)
	ctx := browser(t)

	t.Run("search", func(t *testing.T) {
		do(t, ctx, "open the search", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#search-input")),
			chromedp.SendKeys(css("#search-input"), "grp-finance"),
			// The answer to the whole text: a pause mid-typing (a loaded machine) shows the answer to "grp-" first,
			// which lists the interns too, under All Staff.
			chromedp.WaitVisible(css(`#search-results li:first-child a[href*="/o/grp-finance?"], #search-results li:first-child a[href$="/o/grp-finance"]`)),
			chromedp.WaitVisible(css(`#search-results a[href*="grp-finance-interns"]`)))
		results := textOf(t, ctx, "#search-results")
		first := textOf(t, ctx, "#search-results li")
		if !strings.Contains(first, "Finance") || !strings.Contains(first, "grp-finance") || !strings.Contains(first, "Confidential") {
			t.Errorf("first result %q: want Finance (grp-finance) with its Confidential label", first)
		}
		for _, want := range []string{"Finance EMEA", "Finance Interns"} {
			if !strings.Contains(results, want) {
				t.Errorf("results lack %s:\n%s", want, results)
			}
		}
		if rev := textOf(t, ctx, "main .revision"); rev != "1" {
			t.Errorf("revision %q, want 1", rev)
		}
		accessible(t, ctx, "search")
		screenshot(t, ctx, "search")
		// Enter opens the first result.
		do(t, ctx, "Enter opens Finance", chromedp.SendKeys(css("#search-input"), "\r"),
			chromedp.WaitVisible(css(`li.node[data-id="grp-finance-emea"]`)))
	})

	t.Run("paste and Enter at once", func(t *testing.T) {
		// An id pasted and Enter pressed straight after, before the typing pause that starts a search: Enter
		// must run the search itself and open its first hit.
		do(t, ctx, "paste u-frank and press Enter", chromedp.Navigate(base+"/#/search"), chromedp.WaitVisible(css("#search-input")),
			chromedp.SetValue(css("#search-input"), "u-frank"), chromedp.SendKeys(css("#search-input"), "\r"))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`location.hash.startsWith('#/o/u-frank')`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			fail(t, ctx, "Enter right after pasting: want Frank's page (#/o/u-frank), got "+eval[string](t, ctx, "location.hash"), err)
		}
		do(t, ctx, "Frank's page", chromedp.WaitVisible(css(`main h1`)))
		if h := textOf(t, ctx, "main h1"); !strings.Contains(h, "Frank") {
			t.Errorf("after Enter the page is %q, want Frank's", h)
		}
		// Typed key by key with no pause at all, then Enter: the same.
		do(t, ctx, "type grp-vendors and Enter", chromedp.Navigate(base+"/#/search"), chromedp.WaitVisible(css("#search-input")),
			chromedp.SendKeys(css("#search-input"), "grp-vendors\r"))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`location.hash.startsWith('#/o/grp-vendors')`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			fail(t, ctx, "Enter right after typing: want Vendors' page (#/o/grp-vendors), got "+eval[string](t, ctx, "location.hash"), err)
		}
	})

	t.Run("unknown object", func(t *testing.T) {
		do(t, ctx, "open a group that is not there", chromedp.Navigate(base+"/#/o/grp-nope"), chromedp.WaitVisible(css("main .error")))
		if e := textOf(t, ctx, "main .error"); !strings.Contains(e, "Not found.") || !strings.Contains(e, "grp-nope") {
			t.Errorf("unknown group: %q", e)
		}
	})

	t.Run("group tree", func(t *testing.T) {
		do(t, ctx, "open Engineering", chromedp.Navigate(base+"/#/o/grp-engineering"),
			chromedp.WaitVisible(css(`li.node[data-id="grp-eng-contractors"] button.toggle`)))
		toggle := `li.node[data-id="grp-eng-contractors"] > .row > button.toggle`
		if v := attrOf(t, ctx, toggle, "aria-expanded"); v != "false" {
			t.Errorf("collapsed toggle has aria-expanded=%q", v)
		}
		sub := textOf(t, ctx, `li.node[data-id="grp-eng-contractors"] > .row`)
		if !strings.Contains(sub, "contains a guest") || !strings.Contains(sub, "1 direct · 1 effective") || !strings.Contains(sub, "General") {
			t.Errorf("Engineering Contractors row %q: want its label, counts and the contained guest", sub)
		}
		// Keyboard: focus the toggle and press Enter.
		do(t, ctx, "expand with the keyboard", chromedp.Focus(css(toggle)), chromedp.KeyEvent("\r"),
			chromedp.WaitVisible(css(`li.node[data-id="u-frank"]`)))
		if v := attrOf(t, ctx, toggle, "aria-expanded"); v != "true" {
			t.Errorf("expanded toggle has aria-expanded=%q", v)
		}
		frank := textOf(t, ctx, `li.node[data-id="u-frank"] > .row`)
		if !strings.Contains(frank, "guest") || !strings.Contains(frank, "depth 2") || !strings.Contains(frank, "Frank (Fabrikam guest)") {
			t.Errorf("Frank's row %q: want him marked guest at depth 2", frank)
		}
		if d := attrOf(t, ctx, `li.node[data-id="u-frank"]`, "data-depth"); d != "2" {
			t.Errorf("Frank at tree depth %s, want 2", d)
		}
		guests := textOf(t, ctx, "#guests-h + table")
		if !strings.Contains(guests, "Frank (Fabrikam guest)") || !strings.Contains(guests, "Engineering Contractors") {
			t.Errorf("guests panel %q: want Frank with his path", guests)
		}
		accessible(t, ctx, "group")
		screenshot(t, ctx, "group")
		// Collapse again.
		do(t, ctx, "collapse", chromedp.Click(css(toggle)), chromedp.WaitNotVisible(css(`li.node[data-id="u-frank"]`)))
	})

	t.Run("unlabelled sub-group under a labelled parent", func(t *testing.T) {
		do(t, ctx, "open Finance", chromedp.Navigate(base+"/#/o/grp-finance"),
			chromedp.WaitVisible(css(`li.node[data-id="grp-finance-interns"]`)))
		interns := textOf(t, ctx, `li.node[data-id="grp-finance-interns"] > .row`)
		if !strings.Contains(interns, "unlabelled group under labelled Finance") {
			t.Errorf("Finance Interns row %q: want it flagged as unlabelled under a labelled parent", interns)
		}
		emea := textOf(t, ctx, `li.node[data-id="grp-finance-emea"] > .row`)
		if strings.Contains(emea, "✖") {
			t.Errorf("Finance EMEA row %q is flagged, but carries the same label as its parent", emea)
		}
		facts := textOf(t, ctx, "dl.facts")
		if !strings.Contains(facts, "Confidential") || !strings.Contains(facts, "guests not allowed") || !strings.Contains(facts, "Oscar Owner") {
			t.Errorf("Finance facts %q: want its label with the guest policy and its owner", facts)
		}
	})

	t.Run("user", func(t *testing.T) {
		row := `#groups-table tr[data-id="grp-engineering"]`
		do(t, ctx, "open Frank", chromedp.Navigate(base+"/#/o/u-frank"), chromedp.WaitVisible(css(row)),
			chromedp.WaitVisible(css(row+` ol.chain`)))
		eng := textOf(t, ctx, row)
		if !strings.Contains(eng, "Engineering") || !strings.Contains(eng, "\t2\t") && !strings.Contains(eng, "2") {
			t.Errorf("Engineering row %q", eng)
		}
		if depth := textOf(t, ctx, row+" td.num"); depth != "2" {
			t.Errorf("Engineering at depth %q, want 2", depth)
		}
		if path := attrOf(t, ctx, row+" ol.chain", "aria-label"); path != "path: Engineering → Engineering Contractors → Frank (Fabrikam guest)" {
			t.Errorf("Engineering path %q", path)
		}
		board := textOf(t, ctx, `#groups-table tr[data-id="grp-board"]`)
		if !strings.Contains(board, "Highly Confidential") || !strings.Contains(board, "no guests") {
			t.Errorf("Board row %q: want its label marked as not allowing guests", board)
		}
		accessible(t, ctx, "user")
		screenshot(t, ctx, "user")
		// The role-assignable filter goes to the server: Erin reaches Tier 0 Admins only.
		do(t, ctx, "Erin's role-assignable groups", chromedp.Navigate(base+"/#/o/u-erin?role=1"),
			chromedp.WaitVisible(css(`#groups-table tr[data-id="grp-tier0-admins"]`)))
		rows := eval[int](t, ctx, `document.querySelectorAll('#groups-table tbody tr').length`)
		if rows != 1 {
			t.Errorf("%d role-assignable groups for Erin, want 1 (Tier 0 Admins)", rows)
		}
		if roles := textOf(t, ctx, "dl.facts"); !strings.Contains(roles, "Groups Administrator") {
			t.Errorf("Erin's facts %q: want the Groups Administrator role she gets from Tier 0 Admins", roles)
		}
	})

	t.Run("service principal", func(t *testing.T) {
		do(t, ctx, "open Role Manager", chromedp.Navigate(base+"/#/o/sp-role-manager"), chromedp.WaitVisible(css("dl.facts")))
		facts := textOf(t, ctx, "dl.facts")
		if !strings.Contains(facts, "service principal") || !strings.Contains(facts, "RoleManagement.ReadWrite.Directory") {
			t.Errorf("Role Manager facts %q: want its kind and app permissions", facts)
		}
		if g := textOf(t, ctx, "#groups-h ~ p"); !strings.Contains(g, "No group") {
			t.Errorf("Role Manager's groups %q: want none reached", g)
		}
	})

	t.Run("what-if", func(t *testing.T) {
		do(t, ctx, "fill the README's question", chromedp.Navigate(base+"/#/whatif"), chromedp.WaitVisible(css("#w-actor")),
			chromedp.SetValue(css("#w-op"), "add-member"),
			chromedp.SendKeys(css("#w-actor"), "u-gary"))
		// The typeahead offers matching objects through the input's datalist.
		waitFor(t, ctx, "the actor typeahead", `[...document.querySelectorAll('#w-actor-options option')].some(o => o.value === 'u-gary' && o.textContent.includes('Gary Groups'))`)
		do(t, ctx, "fill the rest",
			chromedp.SendKeys(css("#w-group"), "grp-finance"),
			chromedp.SendKeys(css("#w-member"), "grp-engineering"),
			chromedp.Click(css("#whatif-submit")),
			chromedp.WaitVisible(css("#verdict-strict")))
		if q := textOf(t, ctx, "#whatif-question"); q != "Gary Groups adds Engineering as a direct member of Finance" {
			t.Errorf("question %q", q)
		}
		if v := textOf(t, ctx, "#verdict-strict .v"); !strings.Contains(v, "DENY") {
			t.Errorf("strict verdict %q, want DENY", v)
		}
		if v := textOf(t, ctx, "#verdict-entra .v"); !strings.Contains(v, "ALLOW") {
			t.Errorf("Entra verdict %q, want ALLOW", v)
		}
		chains := eval[[]string](t, ctx, `[...document.querySelectorAll('#violations ol.chain')].map(e => e.getAttribute('aria-label'))`)
		// Every chain reads container first: the nested-group rule's evidence (the API's [member, group]) too.
		if !slices.Contains(chains, "path: Engineering → Engineering Contractors → Frank (Fabrikam guest)") ||
			!slices.Contains(chains, "path: Finance → Engineering") {
			t.Errorf("evidence chains %q: want Engineering → Engineering Contractors → Frank and Finance → Engineering (container first)", chains)
		}
		violations := textOf(t, ctx, "#violations")
		for _, want := range []string{"RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE", "RULE_NESTED_GROUP_UNLABELED", "groupgate only"} {
			if !strings.Contains(violations, want) {
				t.Errorf("violations lack %q:\n%s", want, violations)
			}
		}
		if w := textOf(t, ctx, "#warnings"); !strings.Contains(w, "RULE_PREVIEW_BYPASS") {
			t.Errorf("warnings %q, want the preview bypass", w)
		}
		accessible(t, ctx, "what-if")
		screenshot(t, ctx, "whatif")
		// The question is in the URL (no token there): a reload asks it again.
		url := eval[string](t, ctx, `location.href`)
		if !strings.Contains(url, "actor=u-gary") || strings.Contains(strings.ToLower(url), "token") {
			t.Errorf("what-if URL %q", url)
		}
		// A malformed id is explained with its field.
		do(t, ctx, "a malformed id", chromedp.Navigate(base+"/#/whatif?op=add-member&actor=u-gary&group=grp%20finance&member=u-dave&go=1"),
			chromedp.WaitVisible(css("#whatif-result .error")))
		if e := textOf(t, ctx, "#whatif-result .error"); !strings.Contains(e, "INVALID_ARGUMENT") || !strings.Contains(e, "group_id") {
			t.Errorf("error %q: want INVALID_ARGUMENT naming group_id", e)
		}
		// Create a role-assignable group: Gary is no Privileged Role Administrator, and a group may not be an
		// initial member; Priya may, with users only.
		do(t, ctx, "create a role group", chromedp.Navigate(base+"/#/whatif"), chromedp.WaitVisible(css("#w-op")),
			chromedp.SetValue(css("#w-op"), "create-role-group"))
		eval[bool](t, ctx, `document.querySelector('#w-op').dispatchEvent(new Event('change'))`)
		do(t, ctx, "fill the role group", chromedp.WaitVisible(css("#w-name")),
			chromedp.SendKeys(css("#w-actor"), "u-gary"), chromedp.SendKeys(css("#w-name"), "Helpdesk Tier 1"),
			chromedp.SendKeys(css("#w-owners"), "u-priya"), chromedp.SendKeys(css("#w-members"), "u-erin, grp-engineering"),
			chromedp.Click(css("#whatif-submit")), chromedp.WaitVisible(css("#verdict-strict")))
		if v := textOf(t, ctx, "#violations"); !strings.Contains(v, "RULE_ROLE_GROUP_PRIVILEGE") || !strings.Contains(v, "RULE_ROLE_GROUP_NO_NESTING") {
			t.Errorf("create-role-group violations %q: want the privilege and nesting rules", v)
		}
		do(t, ctx, "Priya creates it with users only", chromedp.Navigate(base+"/#/whatif?op=create-role-group&actor=u-priya&name=Helpdesk&kind=GROUP_KIND_SECURITY&membership=MEMBERSHIP_ASSIGNED&members=u-erin&go=1"),
			chromedp.WaitVisible(css("#verdict-strict")))
		if v := textOf(t, ctx, "#verdict-strict .v") + textOf(t, ctx, "#verdict-entra .v"); v != "✔ ALLOW✔ ALLOW" {
			t.Errorf("Priya's verdicts %q, want ALLOW twice", v)
		}
		// Change a label on a security group: immutable during the preview.
		do(t, ctx, "change a label", chromedp.Navigate(base+"/#/whatif?op=change-label&actor=u-alice&group=grp-finance&label=lbl-general&go=1"),
			chromedp.WaitVisible(css("#verdict-strict")))
		if v := textOf(t, ctx, "#violations"); !strings.Contains(v, "RULE_LABEL_IMMUTABLE") {
			t.Errorf("change-label violations %q: want RULE_LABEL_IMMUTABLE", v)
		}
		// Apply a label: Confidential on Engineering, which nests a group.
		do(t, ctx, "apply a label", chromedp.Navigate(base+"/#/whatif?op=apply-label&actor=u-gary&group=grp-engineering&label=lbl-confidential&go=1"),
			chromedp.WaitVisible(css("#verdict-strict")))
		if v := textOf(t, ctx, "#violations"); !strings.Contains(v, "RULE_GROUP_HAS_NESTED_GROUPS") {
			t.Errorf("apply-label violations %q: want RULE_GROUP_HAS_NESTED_GROUPS", v)
		}
	})

	t.Run("audit", func(t *testing.T) {
		want := auditFindings(t, base)
		do(t, ctx, "open the audit", chromedp.Navigate(base+"/#/audit"), chromedp.WaitVisible(css("#audit-table")))
		rules := eval[[]string](t, ctx, `[...document.querySelectorAll('#audit-table tbody tr')].map(r => r.dataset.rule)`)
		if !slices.Equal(rules, want) {
			t.Errorf("audit table rules %v, want the API's findings %v", rules, want)
		}
		// Evidence reads one way on every row, container first: Board → Frank (a guest in Board) and Finance →
		// Finance Interns (an unlabelled child of Finance), though the API gives the latter as [child, parent].
		evidence := eval[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll('#audit-table tbody tr')].map(r =>
			[r.dataset.rule + ' ' + r.querySelector('td:nth-child(2) code').textContent, r.querySelector('ol.chain').getAttribute('aria-label')]))`)
		for finding, want := range map[string]string{
			"RULE_LABEL_BLOCKS_GUESTS grp-board":      "path: Board → Frank (Fabrikam guest)",
			"RULE_NESTED_GROUP_UNLABELED grp-finance": "path: Finance → Finance Interns",
			"RULE_NESTED_GROUP_UNLABELED grp-vendors": "path: Vendors → Partner Contacts",
			"RULE_NESTING_CYCLE grp-cycle-a":          "path: Loop A → Loop B → Loop A",
		} {
			if evidence[finding] != want {
				t.Errorf("%s: evidence %q, want %q (container first)", finding, evidence[finding], want)
			}
		}
		if h := textOf(t, ctx, "#audit-table thead"); !strings.Contains(h, "outer group first") {
			t.Errorf("audit table header %q: want it to say which way the evidence reads", h)
		}
		accessible(t, ctx, "audit")
		screenshot(t, ctx, "audit")
		// Filter by rule.
		do(t, ctx, "filter", chromedp.SetValue(css("#audit-rule"), "RULE_LABEL_BLOCKS_GUESTS"))
		eval[bool](t, ctx, `document.querySelector('#audit-rule').dispatchEvent(new Event('change'))`)
		waitFor(t, ctx, "the filtered table", `document.querySelector('#audit-table') !== null && [...document.querySelectorAll('#audit-table tbody tr')].every(r => r.dataset.rule === 'RULE_LABEL_BLOCKS_GUESTS')`)
		n := eval[int](t, ctx, `document.querySelectorAll('#audit-table tbody tr').length`)
		if wantN := count(want, "RULE_LABEL_BLOCKS_GUESTS"); n != wantN || n == 0 {
			t.Errorf("%d rows after filtering, want %d", n, wantN)
		}
		// A finding links to its group with the path marked: Board → Frank.
		do(t, ctx, "follow the finding", chromedp.Click(css(`#audit-table a[href*="/o/grp-board"]`)),
			chromedp.WaitVisible(css(`li.node.marked[data-id="u-frank"]`)))
		if f := textOf(t, ctx, `li.node.marked[data-id="u-frank"] > .row`); !strings.Contains(f, "on the path") || !strings.Contains(f, "does not allow guests") {
			t.Errorf("marked Frank row %q", f)
		}
	})
}

func count(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// auditFindings asks the HTTP API for the tenant's findings, in order.
func auditFindings(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Post(base+"/v1/audit", "application/json", strings.NewReader(`{"tenantId":"contoso"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rules []string
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var line struct {
			Result struct {
				Findings []struct{ Rule string } `json:"findings"`
			} `json:"result"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		for _, f := range line.Result.Findings {
			rules = append(rules, f.Rule)
		}
	}
	if len(rules) == 0 {
		t.Fatal("the demo tenant has no findings; the audit table would show nothing")
	}
	return rules
}

func TestExplorerTokenInBrowser(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte("checker:"+checkerToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := serve(t, "--token-file", tokenFile)
	ctx := browser(t)

	// No token: the page says so and asks for one.
	do(t, ctx, "open without a token", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#token-dialog")))
	if msg := textOf(t, ctx, "main .error"); !strings.Contains(msg, "This server needs a bearer token.") || !strings.Contains(msg, "UNAUTHENTICATED") {
		t.Errorf("without a token the page says %q", msg)
	}
	// A wrong token: a clear message, not a blank page.
	do(t, ctx, "enter a wrong token", chromedp.SendKeys(css("#token-input"), wrongToken),
		chromedp.Click(css(`#token-form button[value="save"]`)))
	waitFor(t, ctx, "the wrong token's message", `!!document.querySelector('main .error')?.textContent?.includes('did not accept')`)
	if msg := textOf(t, ctx, "main .error"); !strings.Contains(msg, "The server did not accept the bearer token.") || !strings.Contains(msg, "invalid token") {
		t.Errorf("with a wrong token the page says %q", msg)
	}
	if reason := textOf(t, ctx, "#token-reason"); !strings.Contains(reason, "did not accept") {
		t.Errorf("the token dialog says %q", reason)
	}
	screenshot(t, ctx, "wrong-token")
	// The right token: the page works, the token is in sessionStorage and never in the URL.
	do(t, ctx, "enter the right token", chromedp.SendKeys(css("#token-input"), checkerToken),
		chromedp.Click(css(`#token-form button[value="save"]`)),
		chromedp.WaitVisible(css("#search-input")),
		chromedp.SendKeys(css("#search-input"), "frank"),
		chromedp.WaitVisible(css(`#search-results a[href*="u-frank"]`)))
	stored := eval[string](t, ctx, `sessionStorage.getItem('groupgate.token')`)
	url := eval[string](t, ctx, `location.href`)
	if stored != checkerToken {
		t.Errorf("sessionStorage holds %q", stored)
	}
	if strings.Contains(url, checkerToken) {
		t.Errorf("the token is in the URL %q", url)
	}
}

// bigTenant writes a tenant "big" whose group grp-top has 200 000 direct users and three sub-groups (one of
// them nesting a guest), as a binary snapshot file.
func bigTenant(t *testing.T) string {
	t.Helper()
	s := &pb.Snapshot{TenantId: "big", Settings: &pb.TenantSettings{Licenses: []string{"ENTRA_ID_P1"}}}
	top := &pb.Group{Id: "grp-top", DisplayName: "Everyone at Big", Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED}
	for i := range 3 {
		sub := &pb.Group{Id: fmt.Sprintf("grp-sub-%d", i), DisplayName: fmt.Sprintf("Team %d", i), Kind: pb.GroupKind_GROUP_KIND_SECURITY, Membership: pb.Membership_MEMBERSHIP_ASSIGNED}
		for j := range 1000 {
			id := fmt.Sprintf("u-sub%d-%04d", i, j)
			s.Users = append(s.Users, &pb.User{Id: id, DisplayName: "Team member " + id, UserType: pb.UserType_USER_TYPE_MEMBER})
			sub.Members = append(sub.Members, id)
		}
		s.Groups = append(s.Groups, sub)
		top.Members = append(top.Members, sub.GetId())
	}
	s.Users = append(s.Users, &pb.User{Id: "u-visitor", DisplayName: "Visitor", UserType: pb.UserType_USER_TYPE_GUEST})
	s.Groups[2].Members = append(s.Groups[2].Members, "u-visitor")
	for i := range 200_000 {
		id := fmt.Sprintf("u-%06d", i)
		s.Users = append(s.Users, &pb.User{Id: id, DisplayName: "User " + id, UserType: pb.UserType_USER_TYPE_MEMBER})
		top.Members = append(top.Members, id)
	}
	s.Groups = append(s.Groups, top)
	path := filepath.Join(t.TempDir(), "big.pb")
	if err := directory.WriteSnapshotFile(path, s); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestExplorerLargeGroupAndTenantsInBrowser serves two tenants: the page offers a tenant picker, and a group of
// 200 000 direct members opens with one page of them and its counts, the rest loaded on demand.
func TestExplorerLargeGroupAndTenantsInBrowser(t *testing.T) {
	demoFile := filepath.Join(t.TempDir(), "contoso.json")
	if err := directory.WriteSnapshotFile(demoFile, demo.Snapshot()); err != nil {
		t.Fatal(err)
	}
	base := serve(t, "--snapshot", demoFile, "--snapshot", bigTenant(t))
	ctx := browser(t)

	do(t, ctx, "open the page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#tenant-select")))
	options := eval[[]string](t, ctx, `[...document.querySelectorAll('#tenant-select option')].map(o => o.value)`)
	if !slices.Equal(options, []string{"big", "contoso"}) {
		t.Errorf("tenant picker offers %v, want big and contoso", options)
	}
	do(t, ctx, "pick big", chromedp.SetValue(css("#tenant-select"), "big"))
	eval[bool](t, ctx, `document.querySelector('#tenant-select').dispatchEvent(new Event('change'))`)
	waitFor(t, ctx, "the URL names the tenant picked", `location.hash.includes('t=big')`)
	// A fresh load of that URL opens the same tenant (the picker wrote it into the URL, not only into storage).
	url := eval[string](t, ctx, `location.href`)
	do(t, ctx, "search big", chromedp.Navigate("about:blank"), chromedp.Navigate(url), chromedp.WaitVisible(css("#search-input")),
		chromedp.SendKeys(css("#search-input"), "grp-top"), chromedp.WaitVisible(css(`#search-results a[href*="grp-top"]`)))
	if v := eval[string](t, ctx, `document.querySelector('#tenant-select').value`); v != "big" {
		t.Errorf("tenant picker shows %q after reloading the URL, want big", v)
	}

	do(t, ctx, "open the big group", chromedp.Click(css(`#search-results a[href*="grp-top"]`)),
		chromedp.WaitVisible(css(`li.node[data-id="grp-sub-2"]`)))
	facts := textOf(t, ctx, "dl.facts")
	if !strings.Contains(facts, "200,003 direct, 203,004 effective") {
		t.Errorf("facts %q: want 200,003 direct and 203,004 effective members (users, the sub-groups and their members)", facts)
	}
	rows := eval[int](t, ctx, `document.querySelectorAll('#tree-h ~ .tree-scroll > ul.tree > li.node').length`)
	if rows != 100 {
		t.Errorf("%d rows on the first page, want 100", rows)
	}
	if sub := textOf(t, ctx, `li.node[data-id="grp-sub-2"] > .row`); !strings.Contains(sub, "1,001 direct · 1,001 effective") || !strings.Contains(sub, "contains a guest") {
		t.Errorf("Team 2 row %q: want its counts and the guest it holds", sub)
	}
	more := `#tree-h ~ .tree-scroll > ul.tree > li.more button`
	if b := textOf(t, ctx, more); !strings.Contains(b, "100 of 200,003 shown") {
		t.Errorf("more button %q", b)
	}
	do(t, ctx, "show more", chromedp.Click(css(more)))
	waitFor(t, ctx, "the second page", `document.querySelectorAll('#tree-h ~ .tree-scroll > ul.tree > li.node').length === 200`)
	if b := textOf(t, ctx, more); !strings.Contains(b, "200 of 200,003 shown") {
		t.Errorf("more button after one page %q", b)
	}
	// The guest panel reads the first guests of the stream, not the whole group.
	if g := textOf(t, ctx, "#guests-h + table"); !strings.Contains(g, "Visitor") {
		t.Errorf("guest panel %q: want the visitor two levels down", g)
	}
}
