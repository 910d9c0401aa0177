package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/notify"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/prometheus/client_golang/prometheus"
)

// FindingsWebhook posts live findings to a URL (serve --findings-webhook…, SPEC §16).
type FindingsWebhook struct {
	// URL receives the events; "": no webhook.
	URL string
	// SecretFile holds the HMAC key of X-Groupgate-Signature (its contents, trimmed).
	SecretFile string
	// HeaderFile, optional, holds "Name: value" lines sent with every POST (Event Grid's aeg-sas-key).
	HeaderFile string
	// Insecure allows plain http to a host that is not loopback.
	Insecure bool
	// MinBackoff, MaxBackoff and LeaseEvery tune the deliverer (notify.Config); zero: its defaults.
	MinBackoff, MaxBackoff, LeaseEvery time.Duration
}

// webhookCallerName is the name the deliverer's in-process calls carry in logs and decision records.
const webhookCallerName = "findings-webhook"

// checkFindingsWebhook reads and checks the webhook's flags before anything slow starts: a bad URL or secret
// stops serve at once. With authentication on, it gives the deliverer a checker token of its own.
func (a *App) checkFindingsWebhook(context.Context) error {
	w := a.cfg.FindingsWebhook
	if w.URL == "" {
		if w.SecretFile != "" || w.HeaderFile != "" {
			return errors.New("--findings-webhook-secret-file and --findings-webhook-header-file need --findings-webhook")
		}
		return nil
	}
	if err := notify.CheckURL(w.URL, w.Insecure); err != nil {
		return err
	}
	if w.SecretFile == "" {
		return errors.New("--findings-webhook needs --findings-webhook-secret-file: receivers tell groupgate's events from anyone's by its signature")
	}
	raw, err := os.ReadFile(w.SecretFile)
	if err != nil {
		return fmt.Errorf("--findings-webhook-secret-file: %w", err)
	}
	secret := bytes.TrimSpace(raw)
	if len(secret) == 0 {
		return fmt.Errorf("--findings-webhook-secret-file %s: the file is empty", w.SecretFile)
	}
	header, err := readHeaderFile(w.HeaderFile)
	if err != nil {
		return err
	}
	a.webhookSecret, a.webhookHeader = secret, header
	if a.tokens != nil || a.jwt != nil {
		if a.tokens, a.webhookToken, err = server.WithInternalCaller(a.tokens, server.RoleChecker, webhookCallerName); err != nil {
			return err
		}
	}
	return nil
}

// readHeaderFile reads "Name: value" lines ('#' comments, blank lines ignored). Errors name the line, never the
// value: it is a key.
func readHeaderFile(path string) (http.Header, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--findings-webhook-header-file: %w", err)
	}
	h := http.Header{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, value, ok := strings.Cut(text, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || value == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("--findings-webhook-header-file %s: line %d: want Name: value", path, line)
		}
		switch textproto.CanonicalMIMEHeaderKey(name) {
		case "Content-Type", notify.SignatureHeader, "Content-Length", "Host":
			return nil, fmt.Errorf("--findings-webhook-header-file %s: line %d: %s is set by groupgate", path, line, name)
		}
		h.Add(name, value)
	}
	return h, sc.Err()
}

// startFindingsWebhook starts the deliverer: it follows WatchFindings through the server's in-process
// connection (the same interceptors as any caller) and stops when the App closes.
func (a *App) startFindingsWebhook(context.Context) error {
	w := a.cfg.FindingsWebhook
	if w.URL == "" {
		return nil
	}
	var ledgers notify.Ledgers = notify.NewMemoryLedgers()
	if pg, ok := a.store.(*postgres.Store); ok {
		ledgers = pgLedgers{pg}
	}
	var reg prometheus.Registerer
	if a.metrics != nil {
		reg = a.metrics.Registry
	}
	d, err := notify.New(notify.Config{URL: w.URL, Secret: a.webhookSecret, Header: a.webhookHeader,
		Conn: a.srv.Conn(), Token: a.webhookToken, Tenants: a.store.Tenants, Prepare: a.srv.StartFindings, Ledgers: ledgers,
		Logger: a.logger, Registerer: reg, MinBackoff: w.MinBackoff, MaxBackoff: w.MaxBackoff, LeaseEvery: w.LeaseEvery})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	a.onClose(func() { cancel(); <-done })
	a.logger.Info("posting findings to a webhook", "url", notify.Redact(w.URL))
	return nil
}

// pgLedgers keeps the delivered positions in PostgreSQL, under the one-replica lease.
type pgLedgers struct{ st *postgres.Store }

func (p pgLedgers) Lease(ctx context.Context) (notify.Ledger, error) {
	l, err := p.st.LeaseFindingsWebhook(ctx)
	if errors.Is(err, postgres.ErrWebhookLeaseHeld) {
		return nil, notify.ErrLeaseHeld
	}
	if err != nil {
		return nil, err
	}
	return pgLedger{l}, nil
}

type pgLedger struct{ *postgres.WebhookLease }

func (l pgLedger) Load(ctx context.Context, tenant string) (notify.Position, error) {
	rev, open, err := l.Position(ctx, tenant)
	return notify.Position{Revision: rev, Open: open}, err
}

func (l pgLedger) Delivered(ctx context.Context, tenant string, rev int64, opened map[string]*pb.Finding, resolved []string) error {
	return l.WebhookLease.Delivered(ctx, tenant, rev, opened, resolved)
}
