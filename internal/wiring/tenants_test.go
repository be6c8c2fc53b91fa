package wiring

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// customers adds n tenants to the simulator, named c1..cn, and returns them
// with the MDE_TENANTS value serving them (the home tenant not included).
func customers(t *testing.T, s *sim.Sim, n int) ([]*sim.Tenant, string) {
	t.Helper()
	var ts []*sim.Tenant
	var list []string
	for i := range n {
		name := fmt.Sprintf("c%d", i+1)
		tn, err := s.AddTenant(sim.TenantSpec{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, tn)
		list = append(list, name+"="+tn.ID())
	}
	return ts, strings.Join(list, ",")
}

// TestTenantsCachedApart: 100 concurrent requests over five tenants, each
// with its own secret mde-{tenant} in the vault, make one secret read and
// one token request per tenant: each tenant's caches are its own, and each
// lets one upstream call run at a time. (tokencheck: it acquires and
// verifies the token, against the tenant's own keys, but spends no Defender
// call budget.)
func TestTenantsCachedApart(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tenants, list := customers(t, s, 5)
	env := s.Env(nil)
	t.Setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
	t.Setenv("IDENTITY_HEADER", env["IDENTITY_HEADER"])
	for i := range tenants {
		s.SetSecret(fmt.Sprintf("mde-c%d", i+1), sim.DefaultClientSecret)
	}
	c, logs := build(t, s, map[string]string{"MDE_TENANT_ID": "", "MDE_CLIENT_SECRET": "", "MDE_KEYVAULT_URL": s.VaultURL(),
		"MDE_SECRET_NAME": "mde-{tenant}", "MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION": "true", "MDE_TENANTS": list})
	s.ResetStats()
	var wg sync.WaitGroup
	type answer struct {
		status int
		out    map[string]any
	}
	answers := make([]answer, 100)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i].status, answers[i].out = serve(c, "GET", fmt.Sprintf("/api/tokencheck?tenant=c%d", i%5+1), "")
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if a.status != 200 || a.out["valid"] != true || a.out["tenantId"] != tenants[i%5].ID() {
			t.Fatalf("request %d (c%d) = %d %v, want valid for %s; logs:\n%s", i, i%5+1, a.status, a.out, tenants[i%5].ID(), logs)
		}
	}
	st := s.Stats()
	for i, tn := range tenants {
		name := fmt.Sprintf("mde-c%d", i+1)
		if st.VaultReads[name] != 1 {
			t.Errorf("vault reads of %s = %d, want 1", name, st.VaultReads[name])
		}
		if n := tn.Stats().TokenRequests[sim.DefaultClientID]; n != 1 {
			t.Errorf("c%d: %d token requests, want 1", i+1, n)
		}
	}
	if n := sumInts(st.VaultReads); n != 5 {
		t.Errorf("%d vault reads in all, want 5 (%v)", n, st.VaultReads)
	}
	if n := s.Home().Stats().TokenRequests[sim.DefaultClientID]; n != 0 {
		t.Errorf("%d app token requests to the home tenant, which is not served, want 0", n)
	}
}

