package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/groupgate/groupgate/internal/oidc/oidctest"
)

// clock is the injected Now shared by a verifier and its stand-in.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_780_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	if cfg.Audiences == nil {
		cfg.Audiences = []string{oidctest.DefaultAudience}
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	v, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// checkReason asserts err is an *InvalidTokenError with reason want and that it echoes nothing of the token.
func checkReason(t *testing.T, err error, want, token string) {
	t.Helper()
	var ite *InvalidTokenError
	if !errors.As(err, &ite) {
		t.Fatalf("err = %v, want an InvalidTokenError %q", err, want)
	}
	if ite.Reason != want {
		t.Fatalf("reason = %q, want %q", ite.Reason, want)
	}
	checkNoEcho(t, err, token)
}

func checkNoEcho(t *testing.T, err error, token string) {
	t.Helper()
	for seg := range strings.SplitSeq(token, ".") {
		if len(seg) >= 8 && strings.Contains(err.Error(), seg) {
			t.Fatalf("error %q echoes part of the token", err)
		}
	}
}

func b64(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

func segments(token string) (header, payload map[string]any, parts []string) {
	parts = strings.Split(token, ".")
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(h, &header)
	_ = json.Unmarshal(p, &payload)
	return header, payload, parts
}

func TestVerify(t *testing.T) {
	clk := newClock()
	iss := oidctest.New(t, oidctest.Options{Now: clk.Now})
	v := newVerifier(t, Config{Issuers: []string{iss.V1URL(), iss.V2URL()}, Now: clk.Now})
	now := clk.Now()

	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := iss.Token(oidctest.TokenOptions{})
	_, validClaims, validParts := segments(valid)

	algNone := b64(map[string]any{"typ": "JWT", "alg": "none", "kid": iss.KID("RS256")}) + "." + validParts[1] + "."

	der, err := x509.MarshalPKIXPublicKey(iss.PublicKey("RS256"))
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hsInput := b64(map[string]any{"typ": "JWT", "alg": "HS256", "kid": iss.KID("RS256")}) + "." + validParts[1]
	hsSig, err := jwt.SigningMethodHS256.Sign(hsInput, pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(hsSig)

	tamperedClaims := map[string]any{}
	for k, v := range validClaims {
		tamperedClaims[k] = v
	}
	tamperedClaims["roles"] = []string{"GroupGate.Write"}
	tampered := validParts[0] + "." + b64(tamperedClaims) + "." + validParts[2]

	es256AsRS256 := func() string {
		tok := iss.Token(oidctest.TokenOptions{Alg: "ES256"})
		_, _, p := segments(tok)
		return b64(map[string]any{"typ": "JWT", "alg": "RS256", "kid": iss.KID("ES256")}) + "." + p[1] + "." + p[2]
	}()

	tests := []struct {
		name   string
		token  string
		reason string // "" = accepted
		check  func(*testing.T, *Claims)
	}{
		{name: "v1 RS256", token: iss.Token(oidctest.TokenOptions{AppID: "app-v1", ObjectID: "oid-1", Roles: []string{"GroupGate.Check"}}),
			check: func(t *testing.T, c *Claims) {
				if c.Version != "1.0" || c.AppID != "app-v1" || c.ObjectID != "oid-1" || c.Issuer != iss.V1Issuer() ||
					c.TenantID != iss.TenantID() || c.IDType != "app" || !slices.Equal(c.Roles, []string{"GroupGate.Check"}) ||
					!c.Expiry.Equal(now.Add(time.Hour)) {
					t.Fatalf("claims = %+v", c)
				}
			}},
		{name: "v1 ES256", token: iss.Token(oidctest.TokenOptions{Alg: "ES256"})},
		{name: "v2 RS256", token: iss.Token(oidctest.TokenOptions{Version: "2.0", AppID: "app-v2"}),
			check: func(t *testing.T, c *Claims) {
				if c.Version != "2.0" || c.AppID != "app-v2" || c.Issuer != iss.V2Issuer() {
					t.Fatalf("claims = %+v", c)
				}
			}},
		{name: "v2 ES256", token: iss.Token(oidctest.TokenOptions{Version: "2.0", Alg: "ES256"})},
		{name: "expired within leeway", token: iss.Token(oidctest.TokenOptions{Expiry: now.Add(-4 * time.Minute)})},
		{name: "nbf within leeway", token: iss.Token(oidctest.TokenOptions{NotBefore: now.Add(4 * time.Minute)})},
		{name: "aud as an array", token: iss.Token(oidctest.TokenOptions{Claims: map[string]any{"aud": []string{"x", oidctest.DefaultAudience}}})},

		{name: "alg none", token: algNone, reason: "algorithm"},
		{name: "HS256 keyed with the RSA public key", token: hs256, reason: "algorithm"},
		{name: "RS512", token: signOutsideSet(t, jwt.SigningMethodRS512, iss.KID("RS256"), validClaims), reason: "algorithm"},
		{name: "key outside the set under a known kid (RSA)", token: iss.Token(oidctest.TokenOptions{Key: otherRSA}), reason: "signature"},
		{name: "key outside the set under a known kid (EC)", token: iss.Token(oidctest.TokenOptions{Alg: "ES256", Key: otherEC}), reason: "signature"},
		{name: "tampered payload", token: tampered, reason: "signature"},
		{name: "EC signature under an RS256 header", token: es256AsRS256, reason: "signature"},
		{name: "wrong aud", token: iss.Token(oidctest.TokenOptions{Audience: "api://someone-else"}), reason: "audience"},
		{name: "no aud", token: iss.Token(oidctest.TokenOptions{Claims: map[string]any{"aud": nil}}), reason: "missing claim"},
		{name: "wrong iss", token: iss.Token(oidctest.TokenOptions{Issuer: "https://sts.windows.net/" + oidctest.NewGUID() + "/"}), reason: "issuer"},
		{name: "v2 issuer with a trailing slash", token: iss.Token(oidctest.TokenOptions{Version: "2.0", Issuer: iss.V2Issuer() + "/"}), reason: "issuer"},
		{name: "wrong tid", token: iss.Token(oidctest.TokenOptions{TenantID: oidctest.NewGUID()}), reason: "tenant"},
		{name: "expired beyond leeway", token: iss.Token(oidctest.TokenOptions{Expiry: now.Add(-6 * time.Minute)}), reason: "expired"},
		{name: "not yet valid", token: iss.Token(oidctest.TokenOptions{NotBefore: now.Add(6 * time.Minute)}), reason: "not yet valid"},
		{name: "no exp", token: iss.Token(oidctest.TokenOptions{Claims: map[string]any{"exp": nil}}), reason: "missing claim"},
		{name: "no kid", token: signOutsideSet(t, jwt.SigningMethodRS256, "", validClaims), reason: "malformed"},
		{name: "not a JWT", token: "static-token-value", reason: "malformed"},
		{name: "garbage segments", token: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", reason: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.token)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v, want accepted", err)
				}
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			if c != nil {
				t.Fatalf("claims %+v returned with a refusal", c)
			}
			checkReason(t, err, tc.reason, tc.token)
		})
	}
}

