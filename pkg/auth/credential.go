package auth

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Credential is the parsed stored credential. Which fields are set depends on
// the mode. TenantID and ClientID, when set, came from the secret's JSON and
// override the environment.
//
// A Credential never prints its secrets: String, GoString, Format, LogValue
// and MarshalJSON all redact them.
type Credential struct {
	ClientSecret string
	Certificate  []*x509.Certificate // leaf (the key's certificate) first, then the rest of the chain
	PrivateKey   crypto.Signer       // *rsa.PrivateKey
	Username     string
	Password     string
	TenantID     string
	ClientID     string
}

// maxCredentialSize bounds what ParseCredential accepts (Key Vault's own
// limit is 25 KiB).
const maxCredentialSize = 64 << 10

// ParseCredential parses a stored credential: a bare client secret; a PEM
// holding a certificate (and optionally its chain) and its RSA private key
// (PKCS#1 or PKCS#8, unencrypted); or JSON with any of clientSecret,
// certificate (PEM string), username, password, tenantId, clientId. It then
// checks that mode has what it needs (an empty mode checks nothing). Errors
// never contain the value.
func ParseCredential(raw string, mode Mode) (*Credential, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return nil, errors.New("auth: credential: empty value")
	}
	if len(s) > maxCredentialSize {
		return nil, fmt.Errorf("auth: credential: value is larger than %d bytes", maxCredentialSize)
	}
	c := &Credential{}
	switch {
	case strings.HasPrefix(s, "{"):
		var j struct {
			ClientSecret string `json:"clientSecret"`
			Certificate  string `json:"certificate"`
			Username     string `json:"username"`
			Password     string `json:"password"`
			TenantID     string `json:"tenantId"`
			ClientID     string `json:"clientId"`
		}
		if err := json.Unmarshal([]byte(s), &j); err != nil {
			// The decoder's message can quote the value; give only the offset.
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("auth: credential: invalid JSON at byte %d", se.Offset)
			}
			return nil, errors.New(`auth: credential: invalid JSON: fields must be strings ("clientSecret", "certificate", "username", "password", "tenantId", "clientId")`)
		}
		c.ClientSecret, c.Username, c.Password = j.ClientSecret, j.Username, j.Password
		c.TenantID, c.ClientID = strings.TrimSpace(j.TenantID), strings.TrimSpace(j.ClientID)
		if j.Certificate != "" {
			var err error
			if c.Certificate, c.PrivateKey, err = parsePEM(j.Certificate); err != nil {
				return nil, fmt.Errorf("auth: credential: certificate: %w", err)
			}
		}
		if c.TenantID != "" && !ValidTenant(c.TenantID) {
			return nil, errors.New("auth: credential: tenantId is not a tenant GUID or domain")
		}
	case strings.Contains(s, "-----BEGIN "):
		var err error
		if c.Certificate, c.PrivateKey, err = parsePEM(s); err != nil {
			return nil, fmt.Errorf("auth: credential: %w", err)
		}
	default:
		c.ClientSecret = s
	}

	switch mode {
	case ModeClientSecret:
		if c.ClientSecret == "" {
			return nil, errors.New(`auth: credential: client-secret mode needs a bare secret or JSON with "clientSecret"`)
		}
	case ModeClientCertificate:
		if c.PrivateKey == nil {
			return nil, errors.New(`auth: credential: client-certificate mode needs a PEM certificate and private key, or JSON with "certificate"`)
		}
	case ModePassword:
		if c.Username == "" || c.Password == "" {
			return nil, errors.New(`auth: credential: password mode needs JSON with "username" and "password"`)
		}
	case ModeManagedIdentity:
		return nil, errors.New("auth: credential: managed-identity mode uses no stored credential")
	}
	return c, nil
}

