package gateway

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/groupgate/groupgate/server/authzen"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// BrowserRules keep web pages that the operator merely opens from using the HTTP listener (SPEC §13): a page can
// make the browser send requests to 127.0.0.1, and a page whose name its owner points at 127.0.0.1 after it has
// loaded (DNS rebinding) can even read the answers. The rules are always on; these fields only widen them.
type BrowserRules struct {
	// AllowedOrigins are other origins (scheme://host[:port], as a browser sends them in Origin) whose pages may
	// call the API: they get CORS answers, preflights included. The listener's own origin is always allowed.
	AllowedOrigins []string
	// AllowedHosts are names, besides localhost and loopback addresses, that a request's Host may carry on a
	// listener where the Host is checked (a name that resolves to this machine through a proxy, say).
	AllowedHosts []string
	// CheckHost refuses a request whose Host is not localhost, a loopback address or one of AllowedHosts. Start
	// sets it for a loopback listener and for any TCP listener of a server without tokens, where a rebinding
	// page's requests arrive with the page's own name; it also holds on any listener when AllowedHosts names hosts.
	CheckHost bool
}

// browserGuard applies BrowserRules in front of every path. A refused request is answered before anything reads
// its body or reaches the server, so it can neither write nor read.
type browserGuard struct {
	next    http.Handler
	rules   BrowserRules
	origins map[string]bool
	hosts   map[string]bool
}

func newBrowserGuard(next http.Handler, rules BrowserRules) *browserGuard {
	g := &browserGuard{next: next, rules: rules, origins: map[string]bool{}, hosts: map[string]bool{}}
	for _, o := range rules.AllowedOrigins {
		g.origins[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	for _, h := range rules.AllowedHosts {
		g.hosts[strings.ToLower(h)] = true
	}
	if len(g.hosts) > 0 {
		g.rules.CheckHost = true
	}
	return g
}

// apiPath says whether a path is the API (as opposed to the explorer's page and assets, /healthz and
// /openapi.json, which a GET reads and which hold nothing a page could not get from the project's own files).
// The AuthZEN routes (POST /access/v1/…, /tenants/{tenant_id}/access/v1/…) are API too; their discovery document
// (GET /.well-known/authzen-configuration…) is not.
func apiPath(path string) bool { return strings.HasPrefix(path, "/v1/") || authzen.IsAPIPath(path) }

func (g *browserGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := r.Header.Get("X-Request-ID"); id != "" && authzen.IsAPIPath(r.URL.Path) {
		// AuthZEN: the PEP's request identifier comes back on every answer, refusals included.
		w.Header().Set("X-Request-ID", id)
	}
	if g.rules.CheckHost && !g.hostAllowed(r.Host) {
		// Every path, the explorer's included: a rebinding page could read any of them.
		refuse(w, r, http.StatusForbidden, codes.PermissionDenied, "Host "+quoteHeader(r.Host)+
			" is not this server's name: use localhost or a loopback address, or list the name with --http-allowed-hosts (defends against DNS rebinding)")
		return
	}
	origin := r.Header.Get("Origin")
	crossSite := r.Header.Get("Sec-Fetch-Site") == "cross-site"
	originAllowed := origin != "" && g.origins[strings.ToLower(origin)]
	foreignOrigin := origin != "" && !originAllowed && !g.ownOrigin(r, origin)
	if originAllowed {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "X-Request-Id, Www-Authenticate")
	} else if origin != "" {
		w.Header().Add("Vary", "Origin")
	}
	api := apiPath(r.URL.Path)
	// A state-changing method anywhere, and every call to the API: a cross-site request is refused unless it comes
	// from an origin the operator listed. GETs of the page and its assets stay open to links from elsewhere.
	if api || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		if (crossSite && !originAllowed) || foreignOrigin {
			refuse(w, r, http.StatusForbidden, codes.PermissionDenied, "cross-site request refused: origin "+
				quoteHeader(origin)+" is not this server's own; list it with --http-allowed-origins to let its pages call the API")
			return
		}
	}
	if !api {
		g.next.ServeHTTP(w, r)
		return
	}
	if r.Method == http.MethodOptions && originAllowed && r.Header.Get("Access-Control-Request-Method") != "" {
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		msg := "method not allowed: the API is POST /v1/{rpc}"
		if authzen.IsAPIPath(r.URL.Path) {
			msg = "method not allowed: AuthZEN routes are POST (discovery is GET " + authzen.WellKnown + ")"
		}
		refuse(w, r, http.StatusMethodNotAllowed, codes.Unimplemented, msg)
		return
	}
	if !jsonContent(r.Header.Get("Content-Type")) {
		// text/plain, forms and multipart are what a page can send without a CORS preflight: refusing every type
		// but JSON means no page can make the browser call the API unasked.
		code := http.StatusUnsupportedMediaType
		if authzen.IsAPIPath(r.URL.Path) {
			// SPEC §17: AuthZEN's certification expects a 400 for a request that is not application/json.
			code = http.StatusBadRequest
		}
		refuse(w, r, code, codes.InvalidArgument, "Content-Type "+
			quoteHeader(r.Header.Get("Content-Type"))+" refused: send the request as Content-Type: application/json (curl --json)")
		return
	}
	g.next.ServeHTTP(w, r)
}

// jsonContent accepts application/json with or without parameters (charset=utf-8 from PowerShell), and
// application/x-ndjson, the form of a client stream's several messages (ImportSnapshot's parts). Neither is a
// type a page may send cross-site without a preflight.
func jsonContent(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mediaType == "application/json" || mediaType == "application/x-ndjson"
}

// hostAllowed: localhost or a loopback address, with or without a port, or a listed name.
func (g *browserGuard) hostAllowed(hostport string) bool {
	host := strings.ToLower(hostport)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" || g.hosts[host] || g.hosts[strings.ToLower(hostport)] {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ownOrigin: the origin of a page the listener served itself, which is where the explorer's calls come from.
// On a listener whose Host is checked, the Host is a trusted name by now; elsewhere a rebinding page could make
// its origin look like the Host, which is why a listener off loopback needs TLS or tokens (serve's rule).
func (g *browserGuard) ownOrigin(r *http.Request, origin string) bool {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return strings.EqualFold(origin, scheme+r.Host)
}

func refuse(w http.ResponseWriter, r *http.Request, httpStatus int, code codes.Code, msg string) {
	// The connection is not reused for a body nobody read (net/http closes it after a small unread body anyway).
	w.Header().Set("Connection", "close")
	writeStatus(w, r, httpStatus, status.New(code, msg))
}

// quoteHeader quotes a header's value for a message, cut short: it comes from the client.
func quoteHeader(v string) string {
	if len(v) > 100 {
		v = v[:100] + "…"
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, v) + `"`
}

// Validate refuses origins that are not scheme://host[:port] (a browser's Origin never has a path, so such an
// entry would never match and its page would be refused without saying why) and empty host names.
func (r BrowserRules) Validate() error {
	for _, o := range r.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimRight(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
			return fmt.Errorf("--http-allowed-origins %q: want scheme://host[:port], as a browser sends it in Origin", o)
		}
	}
	for _, h := range r.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			return fmt.Errorf("--http-allowed-hosts %q: want a host name, with or without :port", h)
		}
	}
	return nil
}
