// Package web is the explorer (SPEC §12): a small single-page app for people, served on the HTTP listener at
// "/". It is plain HTML, CSS and JavaScript modules embedded in the binary — no framework, no bundler, no
// network access beyond the groupgate HTTP/JSON API it was loaded from (no CDN, no web fonts), so it works
// offline and the Go build needs nothing but Go. It holds no data and no secrets: the person's bearer token is
// kept in the browser's sessionStorage and sent as an Authorization header to /v1/… calls, which pass the same
// interceptor chain as gRPC.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Assets are the page's files (index.html, *.js, *.css).
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("web: embedded static directory missing: " + err.Error()) // a build defect, caught by tests
	}
	return sub
}

// Handler serves the explorer: index.html at "/", the modules and stylesheet beside it. Anything else is 404,
// so that a mistyped API path is not answered with the page. Only GET and HEAD are served.
func Handler() http.Handler {
	assets := Assets()
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if name == "index.html" && r.URL.Path != "/" {
			http.Redirect(w, r, "/", http.StatusMovedPermanently)
			return
		}
		if _, err := fs.Stat(assets, name); err != nil || strings.HasPrefix(name, ".") {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		// Scripts only from this origin, no inline code, no framing, no referrer leaking ids to other sites;
		// connect-src 'self' keeps the token from ever being sent anywhere but this server.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// The page is small and changes with the binary: always revalidate rather than run a stale module
		// against a newer API.
		h.Set("Cache-Control", "no-cache")
		if name == "index.html" {
			r = r.Clone(r.Context())
			r.URL.Path = "/"
		}
		files.ServeHTTP(w, r)
	})
}
