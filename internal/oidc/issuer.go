package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
)

// maxDocumentBytes bounds a discovery document or key set: Entra's are a few KiB.
const maxDocumentBytes = 1 << 20

// keySet is what one successful fetch of an issuer gives: immutable, swapped whole.
type keySet struct {
	issuer  string // the discovery document's "issuer": the accepted "iss"
	jwksURI string
	kids    map[string]struct{}
	keys    keyfunc.Keyfunc
}

func (k *keySet) has(kid string) bool {
	if k == nil {
		return false
	}
	_, ok := k.kids[kid]
	return ok
}

// issuer is one discovery location: its current keys, and the fetches that renew them.
type issuer struct {
	v            *Verifier
	url          string // as configured, without a trailing slash
	discoveryURL string
	tenant       string // GUID named by the URL, or ""

	mu        sync.Mutex
	keys      atomic.Pointer[keySet] // nil until the first successful fetch; written under mu
	inflight  chan struct{}          // closed when the running fetch ends; nil when none runs
	lastFetch time.Time              // start of the last fetch (v.now), for the token-driven rate limit
	lastErr   error                  // outcome of the last fetch
}

func (is *issuer) current() *keySet { return is.keys.Load() }

// unavailable is the error for a token whose issuer has no keys yet.
func (is *issuer) unavailable() error {
	is.mu.Lock()
	cause := is.lastErr
	is.mu.Unlock()
	if cause == nil {
		cause = errors.New("not fetched yet")
	}
	return fmt.Errorf("%w: issuer %s: %v", ErrUnavailable, is.url, cause)
}

// fetchFailed reports whether the last fetch failed.
func (is *issuer) fetchFailed() bool {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.lastErr != nil
}

// startFetch starts a fetch, or joins the one running; the channel closes when it ends. Callers hold is.mu.
func (is *issuer) startFetchLocked(discover bool) chan struct{} {
	if is.inflight != nil {
		return is.inflight
	}
	ch := make(chan struct{})
	is.inflight = ch
	is.lastFetch = is.v.now()
	is.v.wg.Add(1)
	go func() {
		defer is.v.wg.Done()
		ks, err := is.fetch(is.v.ctx, discover)
		is.mu.Lock()
		if err == nil {
			is.keys.Store(ks)
		}
		is.lastErr = err
		is.inflight = nil
		is.mu.Unlock()
		close(ch)
	}()
	return ch
}

// refreshForToken fetches the issuer's keys again because a token needs them (an unknown kid, or no keys yet),
// at most once per MinUnknownKIDRefetch since the last fetch of any kind; it waits for a fetch already running.
func (is *issuer) refreshForToken(ctx context.Context) {
	is.mu.Lock()
	ch := is.inflight
	if ch == nil {
		if !is.lastFetch.IsZero() && is.v.now().Sub(is.lastFetch) < is.v.minRefetch {
			is.mu.Unlock()
			return
		}
		ch = is.startFetchLocked(is.keys.Load() == nil)
	}
	is.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// run keeps the keys fresh until the verifier closes: at once, then every RefreshInterval, and after a failure
// with a backoff from 1 s up to a minute (or RefreshInterval when shorter).
func (is *issuer) run() {
	defer is.v.wg.Done()
	backoff := time.Second
	maxBackoff := min(time.Minute, is.v.refresh)
	for {
		is.mu.Lock()
		ch := is.startFetchLocked(true)
		is.mu.Unlock()
		select {
		case <-ch:
		case <-is.v.ctx.Done():
			return
		}
		is.mu.Lock()
		failed := is.lastErr != nil
		is.mu.Unlock()
		wait := is.v.refresh
		if failed {
			wait = backoff
			backoff = min(2*backoff, maxBackoff)
		} else {
			backoff = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-is.v.ctx.Done():
			t.Stop()
			return
		}
	}
}

// fetch reads the discovery document (when discover, or when no keys are held) and then the key set.
func (is *issuer) fetch(ctx context.Context, discover bool) (*keySet, error) {
	old := is.current()
	iss, jwksURI := "", ""
	if old != nil {
		iss, jwksURI = old.issuer, old.jwksURI
	}
	if discover || old == nil {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := is.getJSON(ctx, is.discoveryURL, &doc); err != nil {
			return nil, is.failed(err)
		}
		if doc.Issuer == "" || doc.JWKSURI == "" {
			return nil, is.failed(fmt.Errorf("discovery document %s lacks issuer or jwks_uri", is.discoveryURL))
		}
		u, err := url.Parse(doc.JWKSURI)
		if err == nil && (!u.IsAbs() || u.Host == "") {
			err = errors.New("not an absolute URL")
		}
		if err == nil {
			err = checkScheme(u)
		}
		if err != nil {
			return nil, is.failed(fmt.Errorf("jwks_uri %q: %w", doc.JWKSURI, err))
		}
		iss, jwksURI = doc.Issuer, doc.JWKSURI
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := is.getJSON(ctx, jwksURI, &set); err != nil {
		return nil, is.failed(err)
	}
	ks, skipped := parseKeySet(set.Keys)
	if len(ks.kids) == 0 {
		return nil, is.failed(fmt.Errorf("key set %s holds no usable RSA or EC signing key (%d skipped)", jwksURI, skipped))
	}
	ks.issuer, ks.jwksURI = iss, jwksURI
	if old == nil || old.issuer != ks.issuer || !sameKIDs(old.kids, ks.kids) {
		is.v.log.Info("oidc keys fetched", "issuer_url", is.url, "issuer", ks.issuer, "keys", len(ks.kids), "skipped", skipped)
	}
	return ks, nil
}

func (is *issuer) failed(err error) error {
	is.v.log.Warn("oidc key fetch failed; keeping the keys held", "issuer_url", is.url, "error", err)
	return err
}

func (is *issuer) getJSON(ctx context.Context, u string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := is.v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentBytes))
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("GET %s: larger than %d bytes", u, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// parseKeySet keeps the RSA and EC signature keys that jwkset accepts and skips the rest (encryption keys,
// other key types, keys without kid, malformed keys), so one odd key does not cost the whole set. Private
// parameters, should an issuer publish them, are ignored.
func parseKeySet(raw []json.RawMessage) (*keySet, int) {
	store := jwkset.NewMemoryStorage()
	kids := make(map[string]struct{}, len(raw))
	skipped := 0
	for _, r := range raw {
		var m jwkset.JWKMarshal
		if err := json.Unmarshal(r, &m); err != nil {
			skipped++
			continue
		}
		if (m.KTY != jwkset.KtyRSA && m.KTY != jwkset.KtyEC) || (m.USE != "" && m.USE != jwkset.UseSig) || m.KID == "" {
			skipped++
			continue
		}
		if _, dup := kids[m.KID]; dup {
			skipped++
			continue
		}
		m.D, m.P, m.Q, m.DP, m.DQ, m.QI, m.OTH = "", "", "", "", "", "", nil
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			skipped++
			continue
		}
		if err := store.KeyWrite(context.Background(), jwk); err != nil {
			skipped++
			continue
		}
		kids[m.KID] = struct{}{}
	}
	kf, _ := keyfunc.New(keyfunc.Options{Storage: store, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	return &keySet{kids: kids, keys: kf}, skipped
}

func sameKIDs(a, b map[string]struct{}) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func trimURL(u string) string { return strings.TrimRight(u, "/") }
