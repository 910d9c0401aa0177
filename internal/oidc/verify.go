package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/golang-jwt/jwt/v5"
)

// validMethods are the only signature algorithms accepted (SPEC §13); "none", HS* and the rest are refused
// before any key is looked up.
var validMethods = []string{"RS256", "ES256"}

// Verifier verifies bearer tokens against the configured issuers. It is safe for concurrent use.
type Verifier struct {
	issuers    []*issuer
	parser     *jwt.Parser
	client     *http.Client
	log        *slog.Logger
	now        func() time.Time
	refresh    time.Duration
	minRefetch time.Duration
	cache      *ristretto.Cache[uint64, *cacheEntry] // nil when disabled

	ctx    context.Context // ends background fetches on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// cacheEntry is a verified token: its claims, and the key that verified it, checked again on every hit so that
// a key removed from the issuer's set stops its tokens at the next refresh.
type cacheEntry struct {
	sum    [sha256.Size]byte
	claims *Claims
	iss    *issuer
	kid    string
}

// tokenClaims are the claims read from a token; RegisteredClaims carries the standard validation.
type tokenClaims struct {
	jwt.RegisteredClaims
	TenantID string   `json:"tid"`
	ObjectID string   `json:"oid"`
	AZP      string   `json:"azp"`
	AppID    string   `json:"appid"`
	IDType   string   `json:"idtyp"`
	Version  string   `json:"ver"`
	Roles    []string `json:"roles"`
}

// New validates cfg and starts fetching every issuer's keys in the background. It does not wait for them: an
// issuer that is down at start makes its tokens fail with ErrUnavailable until its keys arrive. ctx bounds
// nothing but New itself; Close stops the background work.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("oidc: no issuer")
	}
	v := &Verifier{
		client:     cfg.HTTPClient,
		log:        cfg.Logger,
		now:        cfg.Now,
		refresh:    cfg.RefreshInterval,
		minRefetch: cfg.MinUnknownKIDRefetch,
	}
	if v.client == nil {
		v.client = &http.Client{
			Timeout: defaultHTTPTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				return checkScheme(req.URL)
			},
		}
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.refresh == 0 {
		v.refresh = DefaultRefreshInterval
	}
	if v.minRefetch == 0 {
		v.minRefetch = DefaultMinUnknownKIDRefetch
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(validMethods),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(v.now),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(cfg.Audiences...),
	)
	if n := cfg.CacheEntries; n >= 0 {
		if n == 0 {
			n = DefaultCacheEntries
		}
		c, err := ristretto.NewCache(&ristretto.Config[uint64, *cacheEntry]{
			NumCounters: int64(10 * n),
			MaxCost:     int64(n),
			BufferItems: 64,
		})
		if err != nil {
			return nil, fmt.Errorf("oidc: token cache: %w", err)
		}
		v.cache = c
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	seen := map[string]bool{}
	for _, raw := range cfg.Issuers {
		u := trimURL(raw)
		if seen[u] {
			continue
		}
		seen[u] = true
		pu, _ := parseIssuerURL(u) // validated above
		is := &issuer{v: v, url: u, discoveryURL: u + "/.well-known/openid-configuration", tenant: tenantOf(pu)}
		v.issuers = append(v.issuers, is)
	}
	for _, is := range v.issuers {
		v.wg.Add(1)
		go is.run()
	}
	return v, nil
}

// Close stops the background fetches and waits for them. Verify must not be called after Close.
func (v *Verifier) Close() {
	v.once.Do(func() {
		v.cancel()
		v.wg.Wait()
		if v.cache != nil {
			v.cache.Close()
		}
	})
}

