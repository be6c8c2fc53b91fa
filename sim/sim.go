// Package sim is an embedded simulator of the cloud services mdefn talks to:
// the Microsoft Entra ID token endpoints (v1 and v2, with JWKS and OpenID
// configuration), the App Service managed identity endpoint, Azure Key Vault
// secrets, AWS Secrets Manager and the Microsoft Defender for Endpoint API
// (served by package sim/defender behind the simulator's token checks).
//
// Every upstream listens on its own loopback port, all but the managed
// identity endpoint over HTTPS with a certificate authority generated at
// Start. Tests register apps, users and secrets, inject faults, take an
// upstream down and read counters; `mdefn dev` embeds it as the default
// backend. A Sim is safe for concurrent use.
//
// The simulator serves its home tenant (Options.TenantID) and any added
// with AddTenant: each with its own token endpoints, signing key, consents
// and Defender data, chosen by the path on Entra and by the token's
// verified tenant on Defender (see Tenant).
//
// Notes for SDK clients: azsecrets needs DisableChallengeResourceVerification
// (the vault is not on a Key Vault domain); MSAL-based azidentity
// credentials other than managed identity need DisableInstanceDiscovery and
// Cloud.ActiveDirectoryAuthorityHost = AuthorityURL()+"/"; the AWS SDK
// refuses a custom HTTP client while AWS_CA_BUNDLE is set. MSAL caches
// managed identity tokens process-wide on real time: simulators in one
// process share their initial signing key so such cached tokens stay valid
// across them, but a token cached before Advance moves past its expiry is
// still handed out by MSAL and rejected by the simulator.
package sim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mdefn/mdefn/sim/defender"
)

// Options configure a Sim. A nil *Options, and every zero field, means the
// defaults documented on each field.
type Options struct {
	// TenantID is the directory's GUID; default DefaultTenantID.
	TenantID string
	// TenantDomain is a domain name accepted in place of the GUID in token
	// endpoint paths; default DefaultTenantDomain.
	TenantDomain string
	// DefenderAudience is the Defender API's resource / audience; default
	// DefaultAudience. Tokens for it carry the Defender application roles.
	DefenderAudience string
	// TokenLifetime is the lifetime of issued access tokens; default
	// DefaultTokenLifetime (3599 s, as Entra).
	TokenLifetime time.Duration
	// Clock is the simulator's time source before any Advance; default
	// time.Now. It stamps tokens, secret versions and Defender data.
	Clock func() time.Time
	// Defender are the options of the composed Defender fake; Authorize and
	// Now are always set by the simulator.
	Defender defender.Options
	// Logger, when set, receives one line per request (never a token or a
	// secret). The in-memory request log is kept either way.
	Logger *slog.Logger
	// RequestLogSize bounds the in-memory request log; default 10000.
	RequestLogSize int
}

// Sim is a running simulator. Create it with Start and stop it with Close.
type Sim struct {
	opts     Options
	tenantID string
	domain   string
	audience string
	lifetime time.Duration

	clock    clock
	ca       *authority
	defender *defender.Server // the home tenant's
	home     *Tenant

	upstreams map[Upstream]*upstream

	identityHeader string

	mu        sync.Mutex
	dir       directory
	tenants   []*Tenant // home first
	vault     map[string][]vaultVersion
	aws       map[string]*awsSecret
	awsKeys   map[string]bool
	faults    []*FaultHandle
	stats     stats
	caFile    string
	caFileDir string
}

