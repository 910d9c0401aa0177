// Package notify delivers live findings (SPEC §16) to a webhook: each OPENED or RESOLVED event of
// WatchFindings, posted as a signed CloudEvents 1.0 JSON event, retried until the receiver takes it, in revision
// order per tenant, with the delivered position kept in a Ledger so that a restart or another replica resumes
// where delivery stopped.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Config is a webhook deliverer.
type Config struct {
	// URL receives the events (http or https; see CheckURL).
	URL string
	// Secret keys the X-Groupgate-Signature HMAC.
	Secret []byte
	// Header is sent with every POST (e.g. Event Grid's aeg-sas-key); its values are never logged.
	Header http.Header
	// Conn reaches the server's DecisionService: Server.Conn() in-process, so that the stream passes the same
	// interceptors as any caller's.
	Conn grpc.ClientConnInterface
	// Token, when set, is sent as the bearer token of the WatchFindings calls (a checker the server knows).
	Token string
	// Tenants lists the tenants to deliver for; it is asked again every TenantsEvery for new ones.
	Tenants func() []string
	// Prepare, when set, is called once for every tenant Tenants lists, whether or not this replica holds the
	// lease: the server starts following the tenant's findings then (Server.StartFindings), so that a standby
	// that takes over holds the findings history since its start and can replay from the delivered revision
	// rather than fall back to the difference.
	Prepare func(ctx context.Context, tenant string) error
	// Ledgers keep the delivered position and grant the one-replica lease.
	Ledgers Ledgers
	// Logger receives what the deliverer does; never the secret, the header values or the URL's query.
	Logger *slog.Logger
	// Registerer, when set, receives the deliverer's metrics.
	Registerer prometheus.Registerer
	// Client posts the events; nil: a client with a 30 s timeout per attempt.
	Client *http.Client
	// MinBackoff and MaxBackoff bound the wait between attempts (doubling, with jitter); zero: 500 ms and 1 min.
	MinBackoff, MaxBackoff time.Duration
	// LeaseEvery is how often a replica without the lease tries for it, and TenantsEvery how often the tenant
	// list is read again; zero: 5 s and 2 s.
	LeaseEvery, TenantsEvery time.Duration
	// QueueMessages bounds the WatchFindings messages read ahead of delivery per tenant; zero: 256. When it is
	// full the deliverer stops reading: the server ends the stream (RESOURCE_EXHAUSTED) and the deliverer
	// resumes from its position later, so a dead receiver never holds memory without bound.
	QueueMessages int
	// Now stamps each event's time; nil: time.Now.
	Now func() time.Time
}

// CheckURL refuses what cannot be a webhook: not http(s), no host, or plain http to a host that is not loopback
// (unless insecure): the events name guests and groups, and the URL may carry a SAS signature.
func CheckURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("--findings-webhook: not a URL") // the parse error would echo the URL, query and all
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("--findings-webhook %s: want an http:// or https:// URL", Redact(raw))
	case u.Host == "":
		return fmt.Errorf("--findings-webhook %s: the URL names no host", Redact(raw))
	case u.Scheme == "http" && !insecure && !loopbackHost(u.Hostname()):
		return fmt.Errorf("--findings-webhook %s: plain http off this machine would expose the events and the URL: use https (or pass --findings-webhook-insecure)", Redact(raw))
	}
	return nil
}

func loopbackHost(h string) bool {
	return h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.")
}

// Redact is the URL as logs and errors show it: scheme, host and path. The query goes (a Logic App trigger URL
// carries its SAS signature there, sig=…), and so does any user:password.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	s := r.String()
	if u.RawQuery != "" {
		s += "?…"
	}
	return s
}

// Deliverer posts findings events to the webhook. Run it; it stops when its context ends.
type Deliverer struct {
	cfg      Config
	url      string // redacted, for logs
	pending  prometheus.Gauge
	failed   prometheus.Counter
	sent     prometheus.Counter
	position *prometheus.GaugeVec
}

// Metrics are the deliverer's metrics (tests read them).
type Metrics struct {
	Pending   prometheus.Gauge
	Failed    prometheus.Counter
	Delivered prometheus.Counter
}

// Metrics returns the deliverer's metrics.
func (d *Deliverer) Metrics() Metrics {
	return Metrics{Pending: d.pending, Failed: d.failed, Delivered: d.sent}
}

