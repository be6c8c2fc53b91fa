package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mdefn/mdefn/pkg/auth"
)

// TenantPlaceholder in MDE_SECRET_NAME or MDE_AWS_SECRET_ID stands for the
// tenant's label: each tenant's credential is its own secret.
const TenantPlaceholder = "{tenant}"

// Tenant is one tenant a deployment serves: an entry of MDE_TENANTS, or
// MDE_TENANT_ID.
type Tenant struct {
	// Name is the short name of a name=tenantId entry of MDE_TENANTS
	// ("contoso"), lower case; "" for an entry that is only an ID.
	Name string
	// ID is the tenant GUID or domain, as configured.
	ID string
}

// Label is how the tenant is named in logs, audit lines, the {tenant}
// placeholder and the dev banner: its name, else its ID.
func (t Tenant) Label() string {
	if t.Name != "" {
		return t.Name
	}
	return t.ID
}

// Is reports whether s names t: its name or its ID, case-insensitively.
func (t Tenant) Is(s string) bool {
	return t.Name != "" && strings.EqualFold(s, t.Name) || strings.EqualFold(s, t.ID)
}

// tenantName is a name of a name=tenantId pair: what a request may say
// instead of the ID, and what {tenant} becomes in a secret name.
var tenantName = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// parseTenants reads MDE_TENANTS: comma-separated tenant IDs or domains,
// or name=tenantId pairs.
func parseTenants(v string) ([]Tenant, error) {
	var out []Tenant
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var t Tenant
		if name, id, ok := strings.Cut(item, "="); ok {
			t.Name, t.ID = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(id)
			if !tenantName.MatchString(t.Name) {
				return nil, fmt.Errorf("%q: a tenant name is 1-63 lower-case letters, digits and inner dashes", name)
			}
		} else {
			t.ID = item
		}
		if !auth.ValidTenant(t.ID) {
			return nil, fmt.Errorf("%q is not a tenant GUID or domain", t.ID)
		}
		for _, o := range out {
			if o.Is(t.ID) || t.Name != "" && o.Is(t.Name) {
				return nil, fmt.Errorf("%q is listed twice (by name or ID)", item)
			}
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("set but names no tenant; list tenant IDs or name=tenantId pairs, or unset it")
	}
	return out, nil
}

// MultiTenant reports whether MDE_TENANTS is set: requests may name their
// tenant.
func (c *Config) MultiTenant() bool { return len(c.Tenants) > 0 }

// DefaultTenant is the tenant of a request that names none: MDE_TENANT_ID,
// with its name when MDE_TENANTS lists it as a pair. ok is false when
// MDE_TENANT_ID is unset (then every request must name its tenant).
func (c *Config) DefaultTenant() (t Tenant, ok bool) {
	if c.TenantID == "" {
		return Tenant{}, false
	}
	for _, e := range c.Tenants {
		if strings.EqualFold(e.ID, c.TenantID) {
			return e, true
		}
	}
	return Tenant{ID: c.TenantID}, true
}

// AllTenants returns every tenant the deployment serves: the default (when
// set) first, then MDE_TENANTS in order.
func (c *Config) AllTenants() []Tenant {
	var out []Tenant
	if t, ok := c.DefaultTenant(); ok {
		out = append(out, t)
	}
	for _, e := range c.Tenants {
		if len(out) > 0 && out[0].Is(e.ID) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// LookupTenant returns the served tenant that s names (name or ID, any
// case); ok is false when the deployment does not serve it.
func (c *Config) LookupTenant(s string) (Tenant, bool) {
	s = strings.TrimSpace(s)
	for _, t := range c.AllTenants() {
		if t.Is(s) {
			return t, true
		}
	}
	return Tenant{}, false
}

// SecretPerTenant reports whether each tenant's credential is a secret of
// its own ({tenant} in the secret's name).
func (c *Config) SecretPerTenant() bool {
	switch c.CredentialSource {
	case auth.SourceKeyVault:
		return strings.Contains(c.SecretName, TenantPlaceholder)
	case auth.SourceAWSSecretsManager:
		return strings.Contains(c.AWSSecretID, TenantPlaceholder)
	}
	return false
}

// forTenant replaces {tenant} in a secret name or ID.
func forTenant(name string, t Tenant) string {
	return strings.ReplaceAll(name, TenantPlaceholder, t.Label())
}

// checkTenants validates what MDE_TENANTS implies for the rest of the
// configuration.
func (c *Config) checkTenants() error {
	if c.MultiTenant() && c.Auth == auth.ModeManagedIdentity {
		return &Error{Setting: "MDE_TENANTS", Reason: "MDE_AUTH=managed-identity signs in only to the function's own tenant; " +
			"serve several tenants with a multi-tenant app registration (client-secret or client-certificate)"}
	}
	if c.CredentialSource == auth.SourceEnvironment && strings.Contains(c.SecretName, TenantPlaceholder) {
		// MDE_SECRET_NAME is not read without a vault: nothing to check.
		return nil
	}
	if c.CredentialSource == auth.SourceKeyVault && c.SecretPerTenant() {
		for _, t := range c.AllTenants() {
			if n := forTenant(c.SecretName, t); !validVaultSecretName(n) {
				return &Error{Setting: "MDE_SECRET_NAME", Reason: fmt.Sprintf("for tenant %s it is %q, not a Key Vault secret name "+
					"(1-127 letters, digits and dashes): give the tenant a name in MDE_TENANTS (name=tenantId)", t.Label(), n)}
			}
		}
	}
	return nil
}

// Only returns c narrowed to tenant t, as a deployment serving t alone
// would be configured: MDE_TENANT_ID is t's ID, MDE_TENANTS is unset and
// {tenant} is replaced in the secret's name (mdefn doctor --tenant).
func (c *Config) Only(t Tenant) *Config {
	o := *c
	o.TenantID, o.Tenants = t.ID, nil
	o.SecretName, o.AWSSecretID = forTenant(c.SecretName, t), forTenant(c.AWSSecretID, t)
	return &o
}
