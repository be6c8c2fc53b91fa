package wiring

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mdefn/mdefn/sim"
)

// TestSystemRootsAsGo: the roots systemRoots loads are the ones
// crypto/x509 trusts on this machine, with this process's environment
// (x509.SystemCertPool reads it once per process).
func TestSystemRootsAsGo(t *testing.T) {
	want, err := x509.SystemCertPool()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := systemRoots()
	if !ok {
		if want.Equal(x509.NewCertPool()) {
			t.Skip("no system roots on this machine")
		}
		t.Fatal("systemRoots found nothing, crypto/x509 did")
	}
	if !got.Equal(want) {
		t.Error("systemRoots differs from x509.SystemCertPool")
	}
}

// TestSystemRootsEnv: SSL_CERT_FILE replaces the bundles, SSL_CERT_DIR
// (":" separated) the directories; symbolic links to a file of the same
// directory are skipped, other files read; a missing file or directory is
// no error; nothing found is ok=false.
func TestSystemRootsEnv(t *testing.T) {
	s, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ca, err := s.CAFile()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	// A second CA, from another certificate's PEM: a sibling simulator's.
	s2, err := sim.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ca2, _ := s2.CAFile()
	pem2, _ := os.ReadFile(ca2)

	dir, dir2 := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dir, "b.pem"), pem2, 0o644)
	os.Symlink("b.pem", filepath.Join(dir, "1234abcd.0")) // same-directory link: skipped, as x509 does
	os.WriteFile(filepath.Join(dir2, "junk.txt"), []byte("not a certificate"), 0o644)

	t.Setenv("SSL_CERT_FILE", ca)
	t.Setenv("SSL_CERT_DIR", dir+":"+dir2+":"+filepath.Join(dir, "missing"))
	got, ok := systemRoots()
	want := x509.NewCertPool()
	want.AppendCertsFromPEM(pem)
	want.AppendCertsFromPEM(pem2)
	if !ok || !got.Equal(want) {
		t.Errorf("systemRoots with SSL_CERT_FILE and SSL_CERT_DIR: ok %v, equal %v", ok, got.Equal(want))
	}

	t.Setenv("SSL_CERT_FILE", filepath.Join(dir, "missing.pem"))
	t.Setenv("SSL_CERT_DIR", dir2)
	if _, ok := systemRoots(); ok {
		t.Error("systemRoots found certificates where there are none")
	}

	// Through the preconnector: the simulator's CA, from SSL_CERT_FILE,
	// verifies its upstreams.
	t.Setenv("SSL_CERT_FILE", ca)
	t.Setenv("SSL_CERT_DIR", dir2)
	_, client := newPreconnector()
	client.Timeout = 10 * time.Second
	resp, err := client.Get(s.DefenderURL() + "/api/machines")
	if err != nil {
		t.Fatalf("GET with the roots of SSL_CERT_FILE: %v", err)
	}
	resp.Body.Close()
}
