package sim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// parseClaims decodes a token's claims without verifying it.
func parseClaims(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatalf("ParseUnverified(%q): %v", tok, err)
	}
	return claims
}

// entraError is the JSON error body of the token endpoint.
type entraError struct {
	Status      int    `json:"-"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
	ErrorCodes  []int  `json:"error_codes"`
	TraceID     string `json:"trace_id"`
	Correlation string `json:"correlation_id"`
}

// asEntraError reads the *oauth2.RetrieveError behind err.
func asEntraError(t *testing.T, err error) entraError {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v, want *oauth2.RetrieveError", err)
	}
	var e entraError
	if jerr := json.Unmarshal(re.Body, &e); jerr != nil {
		t.Fatalf("RetrieveError body %q: %v", re.Body, jerr)
	}
	e.Status = re.Response.StatusCode
	return e
}

func (s *Sim) ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, s.HTTPClient())
}

func TestClientCredentials(t *testing.T) {
	s := newSim(t, nil)
	tests := []struct {
		name string
		cfg  clientcredentials.Config
	}{
		{"v1 in params", clientcredentials.Config{TokenURL: s.TokenURLv1(), AuthStyle: oauth2.AuthStyleInParams,
			EndpointParams: url.Values{"resource": {DefaultAudience}}}},
		{"v1 basic", clientcredentials.Config{TokenURL: s.TokenURLv1(), AuthStyle: oauth2.AuthStyleInHeader,
			EndpointParams: url.Values{"resource": {DefaultAudience}}}},
		{"v2 in params", clientcredentials.Config{TokenURL: s.TokenURL(), AuthStyle: oauth2.AuthStyleInParams,
			Scopes: []string{DefaultAudience + "/.default"}}},
		{"v2 basic", clientcredentials.Config{TokenURL: s.TokenURL(), AuthStyle: oauth2.AuthStyleInHeader,
			Scopes: []string{DefaultAudience + "/.default"}}},
		{"v2 tenant domain", clientcredentials.Config{TokenURL: s.AuthorityURL() + "/" + DefaultTenantDomain + "/oauth2/v2.0/token",
			AuthStyle: oauth2.AuthStyleInParams, Scopes: []string{DefaultAudience + "/.default"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.ClientID, cfg.ClientSecret = DefaultClientID, DefaultClientSecret
			before := s.Now()
			tok, err := cfg.Token(s.ctx())
			if err != nil {
				t.Fatalf("Token() error: %v", err)
			}
			if d := tok.Expiry.Sub(before); d < DefaultTokenLifetime-5*time.Second || d > DefaultTokenLifetime+5*time.Second {
				t.Errorf("Token() expiry in %v, want about %v", d, DefaultTokenLifetime)
			}
			c := parseClaims(t, tok.AccessToken)
			got := map[string]any{"aud": c["aud"], "iss": c["iss"], "appid": c["appid"], "appidacr": c["appidacr"],
				"tid": c["tid"], "ver": c["ver"], "roles": c["roles"]}
			want := map[string]any{"aud": DefaultAudience, "iss": "https://sts.windows.net/" + DefaultTenantID + "/",
				"appid": DefaultClientID, "appidacr": "1", "tid": DefaultTenantID, "ver": "1.0",
				"roles": anyOf(ApplicationRoles())}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("token claims mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClientCredentialsSecretNeedingEscape(t *testing.T) {
	s := newSim(t, nil)
	app := s.AddApp(App{Secret: "a+b/c=d%e&f~g h", Roles: []string{"Machine.Isolate"}})
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInParams, oauth2.AuthStyleInHeader} {
		cfg := clientcredentials.Config{ClientID: app.ClientID, ClientSecret: app.Secret, TokenURL: s.TokenURL(),
			Scopes: []string{DefaultAudience + "/.default"}, AuthStyle: style}
		tok, err := cfg.Token(s.ctx())
		if err != nil {
			t.Fatalf("Token() with AuthStyle %v error: %v", style, err)
		}
		if got := parseClaims(t, tok.AccessToken)["roles"]; !cmp.Equal(got, []any{"Machine.Isolate"}) {
			t.Errorf("roles = %v, want [Machine.Isolate]", got)
		}
	}
}

func TestTokenResponseShape(t *testing.T) {
	s := newSim(t, nil)
	post := func(endpoint string, form url.Values) map[string]any {
		resp, err := s.HTTPClient().PostForm(endpoint, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return body
	}
	base := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}}
	v1 := post(s.TokenURLv1(), withForm(base, "resource", VaultAudience))
	if _, ok := v1["expires_in"].(string); !ok || v1["resource"] != VaultAudience || v1["expires_on"] == nil || v1["not_before"] == nil {
		t.Errorf("v1 answer = %v, want expires_in as a string, expires_on, not_before and resource %q", v1, VaultAudience)
	}
	v2 := post(s.TokenURL(), withForm(base, "scope", VaultAudience+"/.default"))
	if n, ok := v2["expires_in"].(float64); !ok || n != 3599 || v2["ext_expires_in"] == nil || v2["token_type"] != "Bearer" {
		t.Errorf("v2 answer = %v, want expires_in 3599 as a number, ext_expires_in and token_type Bearer", v2)
	}
	if _, ok := v2["resource"]; ok {
		t.Errorf("v2 answer has resource: %v", v2)
	}
}

func withForm(v url.Values, kv ...string) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = slices.Clone(vs)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Set(kv[i], kv[i+1])
	}
	return c
}

func TestClientCredentialsErrors(t *testing.T) {
	s := newSim(t, nil)
	v2 := func(mod func(*clientcredentials.Config)) clientcredentials.Config {
		c := clientcredentials.Config{ClientID: DefaultClientID, ClientSecret: DefaultClientSecret, TokenURL: s.TokenURL(),
			Scopes: []string{DefaultAudience + "/.default"}, AuthStyle: oauth2.AuthStyleInParams}
		mod(&c)
		return c
	}
	tests := []struct {
		name       string
		cfg        clientcredentials.Config
		wantStatus int
		wantError  string
		wantCode   int
	}{
		{"bad secret", v2(func(c *clientcredentials.Config) { c.ClientSecret = "wrong" }), 401, "invalid_client", 7000215},
		{"bad secret basic", v2(func(c *clientcredentials.Config) { c.ClientSecret = "wrong"; c.AuthStyle = oauth2.AuthStyleInHeader }),
			401, "invalid_client", 7000215},
		{"no secret", v2(func(c *clientcredentials.Config) { c.ClientSecret = "" }), 401, "invalid_client", 7000216},
		{"unknown app", v2(func(c *clientcredentials.Config) { c.ClientID = "11111111-2222-3333-4444-555555555555" }),
			400, "unauthorized_client", 700016},
		{"unknown tenant", v2(func(c *clientcredentials.Config) {
			c.TokenURL = s.AuthorityURL() + "/contoso.onmicrosoft.com/oauth2/v2.0/token"
		}), 400, "invalid_request", 90002},
		{"unknown resource v2", v2(func(c *clientcredentials.Config) { c.Scopes = []string{"https://graph.example/.default"} }),
			400, "invalid_resource", 500011},
		{"unknown resource v1", v2(func(c *clientcredentials.Config) {
			c.TokenURL, c.Scopes, c.EndpointParams = s.TokenURLv1(), nil, url.Values{"resource": {"https://nope.example"}}
		}), 400, "invalid_resource", 500011},
		{"v2 scope without .default", v2(func(c *clientcredentials.Config) { c.Scopes = []string{DefaultAudience + "/Alert.Read.All"} }),
			400, "invalid_scope", 1002012},
		{"v1 without resource", v2(func(c *clientcredentials.Config) { c.TokenURL, c.Scopes = s.TokenURLv1(), nil }),
			400, "invalid_request", 900144},
		{"unsupported grant", v2(func(c *clientcredentials.Config) { c.EndpointParams = url.Values{"grant_type": {"implicit"}} }),
			400, "unsupported_grant_type", 70003},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.Token(s.ctx())
			e := asEntraError(t, err)
			if e.Status != tt.wantStatus || e.Error != tt.wantError || !cmp.Equal(e.ErrorCodes, []int{tt.wantCode}) {
				t.Errorf("Token() error = %d %s %v, want %d %s [%d]", e.Status, e.Error, e.ErrorCodes, tt.wantStatus, tt.wantError, tt.wantCode)
			}
			if e.TraceID == "" || e.Correlation == "" || !strings.Contains(e.Description, "Trace ID: "+e.TraceID) {
				t.Errorf("error body %+v lacks trace/correlation IDs", e)
			}
			if tt.cfg.ClientSecret != "" && strings.Contains(e.Description, tt.cfg.ClientSecret) {
				t.Errorf("error description %q contains the client secret", e.Description)
			}
		})
	}
}

func TestCorrelationIDEchoed(t *testing.T) {
	s := newSim(t, nil)
	const corr = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	req, _ := http.NewRequest(http.MethodPost, s.TokenURL(), strings.NewReader("grant_type=client_credentials&client_id=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("client-request-id", corr)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e entraError
	json.NewDecoder(resp.Body).Decode(&e)
	if e.Correlation != corr {
		t.Errorf("correlation_id = %q, want the client-request-id %q", e.Correlation, corr)
	}
}

func TestTokenLifetimeOption(t *testing.T) {
	s := newSim(t, &Options{TokenLifetime: 10 * time.Minute})
	cfg := clientcredentials.Config{ClientID: DefaultClientID, ClientSecret: DefaultClientSecret, TokenURL: s.TokenURL(),
		Scopes: []string{DefaultAudience + "/.default"}, AuthStyle: oauth2.AuthStyleInParams}
	tok, err := cfg.Token(s.ctx())
	if err != nil {
		t.Fatal(err)
	}
	c := parseClaims(t, tok.AccessToken)
	if got := int64(c["exp"].(float64) - c["iat"].(float64)); got != 600 {
		t.Errorf("exp - iat = %d, want 600", got)
	}
	if got := tok.Extra("expires_in"); got != float64(600) {
		t.Errorf("expires_in = %v, want 600", got)
	}
}

func TestTokenEndpointBoundsBody(t *testing.T) {
	s := newSim(t, nil)
	big := strings.NewReader("grant_type=client_credentials&pad=" + strings.Repeat("a", 2<<20))
	resp, err := s.HTTPClient().Post(s.TokenURL(), "application/x-www-form-urlencoded", big)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST 2 MiB form = %d, want 400", resp.StatusCode)
	}
}

// anyOf is a role list as a decoded JSON token claim holds it.
func anyOf(roles []string) []any {
	out := make([]any, len(roles))
	for i, r := range roles {
		out[i] = r
	}
	return out
}
