package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"github.com/groupgate/groupgate/resolver"
	"github.com/groupgate/groupgate/server"
	"github.com/groupgate/groupgate/store/memory"
	"github.com/spf13/cobra"
)

type serveFlags struct {
	listen          string
	snapshots       []string
	insecure        bool
	logLevel        string
	logFormat       string
	cacheBytes      int64
	shutdownTimeout time.Duration
}

func newServeCmd() *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the gRPC API on the given snapshots, or on the embedded demo tenant contoso",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return serve(ctx, f, nil)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:50051", "address to listen on")
	fl.StringSliceVar(&f.snapshots, "snapshot", nil, "snapshot file of one tenant (.json, .json.gz, .pb, .pb.gz); repeat for more tenants (default: the demo tenant contoso)")
	fl.BoolVar(&f.insecure, "insecure", false, "allow listening on a non-loopback address without TLS or tokens")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (debug logs every call)")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fl.Int64Var(&f.cacheBytes, "cache-bytes", 0, "memory bound of the resolver cache in bytes (0: the default)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight calls")
	annotateEnv(cmd)
	return cmd
}

// serve runs the server until ctx ends. ready, when set, receives the listening address.
func serve(ctx context.Context, f *serveFlags, ready chan<- string) error {
	logger, err := newLogger(f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	if err := checkListenAddress(f.listen, f.insecure); err != nil {
		return err
	}
	tenants, err := loadTenants(f.snapshots)
	if err != nil {
		return err
	}
	res := resolver.New(resolver.Options{CacheMaxBytes: f.cacheBytes})
	st := memory.New(memory.Options{OnChange: res.Invalidate})
	for _, d := range tenants {
		if err := st.Add(d); err != nil {
			return err
		}
		c := d.Counts()
		logger.Info("tenant loaded", "tenant", d.TenantID(), "revision", d.Revision(), "users", c.Users,
			"groups", c.Groups, "service_principals", c.ServicePrincipals, "labels", c.Labels, "memberships", c.Memberships)
	}
	srv := server.New(server.Config{Store: st, Resolver: res, Logger: logger})
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	srv.MarkServing()
	logger.Info("serving", "address", lis.Addr().String(), "store", st.Name(), "tenants", st.Tenants())
	if ready != nil {
		ready <- lis.Addr().String()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.GRPC().Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight calls", "timeout", f.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	srv.Shutdown(sctx)
	logger.Info("stopped")
	return nil
}

// loadTenants reads and validates every snapshot file (the demo tenant when there are none). A file that fails
// validation stops the server from starting, with the offending ids in the message.
func loadTenants(paths []string) ([]*directory.Directory, error) {
	if len(paths) == 0 {
		d, err := demo.Directory()
		if err != nil {
			return nil, err
		}
		return []*directory.Directory{d}, nil
	}
	seen := map[string]string{}
	var out []*directory.Directory
	for _, p := range paths {
		start := time.Now()
		d, err := directory.LoadFile(p)
		if err != nil {
			return nil, err
		}
		if other, dup := seen[d.TenantID()]; dup {
			return nil, fmt.Errorf("%s and %s both hold tenant %q", other, p, d.TenantID())
		}
		seen[d.TenantID()] = p
		slog.Debug("snapshot read", "file", p, "seconds", time.Since(start).Seconds())
		out = append(out, d)
	}
	return out, nil
}

// checkListenAddress refuses a non-loopback address unless --insecure: until TLS and tokens are configured,
// anything that can reach the port could ask (and write).
func checkListenAddress(addr string, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if insecure || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("--listen " + addr + " is not a loopback address: refusing to serve without TLS or tokens (pass --insecure to do it anyway)")
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
