package doctor

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mdefn/mdefn/sim"
)

// TestDoctorTenants: --tenant checks one served tenant as a deployment
// serving it alone; a tenant that is not served fails at the configuration;
// --all-tenants reports each, and fails when one fails.
func TestDoctorTenants(t *testing.T) {
	useSDKEnv(t)
	unknown := newTestGUID(t) // a tenant the simulator does not know
	getenv := doctorGetenv(map[string]string{"MDE_TENANTS": "home=" + testSim.TenantID() + ",gone=" + unknown})

	var out bytes.Buffer
	if !RunTenant(&out, getenv, testSim.HTTPClient(), "HOME") {
		t.Errorf("--tenant home failed:\n%s", out.String())
	}
	out.Reset()
	if RunTenant(&out, getenv, testSim.HTTPClient(), "nosuch") || !strings.Contains(out.String(), "not served") {
		t.Errorf("--tenant nosuch passed or said nothing of it:\n%s", out.String())
	}
	out.Reset()
	if RunAll(&out, getenv, testSim.HTTPClient()) {
		t.Errorf("--all-tenants passed with an unknown tenant:\n%s", out.String())
	}
	if s := out.String(); !strings.Contains(s, "== tenant home") || !strings.Contains(s, "== tenant gone") || !strings.Contains(s, unknown) {
		t.Errorf("--all-tenants does not report each tenant:\n%s", s)
	}
	out.Reset()
	noDefault := doctorGetenv(map[string]string{"MDE_TENANT_ID": "", "MDE_TENANTS": "home=" + testSim.TenantID()})
	if RunTenant(&out, noDefault, testSim.HTTPClient(), "") || !strings.Contains(out.String(), "--all-tenants") {
		t.Errorf("no default tenant and no --tenant passed:\n%s", out.String())
	}

	// A second tenant the simulator serves, consented to the app: both
	// pass; once its consent is revoked, it alone fails.
	second, err := testSim.AddTenant(sim.TenantSpec{})
	if err != nil {
		t.Fatal(err)
	}
	both := doctorGetenv(map[string]string{"MDE_TENANTS": "home=" + testSim.TenantID() + ",second=" + second.ID()})
	out.Reset()
	if !RunAll(&out, both, testSim.HTTPClient()) {
		t.Errorf("--all-tenants failed with two served tenants:\n%s", out.String())
	}
	second.RevokeConsent(sim.DefaultClientID)
	out.Reset()
	if RunAll(&out, both, testSim.HTTPClient()) || !strings.Contains(out.String(), "700016") {
		t.Errorf("--all-tenants passed, or did not say why, with the app not consented in one tenant:\n%s", out.String())
	}
	out.Reset()
	if !RunTenant(&out, both, testSim.HTTPClient(), "home") {
		t.Errorf("--tenant home failed while only second is broken:\n%s", out.String())
	}
	if code := Command([]string{"--tenant"}); code != 2 {
		t.Errorf("--tenant without a value = exit %d, want 2", code)
	}
}