// signOutsideSet signs claims with a fresh RSA key, under kid unless it is empty: for tokens the stand-in does not
// mint (other algorithms, no kid), which Verify must refuse before it looks at any signature.
func signOutsideSet(t *testing.T, m jwt.SigningMethod, kid string, claims map[string]any) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(m, jwt.MapClaims(claims))
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A token signed with issuer A's key but claiming issuer B must fail even though both issuers are trusted: the
// "iss" selects B, and only B's keys may verify it.
func TestIssuerKeysAreNotShared(t *testing.T) {
	clk := newClock()
	a := oidctest.New(t, oidctest.Options{Now: clk.Now})
	b := oidctest.New(t, oidctest.Options{Now: clk.Now})
	v := newVerifier(t, Config{Issuers: []string{a.V2URL(), b.V2URL()}, Now: clk.Now})

	for _, tok := range []string{a.Token(oidctest.TokenOptions{Version: "2.0"}), b.Token(oidctest.TokenOptions{Version: "2.0"})} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("own issuer's token: %v", err)
		}
	}
	for _, alg := range []string{"RS256", "ES256"} {
		forged := a.Token(oidctest.TokenOptions{Version: "2.0", Alg: alg, Issuer: b.V2Issuer(), TenantID: b.TenantID()})
		_, err := v.Verify(context.Background(), forged)
		checkReason(t, err, "signature", forged)
	}
}

func TestRotationAndUnknownKIDRateLimit(t *testing.T) {
	clk := newClock()
	iss := oidctest.New(t, oidctest.Options{Now: clk.Now})
	v := newVerifier(t, Config{Issuers: []string{iss.V2URL()}, Now: clk.Now})
	ctx := context.Background()

	old := iss.Token(oidctest.TokenOptions{Version: "2.0"})
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	v.cache.Wait()

	iss.Rotate()
	clk.Advance(11 * time.Second)
	before := iss.JWKSFetches()
	rotated := iss.Token(oidctest.TokenOptions{Version: "2.0"})
	if _, err := v.Verify(ctx, rotated); err != nil {
		t.Fatalf("new kid after rotation, no restart: %v", err)
	}
	if got := iss.JWKSFetches() - before; got != 1 {
		t.Fatalf("key set fetched %d times for the new kid, want 1", got)
	}
	// The old key left the set: its token, even cached, stops verifying.
	_, err := v.Verify(ctx, old)
	checkReason(t, err, "signature", old)

	// Many unknown kids: at most one fetch per 10 s of the injected clock. Each round starts 10 s after the
	// previous fetch and sends 20 tokens over 5 s: the first fetches, the other 19 do not.
	for round := range 3 {
		clk.Advance(10 * time.Second)
		before := iss.JWKSFetches()
		for i := range 20 {
			tok := iss.Token(oidctest.TokenOptions{Version: "2.0", KID: fmt.Sprintf("unknown-%d-%d", round, i)})
			_, err := v.Verify(ctx, tok)
			checkReason(t, err, "signature", tok)
			clk.Advance(time.Second / 4)
		}
		if got := iss.JWKSFetches() - before; got != 1 {
			t.Fatalf("round %d: 20 unknown kids within 5 s fetched the key set %d times, want 1", round, got)
		}
	}
}

