package auth

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const testAudience = "https://api.securitycenter.microsoft.com"

// fakeJWKS serves a tenant's keys and OpenID configuration.
type fakeJWKS struct {
	srv    *httptest.Server
	fetch  atomic.Int64
	mu     sync.Mutex
	keys   map[string]*rsa.PublicKey
	status int
}

func newFakeJWKS(t *testing.T, keys map[string]*rsa.PublicKey) *fakeJWKS {
	f := &fakeJWKS{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", func(w http.ResponseWriter, r *http.Request) {
		f.fetch.Add(1)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.status != 0 {
			w.WriteHeader(f.status)
			return
		}
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for kid, k := range f.keys {
			set.Keys = append(set.Keys, map[string]string{
				"kty": "RSA", "use": "sig", "kid": kid,
				"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
			})
		}
		set.Keys = append(set.Keys, map[string]string{"kty": "OKP", "crv": "X448", "kid": "unsupported", "x": "AA"})
		json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("GET /contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": f.srv.URL + "/" + testTenant + "/v2.0"})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeJWKS) setKeys(keys map[string]*rsa.PublicKey) {
	f.mu.Lock()
	f.keys = keys
	f.mu.Unlock()
}

// appClaims are the claims of a valid v1 application token at now.
func appClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"aud": testAudience, "iss": "https://sts.windows.net/" + testTenant + "/",
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"tid": testTenant, "appid": testClient, "oid": "oid-1", "roles": []string{"Alert.Read.All", "Machine.Isolate"},
		"ver": "1.0", "idtyp": "app",
	}
}

func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestVerify(t *testing.T) {
	key := testKey(t, "jwks")
	rogue := testKey(t, "rogue")
	f := newFakeJWKS(t, map[string]*rsa.PublicKey{"k1": &key.PublicKey})
	clock := newClock()
	now := clock.Now()
	good := appClaims(now)

	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, good)
	hs.Header["kid"] = "k1"
	hsToken, _ := hs.SignedString(pubPEM)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, good)
	none.Header["kid"] = "k1"
	noneToken, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	valid := sign(t, key, "k1", good)
	parts := strings.Split(valid, ".")
	tamperedPayload, _ := json.Marshal(with(good, "roles", []string{"Machine.Isolate", "Alert.ReadWrite.All", "Machine.ReadWrite.All"}))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2]

	tests := []struct {
		name  string
		token string
		want  []string
	}{
		{"valid v1", valid, []string{}},
		{"valid with Bearer prefix", "Bearer " + valid, []string{}},
		{"valid without kid", sign(t, key, "", good), []string{}},
		{"valid v2 issuer", sign(t, key, "k1", with(good, "iss", f.srv.URL+"/"+testTenant+"/v2.0", "ver", "2.0")), []string{}},
		{"audience with slash", sign(t, key, "k1", with(good, "aud", testAudience+"/")), []string{}},
		{"audience as app ID", sign(t, key, "k1", with(good, "aud", DefenderAppID)), []string{}},
		{"audience list", sign(t, key, "k1", with(good, "aud", []string{"other", testAudience})), []string{}},
		{"expired within leeway", sign(t, key, "k1", with(good, "exp", now.Add(-time.Minute).Unix())), []string{}},
		{"alg none", noneToken, []string{"signature"}},
		{"HS256 with the public key", hsToken, []string{"signature"}},
		{"other key", sign(t, rogue, "k1", good), []string{"signature"}},
		{"tampered payload", tampered, []string{"signature"}},
		{"expired", sign(t, key, "k1", with(good, "exp", now.Add(-3*time.Minute).Unix())), []string{"expired"}},
		{"no exp", sign(t, key, "k1", with(good, "exp", nil)), []string{"expired"}},
		{"not yet valid", sign(t, key, "k1", with(good, "nbf", now.Add(10*time.Minute).Unix())), []string{"not yet valid"}},
		{"wrong audience", sign(t, key, "k1", with(good, "aud", "https://graph.microsoft.com")), []string{"audience"}},
		{"wrong issuer", sign(t, key, "k1", with(good, "iss", "https://sts.windows.net/evil/")), []string{"issuer"}},
		{"other tenant", sign(t, key, "k1", with(good, "tid", "99999999-2222-3333-4444-555555555555",
			"iss", "https://sts.windows.net/99999999-2222-3333-4444-555555555555/")), []string{"issuer"}},
		{"everything wrong", sign(t, rogue, "k1", with(good, "exp", now.Add(-time.Hour).Unix(), "nbf", now.Add(time.Hour).Unix(),
			"iss", "https://evil/", "aud", "x")), []string{"signature", "expired", "not yet valid", "issuer", "audience"}},
		{"malformed", "not.a.jwt", []string{"malformed"}},
		{"empty", "", []string{"malformed"}},
		{"claim of wrong type", sign(t, key, "k1", with(good, "exp", "tomorrow")), []string{"malformed"}},
		{"huge", strings.Repeat("a", maxTokenSize+1), []string{"malformed"}},
	}
	v := newTestVerifier(t, f, &VerifierOptions{Now: clock.Now})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, problems, err := v.Verify(context.Background(), tt.token)
			if err != nil {
				t.Fatalf("Verify(%s) error %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, problems, cmpopts.EquateEmpty()); diff != "" || problems == nil {
				t.Errorf("Verify(%s) problems mismatch (-want +got):\n%s", tt.name, diff)
			}
			if (claims == nil) != (len(tt.want) == 1 && tt.want[0] == "malformed") {
				t.Errorf("Verify(%s) claims = %v, want claims unless malformed", tt.name, claims)
			}
		})
	}
	if got := f.fetch.Load(); got != 1 {
		t.Errorf("JWKS fetches = %d, want 1", got)
	}
}

