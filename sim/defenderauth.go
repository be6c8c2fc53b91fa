package sim

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/mdefn/mdefn/sim/defender"
)

type principalKey struct{}

// defenderHandler checks the bearer token of every Defender request before
// the defender fake sees it: a failure is a 401 in Defender's error shape.
func (s *Sim) defenderHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, defender.PackagePathPrefix) {
			// A package download link carries its own signature and
			// expiry, as Defender's storage links do: no bearer token.
			s.defender.ServeHTTP(w, r)
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/t/"); ok {
			// Another tenant's package link: /t/<tenant>/packages/...
			id, path, _ := strings.Cut(rest, "/")
			if t := s.tenantBySeg(id); t != nil && !t.home && strings.HasPrefix("/"+path, defender.PackagePathPrefix) {
				setTenant(r, t.id)
				r2 := r.Clone(r.Context())
				r2.URL.Path = "/" + path
				r2.URL.RawPath = ""
				t.defender.PackageHandler().ServeHTTP(w, r2)
				return
			}
		}
		p, err := s.authenticateDefender(r)
		if err != nil {
			msg := "Authorization failed: " + err.Error() + "."
			if errors.Is(err, errNoToken) {
				msg = "Authorization header is missing or is not a Bearer token."
			}
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
				"code": "Unauthorized", "message": msg, "target": newGUID(),
			}})
			return
		}
		setClientID(r, p.AppID)
		// The token's tenant (verified: its keys signed it) picks the
		// Defender data; one tenant's token never reaches another's.
		t := s.tenantBySeg(p.TenantID)
		if t == nil {
			t = s.home
		}
		setTenant(r, t.id)
		s.countTenant(true, t.id, r.URL.Path)
		t.defender.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// authorizeDefender is the defender fake's Options.Authorize: it reuses the
// principal verified by defenderHandler, or verifies the token itself when
// the fake is called directly.
func (s *Sim) authorizeDefender(r *http.Request) (defender.Principal, error) {
	if p, ok := r.Context().Value(principalKey{}).(defender.Principal); ok {
		return p, nil
	}
	return s.authenticateDefender(r)
}

// authenticateDefender verifies the request's bearer token for the Defender
// audience (signature by a published key, exp/nbf, issuer, tenant) and
// returns the caller.
func (s *Sim) authenticateDefender(r *http.Request) (defender.Principal, error) {
	tok, err := s.verifyToken(bearer(r.Header.Get("Authorization")), func(aud string) bool {
		k, _ := s.resourceOf(aud)
		return k == resDefender
	})
	if err != nil {
		return defender.Principal{}, err
	}
	return defender.Principal{TenantID: tok.TenantID, AppID: tok.AppID, ObjectID: tok.ObjectID, UPN: tok.UPN,
		Roles: tok.Roles, Scopes: tok.Scopes}, nil
}