func TestIssuerDown(t *testing.T) {
	clk := newClock()
	iss := oidctest.New(t, oidctest.Options{Now: clk.Now})
	v := newVerifier(t, Config{Issuers: []string{iss.V1URL()}, Now: clk.Now, RefreshInterval: 20 * time.Millisecond, CacheEntries: -1})
	ctx := context.Background()
	if _, err := v.Verify(ctx, iss.Token(oidctest.TokenOptions{})); err != nil {
		t.Fatalf("while up: %v", err)
	}

	iss.SetDown(true)
	time.Sleep(100 * time.Millisecond) // several background refreshes fail
	if _, err := v.Verify(ctx, iss.Token(oidctest.TokenOptions{ObjectID: "after-down"})); err != nil {
		t.Fatalf("held keys must keep working while the issuer is down: %v", err)
	}
	// An unknown kid while down may be a rotation we cannot see: retryable, not a forgery verdict.
	clk.Advance(time.Minute)
	tok := iss.Token(oidctest.TokenOptions{KID: "rotated-while-down"})
	_, err := v.Verify(ctx, tok)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unknown kid while down: %v, want ErrUnavailable", err)
	}
	checkNoEcho(t, err, tok)
}

func TestIssuerNeverReached(t *testing.T) {
	clk := newClock()
	iss := oidctest.New(t, oidctest.Options{Now: clk.Now})
	iss.SetDown(true)

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/" + oidctest.NewGUID()
	l.Close()

	v := newVerifier(t, Config{Issuers: []string{iss.V2URL(), closed}, Now: clk.Now})
	ctx := context.Background()
	tok := iss.Token(oidctest.TokenOptions{Version: "2.0"})
	_, err = v.Verify(ctx, tok)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("issuer never reached: %v, want ErrUnavailable", err)
	}
	var ite *InvalidTokenError
	if errors.As(err, &ite) {
		t.Fatalf("unavailable must not also be invalid: %v", err)
	}
	checkNoEcho(t, err, tok)

	// It comes up: the next token after the rate-limit window fetches and verifies, without a restart.
	iss.SetDown(false)
	clk.Advance(10 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("after the issuer came up: %v", err)
	}
	// The closed port is still pending, but an iss that matches none of the reached issuers is unavailable
	// only while some issuer could still be its own.
	other := iss.Token(oidctest.TokenOptions{Version: "2.0", Issuer: "https://elsewhere.example/v2.0"})
	if _, err := v.Verify(ctx, other); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unknown iss with an issuer pending: %v, want ErrUnavailable", err)
	}
}

func TestCacheRechecksExpiry(t *testing.T) {
	clk := newClock()
	iss := oidctest.New(t, oidctest.Options{Now: clk.Now})
	v := newVerifier(t, Config{Issuers: []string{iss.V1URL()}, Now: clk.Now})
	tok := iss.Token(oidctest.TokenOptions{Expiry: clk.Now().Add(time.Minute)})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	v.cache.Wait()
	sum := sha256.Sum256([]byte(tok))
	if e, ok := v.cache.Get(binary.LittleEndian.Uint64(sum[:8])); !ok || e.sum != sum {
		t.Fatal("verified token not cached")
	}
	clk.Advance(time.Minute + Leeway + time.Second)
	_, err := v.Verify(context.Background(), tok)
	checkReason(t, err, "expired", tok)
}

