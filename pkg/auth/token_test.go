package auth

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

// fakeEntra is a token endpoint recording what it was sent.
type fakeEntra struct {
	srv   *httptest.Server
	count atomic.Int64

	mu      sync.Mutex
	paths   []string
	forms   []url.Values
	auths   []string
	status  int           // 0 = 200
	body    string        // error body when status != 0
	gate    chan struct{} // when set, answers wait until it is closed
	started chan struct{} // when set, receives a value as a request arrives
	life    int           // expires_in seconds; 0 = 3600
}

func newFakeEntra(t *testing.T) *fakeEntra {
	f := &fakeEntra{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEntra) serve(w http.ResponseWriter, r *http.Request) {
	n := f.count.Add(1)
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	form, _ := url.ParseQuery(string(body))
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	f.forms = append(f.forms, form)
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	status, errBody, gate, started, life := f.status, f.body, f.gate, f.started, f.life
	f.mu.Unlock()
	if started != nil {
		select {
		case started <- struct{}{}:
		default:
		}
	}
	if gate != nil {
		<-gate
	}
	w.Header().Set("Content-Type", "application/json")
	if status != 0 {
		w.WriteHeader(status)
		io.WriteString(w, errBody)
		return
	}
	if life == 0 {
		life = 3600
	}
	// v1 sends expires_in as a string.
	fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":"%d","access_token":"tok-%d"}`, life, n)
}

func (f *fakeEntra) last() (string, url.Values, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := len(f.paths) - 1
	return f.paths[i], f.forms[i], f.auths[i]
}

func (f *fakeEntra) fail(status int, body string) {
	f.mu.Lock()
	f.status, f.body = status, body
	f.mu.Unlock()
}

// newTestTokens wires a store over src and a token source in mode for
// testTenant and testClient, with the fake Entra as authority, clock as the
// clock and sleeps that return at once. o (may be nil) sets the other
// token options.
func newTestTokens(t *testing.T, f *fakeEntra, src SecretSource, clock *fakeClock, mode Mode, o *TokenOptions) (*TokenSource, *CredentialStore) {
	t.Helper()
	store := NewCredentialStore(src, mode, &StoreOptions{Now: clock.Now, Logger: quiet})
	opts := &TokenOptions{}
	if o != nil {
		*opts = *o
	}
	opts.AuthorityURL, opts.Now, opts.Logger = f.srv.URL, clock.Now, quiet
	if opts.Sleep == nil {
		opts.Sleep = (&recordSleep{}).Sleep
	}
	ts, err := NewTokenSource(mode, testTenant, testClient, store, f.srv.Client(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return ts, store
}

func form(pairs ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Set(pairs[i], pairs[i+1])
	}
	return v
}

func TestClientSecretToken(t *testing.T) {
	gccHigh, _ := CloudGCCHigh.Endpoints()
	tests := []struct {
		name     string
		secret   string
		opts     *TokenOptions
		wantPath string
		wantForm url.Values
	}{
		{"v2", "s3cr3t", nil, "POST /" + testTenant + "/oauth2/v2.0/token", form(
			"grant_type", "client_credentials", "client_id", testClient, "client_secret", "s3cr3t",
			"scope", "https://api.securitycenter.microsoft.com/.default")},
		{"v1", "s3cr3t", &TokenOptions{EndpointVersion: TokenEndpointV1}, "POST /" + testTenant + "/oauth2/token", form(
			"grant_type", "client_credentials", "client_id", testClient, "client_secret", "s3cr3t",
			"resource", "https://api.securitycenter.microsoft.com")},
		{"JSON overrides tenant and client", `{"clientSecret":"js","tenantId":"contoso.onmicrosoft.com","clientId":"other"}`, nil,
			"POST /contoso.onmicrosoft.com/oauth2/v2.0/token", form(
				"grant_type", "client_credentials", "client_id", "other", "client_secret", "js",
				"scope", "https://api.securitycenter.microsoft.com/.default")},
		{"gcc-high audience", "s3cr3t", &TokenOptions{Audience: gccHigh.TokenAudience + "/"}, "POST /" + testTenant + "/oauth2/v2.0/token", form(
			"grant_type", "client_credentials", "client_id", testClient, "client_secret", "s3cr3t",
			"scope", "https://api-gov.securitycenter.microsoft.us/.default")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEntra(t)
			ts, _ := newTestTokens(t, f, &fakeSource{value: tt.secret}, newClock(), ModeClientSecret, tt.opts)
			tok, err := ts.TokenContext(context.Background())
			if err != nil {
				t.Fatalf("TokenContext() error %v", err)
			}
			if tok.AccessToken != "tok-1" || tok.Type() != "Bearer" {
				t.Errorf("TokenContext() = %q %q, want tok-1 Bearer", tok.AccessToken, tok.Type())
			}
			path, got, auth := f.last()
			if path != tt.wantPath {
				t.Errorf("token request = %s, want %s", path, tt.wantPath)
			}
			if diff := cmp.Diff(tt.wantForm, got); diff != "" {
				t.Errorf("token request form mismatch (-want +got):\n%s", diff)
			}
			if auth != "" {
				t.Errorf("token request Authorization = %q, want none (secret in the form)", auth)
			}
		})
	}
}

func TestCertificateToken(t *testing.T) {
	key := testKey(t, "token-cert")
	cert, certPEM := testCert(t, key, "mdefn")
	clock := newClock()
	clock.t = time.Now().Truncate(time.Second)
	f := newFakeEntra(t)
	ts, _ := newTestTokens(t, f, &fakeSource{value: certPEM + pkcs1PEM(key)}, clock, ModeClientCertificate, nil)
	if _, err := ts.TokenContext(context.Background()); err != nil {
		t.Fatalf("TokenContext() error %v", err)
	}
	path, got, _ := f.last()
	tokenURL := f.srv.URL + "/" + testTenant + "/oauth2/v2.0/token"
	if path != "POST /"+testTenant+"/oauth2/v2.0/token" {
		t.Errorf("token request = %s, want the v2 endpoint", path)
	}
	assertion := got.Get("client_assertion")
	got.Del("client_assertion")
	want := form("grant_type", "client_credentials", "client_id", testClient,
		"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
		"scope", "https://api.securitycenter.microsoft.com/.default")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("token request form mismatch (-want +got):\n%s", diff)
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(clock.Now)).
		ParseWithClaims(assertion, claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil })
	if err != nil {
		t.Fatalf("client assertion does not verify with the certificate key: %v", err)
	}
	s1, s256 := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw)
	if got, want := parsed.Header["x5t"], base64.RawURLEncoding.EncodeToString(s1[:]); got != want {
		t.Errorf("assertion x5t = %v, want %v", got, want)
	}
	if got, want := parsed.Header["x5t#S256"], base64.RawURLEncoding.EncodeToString(s256[:]); got != want {
		t.Errorf("assertion x5t#S256 = %v, want %v", got, want)
	}
	now := float64(clock.Now().Unix())
	jti, _ := claims["jti"].(string)
	if len(jti) != 32 {
		t.Errorf("assertion jti = %q, want 32 random hex characters", jti)
	}
	delete(claims, "jti")
	wantClaims := jwt.MapClaims{"aud": tokenURL, "iss": testClient, "sub": testClient,
		"nbf": now, "iat": now, "exp": now + 600}
	if diff := cmp.Diff(wantClaims, claims); diff != "" {
		t.Errorf("assertion claims mismatch (-want +got):\n%s", diff)
	}
	// A second assertion has a fresh jti.
	ts.Invalidate()
	if _, err := ts.TokenContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, got2, _ := f.last()
	c2 := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(got2.Get("client_assertion"), c2); err != nil || c2["jti"] == jti {
		t.Errorf("second assertion jti = %v (err %v), want a new one", c2["jti"], err)
	}
}

