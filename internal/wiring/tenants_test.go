package wiring

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

const otherTenant = "22222222-2222-4222-8222-222222222222"

func code(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// upstreamCalls counts every request the simulator received.
func upstreamCalls(s *sim.Sim) int {
	n := 0
	for _, v := range s.Stats().Calls {
		n += v
	}
	return n
}

// TestTenantRouting: with MDE_TENANTS, a request names its tenant in the
// query or the body; one not served is refused before anything is read or
// sent; the field does not reach the function; the logs name the tenant.
func TestTenantRouting(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, logs := build(t, s, map[string]string{"MDE_TENANTS": "home=" + s.TenantID() + ",other=" + otherTenant})

	s.ResetStats()
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/alerts?tenant=nosuch", ""},
		{"POST", "/api/isolate", `{"tenant":"` + s.TenantDomain() + `","machineId":"` + defender.UniqueMachineID + `","comment":"x"}`},
		{"GET", "/api/tokencheck?tenant=33333333-3333-4333-8333-333333333333", ""},
	} {
		status, out := serve(c, r.method, r.path, r.body)
		if status != 403 || code(out) != "tenant_not_allowed" {
			t.Errorf("%s %s %s = %d %v, want 403 tenant_not_allowed", r.method, r.path, r.body, status, out)
		}
	}
	if n := upstreamCalls(s); n != 0 {
		t.Errorf("refused tenants made %d upstream calls, want 0", n)
	}

	for _, r := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/api/alerts?tenant=HOME&severity=High&top=2", "", 200, ""},
		{"GET", "/api/alerts?top=2", "", 200, ""}, // the default tenant
		{"POST", "/api/isolate", `{"tenant":"home","machineId":"` + defender.UniqueMachineID + `","comment":"x","dryRun":true}`, 200, ""},
		{"POST", "/api/isolate", `{"tenant":"` + s.TenantID() + `","machineId":"` + defender.UniqueMachineID + `","comment":"x","dryRun":true}`, 200, ""},
		{"POST", "/api/isolate?tenant=home", `{"tenant":"other","machineId":"` + defender.UniqueMachineID + `","comment":"x"}`, 400, "invalid_request"},
		{"POST", "/api/isolate", `{"tenant":7,"machineId":"` + defender.UniqueMachineID + `","comment":"x"}`, 400, "invalid_request"},
		{"POST", "/api/isolate", `{"tenant":"","machineId":"` + defender.UniqueMachineID + `","comment":"x"}`, 400, "invalid_request"},
		// Other fields are still checked strictly by the function.
		{"POST", "/api/isolate", `{"tenant":"home","machineId":"` + defender.UniqueMachineID + `","comment":"x","tenantId":"y"}`, 400, "invalid_request"},
	} {
		status, out := serve(c, r.method, r.path, r.body)
		if status != r.status || code(out) != r.code {
			t.Errorf("%s %s %s = %d %v, want %d %s", r.method, r.path, r.body, status, out, r.status, r.code)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			t.Fatalf("not a JSON log line: %s", line)
		}
		if m["msg"] == "request failed" && m["code"] == "tenant_not_allowed" {
			continue // the tenant is the problem: the line says which was asked for
		}
		if _, start := m["tenant"]; !start && !strings.Contains(line, "MDE_CLIENT_SECRET") {
			t.Errorf("a log line names no tenant: %s", line)
		}
	}

	// The asynchronous answer's Location names the tenant, so that the
	// poll reaches it.
	req := httptest.NewRequest("POST", "/api/collect", strings.NewReader(`{"tenant":"home","machineId":"`+defender.UniqueMachineID+`","comment":"x"}`))
	req.Header.Set("Prefer", "respond-async")
	w := httptest.NewRecorder()
	c.App.HTTPHandler().ServeHTTP(w, req)
	if loc := w.Header().Get("Location"); w.Code != 202 || !strings.HasSuffix(loc, "?tenant=home") {
		t.Fatalf("collect respond-async = %d Location %q, want 202 naming the tenant", w.Code, loc)
	}
	if status, out := serve(c, "GET", strings.TrimPrefix(w.Header().Get("Location"), "http://example.com"), ""); status != 200 && status != 202 {
		t.Errorf("GET Location = %d %v", status, out)
	}
}

