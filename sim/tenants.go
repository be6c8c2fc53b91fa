package sim

import (
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mdefn/mdefn/sim/defender"
)

// Tenant is one directory the simulator serves: the home tenant given by
// Options (where apps, users, managed identities and the vault live) or one
// added with AddTenant, a customer tenant of a managed security provider.
// Each tenant has its own token endpoints, signing keys (JWKS), consents and
// Defender data (machines, alerts, actions, indicators, call budget).
//
// An app registered with AddApp signs in to every tenant that consented to
// it (a multi-tenant app): its credentials are checked as in the home
// tenant, and a token for another tenant carries that tenant's tid, issuer
// and signature and the roles the tenant granted.
type Tenant struct {
	s        *Sim
	id       string
	domain   string
	home     bool
	defender *defender.Server

	// guarded by s.mu
	keys     keyring
	consents map[string][]string // lower-case client ID → Defender roles granted; unused for home
}

// TenantSpec describes a tenant for AddTenant.
type TenantSpec struct {
	// ID is the tenant GUID; generated when empty.
	ID string
	// Domain is accepted in place of the GUID in endpoint paths; default
	// "<Name>.onmicrosoft.com", or one made of the ID.
	Domain string
	// Name, when set, makes the default domain (e.g. "fabrikam").
	Name string
	// Seed sizes the tenant's Defender data; nil means DefaultSeed with a
	// PCG seed of the tenant's own (so its generated machines and alerts
	// differ from every other tenant's) and alerts stamped with its ID.
	Seed *defender.SeedOptions
	// Consents are the apps admin-consented in the tenant, by client ID,
	// with the Defender application roles granted. Nil means DefaultClientID
	// with every role (ApplicationRoles).
	Consents map[string][]string
}

// tenantKeys holds one extra signing key per tenant ordinal, generated once
// per process (RSA generation is slow and tests start many simulators).
var tenantKeys struct {
	mu   sync.Mutex
	keys []*signingKey
}

func tenantKey(i int) (*signingKey, error) {
	tenantKeys.mu.Lock()
	defer tenantKeys.mu.Unlock()
	for len(tenantKeys.keys) <= i {
		k, err := newSigningKey()
		if err != nil {
			return nil, err
		}
		tenantKeys.keys = append(tenantKeys.keys, k)
	}
	return tenantKeys.keys[i], nil
}

// AddTenant adds a tenant with its own Defender data and signing key. It
// fails when the ID or domain is already served.
func (s *Sim) AddTenant(spec TenantSpec) (*Tenant, error) {
	id := spec.ID
	if id == "" {
		id = newGUID()
	}
	domain := spec.Domain
	switch {
	case domain != "":
	case spec.Name != "":
		domain = strings.ToLower(spec.Name) + ".onmicrosoft.com"
	default:
		domain = "t" + strings.ReplaceAll(id, "-", "")[:12] + ".onmicrosoft.com"
	}
	if s.tenantBySeg(id) != nil || s.tenantBySeg(domain) != nil {
		return nil, fmt.Errorf("sim: tenant %s (%s) is already served", id, domain)
	}
	s.mu.Lock()
	ordinal := len(s.tenants) - 1
	s.mu.Unlock()
	key, err := tenantKey(ordinal)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	seed := spec.Seed
	if seed == nil {
		h := fnv.New64a()
		h.Write([]byte(strings.ToLower(id)))
		seed = &defender.SeedOptions{Machines: defender.DefaultSeed.Machines, Alerts: defender.DefaultSeed.Alerts,
			Seed: h.Sum64(), TenantID: id}
	}
	consents := map[string][]string{}
	if spec.Consents == nil {
		consents[strings.ToLower(DefaultClientID)] = ApplicationRoles()
	}
	for c, roles := range spec.Consents {
		consents[strings.ToLower(c)] = slices.Clone(roles)
	}
	t := &Tenant{s: s, id: id, domain: domain, consents: consents}
	_, unpublished, err := sharedKeys()
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	t.keys = keyring{published: []*signingKey{key}, unpublished: unpublished}

	dopts := s.opts.Defender
	dopts.Seed = seed
	dopts.Authorize = s.authorizeDefender
	dopts.Now = s.Now
	dopts.PackageBaseURL = s.DefenderURL() + t.packagePrefix()
	t.defender = defender.New(dopts)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants = append(s.tenants, t)
	return t, nil
}

// Tenant returns the served tenant with that GUID or domain (any case), the
// home one included, or nil.
func (s *Sim) Tenant(idOrDomain string) *Tenant { return s.tenantBySeg(idOrDomain) }

// Tenants returns every served tenant, the home one first.
func (s *Sim) Tenants() []*Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tenants)
}

// Home returns the home tenant (Options.TenantID).
func (s *Sim) Home() *Tenant { return s.home }

func (s *Sim) tenantBySeg(seg string) *Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenantBySegLocked(seg)
}