func TestPasswordToken(t *testing.T) {
	for _, tt := range []struct {
		name, secret string
		want         url.Values
	}{
		{"public client", `{"username":"u@contoso.com","password":"pw"}`, form(
			"grant_type", "password", "client_id", testClient, "username", "u@contoso.com", "password", "pw",
			"resource", "https://api.securitycenter.microsoft.com")},
		{"confidential client", `{"username":"u@contoso.com","password":"pw","clientSecret":"cs"}`, form(
			"grant_type", "password", "client_id", testClient, "username", "u@contoso.com", "password", "pw",
			"client_secret", "cs", "resource", "https://api.securitycenter.microsoft.com")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEntra(t)
			ts, _ := newTestTokens(t, f, &fakeSource{value: tt.secret}, newClock(), ModePassword, nil)
			if _, err := ts.TokenContext(context.Background()); err != nil {
				t.Fatalf("TokenContext() error %v", err)
			}
			path, got, _ := f.last()
			if want := "POST /" + testTenant + "/oauth2/token"; path != want {
				t.Errorf("token request = %s, want %s (v1)", path, want)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("token request form mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTokenCaching(t *testing.T) {
	clock := newClock()
	f := newFakeEntra(t)
	ts, _ := newTestTokens(t, f, &fakeSource{value: "s"}, clock, ModeClientSecret, nil)
	ctx := context.Background()
	get := func() string {
		t.Helper()
		tok, err := ts.TokenContext(ctx)
		if err != nil {
			t.Fatalf("TokenContext() error %v", err)
		}
		return tok.AccessToken
	}
	steps := []struct {
		advance time.Duration
		want    string
	}{
		{0, "tok-1"},
		{30 * time.Minute, "tok-1"},
		{24*time.Minute + 59*time.Second, "tok-1"}, // 5m01s before expiry
		{2 * time.Second, "tok-2"},                 // 4m59s before expiry: refreshed
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		if got := get(); got != s.want {
			t.Errorf("step %d: TokenContext() = %s, want %s", i, got, s.want)
		}
	}
	ts.Invalidate()
	if got := get(); got != "tok-3" {
		t.Errorf("TokenContext() after Invalidate = %s, want tok-3", got)
	}
	if got := ts.Stats().Requests; got != 3 {
		t.Errorf("Stats().Requests = %d, want 3", got)
	}
	// oauth2.TokenSource.
	if tok, err := ts.Token(); err != nil || tok.AccessToken != "tok-3" {
		t.Errorf("Token() = %v, %v; want tok-3", tok, err)
	}
	// A returned token is the caller's copy.
	tok, _ := ts.TokenContext(ctx)
	tok.AccessToken = "mutated"
	if got := get(); got != "tok-3" {
		t.Errorf("TokenContext() after mutating a result = %s, want tok-3", got)
	}
}

func TestTokenShortLifetime(t *testing.T) {
	clock := newClock()
	f := newFakeEntra(t)
	f.life = 120 // shorter than the 5 minute early refresh: refresh at half life
	ts, _ := newTestTokens(t, f, &fakeSource{value: "s"}, clock, ModeClientSecret, nil)
	for i, want := range []string{"tok-1", "tok-1", "tok-2"} {
		tok, err := ts.TokenContext(context.Background())
		if err != nil || tok.AccessToken != want {
			t.Errorf("call %d: TokenContext() = %v, %v; want %s", i, tok, err, want)
		}
		clock.Advance(40 * time.Second)
	}
}

func TestTokenConcurrentColdStart(t *testing.T) {
	// The token request is held until every caller has started, so they
	// pile up on it.
	f := newFakeEntra(t)
	f.gate = make(chan struct{})
	src := &fakeSource{value: "s"}
	ts, _ := newTestTokens(t, f, src, newClock(), ModeClientSecret, nil)
	var ready, wg sync.WaitGroup
	var failed atomic.Int64
	for range 200 {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			tok, err := ts.TokenContext(context.Background())
			if err != nil || tok.AccessToken != "tok-1" {
				failed.Add(1)
			}
		}()
	}
	ready.Wait()
	close(f.gate)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of 200 callers failed or got another token", n)
	}
	if got := f.count.Load(); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}
	if got := src.reads.Load(); got != 1 {
		t.Errorf("secret reads = %d, want 1", got)
	}
}

func TestTokenWaiterDeadline(t *testing.T) {
	f := newFakeEntra(t)
	f.gate, f.started = make(chan struct{}), make(chan struct{}, 1)
	ts, _ := newTestTokens(t, f, &fakeSource{value: "s"}, newClock(), ModeClientSecret, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-f.started
		cancel() // the caller gives up while Entra holds the request
	}()
	_, err := ts.TokenContext(ctx)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrToken) {
		t.Fatalf("TokenContext() error = %v, want context.Canceled and ErrToken", err)
	}
	// The request completes on its own and serves the next caller.
	close(f.gate)
	if tok, err := ts.TokenContext(context.Background()); err != nil || tok.AccessToken != "tok-1" {
		t.Errorf("TokenContext() = %v, %v; want tok-1", tok, err)
	}
	if got := f.count.Load(); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}
}