func TestConfigValidate(t *testing.T) {
	aud := []string{"api://groupgate"}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"https", Config{Issuers: []string{"https://login.microsoftonline.com/" + oidctest.NewGUID() + "/v2.0"}, Audiences: aud}, ""},
		{"http on 127.0.0.1", Config{Issuers: []string{"http://127.0.0.1:8080/t"}, Audiences: aud}, ""},
		{"http on 127.1.2.3", Config{Issuers: []string{"http://127.1.2.3/t"}, Audiences: aud}, ""},
		{"http on ::1", Config{Issuers: []string{"http://[::1]:8080/t"}, Audiences: aud}, ""},
		{"http on localhost", Config{Issuers: []string{"http://localhost/t"}, Audiences: aud}, ""},
		{"no issuer, no audience", Config{}, ""},
		{"http off loopback", Config{Issuers: []string{"http://login.example.com/t"}, Audiences: aud}, "http:// is allowed only on loopback"},
		{"http on a private address", Config{Issuers: []string{"http://10.0.0.1/t"}, Audiences: aud}, "loopback"},
		{"issuer without audience", Config{Issuers: []string{"https://login.microsoftonline.com/x/v2.0"}}, "needs at least one audience"},
		{"not a URL", Config{Issuers: []string{"login.microsoftonline.com/x"}, Audiences: aud}, "not an absolute URL"},
		{"other scheme", Config{Issuers: []string{"ftp://example.com/x"}, Audiences: aud}, "use https"},
		{"query", Config{Issuers: []string{"https://example.com/x?appid=1"}, Audiences: aud}, "query"},
		{"empty audience", Config{Issuers: []string{"https://example.com/x"}, Audiences: []string{""}}, "empty audience"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v, want valid", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
			if _, nerr := New(context.Background(), tc.cfg); nerr == nil {
				t.Fatal("New accepted a config Validate refuses")
			}
		})
	}
}

func TestLooksLikeJWT(t *testing.T) {
	tests := map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln": true,
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.":      true, // alg none: Verify names it
		"a.b.c":                                     true,
		"":                                          false,
		"static-token":                              false,
		"a.b":                                       false,
		"a.b.c.d":                                   false,
		".b.c":                                      false,
		"a..c":                                      false,
		"a.b.c=":                                    false, // padding is not base64url in JWS
		"a+b.c.d":                                   false,
		"writer:alice:s3cret":                       false,
		"Bearer a.b.c":                              false,
		"eyJ.eyJ.sig with space":                    false,
	}
	for in, want := range tests {
		if got := LooksLikeJWT(in); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestTenantOf(t *testing.T) {
	tid := "8eaef023-2b34-4da1-9baa-8bc8c9d6a490"
	tests := map[string]string{
		"https://login.microsoftonline.com/" + tid:                            tid,
		"https://login.microsoftonline.com/" + strings.ToUpper(tid) + "/v2.0": tid,
		"https://login.microsoftonline.com/common/v2.0":                       "",
		"https://login.microsoftonline.com/contoso.onmicrosoft.com":           "",
		"http://127.0.0.1:1234/" + tid + "/v2.0":                              tid,
		"https://issuer.example/realms/x/" + tid:                              tid,
	}
	for in, want := range tests {
		u, err := parseIssuerURL(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := tenantOf(u); got != want {
			t.Errorf("tenantOf(%s) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	iss := oidctest.New(b, oidctest.Options{})
	v := newVerifier(b, Config{Issuers: []string{iss.V2URL()}})
	tok := iss.Token(oidctest.TokenOptions{Version: "2.0", Roles: []string{"GroupGate.Check"}})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	v.cache.Wait()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyUncached(b *testing.B) {
	iss := oidctest.New(b, oidctest.Options{})
	v := newVerifier(b, Config{Issuers: []string{iss.V2URL()}, CacheEntries: -1})
	tok := iss.Token(oidctest.TokenOptions{Version: "2.0", Roles: []string{"GroupGate.Check"}})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// Verifications race with background refreshes, rotations and token-driven fetches (run with -race).
func TestConcurrentVerifyDuringRotation(t *testing.T) {
	iss := oidctest.New(t, oidctest.Options{})
	v := newVerifier(t, Config{Issuers: []string{iss.V1URL(), iss.V2URL()}, RefreshInterval: 5 * time.Millisecond,
		MinUnknownKIDRefetch: time.Millisecond})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Go(func() {
			for i := range 30 {
				tok := iss.Token(oidctest.TokenOptions{Version: []string{"1.0", "2.0"}[(g+i)%2], Alg: []string{"RS256", "ES256"}[i%2]})
				for attempt := 0; ; attempt++ {
					_, err := v.Verify(ctx, tok)
					if err == nil {
						break
					}
					if attempt == 200 {
						errs <- fmt.Errorf("still refused after 200 fresh tokens: %w", err)
						return
					}
					// Minted just before a rotation: the key left the set. Anything else is a bug.
					var ite *InvalidTokenError
					if !errors.As(err, &ite) || ite.Reason != "signature" {
						errs <- err
						return
					}
					time.Sleep(time.Millisecond)
					tok = iss.Token(oidctest.TokenOptions{})
				}
			}
		})
	}
	for range 3 {
		iss.Rotate()
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Verify: %v", err)
	}
}
