package sim

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func TestStatsAndRequestLog(t *testing.T) {
	var logged bytes.Buffer
	s := newSim(t, &Options{Logger: slog.New(slog.NewJSONHandler(&logged, nil))})
	cfg := clientcredentials.Config{ClientID: DefaultClientID, ClientSecret: DefaultClientSecret, TokenURL: s.TokenURL(),
		Scopes: []string{DefaultAudience + "/.default"}, AuthStyle: oauth2.AuthStyleInParams}
	tok, err := cfg.Token(s.ctx())
	if err != nil {
		t.Fatal(err)
	}
	bad := cfg
	bad.ClientSecret = "wrong-secret-value"
	bad.Token(s.ctx())

	vaultTok := s.IssueToken(TokenSpec{Audience: VaultAudience})
	vault := s.VaultURL() + "/secrets/" + DefaultSecretName + "?api-version=7.5"
	getJSON(t, s, vault, nil, nil) // the challenge: not a read
	getJSON(t, s, vault, http.Header{"Authorization": {"Bearer " + vaultTok}}, nil)
	getJSON(t, s, s.DefenderURL()+"/api/alerts", http.Header{"Authorization": {"Bearer " + tok.AccessToken}}, nil)

	st := s.Stats()
	if st.TokenRequests[DefaultClientID] != 2 || s.TokenRequests(DefaultClientID) != 2 {
		t.Errorf("TokenRequests = %v, want 2 for %s", st.TokenRequests, DefaultClientID)
	}
	if st.VaultReads[DefaultSecretName] != 1 || s.VaultReads() != 1 {
		t.Errorf("VaultReads = %v, want 1 for %s", st.VaultReads, DefaultSecretName)
	}
	if got := s.Calls(KeyVault, "/secrets/"+DefaultSecretName); got != 2 {
		t.Errorf("Calls(KeyVault, secret) = %d, want 2", got)
	}
	if got := st.Calls["entra /"+DefaultTenantID+"/oauth2/v2.0/token"]; got != 2 {
		t.Errorf("Stats().Calls = %v, want 2 token calls", st.Calls)
	}

	reqs := s.Requests()
	if len(reqs) != 5 {
		t.Fatalf("Requests() has %d entries, want 5: %+v", len(reqs), reqs)
	}
	want := []struct {
		u        Upstream
		status   int
		clientID string
	}{{Entra, 200, DefaultClientID}, {Entra, 401, DefaultClientID}, {KeyVault, 401, ""}, {KeyVault, 200, DefaultClientID},
		{Defender, 0, DefaultClientID}}
	for i, w := range want {
		r := reqs[i]
		if r.Upstream != w.u || (w.status != 0 && r.Status != w.status) || r.ClientID != w.clientID || r.Time.IsZero() {
			t.Errorf("Requests()[%d] = %+v, want upstream %s status %d client %q", i, r, w.u, w.status, w.clientID)
		}
	}

	// Never a secret or token in the log.
	for _, secret := range []string{DefaultClientSecret, "wrong-secret-value", tok.AccessToken, vaultTok} {
		if strings.Contains(logged.String(), secret) {
			t.Errorf("request log line contains a secret or token")
		}
	}
	if !strings.Contains(logged.String(), `"upstream":"keyvault"`) {
		t.Errorf("Logger got %q, want request lines", logged.String())
	}

	s.ResetStats()
	if st := s.Stats(); len(st.TokenRequests)+len(st.VaultReads)+len(st.Calls) != 0 || len(s.Requests()) != 0 {
		t.Errorf("after ResetStats: %+v, %d requests; want empty", st, len(s.Requests()))
	}
}

func TestRequestLogBounded(t *testing.T) {
	s := newSim(t, &Options{RequestLogSize: 3})
	for range 5 {
		getJSON(t, s, s.JWKSURL(), nil, nil)
	}
	if n := len(s.Requests()); n != 3 {
		t.Errorf("len(Requests()) = %d, want 3", n)
	}
	if n := s.Calls(Entra, "/"+DefaultTenantID+"/discovery/v2.0/keys"); n != 5 {
		t.Errorf("Calls = %d, want 5", n)
	}
}
