package wiring

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/functions/indicators"
	"github.com/mdefn/mdefn/functions/tokencheck"
	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/internal/errmap"
	"github.com/mdefn/mdefn/internal/invocation"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

// Tenant is everything one tenant's requests run on. Nothing in it is
// shared with another tenant, except the stored credential when every
// tenant signs in with the same secret (one multi-tenant app): its token,
// signing keys, Defender call budget, isolation budget and coalescing are
// its own, so one tenant's failure or throttling never delays another's.
type Tenant struct {
	config.Tenant
	Logger *slog.Logger // every line names the tenant
	// Secrets is the tenant's credential source (nil in managed-identity
	// mode); Creds caches it (shared by every tenant of a shared secret).
	Secrets  auth.SecretSource
	Creds    *auth.CredentialStore
	Tokens   *auth.TokenSource
	Defender *atp.Client
	// Verifier checks tokens against the tenant the credential signs in
	// to: a tenantId in the secret's JSON governs, as it does the token.
	Verifier tokencheck.Verifier
	// Functions are the registered functions' handlers by name, before
	// the HTTP guard (method, body limit, webhook signature).
	Functions map[string]http.Handler
}

// buildTenants builds every served tenant's components.
func (c *Components) buildTenants(o *Options) error {
	cfg := c.Config
	neverBlock, err := indicators.ParseNeverBlock(cfg.IndicatorNeverBlock)
	if err != nil {
		return fmt.Errorf("MDE_INDICATOR_NEVER_BLOCK: %w", err)
	}
	var kv *auth.KeyVaultOptions
	if o.ShortRetries {
		kv = cfg.KeyVaultOptions()
		kv.Retry = shortRetry
	}
	stored := cfg.Auth != auth.ModeManagedIdentity || cfg.CredentialSource != config.SourceNone
	// One secret for every tenant: one source, one cache.
	var shared auth.SecretSource
	var sharedCreds *auth.CredentialStore
	switch {
	case o.Secrets != nil:
		shared = o.Secrets
	case stored && !cfg.SecretPerTenant():
		if shared, err = cfg.SecretSource(o.HTTPClient, kv); err != nil {
			return fmt.Errorf("secret source: %w", err)
		}
	}
	newStore := func(src auth.SecretSource) *auth.CredentialStore {
		opts := cfg.StoreOptions()
		opts.Logger = c.Logger
		return auth.NewCredentialStore(src, cfg.Auth, opts)
	}
	if shared != nil {
		sharedCreds = newStore(shared)
	}

	c.tenants = map[string]*Tenant{}
	for _, ct := range cfg.AllTenants() {
		t := &Tenant{Tenant: ct, Logger: c.Logger.With("tenant", ct.Label())}
		t.Secrets, t.Creds = shared, sharedCreds
		if shared == nil && stored {
			if t.Secrets, err = cfg.TenantSecretSource(ct, o.HTTPClient, kv); err != nil {
				return fmt.Errorf("secret source of tenant %s: %w", ct.Label(), err)
			}
			t.Creds = newStore(t.Secrets)
		}
		var creds auth.CredentialProvider
		if t.Creds != nil {
			creds = t.Creds
			if cfg.MultiTenant() {
				creds = &pinnedTenant{store: t.Creds, source: t.Secrets, tenant: ct}
			}
			if o.warm != nil {
				creds = &warmingCreds{CredentialProvider: creds, p: o.warm, urls: []string{cfg.AuthorityURL, cfg.APIURL}}
			}
		}
		tokenOpts := cfg.TokenOptions()
		tokenOpts.Logger = t.Logger
		if o.ShortRetries {
			tokenOpts.FetchTimeout, tokenOpts.ManagedIdentityRetry = StepTimeout, shortRetry
		}
		if t.Tokens, err = auth.NewTokenSource(cfg.Auth, ct.ID, cfg.ClientID, creds, o.HTTPClient, tokenOpts); err != nil {
			return fmt.Errorf("token source: %w", err)
		}
		atpOpts := &atp.Options{}
		if o.Defender != nil {
			*atpOpts = *o.Defender
		}
		atpOpts.HTTPClient, atpOpts.Logger = o.HTTPClient, t.Logger
		if o.NoCallBudget {
			atpOpts.CallsPerMinute, atpOpts.CallsPerHour = -1, -1
		}
		if o.ShortRetries {
			atpOpts.MaxRetries, atpOpts.RetryBaseDelay, atpOpts.RetryMaxDelay = 1, 200*time.Millisecond, time.Second
		}
		if t.Defender, err = atp.NewClient(cfg.APIURL, t.Tokens, atpOpts); err != nil {
			return fmt.Errorf("defender client: %w", err)
		}
		t.Verifier = &followingVerifier{creds: creds, tenant: ct.ID, build: func(tenant string) *auth.Verifier {
			return auth.NewVerifier(cfg.AuthorityURL, tenant, cfg.TokenAudience, o.HTTPClient, &auth.VerifierOptions{Logger: t.Logger})
		}}
		tokens := t.Tokens
		t.Functions = functions.Build(functions.Deps{
			NeverBlock:           neverBlock,
			Defender:             t.Defender,
			Tokens:               t.Tokens,
			Verifier:             t.Verifier,
			Logger:               t.Logger,
			ProtectedTags:        cfg.ProtectedTags,
			DryRun:               cfg.DryRun,
			MaxIsolationsPerHour: cfg.MaxIsolationsPerHour,
			Requestor: func(ctx context.Context) (string, error) {
				return requestor(ctx, tokens)
			},
		})
		c.tenants[strings.ToLower(ct.ID)] = t
		if c.Tenant == nil && cfg.TenantID != "" {
			c.Tenant = t // AllTenants lists the default first
		}
	}
	return nil
}