// TestTenantWithoutDefault: with MDE_TENANTS and no MDE_TENANT_ID, a
// request must name its tenant.
func TestTenantWithoutDefault(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, _ := build(t, s, map[string]string{"MDE_TENANT_ID": "", "MDE_TENANTS": "home=" + s.TenantID()})
	if c.Tenant != nil {
		t.Error("a default tenant without MDE_TENANT_ID")
	}
	if status, out := serve(c, "GET", "/api/alerts?top=1", ""); status != 400 || !strings.Contains(out["error"].(map[string]any)["message"].(string), "tenant") {
		t.Errorf("no tenant = %d %v, want 400 asking for one", status, out)
	}
	if status, out := serve(c, "GET", "/api/alerts?top=1&tenant=home", ""); status != 200 {
		t.Errorf("tenant=home = %d %v, want 200", status, out)
	}
	if _, ok := c.ForTenant("home"); !ok {
		t.Error("ForTenant(home) not found")
	}
}

// TestSingleTenantUnchanged: without MDE_TENANTS a tenant field is what it
// was, an unknown field.
func TestSingleTenantUnchanged(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, _ := build(t, s, nil)
	if status, out := serve(c, "POST", "/api/isolate", `{"tenant":"x","machineId":"`+defender.UniqueMachineID+`","comment":"x"}`); status != 400 {
		t.Errorf("tenant without MDE_TENANTS = %d %v, want 400", status, out)
	}
}

// TestSecretJSONTenantGoverns: MDE_TENANT_ID names one tenant and the
// secret's JSON another: the token is the JSON tenant's, and tokencheck
// verifies it against that tenant (issuer, keys), not the environment's.
func TestSecretJSONTenantGoverns(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	secret, _ := json.Marshal(map[string]string{"clientSecret": sim.DefaultClientSecret, "tenantId": s.TenantID()})
	c, _ := build(t, s, map[string]string{"MDE_TENANT_ID": otherTenant, "MDE_CLIENT_SECRET": string(secret)})
	status, out := serve(c, "GET", "/api/tokencheck", "")
	if status != 200 || out["valid"] != true || out["tenantId"] != s.TenantID() {
		t.Errorf("tokencheck = %d %v, want valid for the JSON's tenant", status, out)
	}
	tok := s.IssueToken(sim.TokenSpec{})
	body, _ := json.Marshal(map[string]string{"token": tok})
	if status, out := serve(c, "POST", "/api/tokencheck", string(body)); status != 200 || out["valid"] != true {
		t.Errorf("tokencheck of a supplied token = %d %v, want valid", status, out)
	}

	// With MDE_TENANTS, a secret naming another tenant than the one it
	// serves is refused, never followed.
	c, logs := build(t, s, map[string]string{"MDE_TENANT_ID": otherTenant, "MDE_CLIENT_SECRET": string(secret),
		"MDE_TENANTS": "other=" + otherTenant})
	s.ResetStats()
	status, out = serve(c, "GET", "/api/alerts?top=1", "")
	if status != 502 || code(out) != "secret_unavailable" || !strings.Contains(out["error"].(map[string]any)["message"].(string), "tenantId") {
		t.Errorf("alerts with a secret of another tenant = %d %v, want 502 secret_unavailable naming tenantId", status, out)
	}
	if n := s.Stats().TokenRequests[sim.DefaultClientID]; n != 0 {
		t.Errorf("%d token requests for a secret of another tenant, want 0", n)
	}
	if strings.Contains(logs.String(), sim.DefaultClientSecret) {
		t.Error("the client secret is in the logs")
	}
}

