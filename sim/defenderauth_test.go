package sim

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdefn/mdefn/sim/defender"
)

func TestDefenderRejectsBadTokens(t *testing.T) {
	s := newSim(t, nil)
	now := s.Now()
	tests := []struct {
		name  string
		token string
	}{
		{"missing", ""},
		{"garbage", "not-a-token"},
		{"expired", s.IssueToken(TokenSpec{IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)})},
		{"not yet valid", s.IssueToken(TokenSpec{NotBefore: now.Add(time.Hour)})},
		{"vault audience", s.IssueToken(TokenSpec{Audience: VaultAudience})},
		{"other audience", s.IssueToken(TokenSpec{Audience: "https://graph.microsoft.com"})},
		{"unpublished key", s.IssueToken(TokenSpec{Unpublished: true})},
		{"unknown kid", s.IssueToken(TokenSpec{KeyID: "nope"})},
		{"other tenant", s.IssueToken(TokenSpec{TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"})},
		{"v2 issuer", s.IssueToken(TokenSpec{Issuer: s.AuthorityURL() + "/" + s.TenantID() + "/v2.0"})},
		{"no exp", s.IssueToken(TokenSpec{Extra: map[string]any{"exp": nil}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.token != "" {
				h.Set("Authorization", "Bearer "+tt.token)
			}
			var body struct {
				Error struct{ Code, Message, Target string }
			}
			code := getJSON(t, s, s.DefenderURL()+"/api/alerts", h, &body)
			if code != http.StatusUnauthorized || body.Error.Code != "Unauthorized" || body.Error.Message == "" || body.Error.Target == "" {
				t.Errorf("GET /api/alerts = %d %+v, want 401 Unauthorized with message and target", code, body)
			}
		})
	}
}

func TestDefenderAcceptsValidTokens(t *testing.T) {
	s := newSim(t, nil)
	for _, aud := range []string{DefaultAudience, DefaultAudience + "/", "https://api.security.microsoft.com"} {
		req, _ := http.NewRequest(http.MethodGet, s.DefenderURL()+"/api/alerts", nil)
		req.Header.Set("Authorization", "Bearer "+s.IssueToken(TokenSpec{Audience: aud, Roles: ApplicationRoles()}))
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("GET /api/alerts with aud %q = 401, want it to reach the Defender fake", aud)
		}
	}
	if n := s.Calls(Defender, "/api/alerts"); n != 3 {
		t.Errorf("Calls(Defender, /api/alerts) = %d, want 3", n)
	}
}

func TestDefenderPrincipal(t *testing.T) {
	s := newSim(t, nil)
	tests := []struct {
		name string
		spec TokenSpec
		want defender.Principal
	}{
		{"application", TokenSpec{AppID: "a", ObjectID: "o", Roles: []string{"Machine.Isolate"}},
			defender.Principal{TenantID: DefaultTenantID, AppID: "a", ObjectID: "o", Roles: []string{"Machine.Isolate"}}},
		{"delegated", TokenSpec{AppID: "a", ObjectID: "u", UPN: DefaultUserUPN, Scopes: []string{"Alert.Read", "Machine.Read"}},
			defender.Principal{TenantID: DefaultTenantID, AppID: "a", ObjectID: "u", UPN: DefaultUserUPN,
				Scopes: []string{"Alert.Read", "Machine.Read"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "/api/alerts", nil)
			req.Header.Set("Authorization", "Bearer "+s.IssueToken(tt.spec))
			got, err := s.authorizeDefender(req)
			if err != nil {
				t.Fatalf("authorizeDefender error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("authorizeDefender mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// A token issued by the token endpoint stops working once the simulator's
// clock passes its expiry.
func TestDefenderTokenExpiresWithClock(t *testing.T) {
	s := newSim(t, nil)
	tok := s.IssueToken(TokenSpec{Roles: ApplicationRoles()})
	h := http.Header{"Authorization": {"Bearer " + tok}}
	if code := getJSON(t, s, s.DefenderURL()+"/api/alerts", h, nil); code == http.StatusUnauthorized {
		t.Fatalf("fresh token: 401")
	}
	s.Advance(DefaultTokenLifetime + time.Second)
	if code := getJSON(t, s, s.DefenderURL()+"/api/alerts", h, nil); code != http.StatusUnauthorized {
		t.Errorf("after Advance past expiry = %d, want 401", code)
	}
}