// ForTenant returns the components of the served tenant s names (its name
// in MDE_TENANTS or its ID, any case).
func (c *Components) ForTenant(s string) (*Tenant, bool) {
	ct, ok := c.Config.LookupTenant(s)
	if !ok {
		return nil, false
	}
	t, ok := c.tenants[strings.ToLower(ct.ID)]
	return t, ok
}

// Tenants returns every served tenant's components, the default first.
func (c *Components) Tenants() []*Tenant {
	var out []*Tenant
	for _, ct := range c.Config.AllTenants() {
		out = append(out, c.tenants[strings.ToLower(ct.ID)])
	}
	return out
}

// route is the handler of function name in a multi-tenant deployment: it
// reads the request's tenant ("tenant" in the query or the JSON body),
// refuses one MDE_TENANTS does not list before anything is read or sent,
// and hands the request, without the tenant field, to that tenant's
// handler.
func (c *Components) route(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, r2, err := c.tenantOf(r)
		if err != nil {
			e := errmap.Write(w, err)
			errmap.LogFailure(r.Context(), c.Logger.With("tenant", ""), name, e)
			return
		}
		r2 = r2.WithContext(invocation.WithTenant(r2.Context(), t.Label()))
		t.Functions[name].ServeHTTP(w, r2)
	})
}

// tenantOf resolves r's tenant and returns r without the tenant field.
func (c *Components) tenantOf(r *http.Request) (*Tenant, *http.Request, error) {
	var named []string
	r2 := r
	q := r.URL.Query()
	if vs, ok := q["tenant"]; ok {
		named = append(named, vs...)
		q.Del("tenant")
		r2 = r.Clone(r.Context())
		r2.URL.RawQuery = q.Encode()
	}
	if r.Body != nil && r.Body != http.NoBody {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, nil, envelope.Errorf(envelope.InvalidRequest, "the request body could not be read")
		}
		v, stripped, found, err := bodyTenant(body)
		if err != nil {
			return nil, nil, err
		}
		if found {
			named = append(named, v)
			body = stripped
		}
		if r2 == r {
			r2 = r.Clone(r.Context())
		}
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
	}
	var t *Tenant
	for _, s := range named {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, nil, envelope.Errorf(envelope.InvalidRequest, "tenant is empty: name a tenant of MDE_TENANTS or leave the field out")
		}
		u, ok := c.ForTenant(s)
		if !ok {
			return nil, nil, envelope.Errorf(envelope.TenantNotAllowed,
				"tenant %q is not served by this deployment: add it to MDE_TENANTS (name=tenantId) or correct the request", clip(s, 100))
		}
		if t != nil && t != u {
			return nil, nil, envelope.Errorf(envelope.InvalidRequest, "the request names two tenants (%s and %s): name one", t.Label(), u.Label())
		}
		t = u
	}
	if t == nil {
		if c.Tenant == nil {
			return nil, nil, envelope.Errorf(envelope.InvalidRequest,
				"this deployment serves several tenants (MDE_TENANTS) and has no default (MDE_TENANT_ID): name the tenant with \"tenant\"")
		}
		t = c.Tenant
	}
	return t, r2, nil
}

