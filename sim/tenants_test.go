package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mdefn/mdefn/sim/defender"
)

// tenantToken gets a Defender token from tenant t's token endpoint with the
// default app.
func tenantToken(t *testing.T, s *Sim, tenant *Tenant) (string, error) {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: DefaultClientID, ClientSecret: DefaultClientSecret, TokenURL: tenant.TokenURL(),
		AuthStyle: oauth2.AuthStyleInParams, Scopes: []string{DefaultAudience + "/.default"}}
	tok, err := cfg.Token(s.ctx())
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func defenderGet(t *testing.T, s *Sim, tok, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.DefenderURL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTenantsApart(t *testing.T) {
	s := newSim(t, nil)
	home := s.Home()
	fab, err := s.AddTenant(TenantSpec{Name: "fabrikam"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddTenant(TenantSpec{ID: fab.ID()}); err == nil {
		t.Error("AddTenant of a served ID succeeded")
	}
	if s.Tenant("FABRIKAM.onmicrosoft.com") != fab || s.Tenant(s.TenantID()) != home || s.Tenant("nosuch") != nil {
		t.Error("Tenant() lookups by ID and domain are wrong")
	}
	s.ResetStats()

	homeTok, err := tenantToken(t, s, home)
	if err != nil {
		t.Fatal(err)
	}
	fabTok, err := tenantToken(t, s, fab)
	if err != nil {
		t.Fatalf("token from the consented tenant: %v", err)
	}
	c := parseClaims(t, fabTok)
	if c["tid"] != fab.ID() || c["iss"] != fab.Issuer() || !slices.Equal(toStrings(c["roles"]), ApplicationRoles()) {
		t.Errorf("fabrikam token claims tid=%v iss=%v roles=%v", c["tid"], c["iss"], c["roles"])
	}

	// Each tenant publishes its own key; a verifier of one tenant does not
	// accept the other's tokens.
	var homeKeys, fabKeys, commonKeys struct{ Keys []jwk }
	getJSON(t, s, home.JWKSURL(), nil, &homeKeys)
	getJSON(t, s, fab.JWKSURL(), nil, &fabKeys)
	getJSON(t, s, s.AuthorityURL()+"/common/discovery/keys", nil, &commonKeys)
	if len(homeKeys.Keys) != 1 || len(fabKeys.Keys) != 1 || homeKeys.Keys[0].Kid == fabKeys.Keys[0].Kid || len(commonKeys.Keys) != 2 {
		t.Errorf("JWKS home %v, fabrikam %v, common %d keys: want one key each, different, both in common", homeKeys.Keys, fabKeys.Keys, len(commonKeys.Keys))
	}

	// The token's tenant picks the Defender data.
	only := defender.Machine{ID: "fa00000000000000000000000000000000000001", ComputerDNSName: "only-in-fabrikam.fabrikam.local"}
	fab.Defender().AddMachine(only)
	if st, body := defenderGet(t, s, fabTok, "/api/machines/"+only.ID); st != 200 || !strings.Contains(body, only.ComputerDNSName) {
		t.Errorf("fabrikam token, fabrikam machine = %d %s, want 200", st, body)
	}
	if st, _ := defenderGet(t, s, homeTok, "/api/machines/"+only.ID); st != 404 {
		t.Errorf("home token, fabrikam machine = %d, want 404", st)
	}
	var homeAlerts, fabAlerts struct {
		Value []struct {
			ID          string `json:"id"`
			AADTenantID string `json:"aadTenantId"`
		} `json:"value"`
	}
	req := func(tok string, into any) {
		st, body := defenderGet(t, s, tok, "/api/alerts?$top=5")
		if st != 200 {
			t.Fatalf("alerts = %d %s", st, body)
		}
		decodeString(t, body, into)
	}
	req(homeTok, &homeAlerts)
	req(fabTok, &fabAlerts)
	if len(fabAlerts.Value) == 0 || fabAlerts.Value[0].AADTenantID != fab.ID() {
		t.Errorf("fabrikam alerts %v, want its own tenant ID", fabAlerts.Value)
	}
	// The fixed records tests rely on (SampleAlertID, the fixed machines)
	// are in every tenant; the generated ones are the tenant's own.
	shared := 0
	for _, a := range fabAlerts.Value {
		if a.AADTenantID != fab.ID() {
			t.Errorf("fabrikam alert %s has aadTenantId %s", a.ID, a.AADTenantID)
		}
		for _, b := range homeAlerts.Value {
			if a.ID == b.ID && a.ID != defender.SampleAlertID {
				shared++
			}
		}
	}
	if shared > 0 {
		t.Errorf("%d generated alerts are in both tenants", shared)
	}

	// A token claiming fabrikam but signed by the home key is refused, as
	// is one of a tenant not served.
	forged := s.IssueToken(TokenSpec{TenantID: fab.ID(), KeyID: homeKeys.Keys[0].Kid, Roles: ApplicationRoles()})
	if st, _ := defenderGet(t, s, forged, "/api/machines"); st != 401 {
		t.Errorf("fabrikam token with home key id = %d, want 401", st)
	}
	if st, _ := defenderGet(t, s, s.IssueToken(TokenSpec{TenantID: newGUID(), Roles: ApplicationRoles()}), "/api/machines"); st != 401 {
		t.Errorf("token of a tenant not served = %d, want 401", st)
	}
	if st, _ := defenderGet(t, s, fab.IssueToken(TokenSpec{Roles: ApplicationRoles()}), "/api/machines?$top=1"); st != 200 {
		t.Errorf("Tenant.IssueToken token = %d, want 200", st)
	}

	st := fab.Stats()
	if st.TokenRequests[DefaultClientID] != 1 || st.DefenderCalls["/api/alerts"] != 1 {
		t.Errorf("fabrikam stats %+v, want 1 token request and 1 alerts call", st)
	}
	if hs := home.Stats(); hs.TokenRequests[DefaultClientID] != 1 || hs.DefenderCalls["/api/alerts"] != 1 {
		t.Errorf("home stats %+v, want 1 token request and 1 alerts call", hs)
	}
	var sawFab bool
	for _, r := range s.Requests() {
		sawFab = sawFab || (r.Upstream == Defender && r.Tenant == fab.ID())
	}
	if !sawFab {
		t.Error("request log names no fabrikam Defender request")
	}
}

func TestTenantConsent(t *testing.T) {
	s := newSim(t, nil)
	other := s.AddApp(App{Secret: "other-secret", Roles: ApplicationRoles()})
	fab, err := s.AddTenant(TenantSpec{Name: "fabrikam", Consents: map[string][]string{other.ClientID: {"Alert.Read.All"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The default app is not consented in this tenant.
	_, err = tenantToken(t, s, fab)
	if e := asEntraError(t, err); e.Error != "unauthorized_client" || !slices.Contains(e.ErrorCodes, 700016) ||
		!strings.Contains(e.Description, "fabrikam.onmicrosoft.com") {
		t.Errorf("unconsented app: %+v, want AADSTS700016 naming fabrikam", e)
	}
	cfg := clientcredentials.Config{ClientID: other.ClientID, ClientSecret: "other-secret", TokenURL: fab.TokenURL(),
		AuthStyle: oauth2.AuthStyleInParams, Scopes: []string{DefaultAudience + "/.default"}}
	tok, err := cfg.Token(s.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if roles := toStrings(parseClaims(t, tok.AccessToken)["roles"]); !slices.Equal(roles, []string{"Alert.Read.All"}) {
		t.Errorf("roles = %v, want the tenant's grant, not the home roles", roles)
	}
	if st, _ := defenderGet(t, s, tok.AccessToken, "/api/machines"); st != 403 {
		t.Errorf("machines with Alert.Read.All only = %d, want 403", st)
	}
	// A wrong secret is still checked.
	cfg.ClientSecret = "wrong"
	if _, err := cfg.Token(s.ctx()); asEntraError(t, err).Error != "invalid_client" {
		t.Errorf("wrong secret in fabrikam: %v", err)
	}
	fab.RevokeConsent(other.ClientID)
	cfg.ClientSecret = "other-secret"
	if _, err := cfg.Token(s.ctx()); asEntraError(t, err).Error != "unauthorized_client" {
		t.Errorf("after RevokeConsent: %v, want unauthorized_client", err)
	}

	// The home tenant's vault refuses another tenant's token.
	if err := fab.Consent(DefaultClientID, ApplicationRoles()); err != nil {
		t.Fatal(err)
	}
	vcfg := clientcredentials.Config{ClientID: DefaultClientID, ClientSecret: DefaultClientSecret, TokenURL: fab.TokenURL(),
		AuthStyle: oauth2.AuthStyleInParams, Scopes: []string{VaultAudience + "/.default"}}
	vt, err := vcfg.Token(s.ctx())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.VaultURL()+"/secrets/"+DefaultSecretName+"?api-version=7.5", nil)
	req.Header.Set("Authorization", "Bearer "+vt.AccessToken)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(b), "AKV10032") {
		t.Errorf("vault with a fabrikam token = %d %s, want 401 AKV10032", resp.StatusCode, b)
	}
}

func TestTenantFault(t *testing.T) {
	s := newSim(t, nil)
	fab, err := s.AddTenant(TenantSpec{Name: "fabrikam"})
	if err != nil {
		t.Fatal(err)
	}
	s.Inject(Defender, Fault{Tenant: "fabrikam.onmicrosoft.com", Status: 429, Header: http.Header{"Retry-After": {"30"}}})
	s.Inject(Entra, Fault{Tenant: fab.ID(), PathPrefix: "/" + fab.ID() + "/discovery/", Status: 503})
	homeTok, _ := tenantToken(t, s, s.Home())
	fabTok, err := tenantToken(t, s, fab)
	if err != nil {
		t.Fatalf("fabrikam token endpoint is not faulted: %v", err)
	}
	if st, _ := defenderGet(t, s, fabTok, "/api/machines?$top=1"); st != 429 {
		t.Errorf("fabrikam Defender = %d, want the injected 429", st)
	}
	if st, _ := defenderGet(t, s, homeTok, "/api/machines?$top=1"); st != 200 {
		t.Errorf("home Defender = %d, want 200 (the fault is fabrikam's)", st)
	}
	if st := getJSON(t, s, fab.JWKSURL(), nil, nil); st != 503 {
		t.Errorf("fabrikam JWKS = %d, want 503", st)
	}
	if st := getJSON(t, s, s.JWKSURL(), nil, &struct{}{}); st != 200 {
		t.Errorf("home JWKS = %d, want 200", st)
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			s, _ := x.(string)
			out = append(out, s)
		}
	}
	return out
}

func decodeString(t *testing.T, body string, into any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), into); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}

// TestTenantPackageLink: another tenant's investigation package link is
// served under its own prefix, and only there.
func TestTenantPackageLink(t *testing.T) {
	s := newSim(t, nil)
	fab, err := s.AddTenant(TenantSpec{Name: "fabrikam"})
	if err != nil {
		t.Fatal(err)
	}
	a, ok := fab.Defender().AddAction(defender.MachineAction{MachineID: defender.UniqueMachineID,
		Type: defender.ActionCollectInvestigationPackage, Requestor: "analyst@fabrikam", RequestorComment: "earlier"})
	if !ok {
		t.Fatal("AddAction failed")
	}
	tok, err := tenantToken(t, s, fab)
	if err != nil {
		t.Fatal(err)
	}
	var link struct {
		Value string `json:"value"`
	}
	st, body := defenderGet(t, s, tok, "/api/machineactions/"+a.ID+"/GetPackageUri")
	if st != 200 {
		t.Fatalf("GetPackageUri = %d %s", st, body)
	}
	decodeString(t, body, &link)
	if !strings.HasPrefix(link.Value, s.DefenderURL()+"/t/"+fab.ID()+defender.PackagePathPrefix) {
		t.Fatalf("link %q is not under fabrikam's prefix", link.Value)
	}
	resp, err := s.HTTPClient().Get(link.Value)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("download = %d, want 200", resp.StatusCode)
	}
	// The same path without the prefix is the home tenant's, which has
	// no such action.
	resp, err = s.HTTPClient().Get(strings.Replace(link.Value, "/t/"+fab.ID(), "", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("fabrikam's package downloaded through the home tenant's path")
	}
}
