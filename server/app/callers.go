package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/groupgate/groupgate/internal/oidc"
	"github.com/groupgate/groupgate/server"
)

// openCallers reads the static tokens and starts fetching the OIDC issuers' keys. An issuer that cannot be
// reached does not stop the server: its callers get UNAVAILABLE until its keys arrive.
func (a *App) openCallers(ctx context.Context) error {
	a.tokens = a.cfg.Tokens
	if a.cfg.TokenFile != "" {
		t, err := server.LoadTokenFile(a.cfg.TokenFile)
		if err != nil {
			return err
		}
		a.tokens = t
	}
	a.jwt = a.cfg.JWT
	o := a.cfg.OIDC
	if len(o.Issuers) == 0 {
		if len(o.Audiences) > 0 {
			return errors.New("--oidc-audience without --oidc-issuer: name the issuer whose tokens carry it")
		}
		return nil
	}
	roles := server.DefaultJWTRoles()
	if len(o.Roles) > 0 {
		roles = map[string]server.Role{}
	}
	for _, r := range o.Roles {
		value, name, ok := strings.Cut(r, "=")
		if !ok || value == "" {
			return fmt.Errorf("--oidc-role %q: want VALUE=ROLE, e.g. GroupGate.Check=checker", r)
		}
		role, err := server.ParseRole(name)
		if err != nil {
			return fmt.Errorf("--oidc-role %q: %w", r, err)
		}
		roles[value] = role
	}
	cfg := oidc.Config{Issuers: o.Issuers, Audiences: o.Audiences, Logger: a.logger}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("--oidc-issuer, --oidc-audience: %w", err)
	}
	v, err := oidc.New(ctx, cfg)
	if err != nil {
		return err
	}
	a.onClose(v.Close)
	a.logger.Info("accepting OIDC tokens", "issuers", o.Issuers, "audiences", o.Audiences, "roles", o.Roles)
	a.jwt = &server.JWTAuth{Verifier: v, Roles: roles}
	return nil
}
