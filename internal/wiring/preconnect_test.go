package wiring

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/sim"
)

// testPreconnector trusts the simulator's CA.
func testPreconnector(t *testing.T, s *sim.Sim) (*preconnector, *http.Client) {
	t.Helper()
	p, client := newPreconnector()
	p.tlsConfig.RootCAs = s.HTTPClient().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return p, client
}

// TestPreconnectUsed: a connection opened ahead is the one the next
// request to that host uses, also when the request comes while it is being
// opened; later requests reuse the pooled connection.
func TestPreconnectUsed(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, client := testPreconnector(t, s)
	p.warm(s.DefenderURL())
	p.warm(s.DefenderURL()) // one at a time per host
	for range 3 {
		resp, err := client.Get(s.DefenderURL() + "/api/machines")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET without a token = %d, want 401", resp.StatusCode)
		}
	}
	if p.warmed.Load() != 1 || p.used.Load() != 1 {
		t.Errorf("warmed %d, used %d; want 1 and 1", p.warmed.Load(), p.used.Load())
	}
	// Not https, or a bad URL: nothing opened.
	p.warm(s.IdentityEndpoint())
	p.warm("::bad")
	time.Sleep(20 * time.Millisecond)
	if p.warmed.Load() != 1 {
		t.Errorf("warmed %d after non-https URLs, want 1", p.warmed.Load())
	}
}

// TestPreconnectFirstInvocation: through Build, the first invocation's
// secret read opens the Entra and Defender connections, which its token
// request and Defender call then use; nothing is opened before it, and no
// extra request reaches either.
func TestPreconnectFirstInvocation(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, client := testPreconnector(t, s)
	cfgEnv := map[string]string{
		"MDE_TENANT_ID": s.TenantID(), "MDE_CLIENT_ID": sim.DefaultClientID, "MDE_CLIENT_SECRET": sim.DefaultClientSecret,
		"MDE_AUTHORITY_URL": s.AuthorityURL(), "MDE_API_URL": s.DefenderURL(), "MDE_TOKEN_AUDIENCE": s.Audience(),
	}
	c := buildWith(t, cfgEnv, &Options{HTTPClient: client, warm: p})
	time.Sleep(20 * time.Millisecond)
	if p.warmed.Load() != 0 || len(s.Requests()) != 0 {
		t.Fatalf("before the first invocation: %d connections opened, %d requests; want none", p.warmed.Load(), len(s.Requests()))
	}
	if status, out := serve(c, "GET", "/api/alerts?top=1", ""); status != 200 {
		t.Fatalf("alerts = %d %v", status, out)
	}
	if p.warmed.Load() != 2 || p.used.Load() != 2 {
		t.Errorf("warmed %d, used %d; want 2 and 2 (Entra, Defender)", p.warmed.Load(), p.used.Load())
	}
	st := s.Stats()
	if n := st.TokenRequests[sim.DefaultClientID]; n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
	if n := len(s.Requests()); n != 2 {
		t.Errorf("%d upstream requests, want 2 (token, alerts): %+v", n, s.Requests())
	}
}

func buildWith(t *testing.T, env map[string]string, o *Options) *Components {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	o.Logger = slog.New(slog.DiscardHandler)
	c, err := Build(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPreconnectExpires: a connection opened ahead and not taken within
// parkedLife is closed, and the next request dials its own.
func TestPreconnectExpires(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old := parkedLife
	parkedLife = 50 * time.Millisecond
	defer func() { parkedLife = old }()
	p, client := testPreconnector(t, s)
	p.warm(s.DefenderURL())
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		n := len(p.parked)
		p.mu.Unlock()
		if n == 0 && p.warmed.Load() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connection opened ahead is still parked after %s (warmed %d)", parkedLife, p.warmed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := client.Get(s.DefenderURL() + "/api/machines")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p.used.Load() != 0 {
		t.Errorf("used %d expired connections, want 0", p.used.Load())
	}
}
