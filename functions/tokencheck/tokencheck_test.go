package tokencheck

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/mdefn/mdefn/functions/alerts"
	"github.com/mdefn/mdefn/functions/isolate"
	"github.com/mdefn/mdefn/pkg/auth"
	"github.com/mdefn/mdefn/sim"
)

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

// testChecks are the entries the registry gives tokencheck today.
var testChecks = []Check{
	{Name: "alerts", Needs: alerts.Needs},
	{Name: "isolate", Needs: isolate.Needs},
	{Name: "isolateByName", Needs: isolate.NeedsByName},
	{Name: "tokencheck"},
}

type tokenFunc func(context.Context) (*oauth2.Token, error)

func (f tokenFunc) TokenContext(ctx context.Context) (*oauth2.Token, error) { return f(ctx) }

func newService(tokens TokenSource) *Service {
	return &Service{
		Tokens:   tokens,
		Verifier: auth.NewVerifier(testSim.AuthorityURL(), testSim.TenantID(), testSim.Audience(), testSim.HTTPClient(), nil),
		Checks:   testChecks,
	}
}

func call(t *testing.T, s *Service, method, body string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(method, "/api/tokencheck", strings.NewReader(body)))
	return w.Code, w.Body.String()
}

func TestSuppliedTokens(t *testing.T) {
	now := testSim.Now()
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	good := testSim.IssueToken(sim.TokenSpec{Roles: []string{"Alert.Read.All", "Machine.Isolate"}})
	payload := strings.Split(good, ".")[1]
	tests := []struct {
		name         string
		token        string
		wantProblems []string
		wantType     string
		wantAllowed  map[string]bool
	}{
		{"application token", good, nil, "application",
			map[string]bool{"alerts": true, "isolate": true, "isolateByName": false, "tokencheck": true}},
		{"delegated token", testSim.IssueToken(sim.TokenSpec{UPN: sim.DefaultUserUPN, Scopes: []string{"Alert.Read", "Machine.Read", "Machine.Isolate"}}), nil, "delegated",
			map[string]bool{"alerts": true, "isolate": true, "isolateByName": true, "tokencheck": true}},
		{"expired", testSim.IssueToken(sim.TokenSpec{IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}), []string{"expired"}, "application", nil},
		{"not yet valid", testSim.IssueToken(sim.TokenSpec{NotBefore: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour)}), []string{"not yet valid"}, "application", nil},
		{"wrong audience", testSim.IssueToken(sim.TokenSpec{Audience: "https://graph.microsoft.com"}), []string{"audience"}, "application", nil},
		{"wrong issuer", testSim.IssueToken(sim.TokenSpec{Issuer: "https://sts.windows.net/00000000-0000-0000-0000-000000000000/"}), []string{"issuer"}, "application", nil},
		{"unpublished key", testSim.IssueToken(sim.TokenSpec{Unpublished: true}), []string{"signature"}, "application", nil},
		{"alg none", header + "." + payload + ".", []string{"signature"}, "", nil},
		{"garbage", "not-a-token", []string{"malformed"}, "", nil},
		{"too long", strings.Repeat("a", MaxTokenLength+1), []string{"malformed"}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(nil)
			body, _ := json.Marshal(Request{Token: tt.token})
			status, raw := call(t, s, "POST", string(body))
			if status != 200 {
				t.Fatalf("POST = %d %s, want 200", status, raw)
			}
			if strings.Contains(raw, tt.token) {
				t.Fatal("the answer echoes the token")
			}
			var res Result
			if err := json.Unmarshal([]byte(raw), &res); err != nil {
				t.Fatal(err)
			}
			want := tt.wantProblems
			if want == nil {
				want = []string{}
			}
			if tt.name == "alg none" {
				// Anything but valid will do for an unsigned token.
				if res.Valid || len(res.Problems) == 0 {
					t.Fatalf("alg none: valid %v problems %v, want invalid", res.Valid, res.Problems)
				}
				return
			}
			if diff := cmp.Diff(want, res.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if res.Valid != (len(want) == 0) {
				t.Errorf("valid = %v with problems %v", res.Valid, res.Problems)
			}
			if res.TokenType != tt.wantType {
				t.Errorf("tokenType = %q, want %q", res.TokenType, tt.wantType)
			}
			if len(res.Functions) != 4 {
				t.Errorf("functions = %v, want alerts, isolate, isolateByName, tokencheck", res.Functions)
			}
			for name, allowed := range tt.wantAllowed {
				if res.Functions[name].Allowed != allowed {
					t.Errorf("functions[%s] = %+v, want allowed %v", name, res.Functions[name], allowed)
				}
			}
			if tt.wantType != "" && (res.TenantID != testSim.TenantID() || res.IssuedAt == nil || res.ExpiresAt == nil) {
				t.Errorf("claims not reported: %+v", res)
			}
		})
	}
}

func TestMissingNamesLeastPrivileged(t *testing.T) {
	s := newService(nil)
	tok := testSim.IssueToken(sim.TokenSpec{Roles: []string{}})
	_, raw := call(t, s, "POST", `{"token":"`+tok+`"}`)
	var res Result
	_ = json.Unmarshal([]byte(raw), &res)
	want := map[string]Access{
		"alerts":        {Allowed: false, Missing: []string{"Alert.Read.All"}},
		"isolate":       {Allowed: false, Missing: []string{"Machine.Isolate"}},
		"isolateByName": {Allowed: false, Missing: []string{"Machine.Isolate", "Machine.Read.All"}},
		"tokencheck":    {Allowed: true, Missing: []string{}},
	}
	if diff := cmp.Diff(want, res.Functions); diff != "" {
		t.Errorf("functions (-want +got):\n%s", diff)
	}
}

func TestOwnToken(t *testing.T) {
	tok := testSim.IssueToken(sim.TokenSpec{Roles: sim.ApplicationRoles()})
	s := newService(tokenFunc(func(context.Context) (*oauth2.Token, error) { return &oauth2.Token{AccessToken: tok}, nil }))
	for _, method := range []string{"GET", "POST"} {
		status, raw := call(t, s, method, "")
		if status != 200 || !strings.Contains(raw, `"valid":true`) || strings.Contains(raw, tok) {
			t.Errorf("%s own token = %d %s", method, status, raw)
		}
	}
	failing := newService(tokenFunc(func(context.Context) (*oauth2.Token, error) {
		return nil, &auth.EntraError{StatusCode: 401, Code: "invalid_client", Description: "AADSTS7000215: Invalid client secret provided.", ErrorCodes: []int{7000215}}
	}))
	status, raw := call(t, failing, "GET", "")
	if status != http.StatusBadGateway || !strings.Contains(raw, `"token_acquisition_failed"`) || !strings.Contains(raw, "AADSTS7000215") {
		t.Errorf("token failure = %d %s, want 502 token_acquisition_failed naming AADSTS7000215", status, raw)
	}
	if status, _ := call(t, failing, "POST", `{"token":1}`); status != 400 {
		t.Errorf("POST with a numeric token = %d, want 400", status)
	}
	if status, _ := call(t, failing, "PUT", ``); status != 405 {
		t.Errorf("PUT = %d, want 405", status)
	}
}