// TestTenantsCachedApart: 100 concurrent requests over two tenants (the
// simulator's tenant by its GUID and by its domain are two entries of
// MDE_TENANTS, each with its own secret mde-{tenant}) make one secret read
// and one token request per tenant: each tenant's caches are its own, and
// each lets one upstream call run at a time. (tokencheck: it acquires and
// verifies the token but spends no Defender call budget.)
func TestTenantsCachedApart(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	env := s.Env(nil)
	t.Setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
	t.Setenv("IDENTITY_HEADER", env["IDENTITY_HEADER"])
	s.SetSecret("mde-home", sim.DefaultClientSecret)
	s.SetSecret("mde-alias", sim.DefaultClientSecret)
	c, logs := build(t, s, map[string]string{"MDE_CLIENT_SECRET": "", "MDE_KEYVAULT_URL": s.VaultURL(), "MDE_SECRET_NAME": "mde-{tenant}",
		"MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION": "true",
		"MDE_TENANTS": "home=" + s.TenantID() + ",alias=" + s.TenantDomain()})
	s.ResetStats()
	var wg sync.WaitGroup
	statuses := make([]int, 100)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := []string{"home", "alias"}[i%2]
			statuses[i], _ = serve(c, "GET", "/api/tokencheck?tenant="+tenant, "")
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		if st != 200 {
			t.Fatalf("request %d = %d, want 200; logs:\n%s", i, st, logs)
		}
	}
	st := s.Stats()
	if st.VaultReads["mde-home"] != 1 || st.VaultReads["mde-alias"] != 1 {
		t.Errorf("vault reads = %v, want one per tenant's secret", st.VaultReads)
	}
	if n := st.TokenRequests[sim.DefaultClientID]; n != 2 {
		t.Errorf("%d token requests for the app, want 2 (one per tenant)", n)
	}
	if home, _ := c.ForTenant("home"); home.Tokens.Stats().Requests != 1 {
		t.Errorf("home's token source made %d requests, want 1", home.Tokens.Stats().Requests)
	}
}

// TestTenantBudgetsApart: one tenant that has spent its Defender call
// budget waits for it; another tenant's request, sent meanwhile, does not
// wait behind it (each tenant's budget is its own, as Defender's limits are
// per app and tenant).
func TestTenantBudgetsApart(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, _ := build(t, s, map[string]string{"MDE_TENANTS": "home=" + s.TenantID() + ",alias=" + s.TenantDomain()})
	// Warm both tenants' tokens, then spend home's burst (100 a minute:
	// 25 at once, then one every 0.8 s) and two more.
	for _, tn := range []string{"home", "alias"} {
		if st, out := serve(c, "GET", "/api/tokencheck?tenant="+tn, ""); st != 200 {
			t.Fatalf("tokencheck %s = %d %v", tn, st, out)
		}
	}
	const n = 27
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := serve(c, "GET", "/api/alerts?top=1&tenant=home", "")
			mu.Lock()
			order = append(order, "home "+http.StatusText(st))
			mu.Unlock()
		}()
	}
	// Let home's requests reach its budget first.
	for {
		mu.Lock()
		done := len(order)
		mu.Unlock()
		if done >= n-2 {
			break
		}
		runtime.Gosched()
	}
	st, _ := serve(c, "GET", "/api/alerts?top=1&tenant=alias", "")
	mu.Lock()
	order = append(order, "alias "+http.StatusText(st))
	homeDone := len(order) - 1
	mu.Unlock()
	wg.Wait()
	if homeDone == n {
		t.Errorf("alias answered only after every home request, which were waiting on home's budget: %v", order)
	}
	for _, o := range order {
		if !strings.HasSuffix(o, "OK") {
			t.Errorf("answers %v, want all 200", order)
			break
		}
	}
}