const invalidClientBody = `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: t-1\r\nCorrelation ID: c-1\r\nTimestamp: 2026-03-01 12:00:00Z","error_codes":[7000215],"timestamp":"2026-03-01 12:00:00Z","trace_id":"t-1","correlation_id":"c-1","error_uri":"https://login.microsoftonline.com/error?code=7000215"}`

func TestTokenEntraErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   *EntraError
	}{
		{"invalid client", 401, invalidClientBody, &EntraError{StatusCode: 401, Code: "invalid_client",
			Description: "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: t-1\r\nCorrelation ID: c-1\r\nTimestamp: 2026-03-01 12:00:00Z",
			ErrorCodes:  []int{7000215}, CorrelationID: "c-1", TraceID: "t-1"}},
		{"unknown tenant", 400, `{"error":"invalid_request","error_description":"AADSTS90002: Tenant not found.","error_codes":[90002],"correlation_id":"c-2","trace_id":"t-2"}`,
			&EntraError{StatusCode: 400, Code: "invalid_request", Description: "AADSTS90002: Tenant not found.", ErrorCodes: []int{90002}, CorrelationID: "c-2", TraceID: "t-2"}},
		{"gateway", 502, `<html>bad gateway</html>`, &EntraError{StatusCode: 502}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEntra(t)
			f.fail(tt.status, tt.body)
			src := &fakeSource{value: "CANARY-secret"}
			ts, _ := newTestTokens(t, f, src, newClock(), ModeClientSecret, nil)
			_, err := ts.TokenContext(context.Background())
			var ee *EntraError
			if !errors.As(err, &ee) {
				t.Fatalf("TokenContext() error = %v, want *EntraError", err)
			}
			if diff := cmp.Diff(tt.want, ee); diff != "" {
				t.Errorf("TokenContext() error mismatch (-want +got):\n%s", diff)
			}
			if s := err.Error(); containsAny(s, "CANARY", "client_secret") {
				t.Errorf("TokenContext() error %q leaks the request", s)
			}
		})
	}
}

