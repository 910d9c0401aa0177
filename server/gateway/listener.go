package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/groupgate/groupgate/internal/listen"
	"github.com/groupgate/groupgate/server"
)

// Server is the HTTP/JSON API serving one listener in front of a gRPC server (server/app builds it, through Start).
type Server struct {
	// Addr is the listener's address; URL is http://Addr or https://Addr, or for a unix socket its
	// unix:///path form (curl --unix-socket PATH http://localhost/...).
	Addr, URL string
	http      *http.Server
	done      chan error
}

// Start serves the API on lis. With tlsConfig (the gRPC port's: the same certificate and client certificate
// requirement) it serves HTTPS, HTTP/2 included. Tokens, roles and limits need nothing here: every call goes
// through the gRPC server's interceptors. errorLog, when set, receives net/http's connection errors.
func Start(lis net.Listener, srv *server.Server, tlsConfig *tls.Config, opts Options, errorLog *log.Logger) (*Server, error) {
	// A DNS-rebinding page reaches a TCP listener under its own name (a browser reaches no unix socket). Its Host is
	// checked on loopback, and wherever the listener answers without a token (--insecure on 0.0.0.0, the container
	// image's quick start); with tokens off loopback a page has none to send, so the Host is checked only when
	// AllowedHosts names hosts.
	if tcp, ok := lis.Addr().(*net.TCPAddr); ok && (tcp.IP.IsLoopback() || !srv.Authenticates()) {
		opts.Browser.CheckHost = true
	}
	gw, err := New(srv, opts)
	if err != nil {
		return nil, err
	}
	addr, url := Endpoint(lis, tlsConfig != nil)
	s := &Server{
		Addr: addr,
		URL:  url,
		http: &http.Server{
			Handler: gw,
			// No ReadTimeout or WriteTimeout: bodies may be large and streams (Watch) long.
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          errorLog,
		},
		done: make(chan error, 1),
	}
	if tlsConfig != nil {
		s.http.TLSConfig = tlsConfig.Clone()
	}
	go func() {
		var err error
		if tlsConfig != nil {
			err = s.http.ServeTLS(lis, "", "")
		} else {
			err = s.http.Serve(lis)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Endpoint is the address of an HTTP listener (host:port, or unix:///path for a socket) and its base URL
// (http://…, https://… with TLS, or the socket's unix:///path form: curl --unix-socket PATH http://localhost/…).
func Endpoint(lis net.Listener, withTLS bool) (addr, url string) {
	if lis.Addr().Network() == "unix" {
		addr = listen.Target(lis.Addr())
		return addr, addr
	}
	addr = lis.Addr().String()
	if withTLS {
		return addr, "https://" + addr
	}
	return addr, "http://" + addr
}

// Done receives the serve loop's error (nil after Shutdown) once it ends.
func (s *Server) Done() <-chan error { return s.done }

// Shutdown stops accepting, waits for in-flight requests up to ctx, then cuts the rest.
func (s *Server) Shutdown(ctx context.Context) {
	if err := s.http.Shutdown(ctx); err != nil {
		_ = s.http.Close()
	}
}