// New checks cfg and returns a deliverer (metrics registered).
func New(cfg Config) (*Deliverer, error) {
	if err := CheckURL(cfg.URL, true); err != nil {
		return nil, err
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("--findings-webhook-secret-file: the secret is empty")
	}
	if cfg.Conn == nil || cfg.Tenants == nil || cfg.Ledgers == nil {
		return nil, errors.New("notify: Conn, Tenants and Ledgers are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.MinBackoff, 500*time.Millisecond)
	def(&cfg.MaxBackoff, time.Minute)
	def(&cfg.LeaseEvery, 5*time.Second)
	def(&cfg.TenantsEvery, 2*time.Second)
	if cfg.QueueMessages <= 0 {
		cfg.QueueMessages = 256
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Deliverer{cfg: cfg, url: Redact(cfg.URL),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "groupgate_findings_webhook_pending_events",
			Help: "Findings events read from WatchFindings and not yet accepted by the webhook."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "groupgate_findings_webhook_failed_attempts_total",
			Help: "Webhook POSTs that failed (no answer, or not 2xx) and are retried."}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "groupgate_findings_webhook_delivered_events_total",
			Help: "Findings events the webhook accepted (2xx)."}),
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "groupgate_findings_webhook_delivered_revision",
			Help: "The newest revision whose events the webhook has all accepted, by tenant."}, []string{"tenant"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{d.pending, d.failed, d.sent, d.position} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// Run delivers until ctx ends: it waits for the lease, then follows every tenant, one goroutine each, until ctx
// ends or the lease is lost (then it waits for the lease again).
func (d *Deliverer) Run(ctx context.Context) {
	if d.cfg.Prepare != nil {
		go d.prepare(ctx)
	}
	for ctx.Err() == nil {
		ledger, err := d.cfg.Ledgers.Lease(ctx)
		switch {
		case errors.Is(err, ErrLeaseHeld):
		case err != nil:
			d.cfg.Logger.Warn("findings webhook: cannot take the lease", "err", err)
		default:
			d.cfg.Logger.Info("findings webhook: delivering", "url", d.url)
			d.deliver(ctx, ledger)
			ledger.Release()
			if ctx.Err() == nil {
				d.cfg.Logger.Warn("findings webhook: lease lost; another replica may deliver")
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(d.cfg.LeaseEvery):
		}
	}
}

// prepare calls Config.Prepare for every tenant, new ones as they appear, until ctx ends.
func (d *Deliverer) prepare(ctx context.Context) {
	done := map[string]bool{}
	tick := time.NewTicker(d.cfg.TenantsEvery)
	defer tick.Stop()
	for {
		for _, t := range d.cfg.Tenants() {
			if done[t] {
				continue
			}
			if err := d.cfg.Prepare(ctx, t); err != nil {
				d.cfg.Logger.Warn("findings webhook: cannot follow the tenant's findings yet", "tenant", t, "err", err)
				continue
			}
			done[t] = true
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// deliver follows every tenant while the lease holds.
func (d *Deliverer) deliver(ctx context.Context, ledger Ledger) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	started := map[string]bool{}
	tick := time.NewTicker(d.cfg.TenantsEvery)
	defer tick.Stop()
	for {
		for _, t := range d.cfg.Tenants() {
			if !started[t] {
				started[t] = true
				wg.Add(1)
				go func() { defer wg.Done(); d.tenant(ctx, ledger, t) }()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ledger.Lost():
			return
		case <-tick.C:
		}
	}
}

// tenant follows one tenant's findings until ctx ends, resuming after every stream that ends.
func (d *Deliverer) tenant(ctx context.Context, ledger Ledger, tenant string) {
	log := d.cfg.Logger.With("tenant", tenant)
	var pos Position
	loaded, fromNewest := false, false
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if !loaded {
			p, err := ledger.Load(ctx, tenant)
			if err != nil {
				log.Warn("findings webhook: cannot read the delivered position", "err", err)
				d.sleep(ctx, attempt)
				continue
			}
			pos, loaded = p, true
			if pos.Open == nil {
				pos.Open = map[string]*pb.Finding{}
			}
		}
		err := d.follow(ctx, ledger, tenant, &pos, fromNewest)
		if ctx.Err() != nil {
			return
		}
		switch status.Code(err) {
		case codes.OutOfRange:
			// The server holds no findings history back to our position (a new process, or too far behind):
			// start at its newest revision and send the difference between what the receiver holds open and
			// what is open now.
			log.Warn("findings webhook: the server cannot replay from the delivered revision; catching up by difference", "revision", pos.Revision, "err", err)
			fromNewest = true
			continue
		case codes.ResourceExhausted:
			log.Warn("findings webhook: the webhook fell behind the stream; resuming from the delivered revision", "revision", pos.Revision)
		default:
			log.Warn("findings webhook: the findings stream ended; resuming", "revision", pos.Revision, "err", err)
		}
		fromNewest = false
		d.sleep(ctx, min(attempt, 3))
		if attempt > 3 {
			attempt = 0
		}
	}
}

// sleep waits the backoff of attempt (0: MinBackoff), or until ctx ends.
func (d *Deliverer) sleep(ctx context.Context, attempt int) {
	wait := d.cfg.MinBackoff << min(attempt, 20)
	if wait > d.cfg.MaxBackoff || wait <= 0 {
		wait = d.cfg.MaxBackoff
	}
	// Jitter (half to all of it) spreads the retries of replicas and tenants that failed together.
	wait = wait/2 + rand.N(wait/2+1)
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
}

// follow runs one WatchFindings stream from pos (or from the newest revision) and delivers its events, moving
// pos along. It returns the stream's error.
func (d *Deliverer) follow(ctx context.Context, ledger Ledger, tenant string, pos *Position, fromNewest bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d.cfg.Token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+d.cfg.Token)
	}
	after := pos.Revision
	if fromNewest {
		after = 0
	}
	stream, err := pb.NewDecisionServiceClient(d.cfg.Conn).WatchFindings(ctx, &pb.WatchFindingsRequest{TenantId: tenant, AfterRevision: after})
	if err != nil {
		return err
	}
	// The starting findings: what holds at the start revision, compared with what the receiver holds open.
	current := map[string]*pb.FindingEvent{}
	var start int64
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		for _, e := range resp.GetEvents() {
			current[e.GetFindingId()] = e
		}
		if resp.GetCurrentDone() {
			start = resp.GetRevision()
			break
		}
	}
	missing := catchUp(pos, current, start)
	d.pending.Add(float64(len(missing)))
	if err := d.deliverRevision(ctx, ledger, tenant, pos, start, missing); err != nil {
		return err
	}

	// Later revisions: read ahead into a bounded queue, so that reading never waits on the receiver until the
	// queue is full.
	queue := make(chan *pb.WatchFindingsResponse, d.cfg.QueueMessages)
	readErr := make(chan error, 1)
	go func() {
		defer close(queue)
		for {
			resp, err := stream.Recv()
			if err != nil {
				readErr <- err
				return
			}
			if len(resp.GetEvents()) == 0 {
				continue
			}
			d.pending.Add(float64(len(resp.GetEvents())))
			select {
			case queue <- resp:
			case <-ctx.Done():
				d.pending.Sub(float64(len(resp.GetEvents())))
				readErr <- ctx.Err()
				return
			}
		}
	}()
	defer func() {
		cancel()
		for resp := range queue { // what was read ahead waits no more
			d.pending.Sub(float64(len(resp.GetEvents())))
		}
	}()
	// A revision with more events than one message holds comes as consecutive messages of that revision: it is
	// recorded as delivered after the message that carries revision_done (or when a later revision's comes).
	var held *revisionEvents
	record := func() error {
		if held == nil {
			return nil
		}
		r := held
		held = nil
		return d.record(ctx, ledger, tenant, pos, r)
	}
	for {
		resp, ok := <-queue
		if !ok {
			// The stream ended: a revision not known to be complete is not recorded; the next stream
			// replays it whole (duplicates only of the revision in flight).
			return <-readErr
		}
		rev := resp.GetRevision()
		if held != nil && rev != held.rev {
			if err := record(); err != nil {
				return err
			}
		}
		if rev <= pos.Revision {
			d.pending.Sub(float64(len(resp.GetEvents())))
			continue // delivered already (a replay that overlaps the catch-up)
		}
		if held == nil {
			held = &revisionEvents{rev: rev, opened: map[string]*pb.Finding{}}
		}
		if err := d.postAll(ctx, tenant, resp.GetEvents(), held); err != nil {
			return err
		}
		if resp.GetRevisionDone() {
			if err := record(); err != nil {
				return err
			}
		}
	}
}

// revisionEvents are the delivered events of one revision, not yet recorded in the ledger.
type revisionEvents struct {
	rev      int64
	opened   map[string]*pb.Finding
	resolved []string
}

// catchUp turns the starting findings into the events the receiver lacks: OPENED for what holds now and it
// does not hold open, RESOLVED for what it holds open and no longer holds, both at the start revision. Resuming
// at the delivered revision, the two sets are the same and nothing is sent.
func catchUp(pos *Position, current map[string]*pb.FindingEvent, start int64) []*pb.FindingEvent {
	var out []*pb.FindingEvent
	for id, e := range current {
		if _, open := pos.Open[id]; !open {
			out = append(out, &pb.FindingEvent{Kind: pb.FindingEventKind_FINDING_EVENT_KIND_OPENED, Finding: e.GetFinding(),
				FindingId: id, Revision: start})
		}
	}
	for id, f := range pos.Open {
		if _, still := current[id]; !still {
			out = append(out, &pb.FindingEvent{Kind: pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED, Finding: f,
				FindingId: id, Revision: start})
		}
	}
	sortEvents(out)
	return out
}

// deliverRevision posts one revision's events in order, each until the receiver takes it, then records the
// revision as delivered. With no events it only moves the position forward.
func (d *Deliverer) deliverRevision(ctx context.Context, ledger Ledger, tenant string, pos *Position, rev int64, events []*pb.FindingEvent) error {
	r := &revisionEvents{rev: rev, opened: map[string]*pb.Finding{}}
	if err := d.postAll(ctx, tenant, events, r); err != nil {
		return err
	}
	if rev == pos.Revision && len(events) == 0 {
		return nil
	}
	return d.record(ctx, ledger, tenant, pos, r)
}

// postAll posts events in order, each until the receiver takes it, noting them in r.
func (d *Deliverer) postAll(ctx context.Context, tenant string, events []*pb.FindingEvent, r *revisionEvents) error {
	for i, e := range events {
		if err := d.post(ctx, tenant, e); err != nil {
			d.pending.Sub(float64(len(events) - i)) // they will be read again from the stream
			return err
		}
		d.sent.Inc()
		d.pending.Dec()
		if e.GetKind() == pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED {
			r.resolved = append(r.resolved, e.GetFindingId())
			delete(r.opened, e.GetFindingId())
		} else {
			r.opened[e.GetFindingId()] = e.GetFinding()
		}
	}
	return nil
}

// record notes a revision's delivered events in the ledger and in pos.
func (d *Deliverer) record(ctx context.Context, ledger Ledger, tenant string, pos *Position, r *revisionEvents) error {
	if err := ledger.Delivered(ctx, tenant, r.rev, r.opened, r.resolved); err != nil {
		return fmt.Errorf("recording revision %d as delivered: %w", r.rev, err)
	}
	for id, f := range r.opened {
		pos.Open[id] = f
	}
	for _, id := range r.resolved {
		delete(pos.Open, id)
	}
	pos.Revision = r.rev
	d.position.WithLabelValues(tenant).Set(float64(r.rev))
	return nil
}

// post sends one event until a 2xx answer or ctx ends. The body, time included, is built once: every retry is
// the same bytes under the same signature.
func (d *Deliverer) post(ctx context.Context, tenant string, e *pb.FindingEvent) error {
	body, err := Encode(tenant, e, d.cfg.Now())
	if err != nil {
		return err
	}
	sig := Sign(d.cfg.Secret, body)
	for attempt := 0; ; attempt++ {
		err := d.attempt(ctx, body, sig)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.failed.Inc()
		d.cfg.Logger.Warn("findings webhook: delivery failed; retrying", "url", d.url, "tenant", tenant,
			"event", EventID(e), "attempt", attempt+1, "err", err)
		d.sleep(ctx, attempt)
	}
}

func (d *Deliverer) attempt(ctx context.Context, body []byte, sig string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("cannot build the request")
	}
	for k, vs := range d.cfg.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set(SignatureHeader, sig)
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		// *url.Error's message holds the whole URL, query (SAS signature) included: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return nil
}
