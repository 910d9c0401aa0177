// Package oidctest is a Microsoft Entra ID stand-in for tests: an httptest.Server on 127.0.0.1 serving one
// tenant's v1 and v2 OpenID configuration documents and key set, and minting access tokens shaped like Entra's.
//
// Shapes and where they come from (MicrosoftDocs/entra-docs):
//   - discovery: docs/identity-platform/v2-protocols-oidc.md ("Fetch the OpenID configuration document": the
//     authority https://login.microsoftonline.com/{tenant}/v2.0 plus /.well-known/openid-configuration, whose
//     document gives "issuer" and "jwks_uri" = https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys);
//   - v1 versus v2: docs/identity-platform/access-tokens.md ("v1.0 and v2.0 tokens": a v1 token is validated
//     against the document at https://login.microsoftonline.com/{tenant-id}/.well-known/openid-configuration, a
//     v2 token against .../{tenant-id}/v2.0/...; "Validate the issuer": the issuer must match exactly, and a v2
//     key set's keys carry an "issuer" member). The v1 document's issuer is https://sts.windows.net/{tid}/ — not
//     the stand-in's URL — so Options lets a test choose both issuer strings;
//   - token header and claims: docs/identity-platform/access-token-claims-reference.md (header "typ", "alg",
//     "kid", and "x5t" equal to "kid" in v1 tokens only; payload "aud", "iss" ending in /v2.0 for v2 tokens,
//     "iat", "nbf", "exp", "ver" "1.0"/"2.0", "tid", "oid", "sub", "appid" in v1 and "azp" in v2, "roles");
//     "idtyp" ("app" for app-only tokens) is an optional claim, docs/identity-platform/optional-claims-reference.md.
//
// Entra signs with RS256 only; the EC (ES256) key is here for other OIDC issuers SPEC §13 also accepts. Keys
// carry no x5c certificate chain (Entra's do; the verifier does not use it).
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Options configure a Server; the zero value is a fresh random tenant with Entra's issuer strings.
type Options struct {
	// TenantID is the tenant GUID in the URLs and the "tid" claim; "": a random GUID.
	TenantID string
	// V1Issuer is the v1 document's "issuer" and v1 tokens' "iss"; "": https://sts.windows.net/{tid}/ as Entra.
	V1Issuer string
	// V2Issuer is the v2 document's "issuer" and v2 tokens' "iss"; "": {URL}/{tid}/v2.0 (Entra's
	// https://login.microsoftonline.com/{tid}/v2.0 with the stand-in's URL).
	V2Issuer string
	// Now is the clock for iat/nbf/exp defaults; nil: time.Now.
	Now func() time.Time
}

// Server is the stand-in. All methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	tenant   string
	v1Issuer string
	v2Issuer string
	now      func() time.Time

	mu    sync.Mutex
	keys  []signingKey // published, newest last
	rsa   signingKey   // current RS256 signing key
	ec    signingKey   // current ES256 signing key
	gen   int
	down  atomic.Bool
	jwks  atomic.Int64
	disco atomic.Int64
}

type signingKey struct {
	kid    string
	signer crypto.Signer
}

// New starts a stand-in, closed when the test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := &Server{tenant: opts.TenantID, now: opts.Now}
	if s.tenant == "" {
		s.tenant = NewGUID()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	s.v1Issuer = opts.V1Issuer
	if s.v1Issuer == "" {
		s.v1Issuer = "https://sts.windows.net/" + s.tenant + "/"
	}
	s.v2Issuer = opts.V2Issuer
	if s.v2Issuer == "" {
		s.v2Issuer = s.URL + "/" + s.tenant + "/v2.0"
	}
	s.Rotate()
	return s
}

// NewGUID returns a random lower-case GUID (a tenant or object id).
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// TenantID is the tenant's GUID.
func (s *Server) TenantID() string { return s.tenant }