// bodyTenant finds a top-level "tenant" in a JSON object body and returns
// the body without it. A body that is not a JSON object is left to the
// function's own decoder (found false).
func bodyTenant(body []byte) (tenant string, stripped []byte, found bool, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || !bytes.Contains(trimmed, []byte(`"tenant"`)) {
		return "", body, false, nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(trimmed, &m) != nil {
		return "", body, false, nil
	}
	raw, ok := m["tenant"]
	if !ok {
		return "", body, false, nil
	}
	if err := json.Unmarshal(raw, &tenant); err != nil {
		return "", nil, false, envelope.Errorf(envelope.InvalidRequest, "tenant must be a string: a tenant name or ID of MDE_TENANTS")
	}
	delete(m, "tenant")
	stripped, err = json.Marshal(m)
	if err != nil {
		return "", nil, false, envelope.Errorf(envelope.InvalidRequest, "the request body could not be read")
	}
	return tenant, stripped, true, nil
}

func clip(s string, n int) string {
	for i := range s {
		if i >= n {
			return s[:i] + "…"
		}
	}
	return s
}

// pinnedTenant is a tenant's credential in a multi-tenant deployment: a
// tenantId in the secret's JSON must be the tenant's own (a secret filed
// under the wrong tenant, or a shared secret naming one tenant, would
// otherwise send this tenant's requests to another).
type pinnedTenant struct {
	store  *auth.CredentialStore
	source auth.SecretSource
	tenant config.Tenant
}

func (p *pinnedTenant) Credential(ctx context.Context) (*auth.Credential, error) {
	cred, err := p.store.Credential(ctx)
	if err != nil {
		return nil, err
	}
	if cred.TenantID != "" && !strings.EqualFold(cred.TenantID, p.tenant.ID) {
		kind, name, _ := strings.Cut(p.source.Name(), ":")
		msg := fmt.Sprintf("the secret's JSON names tenantId %s, but it serves tenant %s (%s): with MDE_TENANTS, "+
			"leave tenantId out of a secret the tenants share, or write the tenant's ID as MDE_TENANTS does", cred.TenantID, p.tenant.Label(), p.tenant.ID)
		// A SecretError underneath: not retried, like any credential
		// that cannot be used.
		return nil, &envelope.Error{Code: envelope.SecretUnavailable, Message: msg,
			Err: &auth.SecretError{Source: kind, Name: name, Message: msg}}
	}
	return cred, nil
}

// Invalidate passes a rejected client's reread on to the store.
func (p *pinnedTenant) Invalidate() { p.store.Invalidate() }

// followingVerifier verifies against the tenant the credential signs in to:
// the secret JSON's tenantId when it names one, else the configured tenant.
type followingVerifier struct {
	creds  auth.CredentialProvider // nil in managed-identity mode
	tenant string
	build  func(tenant string) *auth.Verifier

	mu sync.Mutex
	by map[string]*auth.Verifier
}

func (v *followingVerifier) Verify(ctx context.Context, token string) (*auth.Claims, []string, error) {
	tenant := v.tenant
	if v.creds != nil {
		cred, err := v.creds.Credential(ctx)
		if err != nil {
			return nil, nil, err
		}
		if cred.TenantID != "" {
			tenant = cred.TenantID
		}
	}
	return v.verifier(tenant).Verify(ctx, token)
}

func (v *followingVerifier) verifier(tenant string) *auth.Verifier {
	key := strings.ToLower(tenant)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.by == nil {
		v.by = map[string]*auth.Verifier{}
	}
	ver, ok := v.by[key]
	if !ok {
		ver = v.build(tenant)
		v.by[key] = ver
	}
	return ver
}