// newTestVerifier is a verifier of f's keys for testTenant, closed at the
// end of the test.
func newTestVerifier(t *testing.T, f *fakeJWKS, opts *VerifierOptions) *Verifier {
	t.Helper()
	if opts == nil {
		opts = &VerifierOptions{}
	}
	opts.Logger = quiet
	v := NewVerifier(f.srv.URL, testTenant, testAudience, f.srv.Client(), opts)
	t.Cleanup(v.Close)
	return v
}

// checkVerify verifies token with v and compares the problems and the
// number of key set fetches f has served.
func checkVerify(t *testing.T, v *Verifier, f *fakeJWKS, token string, want []string, wantFetches int64) {
	t.Helper()
	_, problems, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify() error %v", err)
	}
	if diff := cmp.Diff(want, problems, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Verify() problems mismatch (-want +got):\n%s", diff)
	}
	if got := f.fetch.Load(); got != wantFetches {
		t.Errorf("JWKS fetches = %d, want %d", got, wantFetches)
	}
}

func TestVerifyKeyRotation(t *testing.T) {
	k1, k2 := testKey(t, "jwks"), testKey(t, "rogue")
	f := newFakeJWKS(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	now := time.Now()
	v := newTestVerifier(t, f, nil)
	checkVerify(t, v, f, sign(t, k1, "k1", appClaims(now)), nil, 1)
	// The tenant rotates to k2: the first token naming it refetches.
	f.setKeys(map[string]*rsa.PublicKey{"k2": &k2.PublicKey})
	checkVerify(t, v, f, sign(t, k2, "k2", appClaims(now)), nil, 2)
	checkVerify(t, v, f, sign(t, k1, "k1", appClaims(now)), []string{"signature"}, 2) // k1 is gone
	// Another unknown kid within the minute does not refetch: a
	// signature problem at once.
	checkVerify(t, v, f, sign(t, k2, "k3", appClaims(now)), []string{"signature"}, 2)
	checkVerify(t, v, f, sign(t, k2, "k4", appClaims(now)), []string{"signature"}, 2)
}

func TestVerifyUnknownKeysNoStorm(t *testing.T) {
	key := testKey(t, "jwks")
	f := newFakeJWKS(t, map[string]*rsa.PublicKey{"k1": &key.PublicKey})
	v := newTestVerifier(t, f, nil)
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kid := "k1"
			if i%2 == 1 {
				kid = fmt.Sprintf("forged-%d", i)
			}
			_, problems, err := v.Verify(context.Background(), sign(t, key, kid, appClaims(time.Now())))
			if err != nil || (kid == "k1") != (len(problems) == 0) {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d of 100 Verify() calls answered wrongly", n)
	}
	// The first fetch, and at most one more for the unknown kids.
	if got := f.fetch.Load(); got > 2 {
		t.Errorf("JWKS fetches = %d, want at most 2", got)
	}
}

func TestVerifyRefreshFailureKeepsKeys(t *testing.T) {
	k1, k2 := testKey(t, "jwks"), testKey(t, "rogue")
	f := newFakeJWKS(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	// No spacing between unknown-kid refreshes, so each one tries.
	v := newTestVerifier(t, f, &VerifierOptions{UnknownKeyRefresh: time.Nanosecond})
	now := time.Now()
	checkVerify(t, v, f, sign(t, k1, "k1", appClaims(now)), nil, 1)
	f.mu.Lock()
	f.status = 500
	f.mu.Unlock()
	checkVerify(t, v, f, sign(t, k2, "k2", appClaims(now)), []string{"signature"}, 2)
	checkVerify(t, v, f, sign(t, k1, "k1", appClaims(now)), nil, 2) // still held
	// The endpoint recovers with the rotated keys.
	f.mu.Lock()
	f.status = 0
	f.mu.Unlock()
	f.setKeys(map[string]*rsa.PublicKey{"k2": &k2.PublicKey})
	checkVerify(t, v, f, sign(t, k2, "k2", appClaims(now)), nil, 3)
}

func TestVerifyBackgroundRefresh(t *testing.T) {
	k1, k2 := testKey(t, "jwks"), testKey(t, "rogue")
	f := newFakeJWKS(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	// jwkset refreshes on a real ticker: a short interval here.
	v := newTestVerifier(t, f, &VerifierOptions{KeysRefresh: 10 * time.Millisecond, UnknownKeyRefresh: time.Hour})
	now := time.Now()
	if _, problems, err := v.Verify(context.Background(), sign(t, k1, "k1", appClaims(now))); err != nil || len(problems) != 0 {
		t.Fatalf("Verify(k1) = %v, %v; want valid", problems, err)
	}
	// Use up the one unknown-kid refresh of the hour, so that only the
	// background refresh can bring k2 in.
	if _, _, err := v.Verify(context.Background(), sign(t, k2, "k9", appClaims(now))); err != nil {
		t.Fatal(err)
	}
	f.setKeys(map[string]*rsa.PublicKey{"k1": &k1.PublicKey, "k2": &k2.PublicKey})
	base := f.fetch.Load()
	deadline := time.Now().Add(5 * time.Second)
	for f.fetch.Load() < base+2 && time.Now().Before(deadline) {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	_, problems, err := v.Verify(context.Background(), sign(t, k2, "k2", appClaims(now)))
	if err != nil || len(problems) != 0 {
		t.Errorf("Verify(k2) after background refreshes = %v, %v; want valid", problems, err)
	}
	// Close stops the refresh.
	v.Close()
	time.Sleep(20 * time.Millisecond) // a tick in flight may finish
	stopped := f.fetch.Load()
	time.Sleep(50 * time.Millisecond)
	if got := f.fetch.Load(); got != stopped {
		t.Errorf("JWKS fetches after Close = %d, want %d", got, stopped)
	}
}

func TestVerifyKeysUnavailable(t *testing.T) {
	f := newFakeJWKS(t, nil)
	f.status = 503
	key := testKey(t, "jwks")
	token := sign(t, key, "k1", appClaims(time.Now()))
	v := newTestVerifier(t, f, nil)
	if _, _, err := v.Verify(context.Background(), token); err == nil {
		t.Errorf("Verify() with the JWKS answering 503: nil error, want one")
	}
	// An empty key set verifies nothing.
	f.mu.Lock()
	f.status = 0
	f.mu.Unlock()
	f.setKeys(nil)
	if _, _, err := v.Verify(context.Background(), token); err == nil {
		t.Errorf("Verify() with an empty key set: nil error, want one")
	}
	f.srv.Close()
	v = newTestVerifier(t, f, nil)
	if _, _, err := v.Verify(context.Background(), token); err == nil {
		t.Errorf("Verify() with the JWKS down: nil error, want one")
	}
}

func TestVerifyDomainTenant(t *testing.T) {
	key := testKey(t, "jwks")
	f := newFakeJWKS(t, map[string]*rsa.PublicKey{"k1": &key.PublicKey})
	v := NewVerifier(f.srv.URL, "contoso.onmicrosoft.com", testAudience, f.srv.Client(), nil)
	_, problems, err := v.Verify(context.Background(), sign(t, key, "k1", appClaims(time.Now())))
	if err != nil || len(problems) != 0 {
		t.Errorf("Verify() with a domain tenant = %v, %v; want valid", problems, err)
	}
}

func TestParseUnverified(t *testing.T) {
	key := testKey(t, "jwks")
	now := time.Unix(1772366400, 0).UTC()
	app := sign(t, key, "k1", appClaims(now))
	user := sign(t, key, "k1", jwt.MapClaims{
		"aud": testAudience, "iss": "https://sts.windows.net/" + testTenant + "/", "tid": testTenant,
		"appid": testClient, "upn": "u@contoso.com", "scp": "Alert.Read Machine.Isolate  Machine.Read",
		"exp": now.Unix(), "ver": "1.0",
	})
	v2 := sign(t, key, "k1", jwt.MapClaims{"azp": "azp-app", "preferred_username": "p@contoso.com", "aud": []string{"a", "b"}, "ver": "2.0"})
	tests := []struct {
		name  string
		token string
		want  *Claims
		typ   TokenType
	}{
		{"application", app, &Claims{TenantID: testTenant, AppID: testClient, ObjectID: "oid-1", Audience: testAudience,
			Issuer: "https://sts.windows.net/" + testTenant + "/", IssuedAt: now.Add(-time.Minute), NotBefore: now.Add(-time.Minute),
			ExpiresAt: now.Add(time.Hour), Roles: []string{"Alert.Read.All", "Machine.Isolate"}, Scopes: []string{}, Version: "1.0"}, TokenApplication},
		{"delegated", user, &Claims{TenantID: testTenant, AppID: testClient, UPN: "u@contoso.com", Audience: testAudience,
			Issuer: "https://sts.windows.net/" + testTenant + "/", ExpiresAt: now,
			Roles: []string{}, Scopes: []string{"Alert.Read", "Machine.Isolate", "Machine.Read"}, Version: "1.0"}, TokenDelegated},
		{"v2", v2, &Claims{AppID: "azp-app", UPN: "p@contoso.com", Audience: "a", Roles: []string{}, Scopes: []string{}, Version: "2.0"}, TokenApplication},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUnverified(tt.token)
			if err != nil {
				t.Fatalf("ParseUnverified(%s) error %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(Claims{})); diff != "" {
				t.Errorf("ParseUnverified(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
			if got.TokenType() != tt.typ {
				t.Errorf("ParseUnverified(%s).TokenType() = %v, want %v", tt.name, got.TokenType(), tt.typ)
			}
		})
	}
	for _, bad := range []string{"", "a.b", "a.b.c", "e30.e30", strings.Repeat("x", maxTokenSize+1),
		sign(t, key, "", jwt.MapClaims{"roles": "x", "exp": []int{1}})} {
		if _, err := ParseUnverified(bad); !errorsIs(err, ErrMalformedToken) {
			t.Errorf("ParseUnverified(%.20q) error = %v, want ErrMalformedToken", bad, err)
		}
	}
}
