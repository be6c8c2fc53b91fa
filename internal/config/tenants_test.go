package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	guidA = "11111111-1111-4111-8111-111111111111"
	guidB = "22222222-2222-4222-8222-222222222222"
)

func TestTenants(t *testing.T) {
	c, err := Load(env(map[string]string{
		"MDE_TENANT_ID": guidA, "MDE_CLIENT_ID": "app", "MDE_KEYVAULT_URL": "https://kv.vault.azure.net",
		"MDE_SECRET_NAME": "mde-{tenant}",
		"MDE_TENANTS":     " Contoso=" + guidA + ", fabrikam=" + guidB + ",, northwind=northwind.onmicrosoft.com ",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.MultiTenant() || !c.SecretPerTenant() {
		t.Fatalf("MultiTenant %v SecretPerTenant %v, want both", c.MultiTenant(), c.SecretPerTenant())
	}
	want := []Tenant{{"contoso", guidA}, {"fabrikam", guidB}, {"northwind", "northwind.onmicrosoft.com"}}
	if d := cmp.Diff(want, c.AllTenants()); d != "" {
		t.Errorf("AllTenants (-want +got):\n%s", d)
	}
	if d, _ := c.DefaultTenant(); d.Name != "contoso" {
		t.Errorf("default tenant = %+v, want contoso's pair", d)
	}
	for s, label := range map[string]string{"FABRIKAM": "fabrikam", guidB: "fabrikam", strings.ToUpper(guidA): "contoso",
		"NorthWind.onmicrosoft.com": "northwind"} {
		if got, ok := c.LookupTenant(s); !ok || got.Label() != label {
			t.Errorf("LookupTenant(%q) = %+v, %v; want %s", s, got, ok, label)
		}
	}
	for _, s := range []string{"", "contoso.onmicrosoft.com", "33333333-3333-4333-8333-333333333333", "fabrikam " + guidB} {
		if got, ok := c.LookupTenant(s); ok {
			t.Errorf("LookupTenant(%q) = %+v, want not served", s, got)
		}
	}
}

func TestTenantsDefaultOutsideTheList(t *testing.T) {
	c, err := Load(env(map[string]string{"MDE_TENANT_ID": guidA, "MDE_CLIENT_ID": "app", "MDE_CLIENT_SECRET": "s",
		"MDE_TENANTS": "fabrikam=" + guidB}))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]Tenant{{"", guidA}, {"fabrikam", guidB}}, c.AllTenants()); d != "" {
		t.Errorf("MDE_TENANT_ID is served besides the list (-want +got):\n%s", d)
	}
	// Only MDE_TENANTS: no default.
	c, err = Load(env(map[string]string{"MDE_CLIENT_ID": "app", "MDE_CLIENT_SECRET": "s", "MDE_TENANTS": "fabrikam=" + guidB}))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.DefaultTenant(); ok {
		t.Error("a default tenant without MDE_TENANT_ID")
	}
	// Unset: one tenant, as before.
	c, err = Load(env(map[string]string{"MDE_TENANT_ID": guidA, "MDE_CLIENT_ID": "app", "MDE_CLIENT_SECRET": "s"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MultiTenant() || len(c.AllTenants()) != 1 {
		t.Errorf("without MDE_TENANTS: MultiTenant %v, tenants %v", c.MultiTenant(), c.AllTenants())
	}
}

func TestTenantsErrors(t *testing.T) {
	base := map[string]string{"MDE_CLIENT_ID": "app", "MDE_KEYVAULT_URL": "https://kv.vault.azure.net"}
	cases := []struct {
		name    string
		env     map[string]string
		setting string
		reason  string
	}{
		{"neither", map[string]string{}, "MDE_TENANT_ID", "required"},
		{"empty list", map[string]string{"MDE_TENANTS": " , "}, "MDE_TENANTS", "names no tenant"},
		{"bad id", map[string]string{"MDE_TENANTS": "a=not a tenant"}, "MDE_TENANTS", "not a tenant GUID"},
		{"bad name", map[string]string{"MDE_TENANTS": "Con so=" + guidA}, "MDE_TENANTS", "tenant name"},
		{"duplicate id", map[string]string{"MDE_TENANTS": "a=" + guidA + ",b=" + strings.ToUpper(guidA)}, "MDE_TENANTS", "twice"},
		{"duplicate name", map[string]string{"MDE_TENANTS": "a=" + guidA + ",a=" + guidB}, "MDE_TENANTS", "twice"},
		{"managed identity", map[string]string{"MDE_TENANTS": "a=" + guidA, "MDE_AUTH": "managed-identity"}, "MDE_TENANTS", "own tenant"},
		{"vault name from a domain", map[string]string{"MDE_TENANTS": "contoso.onmicrosoft.com", "MDE_SECRET_NAME": "mde-{tenant}"},
			"MDE_SECRET_NAME", "name=tenantId"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range base {
				m[k] = v
			}
			for k, v := range tc.env {
				m[k] = v
			}
			_, err := Load(env(m))
			e, ok := err.(*Error)
			if !ok || e.Setting != tc.setting || !strings.Contains(e.Reason, tc.reason) {
				t.Fatalf("Load = %v, want %s: …%s…", err, tc.setting, tc.reason)
			}
		})
	}
}

func TestTenantSecretNames(t *testing.T) {
	c, err := Load(env(map[string]string{"MDE_CLIENT_ID": "app", "MDE_AWS_SECRET_ID": "mde/{tenant}/client",
		"MDE_TENANTS": "fabrikam=" + guidB + ",contoso.onmicrosoft.com"}))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, tn := range c.AllTenants() {
		got = append(got, forTenant(c.AWSSecretID, tn))
	}
	if d := cmp.Diff([]string{"mde/fabrikam/client", "mde/contoso.onmicrosoft.com/client"}, got); d != "" {
		t.Errorf("secret IDs (-want +got):\n%s", d)
	}
}
