package sim

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newSim starts a simulator that the test's cleanup closes.
func newSim(t *testing.T, opts *Options) *Sim {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start(%v) error: %v", opts, err)
	}
	t.Cleanup(s.Close)
	return s
}

// getJSON GETs url with the simulator's client and decodes a JSON answer.
func getJSON(t *testing.T, s *Sim, url string, header http.Header, into any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("GET %s: decode %q: %v", url, b, err)
		}
	}
	return resp.StatusCode
}

func TestStartAccessors(t *testing.T) {
	s := newSim(t, nil)
	for name, u := range map[string]string{
		"AuthorityURL": s.AuthorityURL(), "VaultURL": s.VaultURL(), "SecretsManagerURL": s.SecretsManagerURL(),
		"DefenderURL": s.DefenderURL(),
	} {
		if !strings.HasPrefix(u, "https://127.0.0.1:") {
			t.Errorf("%s() = %q, want https://127.0.0.1:<port>", name, u)
		}
	}
	if u := s.IdentityEndpoint(); !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Errorf("IdentityEndpoint() = %q, want http://127.0.0.1:<port>/...", u)
	}
	if s.TenantID() != DefaultTenantID || s.IdentityHeader() == "" {
		t.Errorf("TenantID() = %q, IdentityHeader() = %q; want %q and non-empty", s.TenantID(), s.IdentityHeader(), DefaultTenantID)
	}

	block, _ := pem.Decode(s.CACertPEM())
	if block == nil {
		t.Fatalf("CACertPEM() is not PEM")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("CACertPEM() = certificate (IsCA %v), error %v; want a CA", ca != nil && ca.IsCA, err)
	}

	// The simulator's client trusts the CA; a default client does not.
	if code := getJSON(t, s, s.JWKSURL(), nil, nil); code != http.StatusOK {
		t.Errorf("GET JWKS with HTTPClient() = %d, want 200", code)
	}
	_, err = (&http.Client{Transport: &http.Transport{}}).Get(s.JWKSURL())
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("GET JWKS with a default client error = %v, want x509.UnknownAuthorityError", err)
	}

	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := s.WriteCA(path); err != nil {
		t.Fatalf("WriteCA(%q) = %v", path, err)
	}
	if b, _ := os.ReadFile(path); !slices.Equal(b, s.CACertPEM()) {
		t.Errorf("WriteCA wrote %q, want CACertPEM()", b)
	}
}

func TestEnv(t *testing.T) {
	s := newSim(t, nil)
	env := s.Env(map[string]string{"MDE_KEYVAULT_URL": "", "MDE_AWS_SECRET_ID": DefaultAWSSecretID})
	want := map[string]string{
		"MDE_TENANT_ID":      DefaultTenantID,
		"MDE_CLIENT_ID":      DefaultClientID,
		"MDE_AUTHORITY_URL":  s.AuthorityURL(),
		"MDE_API_URL":        s.DefenderURL(),
		"MDE_TOKEN_AUDIENCE": DefaultAudience,
		"MDE_SECRET_NAME":    DefaultSecretName,
		"MDE_AWS_SECRET_ID":  DefaultAWSSecretID,

		"MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION": "true",

		"IDENTITY_ENDPOINT":                s.IdentityEndpoint(),
		"IDENTITY_HEADER":                  s.IdentityHeader(),
		"SSL_CERT_FILE":                    env["SSL_CERT_FILE"],
		"AWS_CA_BUNDLE":                    env["SSL_CERT_FILE"],
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": s.SecretsManagerURL(),
		"AWS_REGION":                       DefaultAWSRegion,
		"AWS_ACCESS_KEY_ID":                DefaultAWSAccessKeyID,
		"AWS_SECRET_ACCESS_KEY":            DefaultAWSSecretAccessKey,
		"AWS_EC2_METADATA_DISABLED":        "true",
	}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("Env(overrides) mismatch (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(env["SSL_CERT_FILE"]); err != nil || !slices.Equal(b, s.CACertPEM()) {
		t.Errorf("SSL_CERT_FILE %q holds %q (error %v), want the CA PEM", env["SSL_CERT_FILE"], b, err)
	}
	list := s.Environ(nil)
	if !slices.IsSorted(list) || !slices.Contains(list, "MDE_KEYVAULT_URL="+s.VaultURL()) {
		t.Errorf("Environ(nil) = %v, want sorted with MDE_KEYVAULT_URL", list)
	}

	// Close removes the CA file.
	s.Close()
	if _, err := os.Stat(env["SSL_CERT_FILE"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, Stat(SSL_CERT_FILE) error = %v, want not exist", err)
	}
}

func TestClockAdvance(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newSim(t, &Options{Clock: func() time.Time { return base }})
	if got := s.Now(); !got.Equal(base) {
		t.Errorf("Now() = %v, want %v", got, base)
	}
	s.Advance(90 * time.Minute)
	if got, want := s.Now(), base.Add(90*time.Minute); !got.Equal(want) {
		t.Errorf("after Advance(90m) Now() = %v, want %v", got, want)
	}
	claims := parseClaims(t, s.IssueToken(TokenSpec{}))
	if got, want := int64(claims["iat"].(float64)), base.Add(90*time.Minute).Unix(); got != want {
		t.Errorf("token iat = %d, want %d", got, want)
	}
	if got, want := int64(claims["exp"].(float64)), base.Add(90*time.Minute+DefaultTokenLifetime).Unix(); got != want {
		t.Errorf("token exp = %d, want %d", got, want)
	}
}

const time1 = time.Hour

// decode reads a JSON body.
func decode(t *testing.T, resp *http.Response, into any) {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}
