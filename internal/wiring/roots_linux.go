package wiring

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Go's lists for Linux (crypto/x509 root_linux.go), in its order.
var (
	rootFiles = []string{
		"/etc/ssl/certs/ca-certificates.crt",
		"/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/ca-bundle.pem",
		"/etc/pki/tls/cacert.pem",
		"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
		"/etc/ssl/cert.pem",
	}
	rootDirs = []string{"/etc/ssl/certs", "/etc/pki/tls/certs"}
)

// systemRoots returns the certificates crypto/x509 trusts on Linux, read
// from the same places by the same rules (SSL_CERT_FILE or the first
// distribution bundle that exists; every file of SSL_CERT_DIR, ":"
// separated, or of the distribution directories, but for symbolic links to
// a file of the same directory), but parses each distinct certificate once
// and on every core: a distribution's bundle and its certificate directory
// hold the same certificates, which x509.SystemCertPool parses twice, one
// after the other (docs/performance.md). ok is false when nothing was
// found; the caller then leaves the roots to crypto/x509.
func systemRoots() (pool *x509.CertPool, ok bool) {
	files := rootFiles
	if f := os.Getenv("SSL_CERT_FILE"); f != "" {
		files = []string{f}
	}
	dirs := rootDirs
	if d := os.Getenv("SSL_CERT_DIR"); d != "" {
		dirs = strings.Split(d, ":")
	}
	bundle, paths := rootSources(files, dirs)

	// Read every file, on every core.
	contents := make([][]byte, len(paths)+1)
	contents[0] = bundle
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), 4)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(paths); i += workers {
				contents[i+1], _ = os.ReadFile(paths[i])
			}
		})
	}
	wg.Wait()

	// Each PEM block once, as written: a distribution's directory holds its
	// bundle again and each of the bundle's certificates in a file of its
	// own.
	var chunks [][]byte
	written := map[string]bool{}
	for _, data := range contents {
		for _, c := range splitPEM(data) {
			if !written[string(c)] {
				written[string(c)] = true
				chunks = append(chunks, c)
			}
		}
	}

	// Decode and parse on every core; a certificate written two ways is
	// still parsed once.
	var (
		mu    sync.Mutex
		seen  = map[string]bool{}
		certs []*x509.Certificate
	)
	for w := range workers {
		wg.Go(func() {
			var mine []*x509.Certificate
			for i := w; i < len(chunks); i += workers {
				data := chunks[i]
				for len(data) > 0 {
					var b *pem.Block
					if b, data = pem.Decode(data); b == nil {
						break
					}
					if b.Type != "CERTIFICATE" || len(b.Headers) != 0 {
						continue
					}
					mu.Lock()
					dup := seen[string(b.Bytes)]
					seen[string(b.Bytes)] = true
					mu.Unlock()
					if dup {
						continue
					}
					if c, err := x509.ParseCertificate(b.Bytes); err == nil { // unparsable ones are skipped, as x509 does
						mine = append(mine, c)
					}
				}
			}
			mu.Lock()
			certs = append(certs, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(certs) == 0 {
		return nil, false
	}
	pool = x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, true
}

// rootSources returns the contents of the first of files that can be read,
// and the paths of every file of dirs but symbolic links to a file of the
// same directory, as crypto/x509 reads them.
func rootSources(files, dirs []string) (bundle []byte, paths []string) {
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			bundle = data
			break
		}
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Type()&fs.ModeSymlink != 0 {
				if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && !strings.Contains(target, "/") {
					continue
				}
			}
			paths = append(paths, dir+"/"+e.Name())
		}
	}
	return bundle, paths
}

// splitPEM cuts data before each "-----BEGIN" that starts a line, trimming
// the white space around each piece; pieces decode as the whole does.
func splitPEM(data []byte) [][]byte {
	var out [][]byte
	begin := []byte("-----BEGIN")
	for len(data) > 0 {
		next := -1
		for from := 1; from < len(data); {
			i := bytes.Index(data[from:], begin)
			if i < 0 {
				break
			}
			if data[from+i-1] == '\n' {
				next = from + i
				break
			}
			from += i + 1
		}
		if next < 0 {
			next = len(data)
		}
		if c := bytes.TrimSpace(data[:next]); len(c) > 0 {
			out = append(out, c)
		}
		data = data[next:]
	}
	return out
}