// Verify checks raw (the bearer token, without "Bearer ") and returns its claims. Errors: *InvalidTokenError
// (the token is not accepted; its Reason says why) or one wrapping ErrUnavailable (no keys for its issuer).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	// The cache is looked up first: a hit is a token verified byte for byte, so its shape needs no check.
	// unsafe: Sum256 only reads the bytes; a []byte(raw) copy was the one 1 KiB allocation of a cached hit.
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	key := binary.LittleEndian.Uint64(sum[:8]) // the entry keeps the whole sum, compared on every hit
	if v.cache != nil {
		if e, ok := v.cache.Get(key); ok && e.sum == sum &&
			v.now().Before(e.claims.Expiry.Add(Leeway)) && e.iss.current().has(e.kid) {
			return e.claims, nil
		}
	}

	if !LooksLikeJWT(raw) {
		return nil, invalid("malformed")
	}
	var (
		tc      tokenClaims
		used    *issuer
		kid     string
		keyErr  error
		checked bool // the keyfunc ran: alg was accepted
	)
	tok, err := v.parser.ParseWithClaims(raw, &tc, func(t *jwt.Token) (any, error) {
		checked = true
		var k any
		k, used, kid, keyErr = v.key(ctx, t)
		return k, keyErr
	})
	if err != nil {
		if keyErr != nil {
			return nil, keyErr
		}
		return nil, classify(err, tok, checked)
	}
	if used.tenant != "" && !strings.EqualFold(tc.TenantID, used.tenant) {
		return nil, invalid("tenant")
	}
	c := &Claims{
		Issuer:   tc.Issuer,
		Subject:  tc.Subject,
		TenantID: tc.TenantID,
		ObjectID: tc.ObjectID,
		AppID:    tc.AZP,
		IDType:   tc.IDType,
		Version:  tc.Version,
		Roles:    tc.Roles,
		Expiry:   tc.ExpiresAt.Time,
	}
	if c.AppID == "" {
		c.AppID = tc.AppID
	}
	if v.cache != nil {
		if ttl := c.Expiry.Add(Leeway).Sub(v.now()); ttl > 0 {
			v.cache.SetWithTTL(key, &cacheEntry{sum: sum, claims: c, iss: used, kid: kid}, 1, ttl)
		}
	}
	return c, nil
}

// key finds the verification key for t: the issuer its "iss" names (only that issuer's keys may verify it),
// then the key its "kid" names, fetching the issuer's keys again when the kid is unknown.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, *issuer, string, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, nil, "", invalid("malformed")
	}
	iss, err := t.Claims.GetIssuer()
	if err != nil || iss == "" {
		return nil, nil, "", invalid("issuer")
	}
	is, err := v.issuerFor(ctx, iss)
	if err != nil {
		return nil, nil, "", err
	}
	ks := is.current()
	if !ks.has(kid) {
		is.refreshForToken(ctx)
		ks = is.current()
		if ks == nil {
			return nil, nil, "", is.unavailable()
		}
		if !ks.has(kid) || ks.issuer != iss {
			// An unknown kid while the issuer cannot be reached may be a rotation we could not see yet.
			if is.fetchFailed() {
				return nil, nil, "", is.unavailable()
			}
			return nil, nil, "", invalid("signature")
		}
	}
	k, err := ks.keys.KeyfuncCtx(ctx)(t)
	if err != nil {
		// the key's "alg" or "use" does not allow this token
		return nil, nil, "", invalid("signature")
	}
	return k, is, kid, nil
}

// issuerFor returns the issuer whose discovery document names iss. While some issuer has never been reached,
// an unknown iss may be its own: then it tries those issuers again (rate-limited) and answers ErrUnavailable
// rather than "issuer".
func (v *Verifier) issuerFor(ctx context.Context, iss string) (*issuer, error) {
	var pending []*issuer
	for _, is := range v.issuers {
		ks := is.current()
		if ks == nil {
			pending = append(pending, is)
		} else if ks.issuer == iss {
			return is, nil
		}
	}
	if len(pending) == 0 {
		return nil, invalid("issuer")
	}
	var unavailable error
	for _, is := range pending {
		is.refreshForToken(ctx)
		ks := is.current()
		if ks == nil {
			if unavailable == nil {
				unavailable = is.unavailable()
			}
			continue
		}
		if ks.issuer == iss {
			return is, nil
		}
	}
	if unavailable != nil {
		return nil, unavailable
	}
	return nil, invalid("issuer")
}

// classify turns golang-jwt's errors into one short reason. Nothing of the token goes into it.
func classify(err error, tok *jwt.Token, keyfuncRan bool) error {
	if !keyfuncRan && tok != nil {
		if alg, _ := tok.Header["alg"].(string); alg != "" && alg != validMethods[0] && alg != validMethods[1] {
			return invalid("algorithm")
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("malformed")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid("algorithm")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("signature")
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("not yet valid")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid("audience")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("missing claim")
	default:
		return invalid("invalid")
	}
}