// ValidTenant reports whether s can be a tenant ID or domain: at most 256
// letters, digits, hyphens and dots.
func ValidTenant(s string) bool {
	if len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// parsePEM returns the certificates (leaf first) and the RSA key matching the
// leaf.
func parsePEM(s string) ([]*x509.Certificate, crypto.Signer, error) {
	rest := []byte(s)
	var certs []*x509.Certificate
	var key *rsa.PrivateKey
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, errors.New("a CERTIFICATE block does not parse")
			}
			certs = append(certs, cert)
		case "RSA PRIVATE KEY", "PRIVATE KEY":
			if key != nil {
				return nil, nil, errors.New("more than one private key")
			}
			if _, enc := b.Headers["Proc-Type"]; enc {
				return nil, nil, errors.New("encrypted private keys are not supported")
			}
			var err error
			if key, err = parseRSAKey(b); err != nil {
				return nil, nil, err
			}
		case "ENCRYPTED PRIVATE KEY":
			return nil, nil, errors.New("encrypted private keys are not supported")
		case "EC PRIVATE KEY":
			return nil, nil, errors.New("only RSA private keys are supported")
		}
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("no CERTIFICATE block in the PEM")
	}
	if key == nil {
		return nil, nil, errors.New("no private key (RSA PRIVATE KEY or PRIVATE KEY block) in the PEM")
	}
	for i, cert := range certs {
		if pub, ok := cert.PublicKey.(*rsa.PublicKey); ok && pub.Equal(&key.PublicKey) {
			chain := append([]*x509.Certificate{cert}, certs[:i]...)
			return append(chain, certs[i+1:]...), key, nil
		}
	}
	return nil, nil, errors.New("the private key does not match any certificate in the PEM")
}

func parseRSAKey(b *pem.Block) (*rsa.PrivateKey, error) {
	if b.Type == "RSA PRIVATE KEY" {
		k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
		if err != nil {
			return nil, errors.New("the RSA PRIVATE KEY block does not parse as PKCS#1")
		}
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("the PRIVATE KEY block does not parse as PKCS#8")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("only RSA private keys are supported")
	}
	return rk, nil
}

// Thumbprint returns the leaf certificate's SHA-1 thumbprint in upper-case
// hex, as the Azure portal shows it, or "" without a certificate.
func (c Credential) Thumbprint() string {
	if len(c.Certificate) == 0 {
		return ""
	}
	sum := sha1.Sum(c.Certificate[0].Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// String describes c without its secrets.
func (c Credential) String() string {
	var b bytes.Buffer
	b.WriteString("auth.Credential{")
	sep := ""
	field := func(name, v string) {
		fmt.Fprintf(&b, "%s%s: %s", sep, name, v)
		sep = ", "
	}
	if c.ClientSecret != "" {
		field("ClientSecret", "[REDACTED]")
	}
	if len(c.Certificate) > 0 {
		field("Certificate", c.Thumbprint())
	}
	if c.PrivateKey != nil {
		field("PrivateKey", "[REDACTED]")
	}
	if c.Username != "" {
		field("Username", c.Username)
	}
	if c.Password != "" {
		field("Password", "[REDACTED]")
	}
	if c.TenantID != "" {
		field("TenantID", c.TenantID)
	}
	if c.ClientID != "" {
		field("ClientID", c.ClientID)
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String, so %#v redacts too.
func (c Credential) GoString() string { return c.String() }

// Format makes every fmt verb print the redacted String.
func (c Credential) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LogValue logs what kind of credential this is, never its secrets.
func (c Credential) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.Bool("clientSecret", c.ClientSecret != ""),
		slog.Bool("password", c.Password != ""),
	}
	if len(c.Certificate) > 0 {
		attrs = append(attrs, slog.String("thumbprint", c.Thumbprint()),
			slog.Time("notAfter", c.Certificate[0].NotAfter))
	}
	if c.Username != "" {
		attrs = append(attrs, slog.String("username", c.Username))
	}
	if c.TenantID != "" {
		attrs = append(attrs, slog.String("tenantId", c.TenantID))
	}
	if c.ClientID != "" {
		attrs = append(attrs, slog.String("clientId", c.ClientID))
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON writes the redacted description, never the secrets.
func (c Credential) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.String())
}
