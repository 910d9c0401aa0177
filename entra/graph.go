// Package entra mirrors a Microsoft Entra tenant from Microsoft Graph into groupgate's model (SPEC §10): a Graph
// HTTP client with paging, throttling and resync handling, readers for the objects groupgate needs, a mirror
// that turns each round of Graph deltas into the smallest list of groupgate Changes, and the sync loop that
// writes a snapshot file or a running server. It knows nothing of server/ or policy/.
package entra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TokenSource hands out bearer tokens for Microsoft Graph.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenSource that always returns the same token (--token-env).
type StaticToken string

func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// Client reads Microsoft Graph. A sync makes one request at a time, so a Client is not meant for concurrent use
// (Requests is a plain counter).
type Client struct {
	// Endpoint is Graph's base URL, e.g. https://graph.microsoft.com; requests go to {Endpoint}/v1.0/… and
	// {Endpoint}/beta/….
	Endpoint string
	Tokens   TokenSource
	HTTP     *http.Client
	Logger   *slog.Logger
	// MaxAttempts bounds how often one request is tried (429, 503, 504, network errors); 0 means 6.
	MaxAttempts int
	// MaxRetryAfter caps a server-suggested wait; 0 means 2 minutes.
	MaxRetryAfter time.Duration
	// Backoff is the first wait when Graph suggests none (doubled per attempt, full jitter, capped at 30 s); 0
	// means 1 s.
	Backoff time.Duration
	// Sleep waits (tests replace it); nil waits on a timer.
	Sleep func(ctx context.Context, d time.Duration) error

	// Requests counts the HTTP requests made (attempts included), for progress lines and tests.
	Requests int
}

// Error is a failed Graph request. URL never carries a credential (tokens travel in a header) and its delta
// and skip tokens are elided.
type Error struct {
	URL    string
	Status int
	// Code and Message are Graph's error.code and error.message (concepts/errors.md), when the body had them.
	Code    string
	Message string
	// Needs names the application permissions the request needs, for 401 and 403.
	Needs string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s: HTTP %d", e.URL, e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		if named := permissionNames.FindAllString(e.Message, -1); len(named) > 0 {
			fmt.Fprintf(&b, " (Graph names the missing permission: %s)", strings.Join(named, ", "))
		} else if e.Needs != "" {
			fmt.Fprintf(&b, " (this request needs the Graph application permission %s)", e.Needs)
		}
		if e.Status == http.StatusUnauthorized {
			b.WriteString("; the token was refused: check the credential and that it is for https://graph.microsoft.com")
		}
	}
	return b.String()
}

// permissionNames finds Graph permission names such as RoleManagement.Read.Directory in an error message.
var permissionNames = regexp.MustCompile(`\b[A-Z][A-Za-z]+(?:\.[A-Z][A-Za-z]+)*\.(?:Read|ReadWrite|ReadBasic)(?:\.[A-Za-z]+)+\b`)

// ErrResync reports that Graph no longer knows a delta link (410 Gone, syncStateNotFound, resyncRequired):
// the collection must be read again from the start.
var ErrResync = errors.New("delta link expired: full resync required")

// ResyncError is ErrResync for one URL.
type ResyncError struct{ URL, Code string }

func (e *ResyncError) Error() string {
	return fmt.Sprintf("GET %s: %s (%s)", e.URL, ErrResync, e.Code)
}
func (e *ResyncError) Is(target error) bool { return target == ErrResync }

// graphError is Graph's error body (concepts/errors.md): {"error": {"code": …, "message": …, "innerError": …}}.
type graphError struct {
	Error struct {
		Code       string      `json:"code"`
		Message    string      `json:"message"`
		InnerError *innerError `json:"innerError"`
	} `json:"error"`
}

// innerError "might recursively contain more innererror objects with additional, more specific error codes"
// (concepts/errors.md, "Code property"); encoding/json matches "innererror" and "innerError" alike.
type innerError struct {
	Code       string      `json:"code"`
	InnerError *innerError `json:"innerError"`
}

// hasCode reports whether the body's code or any innererror's, at any depth, is one of codes: apps "must loop
// over the innererror objects, looking for the error codes" they expect (concepts/errors.md, "Code property").
func (ge *graphError) hasCode(codes ...string) bool {
	if slices.Contains(codes, ge.Error.Code) {
		return true
	}
	for in, depth := ge.Error.InnerError, 0; in != nil && depth < 32; in, depth = in.InnerError, depth+1 {
		if slices.Contains(codes, in.Code) {
			return true
		}
	}
	return false
}

// redact elides the values of state tokens: they are not credentials, but they are long and say nothing.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	q := u.Query()
	changed := false
	for k := range q {
		switch strings.ToLower(k) {
		case "$skiptoken", "$deltatoken", "access_token", "code":
			q.Set(k, "…")
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	s := u.String()
	s = strings.ReplaceAll(s, "%24", "$")
	return strings.ReplaceAll(s, "%E2%80%A6", "…")
}

// url joins a path such as "/v1.0/users/delta" to the endpoint.
func (c *Client) url(path string) string { return strings.TrimRight(c.Endpoint, "/") + path }

// checkLink refuses a nextLink or deltaLink that leaves the endpoint's host: the bearer token must never be sent
// anywhere else.
func (c *Client) checkLink(link string) error {
	base, err := url.Parse(c.Endpoint)
	if err != nil {
		return fmt.Errorf("graph endpoint %q: %w", c.Endpoint, err)
	}
	u, err := url.Parse(link)
	if err != nil {
		return fmt.Errorf("link from Graph does not parse: %w", err)
	}
	if !strings.EqualFold(u.Scheme, base.Scheme) || hostPort(u) != hostPort(base) {
		return fmt.Errorf("link %s leaves the Graph endpoint %s: refused (the token would go elsewhere)", redact(link), c.Endpoint)
	}
	return nil
}

// hostPort is a URL's host in lower case with its port, the scheme's default one when the URL names none: host
// names compare without regard to case and an explicit default port is the same host (RFC 3986, 3.2.2 and 6.2.3).
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Hostname()) + ":" + port
}

