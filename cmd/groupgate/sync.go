package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/groupgate/groupgate/client"
	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/entra"
	"github.com/groupgate/groupgate/entra/pgstate"
	"github.com/groupgate/groupgate/internal/memlimit"
	"github.com/groupgate/groupgate/store/postgres"
	"github.com/spf13/cobra"
)

type syncFlags struct {
	tenant, endpoint, tokenEnv, labels, state, output string
	once                                              bool
	interval                                          time.Duration
	addr, token                                       string
	tls                                               tlsFlags
	logLevel, logFormat                               string
}

func newSyncCmd() *cobra.Command {
	f := &syncFlags{}
	cmd := &cobra.Command{
		Use:   "sync --tenant NAME (-o SNAPSHOT | --addr ADDR)",
		Short: "Fill and follow a tenant from Microsoft Graph: into a snapshot file, or into a running groupgate",
		Long: `Read a Microsoft Entra tenant from Microsoft Graph (users and groups through delta queries, directory roles,
application permissions, group settings, licences) and write it as groupgate tenant --tenant: with -o as a
snapshot file (then exit), or with --addr into a running groupgate (ImportSnapshot first, then each round as one
WriteChanges), one round with --once or one every --interval. --state keeps Graph's delta links between runs.
Credentials: azidentity's DefaultAzureCredential, or the bearer token in the environment variable --token-env.
See docs/sync.md for the Graph permissions it needs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if !directory.ValidID(f.tenant) {
				return fmt.Errorf("--tenant %q: want "+directory.IDForm, f.tenant)
			}
			if (f.output == "") == (f.addr == "") {
				return errors.New("give exactly one of -o SNAPSHOT and --addr ADDR")
			}
			if err := checkGraphEndpoint(f.endpoint); err != nil {
				return err
			}
			if f.interval <= 0 {
				return errors.New("--interval must be positive")
			}
			logger, err := newLogger(f.logLevel, f.logFormat)
			if err != nil {
				return err
			}
			// A full sync of a large tenant holds gigabytes at its peak: in a container, the collector must know
			// the limit (as serve's does) rather than let the heap double past it into the OOM killer.
			memlimit.Apply(logger, 0)
			var tokens entra.TokenSource
			if f.tokenEnv != "" {
				t := os.Getenv(f.tokenEnv)
				if t == "" {
					return fmt.Errorf("--token-env %s: the variable is empty or not set", f.tokenEnv)
				}
				tokens = entra.StaticToken(t)
			} else if tokens, err = entra.DefaultAzureTokens(f.endpoint); err != nil {
				return fmt.Errorf("no Azure credential (use --token-env, or see docs/sync.md): %w", err)
			}
			graphHTTP, tracer, stopTracing, err := tracedHTTPClient(ctx, logger, 2*time.Minute) // OTEL_* (decisionlog.go)
			if err != nil {
				return err
			}
			defer stopTracing()
			s := &entra.Syncer{
				Tenant: f.tenant,
				Graph:  &entra.Client{Endpoint: f.endpoint, Tokens: tokens, HTTP: graphHTTP, Logger: logger},
				Logger: logger,
				Tracer: tracer,
			}
			if f.labels != "" {
				if s.Labels, err = entra.LoadLabels(f.labels); err != nil {
					return err
				}
			}
			switch {
			case postgres.IsURL(f.state):
				// Shared by several sync processes: the lease outlives a round and the wait before the next.
				st, err := pgstate.Open(ctx, f.state, f.tenant, "", max(3*f.interval, time.Minute))
				if err != nil {
					return err
				}
				defer st.Close()
				s.Store = st
			case f.state != "":
				s.Store = &entra.FileState{Path: f.state}
			}
			if f.output != "" {
				return s.RunRound(ctx, entra.SnapshotFile{Path: f.output})
			}
			opts := client.Options{Token: f.token}
			if opts.TLS, opts.DialOptions, err = f.tls.credentials(); err != nil {
				return err
			}
			c, err := client.Dial(f.addr, opts)
			if err != nil {
				return err
			}
			defer c.Close()
			return s.Run(ctx, &entra.Server{Client: c, Tenant: f.tenant}, f.once, f.interval)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.tenant, "tenant", "", "groupgate tenant id to write (required)")
	fl.StringVar(&f.endpoint, "graph-endpoint", "https://graph.microsoft.com", "Microsoft Graph base URL")
	fl.StringVar(&f.tokenEnv, "token-env", "", "environment variable holding a Graph bearer token (default: azidentity's DefaultAzureCredential)")
	fl.StringVar(&f.labels, "labels", "", "JSON array of Label (protobuf JSON): the sensitivity labels' definitions")
	fl.StringVar(&f.state, "state", "", "file keeping Graph's delta links and the mirrored tenant between runs (.gz: gzipped), or postgres://… to share it, with a lease, between sync processes")
	fl.BoolVar(&f.once, "once", false, "run one round and exit")
	fl.StringVarP(&f.output, "write-snapshot", "o", "", "write the tenant to this snapshot file (.json, .json.gz, .pb, .pb.gz) and exit (not --output: GROUPGATE_OUTPUT is the client commands' text|json)")
	fl.StringVar(&f.addr, "addr", "", "write into the groupgate server at this address")
	fl.StringVar(&f.token, "token", "", "bearer token of the groupgate server (writer role)")
	fl.DurationVar(&f.interval, "interval", 60*time.Second, "time between rounds with --addr")
	f.tls.register(fl)
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	annotateEnv(cmd)
	return cmd
}

// checkGraphEndpoint refuses an endpoint the bearer token should not travel to: anything but https, except
// plain http on a loopback address (a local stand-in).
func checkGraphEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("--graph-endpoint %q: want an https:// URL such as https://graph.microsoft.com", endpoint)
	}
	if u.Scheme == "http" {
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("--graph-endpoint %q: plain http only to a loopback address (the bearer token would travel unencrypted)", endpoint)
		}
	}
	return nil
}