func TestTokenInvalidClientRereadsSecret(t *testing.T) {
	f := newFakeEntra(t)
	f.fail(401, invalidClientBody)
	src := &fakeSource{value: "old"}
	ts, _ := newTestTokens(t, f, src, newClock(), ModeClientSecret, nil)
	if _, err := ts.TokenContext(context.Background()); err == nil {
		t.Fatal("TokenContext() with a rejected secret succeeded")
	}
	src.set("rotated", nil)
	f.fail(0, "")
	if _, err := ts.TokenContext(context.Background()); err != nil {
		t.Fatalf("TokenContext() after rotation error %v", err)
	}
	if _, got, _ := f.last(); got.Get("client_secret") != "rotated" {
		t.Errorf("client_secret after invalid_client = %q, want the reread value", got.Get("client_secret"))
	}
}

func TestTokenSecretErrorPassesThrough(t *testing.T) {
	f := newFakeEntra(t)
	src := &fakeSource{}
	src.set("", &SecretError{Source: "keyvault", Name: "fake", StatusCode: 403, Code: "Forbidden"})
	ts, _ := newTestTokens(t, f, src, newClock(), ModeClientSecret, nil)
	_, err := ts.TokenContext(context.Background())
	var se *SecretError
	if !errors.As(err, &se) || se.StatusCode != 403 {
		t.Fatalf("TokenContext() error = %v, want the *SecretError", err)
	}
	if f.count.Load() != 0 {
		t.Errorf("token requests = %d, want 0", f.count.Load())
	}
}

