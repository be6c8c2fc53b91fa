package wiring

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/sim"
	"github.com/mdefn/mdefn/sim/defender"
)

// build wires the functions to s with the client secret in the environment.
func build(t *testing.T, s *sim.Sim, extra map[string]string) (*Components, *bytes.Buffer) {
	t.Helper()
	env := map[string]string{
		"MDE_TENANT_ID": s.TenantID(), "MDE_CLIENT_ID": sim.DefaultClientID, "MDE_CLIENT_SECRET": sim.DefaultClientSecret,
		"MDE_AUTHORITY_URL": s.AuthorityURL(), "MDE_API_URL": s.DefenderURL(), "MDE_TOKEN_AUDIENCE": s.Audience(),
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	c, err := Build(cfg, &Options{HTTPClient: s.HTTPClient(), Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c, logs
}

func serve(c *Components, method, path, body string) (int, map[string]any) {
	w := httptest.NewRecorder()
	c.App.HTTPHandler().ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func TestBuild(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	c, logs := build(t, s, map[string]string{"MDE_MAX_ISOLATIONS_PER_HOUR": "5"})
	if !strings.Contains(logs.String(), "MDE_CLIENT_SECRET") {
		t.Errorf("no start warning about the plain-environment secret in %s", logs)
	}
	status, out := serve(c, "POST", "/api/isolate", `{"machineId":"`+defender.UniqueMachineID+`","comment":"x"}`)
	if status != 201 {
		t.Fatalf("isolate with a budget = %d %v, want 201", status, out)
	}
	if status, _ := serve(c, "GET", "/api/isolate", ""); status != 405 {
		t.Errorf("GET /api/isolate = %d, want 405", status)
	}
	if status, _ := serve(c, "GET", "/api/openapi.json", ""); status != 200 {
		t.Errorf("GET /api/openapi.json = %d, want 200", status)
	}
	if strings.Contains(logs.String(), sim.DefaultClientSecret) {
		t.Error("the client secret is in the logs")
	}

	// Entra hands out something that is not a JWT: Defender refuses it (or,
	// were it accepted, the budget could not tell who the requestor is).
	// Either way a 502, and nothing is sent.
	s.Inject(sim.Entra, sim.Fault{Status: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: []byte(`{"token_type":"Bearer","expires_in":3599,"access_token":"opaque-not-a-jwt"}`)})
	c, _ = build(t, s, map[string]string{"MDE_MAX_ISOLATIONS_PER_HOUR": "5"})
	before := len(s.Defender().Actions())
	status, out = serve(c, "POST", "/api/isolate", `{"machineId":"`+defender.KnownIPMachineID+`","comment":"x"}`)
	e, _ := out["error"].(map[string]any)
	if status != 502 || (e["code"] != "token_acquisition_failed" && e["code"] != "upstream_error") {
		t.Errorf("isolate with an unreadable token = %d %v, want 502", status, out)
	}
	if got := len(s.Defender().Actions()); got != before {
		t.Errorf("Defender actions %d → %d, want none created", before, got)
	}
}

// TestNeverBlockSetting: a malformed MDE_INDICATOR_NEVER_BLOCK stops the
// build, naming the setting; a good one reaches the indicators function.
func TestNeverBlockSetting(t *testing.T) {
	cfg, err := config.Load(func(k string) string {
		return map[string]string{"MDE_TENANT_ID": "contoso.onmicrosoft.com", "MDE_CLIENT_ID": "c", "MDE_CLIENT_SECRET": "s",
			"MDE_INDICATOR_NEVER_BLOCK": "contoso.com, not a domain"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(cfg, &Options{Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "MDE_INDICATOR_NEVER_BLOCK") {
		t.Errorf("Build with a malformed MDE_INDICATOR_NEVER_BLOCK = %v, want an error naming it", err)
	}
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, _ := build(t, s, map[string]string{"MDE_INDICATOR_NEVER_BLOCK": "contoso.com"})
	status, out := serve(c, http.MethodPost, "/api/indicators", `{"indicatorType":"DomainName","indicatorValue":"login.contoso.com","action":"Block","title":"t"}`)
	if status != http.StatusForbidden {
		t.Errorf("blocking a protected domain = %d %v, want 403", status, out)
	}
}
