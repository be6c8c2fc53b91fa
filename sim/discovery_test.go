package sim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// jwksKeyfunc fetches the tenant's JWKS with the simulator's client.
func jwksKeyfunc(t *testing.T, s *Sim, url string) keyfunc.Keyfunc {
	t.Helper()
	resp, err := s.HTTPClient().Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %q, error %v", url, resp.StatusCode, raw, err)
	}
	k, err := keyfunc.NewJWKSetJSON(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("keyfunc.NewJWKSetJSON(%s): %v", raw, err)
	}
	return k
}

func verifies(k keyfunc.Keyfunc, tok string) error {
	_, err := jwt.Parse(tok, k.Keyfunc, jwt.WithValidMethods([]string{"RS256"}))
	return err
}

func TestJWKSVerifiesIssuedTokens(t *testing.T) {
	s := newSim(t, nil)
	tok := s.IssueToken(TokenSpec{Roles: []string{"Alert.Read.All"}})
	for _, path := range []string{"/discovery/keys", "/discovery/v2.0/keys"} {
		for _, tenant := range []string{s.TenantID(), DefaultTenantDomain, "common"} {
			k := jwksKeyfunc(t, s, s.AuthorityURL()+"/"+tenant+path)
			if err := verifies(k, tok); err != nil {
				t.Errorf("token does not verify with %s%s: %v", tenant, path, err)
			}
		}
	}
	k := jwksKeyfunc(t, s, s.JWKSURL())
	if err := verifies(k, s.IssueToken(TokenSpec{Unpublished: true})); !errors.Is(err, jwt.ErrTokenUnverifiable) && !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Errorf("token signed by an unpublished key: verify error = %v, want unverifiable", err)
	}
	if err := verifies(k, s.IssueToken(TokenSpec{KeyID: "unknown-kid"})); err == nil {
		t.Errorf("token naming an unknown kid verified")
	}
}

func TestRotateSigningKey(t *testing.T) {
	s := newSim(t, nil)
	old := s.IssueToken(TokenSpec{})
	if err := s.RotateSigningKey(); err != nil {
		t.Fatalf("RotateSigningKey() = %v", err)
	}
	ids := s.SigningKeyIDs()
	if len(ids) != 2 {
		t.Fatalf("after rotation SigningKeyIDs() = %v, want 2 keys", ids)
	}
	fresh := s.IssueToken(TokenSpec{})
	if kid := parseHeader(t, fresh)["kid"]; kid != ids[1] {
		t.Errorf("new token kid = %v, want the new key %s", kid, ids[1])
	}
	k := jwksKeyfunc(t, s, s.JWKSURL())
	if err := verifies(k, old); err != nil {
		t.Errorf("old token after rotation: %v, want it to verify (old key still published)", err)
	}
	if err := verifies(k, fresh); err != nil {
		t.Errorf("new token after rotation: %v", err)
	}

	s.RemoveOldKeys()
	k = jwksKeyfunc(t, s, s.JWKSURL())
	if err := verifies(k, old); err == nil {
		t.Errorf("old token verified after RemoveOldKeys")
	}
	if err := verifies(k, fresh); err != nil {
		t.Errorf("new token after RemoveOldKeys: %v", err)
	}
	if got := s.SigningKeyIDs(); !slices.Equal(got, ids[1:]) {
		t.Errorf("SigningKeyIDs() = %v, want %v", got, ids[1:])
	}
}

func parseHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Header
}

func TestOpenIDConfiguration(t *testing.T) {
	s := newSim(t, nil)
	tests := []struct {
		path                    string
		issuer, token, jwksPath string
	}{
		{"/" + s.TenantID() + "/v2.0/.well-known/openid-configuration", s.AuthorityURL() + "/" + s.TenantID() + "/v2.0",
			s.TokenURL(), s.JWKSURL()},
		{"/" + s.TenantID() + "/.well-known/openid-configuration", s.Issuer(), s.TokenURLv1(), s.AuthorityURL() + "/common/discovery/keys"},
	}
	for _, tt := range tests {
		var doc struct {
			Issuer        string `json:"issuer"`
			TokenEndpoint string `json:"token_endpoint"`
			JWKSURI       string `json:"jwks_uri"`
			AuthEndpoint  string `json:"authorization_endpoint"`
		}
		if code := getJSON(t, s, s.AuthorityURL()+tt.path, nil, &doc); code != 200 {
			t.Fatalf("GET %s = %d", tt.path, code)
		}
		if doc.Issuer != tt.issuer || doc.TokenEndpoint != tt.token || doc.JWKSURI != tt.jwksPath || doc.AuthEndpoint == "" {
			t.Errorf("GET %s = %+v, want issuer %s, token_endpoint %s, jwks_uri %s", tt.path, doc, tt.issuer, tt.token, tt.jwksPath)
		}
		if err := verifies(jwksKeyfunc(t, s, doc.JWKSURI), s.IssueToken(TokenSpec{})); err != nil {
			t.Errorf("token does not verify with jwks_uri %s: %v", doc.JWKSURI, err)
		}
	}
	if code := getJSON(t, s, s.AuthorityURL()+"/contoso.example/v2.0/.well-known/openid-configuration", nil, nil); code != 400 {
		t.Errorf("openid configuration of an unknown tenant = %d, want 400", code)
	}
}