// V1URL is the v1 discovery location (Config.Issuers), like https://login.microsoftonline.com/{tid}.
func (s *Server) V1URL() string { return s.URL + "/" + s.tenant }

// V2URL is the v2 discovery location, like https://login.microsoftonline.com/{tid}/v2.0.
func (s *Server) V2URL() string { return s.URL + "/" + s.tenant + "/v2.0" }

// V1Issuer is the v1 document's "issuer" (Entra: https://sts.windows.net/{tid}/).
func (s *Server) V1Issuer() string { return s.v1Issuer }

// V2Issuer is the v2 document's "issuer".
func (s *Server) V2Issuer() string { return s.v2Issuer }

// SetDown makes every path answer 503 (true) or serve again (false).
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// JWKSFetches counts successful key set responses; DiscoveryFetches counts discovery documents served.
func (s *Server) JWKSFetches() int64 { return s.jwks.Load() }

// DiscoveryFetches counts discovery documents served.
func (s *Server) DiscoveryFetches() int64 { return s.disco.Load() }

// Rotate replaces the published keys with a new RSA and a new EC key (new kids) and signs with them from now
// on: tokens signed with the old keys stop verifying once a verifier refetches.
func (s *Server) Rotate() {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.rsa = signingKey{kid: fmt.Sprintf("rsa-%d-%s", s.gen, NewGUID()[:8]), signer: rk}
	s.ec = signingKey{kid: fmt.Sprintf("ec-%d-%s", s.gen, NewGUID()[:8]), signer: ek}
	s.keys = []signingKey{s.rsa, s.ec}
}

// KID returns the kid of the current signing key for alg ("RS256" or "ES256").
func (s *Server) KID(alg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if alg == "ES256" {
		return s.ec.kid
	}
	return s.rsa.kid
}

// PublicKey returns the current public key for alg ("RS256" or "ES256"), e.g. to forge HS256 with its bytes.
func (s *Server) PublicKey(alg string) crypto.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	if alg == "ES256" {
		return s.ec.signer.Public()
	}
	return s.rsa.signer.Public()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		http.Error(w, "issuer down (oidctest.SetDown)", http.StatusServiceUnavailable)
		return
	}
	base := "/" + s.tenant
	switch r.URL.Path {
	case base + "/.well-known/openid-configuration":
		s.disco.Add(1)
		writeJSON(w, s.document(s.V1URL(), s.v1Issuer, base+"/discovery/keys", "oauth2"))
	case base + "/v2.0/.well-known/openid-configuration":
		s.disco.Add(1)
		writeJSON(w, s.document(s.V1URL(), s.v2Issuer, base+"/discovery/v2.0/keys", "oauth2/v2.0"))
	case base + "/discovery/keys":
		s.jwks.Add(1)
		writeJSON(w, s.keySet(""))
	case base + "/discovery/v2.0/keys":
		s.jwks.Add(1)
		// v2 keys carry the issuer they may be used with (access-tokens.md, "Validate the issuer").
		writeJSON(w, s.keySet(s.v2Issuer))
	default:
		http.NotFound(w, r)
	}
}

// document is the part of Entra's OpenID configuration that matters here, with the same member names.
func (s *Server) document(authority, issuer, jwksPath, oauthPath string) map[string]any {
	return map[string]any{
		"issuer":                                issuer,
		"jwks_uri":                              s.URL + jwksPath,
		"authorization_endpoint":                authority + "/" + oauthPath + "/authorize",
		"token_endpoint":                        authority + "/" + oauthPath + "/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "token id_token", "token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
	}
}

func (s *Server) keySet(issuer string) map[string]any {
	s.mu.Lock()
	keys := append([]signingKey(nil), s.keys...)
	s.mu.Unlock()
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, publicJWK(k, issuer))
	}
	return map[string]any{"keys": out}
}

