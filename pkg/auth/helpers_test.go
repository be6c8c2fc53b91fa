package auth

import (
	"errors"
	"log/slog"
	"strings"

	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeSource is a SecretSource whose value and error the test sets.
type fakeSource struct {
	mu    sync.Mutex
	value string
	err   error
	delay time.Duration
	reads atomic.Int64
}

func (s *fakeSource) set(value string, err error) {
	s.mu.Lock()
	s.value, s.err = value, err
	s.mu.Unlock()
}

func (s *fakeSource) Secret(ctx context.Context) (string, error) {
	s.reads.Add(1)
	s.mu.Lock()
	v, err, d := s.value, s.err, s.delay
	s.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return v, err
}

func (s *fakeSource) Name() string { return "keyvault:fake" }

// testKey returns an RSA key, generated once per name (keys are slow).
var (
	keysMu sync.Mutex
	keys   = map[string]*rsa.PrivateKey{}
)

func testKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keys[name]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keys[name] = k
	return k
}

// testCert returns a self-signed certificate for key, and its PEM.
func testCert(t testing.TB, key *rsa.PrivateKey, cn string) (*x509.Certificate, string) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func pkcs1PEM(key *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}

func pkcs8PEM(t testing.TB, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var noRetry = policy.RetryOptions{MaxRetries: -1}

func stringsContains(s, sub string) bool { return strings.Contains(s, sub) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// quiet is a logger for tests whose warnings are expected.
var quiet = slog.New(slog.DiscardHandler)