func TestTokenRefreshFailureKeepsValidToken(t *testing.T) {
	clock := newClock()
	f := newFakeEntra(t)
	ts, _ := newTestTokens(t, f, &fakeSource{value: "s"}, clock, ModeClientSecret, nil)
	if _, err := ts.TokenContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.fail(503, `{"error":"temporarily_unavailable"}`)
	clock.Advance(57 * time.Minute) // in the refresh window, still valid
	if tok, err := ts.TokenContext(context.Background()); err != nil || tok.AccessToken != "tok-1" {
		t.Errorf("TokenContext() with Entra failing = %v, %v; want the still valid tok-1", tok, err)
	}
	clock.Advance(3 * time.Minute) // expired
	var ee *EntraError
	if _, err := ts.TokenContext(context.Background()); !errors.As(err, &ee) || ee.StatusCode != 503 {
		t.Errorf("TokenContext() after expiry error = %v, want *EntraError 503", err)
	}
}

func TestTokenEntraDown(t *testing.T) {
	f := newFakeEntra(t)
	ts, _ := newTestTokens(t, f, &fakeSource{value: "CANARY-secret"}, newClock(), ModeClientSecret, nil)
	f.srv.Close()
	_, err := ts.TokenContext(context.Background())
	var ee *EntraError
	if err == nil || errors.As(err, &ee) {
		t.Fatalf("TokenContext() error = %v, want a connection error", err)
	}
	if containsAny(err.Error(), "CANARY") {
		t.Errorf("TokenContext() error %q leaks the secret", err)
	}
}

func TestManagedIdentityToken(t *testing.T) {
	var mu sync.Mutex
	var got []url.Values
	var hdr []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Query())
		hdr = append(hdr, r.Header.Get("X-IDENTITY-HEADER"))
		mu.Unlock()
		if r.URL.Query().Get("client_id") == "denied" {
			w.WriteHeader(400)
			io.WriteString(w, `{"statusCode":400,"message":"No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId.","correlationId":"c-mi"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{
			"access_token": "mi-token", "expires_on": fmt.Sprint(time.Now().Add(time.Hour).Unix()),
			"resource": r.URL.Query().Get("resource"), "token_type": "Bearer",
		})
	}))
	defer srv.Close()
	t.Setenv("IDENTITY_ENDPOINT", srv.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "hdr-secret")

	for _, tt := range []struct {
		name, clientID string
		wantErr        bool
	}{
		{"system assigned", "", false},
		{"user assigned", "uami-id", false},
		{"unknown identity", "denied", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// MSAL caches managed identity tokens process-wide by resource:
			// an audience of its own keeps this test's tokens out of the others.
			ts, err := NewTokenSource(ModeManagedIdentity, "", tt.clientID, nil, srv.Client(), &TokenOptions{
				Audience: "https://mi-test.example", ManagedIdentityRetry: noRetry,
			})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := ts.TokenContext(context.Background())
			if tt.wantErr {
				var ee *EntraError
				if !errors.As(err, &ee) || ee.StatusCode != 400 {
					t.Fatalf("TokenContext() error = %v, want *EntraError 400", err)
				}
				return
			}
			if err != nil || tok.AccessToken != "mi-token" || time.Until(tok.Expiry) < 50*time.Minute {
				t.Fatalf("TokenContext() = %v, %v; want mi-token valid for an hour", tok, err)
			}
			mu.Lock()
			q, h := got[len(got)-1], hdr[len(hdr)-1]
			mu.Unlock()
			if q.Get("resource") != "https://mi-test.example" || q.Get("client_id") != tt.clientID || h != "hdr-secret" {
				t.Errorf("identity request = %v header %q, want resource, client_id %q and the identity header", q, h, tt.clientID)
			}
		})
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if sub != "" && len(s) >= len(sub) && (stringsContains(s, sub)) {
			return true
		}
	}
	return false
}
