//go:build !linux

package wiring

import "crypto/x509"

// systemRoots leaves the roots to crypto/x509 (the platform verifier on
// macOS and Windows).
func systemRoots() (*x509.CertPool, bool) { return nil, false }
