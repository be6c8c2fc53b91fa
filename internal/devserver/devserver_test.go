package devserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdefn/mdefn/functions"
	"github.com/mdefn/mdefn/internal/httpguard"
	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testSim is the one simulator of this test process: Go reads SSL_CERT_FILE
// once per process.
var testSim *sim.Sim

func TestMain(m *testing.M) {
	s, err := sim.Start(nil)
	if err != nil {
		panic(err)
	}
	testSim = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

// startTestStack runs mdefn dev's wiring on a free port with extra settings.
func startTestStack(t *testing.T, env map[string]string) (*devStack, *syncBuffer) {
	t.Helper()
	for _, k := range []string{"MDE_WEBHOOK_SECRET", "MDE_PROTECTED_TAGS", "MDE_DRY_RUN", "MDE_MAX_ISOLATIONS_PER_HOUR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	logs := &syncBuffer{}
	d, err := startDev("127.0.0.1:0", logs, testSim)
	if err != nil {
		t.Fatalf("startDev: %v", err)
	}
	t.Cleanup(d.Close)
	return d, logs
}

func do(t *testing.T, d *devStack, method, path, body string, header map[string]string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(method, d.base+path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out, string(b)
}

func TestDevStack(t *testing.T) {
	d, logs := startTestStack(t, nil)
	d.sim.ResetStats()
	var answers strings.Builder
	record := func(s string) { answers.WriteString(s); answers.WriteByte('\n') }

	status, out, raw := do(t, d, "GET", "/api/alerts?severity=High&top=5", "", nil)
	record(raw)
	if status != 200 || out["count"] != float64(5) {
		t.Fatalf("alerts = %d %s", status, raw)
	}
	body := `{"machineId":"` + defender.UniqueMachineID + `","comment":"e2e","ticket":"INC1"}`
	status, first, raw := do(t, d, "POST", "/api/isolate", body, nil)
	record(raw)
	if status != 201 {
		t.Fatalf("isolate = %d %s", status, raw)
	}
	status, again, raw := do(t, d, "POST", "/api/isolate", body, nil)
	record(raw)
	if status != 200 || again["alreadyPending"] != true {
		t.Fatalf("repeated isolate = %d %s", status, raw)
	}
	if first["action"].(map[string]any)["id"] != again["action"].(map[string]any)["id"] {
		t.Error("repeated isolate names another action")
	}
	status, out, raw = do(t, d, "GET", "/api/tokencheck", "", nil)
	record(raw)
	if status != 200 || out["valid"] != true || out["tokenType"] != "application" || out["appId"] != sim.DefaultClientID {
		t.Fatalf("tokencheck = %d %s", status, raw)
	}
	fns := out["functions"].(map[string]any)
	for _, name := range []string{"alerts", "isolate", "isolateByName", "tokencheck"} {
		if f, _ := fns[name].(map[string]any); f["allowed"] != true {
			t.Errorf("tokencheck functions[%s] = %v, want allowed", name, f)
		}
	}
	// A supplied token that fails verification is a 200 with its problems.
	expired := d.sim.IssueToken(sim.TokenSpec{IssuedAt: time.Now().Add(-3 * time.Hour), ExpiresAt: time.Now().Add(-2 * time.Hour), Roles: []string{"Alert.Read.All"}})
	status, out, raw = do(t, d, "POST", "/api/tokencheck", `{"token":"`+expired+`"}`, nil)
	record(raw)
	if status != 200 || out["valid"] != false || !strings.Contains(raw, `"expired"`) {
		t.Fatalf("tokencheck of an expired token = %d %s", status, raw)
	}
	isolate := out["functions"].(map[string]any)["isolate"].(map[string]any)
	if isolate["allowed"] != false || !strings.Contains(raw, "Machine.Isolate") {
		t.Errorf("tokencheck of an Alert.Read.All token: isolate = %v, want missing Machine.Isolate", isolate)
	}
	forged := d.sim.IssueToken(sim.TokenSpec{Unpublished: true})
	if _, out, raw = do(t, d, "POST", "/api/tokencheck", `{"token":"`+forged+`"}`, nil); out["valid"] != false || !strings.Contains(raw, `"signature"`) {
		t.Errorf("tokencheck of a token signed with an unpublished key = %s", raw)
	}
	if _, out, raw = do(t, d, "POST", "/api/tokencheck", `{"token":"not.a.token"}`, nil); out["valid"] != false || !strings.Contains(raw, `"malformed"`) {
		t.Errorf("tokencheck of garbage = %s", raw)
	}
	status, _, raw = do(t, d, "GET", "/api/openapi.json", "", nil)
	if status != 200 || !strings.Contains(raw, `"openapi": "3.1.0"`) {
		t.Errorf("openapi.json = %d", status)
	}

	// One vault read and one token request served every call above.
	st := d.sim.Stats()
	if got := st.VaultReads[sim.DefaultSecretName]; got != 1 {
		t.Errorf("vault reads = %d, want 1", got)
	}
	if got := st.TokenRequests[sim.DefaultClientID]; got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}

	// Leak canary: no secret and no token in any answer or log line.
	all := answers.String() + logs.String()
	for name, secret := range map[string]string{"client secret": sim.DefaultClientSecret, "supplied token": expired, "forged token": forged} {
		if strings.Contains(all, secret) {
			t.Errorf("the %s appears in an answer or a log line", name)
		}
	}
	if strings.Contains(all, "eyJ") {
		t.Errorf("something JWT-like appears in an answer or a log line")
	}
	if !strings.Contains(logs.String(), `"audit":"mdefn.isolate"`) {
		t.Errorf("no audit line in the logs")
	}
}

func TestDevStackWebhookAndProtection(t *testing.T) {
	d, _ := startTestStack(t, map[string]string{"MDE_WEBHOOK_SECRET": "hook-secret", "MDE_PROTECTED_TAGS": "DC, protected"})
	d.sim.Defender().ResetStats()
	body := `{"machineId":"` + defender.DCMachineID + `","comment":"x"}`
	if status, out, _ := do(t, d, "POST", "/api/isolate", body, nil); status != 401 || out["error"].(map[string]any)["code"] != "unauthorized" {
		t.Errorf("unsigned isolate = %d %v, want 401 unauthorized", status, out)
	}
	sig := map[string]string{"X-Hub-Signature-256": httpguard.Sign([]byte("hook-secret"), []byte(body))}
	if status, out, _ := do(t, d, "POST", "/api/isolate", body, sig); status != 403 || out["error"].(map[string]any)["code"] != "protected_device" {
		t.Errorf("signed isolate of a DC = %d %v, want 403 protected_device", status, out)
	}
	if status, _, _ := do(t, d, "GET", "/api/alerts?top=1", "", map[string]string{"X-Hub-Signature-256": httpguard.Sign([]byte("hook-secret"), nil)}); status != 200 {
		t.Errorf("signed GET = %d, want 200", status)
	}
	if n := d.sim.Defender().Stats().Calls["POST /api/machines/{id}/isolate"]; n != 0 {
		t.Errorf("Defender isolate POSTs = %d, want 0", n)
	}
}

// TestBannerCurlLines runs the curl lines mdefn dev prints, as a newcomer
// would paste them.
func TestBannerCurlLines(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	d, _ := startTestStack(t, map[string]string{"MDE_WEBHOOK_SECRET": "hook-secret"})
	d.sim.Defender().Reset()
	var banner bytes.Buffer
	printBanner(&banner, d.base, d.sim, d.cfg)
	lines := regexp.MustCompile(`(?m)^\s+(curl .*)$`).FindAllStringSubmatch(banner.String(), -1)
	// One per registered function, the package link, a release, the
	// alerts POST and the OpenAPI document; alerts and tokencheck of each
	// of the two tenants.
	if want := len(functions.All) + 4 + 4; len(lines) != want {
		t.Fatalf("banner has %d curl lines, want %d:\n%s", len(lines), want, banner.String())
	}
	for _, l := range lines {
		out, err := exec.Command("sh", "-c", l[1]+" -w ' HTTP%{http_code}' --max-time 20").CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", l[1], err, out)
			continue
		}
		if m := regexp.MustCompile(`HTTP(\d+)$`).FindStringSubmatch(string(out)); m == nil || m[1][0] != '2' {
			t.Errorf("%s answered %s", l[1], out[max(0, len(out)-300):])
		}
	}
}

// TestDevTenants: mdefn dev serves its default tenant and fabrikam, each
// with its own data and token, by name. (Before TestDemo, which moves the
// simulator's clock past the managed identity token MSAL caches for the
// process.)
func TestDevTenants(t *testing.T) {
	d, _ := startTestStack(t, nil)
	for _, tc := range []struct{ query, tenant string }{
		{"", d.sim.TenantID()}, {"tenant=" + homeName, d.sim.TenantID()}, {"tenant=" + FabrikamName, FabrikamTenantID},
	} {
		status, out, raw := do(t, d, "GET", "/api/tokencheck?"+tc.query, "", nil)
		if status != 200 || out["valid"] != true || out["tenantId"] != tc.tenant {
			t.Errorf("tokencheck?%s = %d %s, want valid for %s", tc.query, status, raw, tc.tenant)
		}
		if tc.query == "" {
			continue
		}
		status, out, raw = do(t, d, "GET", "/api/alerts?top=3&"+tc.query, "", nil)
		alerts, _ := out["value"].([]any)
		if status != 200 || len(alerts) == 0 {
			t.Fatalf("alerts?%s = %d %s", tc.query, status, raw)
		}
		if tc.tenant == FabrikamTenantID {
			for _, a := range alerts {
				if id := a.(map[string]any)["aadTenantId"]; id != FabrikamTenantID {
					t.Errorf("fabrikam's alerts include one of tenant %v", id)
				}
			}
		}
	}
	if status, out, _ := do(t, d, "GET", "/api/alerts?tenant=northwind", "", nil); status != 403 || out["error"].(map[string]any)["code"] != "tenant_not_allowed" {
		t.Errorf("a tenant not served = %d %v, want 403 tenant_not_allowed", status, out)
	}
}

// TestDemo runs the scripted walk on the dev stack: every step answers,
// the collection's download link is shown without its signature, and the
// tokencheck listing covers every registered check.
func TestDemo(t *testing.T) {
	d, _ := startTestStack(t, nil)
	// The walk moves the simulator's clock; afterwards every action it
	// started has ended, for the tests that follow.
	t.Cleanup(func() { testSim.Advance(time.Hour) })
	var out bytes.Buffer
	if err := runDemo(&out, d.base, d.sim, d.cfg); err != nil {
		t.Fatalf("runDemo: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{"Isolate ", "alreadyPending=true, same action: true", "Run a full antivirus scan", "RunAntiVirusScan",
		"Prefer: respond-async", "→ 202", "Location: http", "Retry-After: 10", "Succeeded", "CollectInvestigationPackage",
		"uri: https://", "Unisolate", "valid=true application token", "actionsPackage"} {
		if !strings.Contains(report, want) {
			t.Errorf("demo output lacks %q:\n%s", want, report)
		}
	}
	if regexp.MustCompile(`sig=|se=`).MatchString(report) {
		t.Errorf("demo output shows the package link's credential:\n%s", report)
	}
}