func (s *Sim) tenantBySegLocked(seg string) *Tenant {
	for _, t := range s.tenants {
		if strings.EqualFold(seg, t.id) || strings.EqualFold(seg, t.domain) {
			return t
		}
	}
	return nil
}

// ID returns the tenant GUID.
func (t *Tenant) ID() string { return t.id }

// Domain returns the tenant's domain name.
func (t *Tenant) Domain() string { return t.domain }

// Defender returns the tenant's Defender fake, for seeding and inspection.
func (t *Tenant) Defender() *defender.Server { return t.defender }

// Issuer returns the issuer of the tenant's v1.0 tokens.
func (t *Tenant) Issuer() string { return "https://sts.windows.net/" + t.id + "/" }

// TokenURL returns the tenant's v2.0 token endpoint.
func (t *Tenant) TokenURL() string { return t.s.AuthorityURL() + "/" + t.id + "/oauth2/v2.0/token" }

// JWKSURL returns the tenant's signing keys document.
func (t *Tenant) JWKSURL() string { return t.s.AuthorityURL() + "/" + t.id + "/discovery/v2.0/keys" }

// Consent grants (replacing any earlier grant) the app with that client ID
// the Defender roles in this tenant, as an admin consent does. For the home
// tenant it sets the app's roles (SetAppRoles).
func (t *Tenant) Consent(clientID string, roles []string) error {
	if t.home {
		return t.s.SetAppRoles(clientID, roles)
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.consents[strings.ToLower(clientID)] = slices.Clone(roles)
	return nil
}

// RevokeConsent removes the app's consent: its token requests to this
// tenant fail (AADSTS700016) from now on. Not for the home tenant.
func (t *Tenant) RevokeConsent(clientID string) {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	delete(t.consents, strings.ToLower(clientID))
}

// IssueToken signs a token of this tenant (tid, issuer and key); see
// Sim.IssueToken.
func (t *Tenant) IssueToken(spec TokenSpec) string {
	spec.TenantID = t.id
	return t.s.IssueToken(spec)
}

// RotateSigningKey makes a new key sign the tenant's tokens from now on; the
// old keys stay published.
func (t *Tenant) RotateSigningKey() error {
	key, err := newSigningKey()
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	t.keys.published = append(t.keys.published, key)
	return nil
}

// roles returns the Defender roles the tenant granted the app, and whether
// the app may sign in to the tenant at all.
func (t *Tenant) rolesOf(app *App) ([]string, bool) {
	if t.home {
		return app.Roles, true
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	roles, ok := t.consents[strings.ToLower(app.ClientID)]
	return slices.Clone(roles), ok
}

// packagePrefix is the path under which the Defender upstream serves this
// tenant's investigation package links ("" for the home tenant).
func (t *Tenant) packagePrefix() string {
	if t.home {
		return ""
	}
	return "/t/" + t.id
}

// tenantOfToken returns the served tenant named by an unverified token's
// tid claim, or nil; for routing faults, never for authorization.
func (s *Sim) tenantOfToken(raw string) *Tenant {
	if raw == "" {
		return nil
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil {
		return nil
	}
	tid, _ := claims["tid"].(string)
	return s.tenantBySeg(tid)
}

// requestTenant is the tenant a request is for: the path's tenant on Entra,
// the bearer token's on Defender (a package link's path otherwise), the home
// tenant on the vault, Secrets Manager and the identity endpoint. Nil when
// the request names a tenant not served.
func (s *Sim) requestTenant(u Upstream, r *http.Request) *Tenant {
	switch u {
	case Entra:
		seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch strings.ToLower(seg) {
		case "common", "organizations", "consumers":
			return s.home
		}
		return s.tenantBySeg(seg)
	case Defender:
		if t := s.tenantOfToken(bearer(r.Header.Get("Authorization"))); t != nil {
			return t
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/t/"); ok {
			id, _, _ := strings.Cut(rest, "/")
			return s.tenantBySeg(id)
		}
		return s.home
	}
	return s.home
}

// TenantStats are one tenant's counters since Start or ResetStats.
type TenantStats struct {
	// TokenRequests counts token requests to the tenant's token endpoints
	// (and, for the home tenant, the managed identity endpoint), failed ones
	// included, by client ID.
	TokenRequests map[string]int
	// DefenderCalls counts Defender API requests whose token the tenant
	// signed (authorized or refused by role), by path.
	DefenderCalls map[string]int
}

// Stats returns the tenant's counters.
func (t *Tenant) Stats() TenantStats {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	return TenantStats{
		TokenRequests: maps.Clone(t.s.stats.tenantTokens[t.id]),
		DefenderCalls: maps.Clone(t.s.stats.tenantDefender[t.id]),
	}
}

// countTenant counts a token request (defender false) or a Defender call of
// the tenant.
func (s *Sim) countTenant(defender bool, tenantID, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.stats.tenantTokens
	if defender {
		m = s.stats.tenantDefender
	}
	if m[tenantID] == nil {
		m[tenantID] = map[string]int{}
	}
	m[tenantID][key]++
}
