package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// authority is the certificate authority generated at Start and the leaf
// certificate every HTTPS upstream serves (127.0.0.1, ::1, localhost).
type authority struct {
	cert *x509.Certificate
	pem  []byte
	pool *x509.CertPool
	leaf tls.Certificate
}

func newAuthority() (*authority, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mdefn simulator CA", Organization: []string{"mdefn"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}

	a := &authority{
		cert: caCert,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pool: x509.NewCertPool(),
		leaf: tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey},
	}
	a.pool.AddCert(caCert)
	return a, nil
}

func (a *authority) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{a.leaf},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// CACertPEM returns the simulator CA certificate, PEM encoded.
func (s *Sim) CACertPEM() []byte { return append([]byte(nil), s.ca.pem...) }

// CertPool returns a pool holding only the simulator CA.
func (s *Sim) CertPool() *x509.CertPool { return s.ca.pool.Clone() }

// WriteCA writes the CA certificate (PEM) to path, mode 0644.
func (s *Sim) WriteCA(path string) error {
	if err := os.WriteFile(path, s.ca.pem, 0o644); err != nil {
		return fmt.Errorf("sim: write CA: %w", err)
	}
	return nil
}

// CAFile returns the path of a PEM file holding the CA certificate, written
// on first use into a temporary directory that Close removes. It is what Env
// puts in SSL_CERT_FILE.
func (s *Sim) CAFile() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.caFile != "" {
		return s.caFile, nil
	}
	dir, err := os.MkdirTemp("", "mdefn-sim-")
	if err != nil {
		return "", fmt.Errorf("sim: write CA: %w", err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, s.ca.pem, 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("sim: write CA: %w", err)
	}
	s.caFile, s.caFileDir = path, dir
	return path, nil
}

// TLSConfig returns a client TLS configuration trusting only the simulator CA.
func (s *Sim) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12}
}

// HTTPClient returns a new HTTP client that trusts the simulator CA (and
// nothing else) and does not use a proxy. Each call returns a new client with
// its own connection pool.
func (s *Sim) HTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     s.TLSConfig(),
			ForceAttemptHTTP2:   false,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
		Timeout: 60 * time.Second,
	}
}