// publicJWK is a key as Entra publishes it: kty, use "sig", kid, x5t equal to kid, no alg.
func publicJWK(k signingKey, issuer string) map[string]any {
	jwk, err := jwkset.NewJWKFromKey(k.signer.Public(), jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: k.kid, USE: jwkset.UseSig},
	})
	if err != nil {
		panic(err)
	}
	raw, err := json.Marshal(jwk.Marshal())
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		panic(err)
	}
	m["x5t"] = k.kid
	if issuer != "" {
		m["issuer"] = issuer
	}
	return m
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// TokenOptions shape a token; the zero value is a valid v1 RS256 app-only token for audience "api://groupgate".
type TokenOptions struct {
	Version  string // "1.0" (default) or "2.0"
	Alg      string // "RS256" (default) or "ES256"
	Audience string // "aud"; "": "api://groupgate"
	Issuer   string // "iss"; "": the version's document issuer
	TenantID string // "tid"; "": the server's tenant
	ObjectID string // "oid" (and "sub"); "": a random GUID
	AppID    string // "appid" (v1) or "azp" (v2); "": a random GUID
	Roles    []string
	// IssuedAt, NotBefore and Expiry default to now, now and now + 1 h.
	IssuedAt, NotBefore, Expiry time.Time
	// KID overrides the header's kid (and x5t); Key signs instead of the server's key for Alg (a key outside the
	// set).
	KID string
	Key crypto.Signer
	// Claims are set last; a nil value removes the claim.
	Claims map[string]any
}

// DefaultAudience is the audience of tokens whose TokenOptions.Audience is empty.
const DefaultAudience = "api://groupgate"

// Token mints a signed access token.
func (s *Server) Token(o TokenOptions) string {
	now := s.now()
	if o.Version == "" {
		o.Version = "1.0"
	}
	if o.Alg == "" {
		o.Alg = "RS256"
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.Issuer == "" {
		o.Issuer = s.v1Issuer
		if o.Version == "2.0" {
			o.Issuer = s.v2Issuer
		}
	}
	if o.TenantID == "" {
		o.TenantID = s.tenant
	}
	if o.ObjectID == "" {
		o.ObjectID = NewGUID()
	}
	if o.AppID == "" {
		o.AppID = NewGUID()
	}
	if o.IssuedAt.IsZero() {
		o.IssuedAt = now
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = now
	}
	if o.Expiry.IsZero() {
		o.Expiry = now.Add(time.Hour)
	}
	claims := jwt.MapClaims{
		"aud":   o.Audience,
		"iss":   o.Issuer,
		"iat":   o.IssuedAt.Unix(),
		"nbf":   o.NotBefore.Unix(),
		"exp":   o.Expiry.Unix(),
		"ver":   o.Version,
		"tid":   o.TenantID,
		"oid":   o.ObjectID,
		"sub":   o.ObjectID, // for an app-only token Entra's sub is the service principal's object id too
		"idtyp": "app",
		"uti":   strings.ReplaceAll(NewGUID(), "-", "")[:22],
	}
	if o.Version == "2.0" {
		claims["azp"] = o.AppID
		claims["azpacr"] = "2"
	} else {
		claims["appid"] = o.AppID
		claims["appidacr"] = "2"
	}
	if o.Roles != nil {
		claims["roles"] = o.Roles
	}
	maps.Copy(claims, o.Claims)
	for k, v := range o.Claims {
		if v == nil {
			delete(claims, k)
		}
	}

	s.mu.Lock()
	sk := s.rsa
	method := jwt.SigningMethod(jwt.SigningMethodRS256)
	if o.Alg == "ES256" {
		sk = s.ec
		method = jwt.SigningMethodES256
	}
	s.mu.Unlock()
	kid, key := sk.kid, sk.signer
	if o.KID != "" {
		kid = o.KID
	}
	if o.Key != nil {
		key = o.Key
	}
	t := jwt.NewWithClaims(method, claims)
	t.Header["kid"] = kid
	if o.Version != "2.0" {
		t.Header["x5t"] = kid // v1 tokens only
	}
	signed, err := t.SignedString(key)
	if err != nil {
		panic(err)
	}
	return signed
}
