package sim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

type testCert struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newTestCert(t *testing.T) testCert {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mdefn test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{key, cert}
}

// assertion signs a client assertion with signer's key, naming header's
// certificate in x5t (SHA-1) or x5t#S256.
func assertion(t *testing.T, signer, header testCert, sha256Thumb bool, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	if sha256Thumb {
		sum := sha256.Sum256(header.cert.Raw)
		tok.Header["x5t#S256"] = base64.RawURLEncoding.EncodeToString(sum[:])
	} else {
		sum := sha1.Sum(header.cert.Raw)
		tok.Header["x5t"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	signed, err := tok.SignedString(signer.key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func TestClientAssertion(t *testing.T) {
	s := newSim(t, nil)
	good, other := newTestCert(t), newTestCert(t)
	app := s.AddApp(App{Certificate: good.cert, Roles: []string{"Alert.Read.All"}})
	now := s.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"aud": s.TokenURL(), "iss": app.ClientID, "sub": app.ClientID, "jti": newGUID(),
			"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	tests := []struct {
		name      string
		assertion string
		wantCode  int // 0: success
	}{
		{"good x5t", assertion(t, good, good, false, claims(nil)), 0},
		{"good x5t#S256", assertion(t, good, good, true, claims(nil)), 0},
		{"v1 endpoint audience", assertion(t, good, good, false, claims(func(c jwt.MapClaims) { c["aud"] = s.TokenURLv1() })), 0},
		{"unregistered certificate", assertion(t, other, other, false, claims(nil)), 700027},
		{"signed by another key", assertion(t, other, good, false, claims(nil)), 700027},
		{"wrong audience", assertion(t, good, good, false, claims(func(c jwt.MapClaims) { c["aud"] = "https://login.example/token" })), 700027},
		{"expired", assertion(t, good, good, false, claims(func(c jwt.MapClaims) {
			c["nbf"], c["exp"] = now.Add(-time.Hour).Unix(), now.Add(-time.Minute).Unix()
		})), 700024},
		{"wrong issuer", assertion(t, good, good, false, claims(func(c jwt.MapClaims) { c["iss"] = DefaultClientID })), 700021},
		{"no jti", assertion(t, good, good, false, claims(func(c jwt.MapClaims) { delete(c, "jti") })), 700027},
		{"malformed", "not.a.jwt", 50027},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := clientcredentials.Config{ClientID: app.ClientID, TokenURL: s.TokenURL(), AuthStyle: oauth2.AuthStyleInParams,
				Scopes: []string{DefaultAudience + "/.default"},
				EndpointParams: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
					"client_assertion": {tt.assertion}}}
			tok, err := cfg.Token(s.ctx())
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("Token() error: %v", err)
				}
				c := parseClaims(t, tok.AccessToken)
				if c["appidacr"] != "2" || !cmp.Equal(c["roles"], []any{"Alert.Read.All"}) {
					t.Errorf("token appidacr = %v roles = %v, want 2 and [Alert.Read.All]", c["appidacr"], c["roles"])
				}
				return
			}
			e := asEntraError(t, err)
			if !cmp.Equal(e.ErrorCodes, []int{tt.wantCode}) || e.Error != "invalid_client" {
				t.Errorf("Token() error = %s %v (%s), want invalid_client [%d]", e.Error, e.ErrorCodes, e.Description, tt.wantCode)
			}
		})
	}
}