func sumInts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestTenantDataApart: a request for one tenant reaches that tenant's
// Defender data with that tenant's token and never another's: an isolation
// for c2 is an action in c2 alone, a machine of c2 is not found through c1,
// each tenant's alerts are its own, and Defender saw only tokens of the
// tenant asked for.
func TestTenantDataApart(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tenants, list := customers(t, s, 2)
	c1, c2 := tenants[0], tenants[1]
	only := defender.Machine{ID: "c200000000000000000000000000000000000002", ComputerDNSName: "ws-only-c2.fabrikam.local"}
	c2.Defender().AddMachine(only)
	c, _ := build(t, s, map[string]string{"MDE_TENANT_ID": "", "MDE_TENANTS": list})
	s.ResetStats()

	status, out := serve(c, "POST", "/api/isolate", `{"tenant":"c2","machineId":"`+defender.UniqueMachineID+`","comment":"ticket 7"}`)
	if status != 200 && status != 201 && status != 202 {
		t.Fatalf("isolate in c2 = %d %v", status, out)
	}
	if n := len(c2.Defender().Actions()); n != 1 {
		t.Errorf("c2 has %d machine actions, want 1", n)
	}
	if n := len(c1.Defender().Actions()) + len(s.Defender().Actions()); n != 0 {
		t.Errorf("the other tenants have %d machine actions, want 0", n)
	}
	if c1.Stats().DefenderCalls != nil || c1.Stats().TokenRequests != nil {
		t.Errorf("c1 saw traffic for a c2 request: %+v", c1.Stats())
	}
	// c2's own machine, through c2 and through c1.
	if status, out := serve(c, "POST", "/api/isolate", `{"tenant":"c2","machineId":"`+only.ID+`","comment":"x","dryRun":true}`); status != 200 {
		t.Errorf("dry run on c2's machine in c2 = %d %v, want 200", status, out)
	}
	if status, out := serve(c, "POST", "/api/isolate", `{"tenant":"c1","machineId":"`+only.ID+`","comment":"x"}`); status != 404 {
		t.Errorf("c2's machine through c1 = %d %v, want 404", status, out)
	}
	if status, out := serve(c, "POST", "/api/isolate", `{"tenant":"c1","deviceName":"`+only.ComputerDNSName+`","comment":"x"}`); status != 404 {
		t.Errorf("c2's machine name through c1 = %d %v, want 404", status, out)
	}
	for _, tn := range tenants {
		status, out := serve(c, "GET", "/api/alerts?top=20&tenant="+tn.ID(), "")
		if status != 200 {
			t.Fatalf("alerts %s = %d %v", tn.Domain(), status, out)
		}
		alerts, _ := out["value"].([]any)
		if len(alerts) == 0 {
			t.Errorf("alerts %s: none", tn.Domain())
		}
		for _, a := range alerts {
			if id := a.(map[string]any)["aadTenantId"]; id != tn.ID() {
				t.Errorf("alerts of %s include one of tenant %v", tn.Domain(), id)
				break
			}
		}
	}
	for _, r := range s.Requests() {
		if r.Upstream == sim.Defender && r.Tenant != c1.ID() && r.Tenant != c2.ID() {
			t.Errorf("a Defender request with a token of tenant %q", r.Tenant)
		}
	}
	if n := s.Home().Stats().DefenderCalls; n != nil {
		t.Errorf("the home tenant, not served, saw Defender calls %v", n)
	}
}

// TestTenantThrottleStormApart: while Defender answers every call of c1
// with 429 (Retry-After 2 s) and c1's requests keep retrying, c2's requests
// are answered as fast as before the storm: no c2 request waits for c1's
// throttling, whose smallest wait is 2 s.
func TestTenantThrottleStormApart(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tenants, list := customers(t, s, 2)
	c1 := tenants[0]
	// c1's requests give up after 3 s of retrying.
	c, _ := build(t, s, map[string]string{"MDE_TENANT_ID": "", "MDE_TENANTS": list, "MDE_TIMEOUT": "3s"})
	refused := func() int {
		n := 0
		for _, r := range s.Requests() {
			if r.Upstream == sim.Defender && r.Fault && r.Tenant == c1.ID() {
				n++
			}
		}
		return n
	}
	measure := func(n int) []time.Duration {
		var d []time.Duration
		for range n {
			start := time.Now()
			if status, out := serve(c, "GET", "/api/alerts?top=5&tenant=c2", ""); status != 200 {
				t.Fatalf("c2 alerts = %d %v", status, out)
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		return d
	}
	// c2's own Defender budget is 25 calls at once (then one every 0.8 s):
	// 2 + 10 + 10 stay within it.
	measure(2) // warm c2's token and connections
	before := measure(10)

	s.Inject(sim.Defender, sim.Fault{Tenant: c1.ID(), Status: 429,
		Header: http.Header{"Retry-After": {"2"}, "Content-Type": {"application/json"}},
		Body:   []byte(`{"error":{"code":"TooManyRequests","message":"Rate limit is exceeded. Try again in 2 seconds.","target":"x"}}`)})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var c1Statuses sync.Map
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, _ := serve(c, "GET", "/api/alerts?top=5&tenant=c1", "")
				c1Statuses.Store(i, status)
			}
		}()
	}
	// Let the storm start: c1's calls are being refused.
	deadline := time.Now().Add(5 * time.Second)
	for refused() < 16 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	during := measure(10)
	close(stop)
	wg.Wait()

	if got := refused(); got < 16 {
		t.Fatalf("c1 had %d Defender calls refused, want the storm to have started (>= 16)", got)
	}
	c1Statuses.Range(func(_, v any) bool {
		if v.(int) == 200 {
			t.Errorf("a c1 request succeeded during its 429 storm")
		}
		return true
	})
	p50b, p50d, maxd := before[len(before)/2], during[len(during)/2], during[len(during)-1]
	t.Logf("c2 latency before the storm p50 %v max %v; during p50 %v max %v", p50b, before[len(before)-1], p50d, maxd)
	if maxd >= time.Second {
		t.Errorf("a c2 request took %v during c1's storm: it waited behind c1's throttling", maxd)
	}
	if p50d > 5*p50b+50*time.Millisecond {
		t.Errorf("c2 p50 %v during c1's storm against %v before", p50d, p50b)
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
