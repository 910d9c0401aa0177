// Package oidc verifies Microsoft Entra ID (and other OpenID Connect) bearer tokens for SPEC §13.
//
// The whole API:
//
//	cfg := oidc.Config{Issuers: []string{"https://login.microsoftonline.com/{tid}/v2.0"}, Audiences: []string{clientID}}
//	if err := cfg.Validate(); err != nil { ... }      // refuses http:// off loopback, an issuer without audience
//	v, err := oidc.New(ctx, cfg)                      // never fails because an issuer is down: keys come in the background
//	defer v.Close()
//	if oidc.LooksLikeJWT(token) {                     // cheap: tells JWTs from static tokens
//		claims, err := v.Verify(ctx, token)           // *InvalidTokenError (UNAUTHENTICATED) or ErrUnavailable (UNAVAILABLE)
//	}
//
// Each issuer URL is a discovery location: {URL}/.well-known/openid-configuration gives the accepted "iss" (its
// "issuer", which need not equal URL: Entra's v1 document at https://login.microsoftonline.com/{tid} says
// "https://sts.windows.net/{tid}/") and "jwks_uri". Keys are fetched in the background, refreshed every
// RefreshInterval, and fetched again when a token names an unknown "kid" — at most once per MinUnknownKIDRefetch
// per issuer, so a stream of forged kids cannot turn the verifier into a load generator against the issuer. A
// fetch that fails keeps the keys already held: a verifier that has seen an issuer's keys keeps accepting its
// tokens while the issuer is down. A token whose kid is unknown while the last fetch failed is ErrUnavailable
// rather than invalid: it may be signed with a key rotated in meanwhile.
//
// Validation follows SPEC §13: RS256 or ES256 only; the token's "iss" selects exactly one issuer, and only that
// issuer's keys may verify it (a token signed with issuer A's key claiming issuer B fails); "aud" one of
// Audiences; "exp" (required) and "nbf" with 5 minutes of leeway, as Microsoft's own libraries allow; when the
// issuer URL names a tenant (its first GUID path segment), "tid" must be that tenant. Signatures and key parsing
// are github.com/golang-jwt/jwt/v5 and github.com/MicahParks/keyfunc/v3 (github.com/MicahParks/jwkset); this
// package only fetches, selects and caches.
//
// Verified tokens are cached by the SHA-256 of the token (never the token itself) until their "exp"; a cache hit
// re-checks "exp" against Now and that the signing key is still in its issuer's set.
//
// Errors never contain the token or any claim value: an *InvalidTokenError carries one short Reason.
package oidc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Leeway is the clock skew allowed on "exp" and "nbf" (SPEC §13: at most 5 minutes; Microsoft's libraries allow 5).
const Leeway = 5 * time.Minute

// Defaults for the zero values of Config.
const (
	DefaultRefreshInterval      = time.Hour
	DefaultMinUnknownKIDRefetch = 10 * time.Second
	DefaultCacheEntries         = 10_000
	defaultHTTPTimeout          = 10 * time.Second
)

// Config configures a Verifier. Only Issuers and Audiences are needed in production.
type Config struct {
	// Issuers are discovery locations: {URL}/.well-known/openid-configuration. https, or http on loopback
	// (127.0.0.0/8, ::1, localhost).
	Issuers []string
	// Audiences are the accepted "aud" values; required when Issuers is not empty.
	Audiences []string
	// HTTPClient fetches discovery documents and key sets; nil: a client with a 10 s timeout that refuses
	// redirects to URLs Validate would refuse.
	HTTPClient *http.Client
	// Logger receives key fetches and failures (URLs only, never tokens); nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock for token times and the unknown-kid rate limit; nil: time.Now.
	Now func() time.Time
	// RefreshInterval is the period of the background refresh of each issuer's keys; 0: DefaultRefreshInterval.
	RefreshInterval time.Duration
	// MinUnknownKIDRefetch is the least time between two fetches of an issuer's keys caused by tokens (unknown
	// kid, or an issuer never reached yet); 0: DefaultMinUnknownKIDRefetch (SPEC §13: 10 s).
	MinUnknownKIDRefetch time.Duration
	// CacheEntries bounds the cache of verified tokens; 0: DefaultCacheEntries, negative: no cache.
	CacheEntries int
}

// Validate reports a configuration error that New would refuse; the messages name the flag-level problem.
func (c Config) Validate() error {
	for _, u := range c.Issuers {
		if _, err := parseIssuerURL(u); err != nil {
			return err
		}
	}
	if len(c.Issuers) > 0 && len(c.Audiences) == 0 {
		return errors.New("oidc: an issuer needs at least one audience: give the accepted aud values (the API's client id or app ID URI)")
	}
	for _, a := range c.Audiences {
		if strings.TrimSpace(a) == "" {
			return errors.New("oidc: empty audience")
		}
	}
	if c.RefreshInterval < 0 || c.MinUnknownKIDRefetch < 0 {
		return errors.New("oidc: negative refresh interval")
	}
	return nil
}

// parseIssuerURL checks one issuer URL (or a URL a document points to) against SPEC §13's transport rule.
func parseIssuerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return nil, fmt.Errorf("oidc: issuer %q is not an absolute URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("oidc: issuer %q: no user info, query or fragment allowed", raw)
	}
	if err := checkScheme(u); err != nil {
		return nil, fmt.Errorf("oidc: issuer %q: %w", raw, err)
	}
	return u, nil
}