// Start starts a simulator on loopback ports chosen by the system. nil opts
// means defaults. The caller must Close it.
func Start(opts *Options) (*Sim, error) {
	s := &Sim{}
	if opts != nil {
		s.opts = *opts
	}
	s.tenantID = orDefault(s.opts.TenantID, DefaultTenantID)
	s.domain = orDefault(s.opts.TenantDomain, DefaultTenantDomain)
	s.audience = orDefault(s.opts.DefenderAudience, DefaultAudience)
	s.lifetime = s.opts.TokenLifetime
	if s.lifetime <= 0 {
		s.lifetime = DefaultTokenLifetime
	}
	s.clock.base = s.opts.Clock
	if s.opts.RequestLogSize <= 0 {
		s.opts.RequestLogSize = 10000
	}
	s.identityHeader = randomHex(16)

	var err error
	if s.ca, err = newAuthority(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	s.home = &Tenant{s: s, id: s.tenantID, domain: s.domain, home: true}
	if err := s.home.keys.init(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	s.tenants = []*Tenant{s.home}
	s.vault = map[string][]vaultVersion{}
	s.aws = map[string]*awsSecret{}
	s.awsKeys = map[string]bool{}
	s.stats.reset()
	s.seed()

	if _, err := s.CAFile(); err != nil {
		return nil, err
	}

	dopts := s.opts.Defender
	dopts.Authorize = s.authorizeDefender
	dopts.Now = s.Now
	s.defender = defender.New(dopts)
	s.home.defender = s.defender

	s.upstreams = map[Upstream]*upstream{
		Entra:          {name: Entra, tls: true, handler: s.entraHandler()},
		KeyVault:       {name: KeyVault, tls: true, handler: http.HandlerFunc(s.serveVault)},
		SecretsManager: {name: SecretsManager, tls: true, handler: http.HandlerFunc(s.serveSecretsManager)},
		Defender:       {name: Defender, tls: true, handler: s.defenderHandler()},
		Identity:       {name: Identity, handler: http.HandlerFunc(s.serveIdentity)},
	}
	for _, u := range s.upstreams {
		u.handler = s.observe(u.name, s.injectFaults(u.name, u.handler))
		if err := u.up(s.ca.serverConfig()); err != nil {
			s.Close()
			return nil, fmt.Errorf("sim: start %s: %w", u.name, err)
		}
	}
	return s, nil
}

// Close stops every listener, closes open connections and removes the CA
// file written by CAFile. It is safe to call more than once.
func (s *Sim) Close() {
	for _, u := range s.upstreams {
		u.down()
	}
	s.mu.Lock()
	dir := s.caFileDir
	s.caFile, s.caFileDir = "", ""
	s.mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Down takes an upstream off the network: its listener is closed and open
// connections are dropped, so clients get "connection refused". Up brings it
// back on the same port.
func (s *Sim) Down(u Upstream) error {
	up, ok := s.upstreams[u]
	if !ok {
		return fmt.Errorf("sim: unknown upstream %q", u)
	}
	up.down()
	return nil
}

// Up re-opens an upstream taken down by Down, on the same port.
func (s *Sim) Up(u Upstream) error {
	up, ok := s.upstreams[u]
	if !ok {
		return fmt.Errorf("sim: unknown upstream %q", u)
	}
	if err := up.up(s.ca.serverConfig()); err != nil {
		return fmt.Errorf("sim: up %s: %w", u, err)
	}
	return nil
}

// TenantID returns the simulated directory's tenant GUID.
func (s *Sim) TenantID() string { return s.tenantID }

// TenantDomain returns the tenant's domain name, accepted in place of its GUID.
func (s *Sim) TenantDomain() string { return s.domain }

// Audience returns the Defender API audience tokens are issued for.
func (s *Sim) Audience() string { return s.audience }

// AuthorityURL returns the Entra authority host URL (no tenant, no trailing
// slash), the equivalent of https://login.microsoftonline.com.
func (s *Sim) AuthorityURL() string { return s.upstreams[Entra].url() }

// TokenURL returns the tenant's v2.0 token endpoint.
func (s *Sim) TokenURL() string { return s.AuthorityURL() + "/" + s.tenantID + "/oauth2/v2.0/token" }

// TokenURLv1 returns the tenant's v1 token endpoint (resource= requests).
func (s *Sim) TokenURLv1() string { return s.AuthorityURL() + "/" + s.tenantID + "/oauth2/token" }

// JWKSURL returns the tenant's signing keys document.
func (s *Sim) JWKSURL() string { return s.AuthorityURL() + "/" + s.tenantID + "/discovery/v2.0/keys" }

// Issuer returns the issuer of the v1.0 tokens the simulator signs.
func (s *Sim) Issuer() string { return "https://sts.windows.net/" + s.tenantID + "/" }

// VaultURL returns the Key Vault URL (like https://name.vault.azure.net).
func (s *Sim) VaultURL() string { return s.upstreams[KeyVault].url() }

// SecretsManagerURL returns the Secrets Manager endpoint URL.
func (s *Sim) SecretsManagerURL() string { return s.upstreams[SecretsManager].url() }

// DefenderURL returns the Defender API base URL (paths start with /api/).
func (s *Sim) DefenderURL() string { return s.upstreams[Defender].url() }

// IdentityEndpoint returns the managed identity endpoint (IDENTITY_ENDPOINT),
// plain HTTP as on App Service.
func (s *Sim) IdentityEndpoint() string { return s.upstreams[Identity].url() + "/msi/token" }

// IdentityHeader returns the secret expected in X-IDENTITY-HEADER
// (IDENTITY_HEADER).
func (s *Sim) IdentityHeader() string { return s.identityHeader }

// Defender returns the home tenant's Defender fake, for seeding and
// inspection (Tenant.Defender for another tenant's).
func (s *Sim) Defender() *defender.Server { return s.defender }

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	return hex.EncodeToString(b)
}

// newGUID returns a random (version 4) GUID.
func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
