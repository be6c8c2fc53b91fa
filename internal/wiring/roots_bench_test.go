package wiring

import (
	"crypto/x509"
	"os"
	"testing"
)

// BenchmarkSystemRoots: this machine's roots as systemRoots loads them
// (each distinct certificate parsed once, on every core) ...
func BenchmarkSystemRoots(b *testing.B) {
	for b.Loop() {
		if _, ok := systemRoots(); !ok {
			b.Skip("no system roots")
		}
	}
}

// ... and as crypto/x509 loads them (x509.SystemCertPool caches its first
// answer: this is the same reading and parsing, uncached).
func BenchmarkGoSystemRoots(b *testing.B) {
	for b.Loop() {
		pool := x509.NewCertPool()
		bundle, paths := rootSources(rootFiles, rootDirs)
		pool.AppendCertsFromPEM(bundle)
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				pool.AppendCertsFromPEM(data)
			}
		}
	}
}
