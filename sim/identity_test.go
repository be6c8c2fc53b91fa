package sim

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIdentityEndpoint(t *testing.T) {
	s := newSim(t, nil)
	ua := s.AddManagedIdentity(ManagedIdentity{Roles: []string{"Machine.Read.All"}})
	q := func(kv ...string) string {
		v := url.Values{"api-version": {"2019-08-01"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return s.IdentityEndpoint() + "?" + v.Encode()
	}
	good := http.Header{"X-Identity-Header": {s.IdentityHeader()}}
	tests := []struct {
		name      string
		url       string
		header    http.Header
		status    int
		wantAppID string
		wantRoles any
	}{
		{"system-assigned for the vault", q("resource", VaultAudience), good, 200, DefaultManagedIdentityClientID, nil},
		{"system-assigned for Defender", q("resource", DefaultAudience), good, 200, DefaultManagedIdentityClientID,
			anyOf(ApplicationRoles())},
		{"user-assigned by client_id", q("resource", DefaultAudience, "client_id", ua.ClientID), good, 200, ua.ClientID,
			[]any{"Machine.Read.All"}},
		{"user-assigned by mi_res_id", q("resource", DefaultAudience, "mi_res_id", ua.ResourceID), good, 200, ua.ClientID,
			[]any{"Machine.Read.All"}},
		{"user-assigned by object_id", q("resource", VaultAudience, "object_id", ua.ObjectID), good, 200, ua.ClientID, nil},
		{"unknown identity", q("resource", VaultAudience, "client_id", "0000"), good, 400, "", nil},
		{"unknown resource", q("resource", "https://nope.example"), good, 400, "", nil},
		{"no resource", q(), good, 400, "", nil},
		{"wrong api-version", q("resource", VaultAudience, "api-version", "2017-09-01"), good, 400, "", nil},
		{"no header", q("resource", VaultAudience), nil, 400, "", nil},
		{"wrong header", q("resource", VaultAudience), http.Header{"X-Identity-Header": {"nope"}}, 401, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body struct {
				AccessToken string `json:"access_token"`
				ExpiresOn   string `json:"expires_on"`
				Resource    string `json:"resource"`
				TokenType   string `json:"token_type"`
				ClientID    string `json:"client_id"`
				StatusCode  int    `json:"statusCode"`
				Message     string `json:"message"`
			}
			code := getJSON(t, s, tt.url, tt.header, &body)
			if code != tt.status {
				t.Fatalf("GET identity = %d %+v, want %d", code, body, tt.status)
			}
			if code != 200 {
				if body.StatusCode != code || body.Message == "" {
					t.Errorf("error body = %+v, want statusCode %d and a message", body, code)
				}
				return
			}
			c := parseClaims(t, body.AccessToken)
			if body.ClientID != tt.wantAppID || c["appid"] != tt.wantAppID || body.TokenType != "Bearer" || body.ExpiresOn == "" ||
				body.Resource != c["aud"] {
				t.Errorf("answer = client_id %s token_type %s expires_on %s resource %s (appid %v aud %v), want appid %s",
					body.ClientID, body.TokenType, body.ExpiresOn, body.Resource, c["appid"], c["aud"], tt.wantAppID)
			}
			if !cmp.Equal(c["roles"], tt.wantRoles) {
				t.Errorf("roles = %v, want %v", c["roles"], tt.wantRoles)
			}
		})
	}
}
