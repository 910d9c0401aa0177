package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	"github.com/groupgate/groupgate/resolver"
	"github.com/groupgate/groupgate/store"
	"github.com/groupgate/groupgate/store/memory"
	"github.com/groupgate/groupgate/store/postgres"
)

// openStore opens the resolver and the store Config names, and puts the configured tenants in it: all of them in
// a memory store (the demo tenant when there are none); in PostgreSQL only those the database does not hold yet,
// so that a restart never overwrites what was written since.
func (a *App) openStore(ctx context.Context) error {
	a.resolver = resolver.New(resolver.Options{CacheMaxBytes: a.cfg.CacheBytes})
	a.onClose(a.resolver.Close) // pushed first, so it runs last: after the store has stopped calling Invalidate
	switch {
	case a.cfg.Store != nil:
		st, err := a.cfg.Store(a.resolver.Invalidate)
		if err != nil {
			return err
		}
		a.store = st
		return nil
	case a.cfg.StoreURL == "" || a.cfg.StoreURL == "memory":
		tenants, err := a.tenants(true)
		if err != nil {
			return err
		}
		st := memory.New(memory.Options{OnChange: a.resolver.Invalidate})
		for _, d := range tenants {
			if err := st.Add(d); err != nil {
				return err
			}
			logTenant(a.logger, "tenant loaded", d)
		}
		a.store = st
		return nil
	case !postgres.IsURL(a.cfg.StoreURL):
		// The value is not echoed: it may hold a password.
		return errors.New("--store: want memory or a postgres:// URL")
	}
	return a.openPostgres(ctx)
}

func (a *App) openPostgres(ctx context.Context) error {
	switch r := a.cfg.Retention; {
	case r.Revisions < 0:
		return fmt.Errorf("--retain-revisions %d: must not be negative", r.Revisions)
	case r.For < 0:
		return fmt.Errorf("--retain-for %s: must not be negative", r.For)
	case r.Every < 0:
		return fmt.Errorf("--prune-every %s: must not be negative (0 keeps everything)", r.Every)
	case a.cfg.CheckpointEvery == 0:
		return errors.New("--checkpoint-every 0: want N > 0, or -1 for no checkpoints")
	}
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := postgres.Open(openCtx, a.cfg.StoreURL, postgres.Options{OnChange: a.resolver.Invalidate, Logger: a.logger,
		Retention: a.cfg.Retention, CheckpointEvery: a.cfg.CheckpointEvery})
	if err != nil {
		return err
	}
	a.onClose(st.Close)
	a.store = st
	for _, id := range st.Tenants() {
		if d, err := st.Directory(ctx, id, 0); err == nil {
			logTenant(a.logger, "tenant loaded from postgres", d)
		}
	}
	tenants, err := a.tenants(false)
	if err != nil {
		return err
	}
	for _, d := range tenants {
		zero := int64(0) // only into an empty tenant: a replica racing us to seed it wins, and we follow
		_, err := st.Import(openCtx, d.Snapshot(), &zero)
		switch {
		case errors.Is(err, store.ErrRevisionMismatch):
			a.logger.Info("tenant already in postgres: --snapshot not imported", "tenant", d.TenantID())
		case err != nil:
			return fmt.Errorf("seeding tenant %s: %w", d.TenantID(), err)
		default:
			logTenant(a.logger, "tenant imported into postgres", d)
		}
	}
	return nil
}

// tenants are Config.Tenants and the tenants of Config.Snapshots, read and validated (a file that fails
// validation stops the server from starting, with the offending ids in the message); with orDemo, the demo
// tenant when there are none.
func (a *App) tenants(orDemo bool) ([]*directory.Directory, error) {
	out := append([]*directory.Directory(nil), a.cfg.Tenants...)
	seen := map[string]string{}
	for _, d := range out {
		seen[d.TenantID()] = "Config.Tenants"
	}
	for _, p := range a.cfg.Snapshots {
		start := time.Now()
		d, err := directory.LoadFile(p)
		if err != nil {
			return nil, err
		}
		if other, dup := seen[d.TenantID()]; dup {
			return nil, fmt.Errorf("%s and %s both hold tenant %q", other, p, d.TenantID())
		}
		seen[d.TenantID()] = p
		a.logger.Debug("snapshot read", "file", p, "seconds", time.Since(start).Seconds())
		out = append(out, d)
	}
	if len(out) == 0 && orDemo {
		d, err := demo.Directory()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func logTenant(logger *slog.Logger, msg string, d *directory.Directory) {
	c := d.Counts()
	logger.Info(msg, "tenant", d.TenantID(), "revision", d.Revision(), "users", c.Users,
		"groups", c.Groups, "service_principals", c.ServicePrincipals, "labels", c.Labels, "memberships", c.Memberships)
}
