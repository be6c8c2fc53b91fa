package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

const (
	testTenant = "11111111-2222-3333-4444-555555555555"
	testClient = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
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

// fakeSource is a SecretSource whose value and error the test sets. With a
// gate, a read signals started (when not nil) and then blocks until the gate
// is closed or its context ends.
type fakeSource struct {
	mu      sync.Mutex
	value   string
	err     error
	gate    chan struct{}
	started chan struct{}
	reads   atomic.Int64
}

func (s *fakeSource) set(value string, err error) {
	s.mu.Lock()
	s.value, s.err = value, err
	s.mu.Unlock()
}

func (s *fakeSource) Secret(ctx context.Context) (string, error) {
	s.reads.Add(1)
	s.mu.Lock()
	v, err, gate, started := s.value, s.err, s.gate, s.started
	s.mu.Unlock()
	if gate != nil {
		if started != nil {
			select {
			case started <- struct{}{}:
			default:
			}
		}
		select {
		case <-gate:
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

// recordSleep is an injectable sleep that returns at once and records the
// delays asked for.
type recordSleep struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *recordSleep) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *recordSleep) Delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.delays...)
}

var noRetry = policy.RetryOptions{MaxRetries: -1}

func stringsContains(s, sub string) bool { return strings.Contains(s, sub) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// quiet is a logger for tests whose warnings are expected.
var quiet = slog.New(slog.DiscardHandler)