// checkScheme allows https anywhere and http only on loopback, where TLS buys nothing and tests live.
func checkScheme(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("http:// is allowed only on loopback (127.0.0.0/8, ::1, localhost); use https")
	default:
		return fmt.Errorf("scheme %q: use https", u.Scheme)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tenantOf returns the first path segment of an issuer URL that is a GUID (lower case), or "": Entra's tenant
// authorities are https://login.microsoftonline.com/{tid} and .../{tid}/v2.0; "common", "organizations" and
// domain names name no tenant.
func tenantOf(u *url.URL) string {
	for seg := range strings.SplitSeq(strings.Trim(u.Path, "/"), "/") {
		if isGUID(seg) {
			return strings.ToLower(seg)
		}
	}
	return ""
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Claims are what groupgate uses of a verified token. A *Claims returned by Verify may be shared with other
// callers presenting the same token: treat it as read-only.
type Claims struct {
	Issuer   string // iss
	Subject  string // sub
	TenantID string // tid
	ObjectID string // oid
	AppID    string // azp (v2 tokens) or appid (v1 tokens)
	IDType   string // idtyp ("app" for app-only tokens, when the optional claim is configured)
	Version  string // ver ("1.0" or "2.0")
	Roles    []string
	Expiry   time.Time
}

// InvalidTokenError is a token that is not accepted (UNAUTHENTICATED). Reason is one short phrase: "malformed",
// "algorithm", "signature", "issuer", "audience", "tenant", "expired", "not yet valid", "missing claim".
type InvalidTokenError struct {
	Reason string
}

func (e *InvalidTokenError) Error() string { return "invalid token: " + e.Reason }

func invalid(reason string) *InvalidTokenError { return &InvalidTokenError{Reason: reason} }

// ErrUnavailable means the keys for the token's issuer cannot be fetched and none are held: retryable
// (UNAVAILABLE). Errors returned by Verify wrap it with the issuer URL and the fetch failure.
var ErrUnavailable = errors.New("oidc: signing keys unavailable")

// LooksLikeJWT reports whether token has the shape of a compact JWS: three dot-separated base64url segments, the
// first two non-empty (the third is empty for alg "none", which Verify then refuses by name). It reads nothing
// else, so the server can route static tokens and JWTs without parsing.
func LooksLikeJWT(token string) bool {
	dots, seg := 0, 0
	for i := 0; i < len(token); i++ {
		switch base64url[token[i]] {
		case 1:
			seg++
		case 2:
			if seg == 0 || dots == 2 {
				return false
			}
			dots++
			seg = 0
		default:
			return false
		}
	}
	return dots == 2
}

// base64url classifies bytes for LooksLikeJWT: 1 the base64url alphabet, 2 the dot. A table, because the check
// runs over every byte of every bearer token and a switch of ranges was 40% of a cached Verify.
var base64url = func() (t [256]byte) {
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = 1
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = 1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	t['-'], t['_'], t['.'] = 1, 1, 2
	return t
}()