// get fetches one URL into v, retrying 429, 503 and 504 (and network failures) up to MaxAttempts. needs names the
// application permission the request needs, for 401/403 errors.
func (c *Client) get(ctx context.Context, rawURL, needs string, v any) error {
	if err := c.checkLink(rawURL); err != nil {
		return err
	}
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	var last error
	for attempt := 1; ; attempt++ {
		wait, err := c.try(ctx, rawURL, needs, v)
		if err == nil {
			return nil
		}
		if wait < 0 || attempt >= attempts {
			if wait >= 0 {
				return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return err
		}
		last = err
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		c.logger().InfoContext(ctx, "graph: retrying", "url", redact(rawURL), "after", wait.String(), "attempt", attempt, "error", last.Error())
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w (while waiting to retry: %v)", last, err)
		}
	}
}

// try makes one attempt. wait < 0: do not retry; 0: retry after a backoff; > 0: retry after that long.
func (c *Client) try(ctx context.Context, rawURL, needs string, v any) (time.Duration, error) {
	tok, err := c.Tokens.Token(ctx)
	if err != nil {
		return -1, fmt.Errorf("getting a Microsoft Graph token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return -1, fmt.Errorf("GET %s: %w", redact(rawURL), err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	c.Requests++
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		// *url.Error repeats the URL with its tokens; name it ourselves.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("GET %s: %w", redact(rawURL), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		dec := json.NewDecoder(resp.Body)
		if err := dec.Decode(v); err != nil {
			return -1, fmt.Errorf("GET %s: response does not parse: %w", redact(rawURL), err)
		}
		return 0, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ge graphError
	_ = json.Unmarshal(body, &ge)
	code := ge.Error.Code
	e := &Error{URL: redact(rawURL), Status: resp.StatusCode, Code: code, Message: ge.Error.Message}
	switch {
	case resp.StatusCode == http.StatusGone, ge.hasCode("syncStateNotFound", "resyncRequired"):
		// concepts/delta-query-overview.md, "Synchronization reset" and "Token duration".
		if code == "" {
			code = http.StatusText(resp.StatusCode)
		}
		return -1, &ResyncError{URL: redact(rawURL), Code: code}
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusServiceUnavailable,
		resp.StatusCode == http.StatusGatewayTimeout:
		// concepts/throttling.md: wait the Retry-After seconds, then retry; without one, back off. 504 "may
		// occur together with 503" (concepts/errors.md), and Microsoft's Graph SDK retry handlers retry it too.
		return c.retryAfter(resp.Header.Get("Retry-After")), e
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		e.Needs = needs
		return -1, e
	}
	return -1, e
}

func (c *Client) retryAfter(h string) time.Duration {
	limit := c.MaxRetryAfter
	if limit <= 0 {
		limit = 2 * time.Minute
	}
	// HTTP's delay-seconds are whole, but concepts/throttling.md's example is "Retry-After: 2.128": read a
	// fraction too, rounded up to the millisecond so that the retry never comes early.
	if s, err := strconv.ParseFloat(strings.TrimSpace(h), 64); err == nil && s >= 0 {
		if s >= limit.Seconds() {
			return limit
		}
		return max(time.Duration(math.Ceil(s*1000))*time.Millisecond, time.Millisecond)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(time.Until(t), time.Millisecond), limit)
	}
	return 0
}

// backoff is full jitter over an exponentially growing ceiling.
func (c *Client) backoff(attempt int) time.Duration {
	base := c.Backoff
	if base <= 0 {
		base = time.Second
	}
	ceiling := min(base<<min(attempt-1, 10), 30*time.Second)
	return time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// page is one page of a Graph collection (concepts/paging.md, concepts/delta-query-overview.md).
type page[T any] struct {
	Value     []T    `json:"value"`
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
}

// each follows @odata.nextLink from first until a page has none, calling fn for every item, and returns the
// @odata.deltaLink of the last page (empty for collections that are not delta queries).
func each[T any](ctx context.Context, c *Client, first, needs string, fn func(T) error) (string, error) {
	link := first
	for pages := 0; ; pages++ {
		var p page[T]
		if err := c.get(ctx, link, needs, &p); err != nil {
			return "", err
		}
		for _, item := range p.Value {
			if err := fn(item); err != nil {
				return "", fmt.Errorf("GET %s: %w", redact(link), err)
			}
		}
		if p.NextLink == "" {
			return p.DeltaLink, nil
		}
		if pages > 1_000_000 {
			return "", fmt.Errorf("GET %s: more than a million pages: giving up", redact(first))
		}
		link = p.NextLink
	}
}
