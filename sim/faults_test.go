package sim

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fetch GETs url with a fresh client (no pooled connections) and returns
// status, body and the error of the request or of reading the body.
func fetch(s *Sim, url string) (int, string, error) {
	c := s.HTTPClient()
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestFaultFixedAnswerCountLimited(t *testing.T) {
	s := newSim(t, nil)
	page := "<html><body><h1>502 Bad Gateway</h1></body></html>"
	h := s.Inject(Entra, Fault{PathPrefix: "/" + s.TenantID() + "/discovery/", Times: 2, Status: 502,
		Header: http.Header{"Content-Type": {"text/html"}}, Body: []byte(page)})
	for i := range 3 {
		code, body, err := fetch(s, s.JWKSURL())
		wantCode, wantFault := 502, true
		if i == 2 {
			wantCode, wantFault = 200, false
		}
		if err != nil || code != wantCode || (body == page) != wantFault {
			t.Errorf("request %d = %d %q (error %v), want %d (fault %v)", i, code, body, err, wantCode, wantFault)
		}
	}
	if h.Hits() != 2 {
		t.Errorf("Hits() = %d, want 2", h.Hits())
	}
	// Other paths are untouched by a path-prefixed fault.
	s.Inject(Entra, Fault{PathPrefix: "/nothing-here", Status: 500})
	if code, _, _ := fetch(s, s.JWKSURL()); code != 200 {
		t.Errorf("unmatched path = %d, want 200", code)
	}
}

func TestFaultMethodAndRemove(t *testing.T) {
	s := newSim(t, nil)
	h := s.Inject(Entra, Fault{Method: http.MethodPost, Status: 503})
	if code, _, _ := fetch(s, s.JWKSURL()); code != 200 {
		t.Errorf("GET with a POST fault = %d, want 200", code)
	}
	resp, err := s.HTTPClient().PostForm(s.TokenURL(), nil)
	if err != nil || resp.StatusCode != 503 {
		t.Errorf("POST with a POST fault = %v (error %v), want 503", resp.StatusCode, err)
	}
	resp.Body.Close()
	h.Remove()
	resp, _ = s.HTTPClient().PostForm(s.TokenURL(), nil)
	if resp.StatusCode == 503 {
		t.Errorf("POST after Remove = 503")
	}
	resp.Body.Close()

	s.Inject(Entra, Fault{Status: 500})
	s.Inject(Entra, Fault{Status: 501})
	s.ClearFaults()
	if code, _, _ := fetch(s, s.JWKSURL()); code != 200 {
		t.Errorf("after ClearFaults = %d, want 200", code)
	}
}

func TestFaultThrottle(t *testing.T) {
	s := newSim(t, nil)
	s.Inject(KeyVault, Throttle(2, 3*time.Second))
	url := s.VaultURL() + "/secrets/x?api-version=7.5"
	for i := range 3 {
		resp, err := s.HTTPClient().Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want, wantRA := 429, "3"
		if i == 2 {
			want, wantRA = 401, "" // the real answer: a challenge
		}
		if resp.StatusCode != want || resp.Header.Get("Retry-After") != wantRA {
			t.Errorf("request %d = %d Retry-After %q, want %d %q", i, resp.StatusCode, resp.Header.Get("Retry-After"), want, wantRA)
		}
	}
}

func TestFaultLatency(t *testing.T) {
	s := newSim(t, nil)
	s.Inject(Entra, Fault{Latency: 200 * time.Millisecond, Times: 1})
	start := time.Now()
	code, _, err := fetch(s, s.JWKSURL())
	if d := time.Since(start); err != nil || code != 200 || d < 200*time.Millisecond {
		t.Errorf("with latency: %d after %v (error %v), want 200 after at least 200ms", code, d, err)
	}
}

func TestFaultTrickle(t *testing.T) {
	s := newSim(t, nil)
	s.Inject(Entra, Fault{Trickle: 500 * time.Millisecond})
	start := time.Now()
	resp, err := s.HTTPClient().Get(s.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	headers := time.Since(start)
	b, err := io.ReadAll(resp.Body)
	total := time.Since(start)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), `"keys"`) {
		t.Fatalf("trickled answer = %d %q (error %v), want the JWKS", resp.StatusCode, b, err)
	}
	if headers >= 400*time.Millisecond || total < 450*time.Millisecond {
		t.Errorf("headers after %v, body after %v; want headers early and the body after about 500ms", headers, total)
	}
}

func TestFaultReset(t *testing.T) {
	s := newSim(t, nil)
	s.Inject(Entra, Fault{Reset: true, Times: 1})
	if _, _, err := fetch(s, s.JWKSURL()); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("with reset: error = %v, want connection reset", err)
	}
	if code, _, err := fetch(s, s.JWKSURL()); code != 200 || err != nil {
		t.Errorf("after the reset = %d (error %v), want 200", code, err)
	}
}

func TestFaultCutBody(t *testing.T) {
	s := newSim(t, nil)
	s.Inject(Entra, Fault{CutAfter: 10})
	code, body, err := fetch(s, s.JWKSURL())
	if code != 200 || len(body) != 10 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut body = %d, %d bytes, error %v; want 200, 10 bytes, unexpected EOF", code, len(body), err)
	}
	s.ClearFaults()
	s.Inject(Entra, Fault{Status: 200, Body: []byte(`{"keys":[{"kty":"RSA"`), CutAfter: 5})
	if _, body, err := fetch(s, s.JWKSURL()); body != `{"key` || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut fixed body = %q, error %v; want 5 bytes and unexpected EOF", body, err)
	}
}

func TestDownUp(t *testing.T) {
	s := newSim(t, nil)
	url := s.JWKSURL()
	if err := s.Down(Entra); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fetch(s, url); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("while down: error = %v, want connection refused", err)
	}
	if err := s.Up(Entra); err != nil {
		t.Fatalf("Up(Entra) = %v", err)
	}
	if s.JWKSURL() != url {
		t.Errorf("after Up JWKSURL() = %q, want the same %q", s.JWKSURL(), url)
	}
	if code, _, err := fetch(s, url); code != 200 || err != nil {
		t.Errorf("after Up = %d (error %v), want 200", code, err)
	}
	if err := s.Down("nope"); err == nil {
		t.Errorf("Down(unknown upstream) = nil, want an error")
	}
}
