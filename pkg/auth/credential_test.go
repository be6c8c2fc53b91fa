package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCredential(t *testing.T) {
	key := testKey(t, "cred")
	other := testKey(t, "other")
	cert, certPEM := testCert(t, key, "leaf")
	otherCert, otherPEM := testCert(t, other, "ca")
	jsonPEM, _ := json.Marshal(certPEM + pkcs8PEM(t, key))

	type summary struct {
		ClientSecret, Username, Password, TenantID, ClientID string
		Certs                                                []string // subjects, leaf first
		HasKey                                               bool
	}
	sum := func(c *Credential) summary {
		s := summary{ClientSecret: c.ClientSecret, Username: c.Username, Password: c.Password, TenantID: c.TenantID, ClientID: c.ClientID, HasKey: c.PrivateKey != nil}
		for _, x := range c.Certificate {
			s.Certs = append(s.Certs, x.Subject.CommonName)
		}
		return s
	}
	tests := []struct {
		name string
		raw  string
		mode Mode
		want summary
	}{
		{"bare secret trimmed", "  abc~123 \n", ModeClientSecret, summary{ClientSecret: "abc~123"}},
		{"PEM PKCS#1", certPEM + pkcs1PEM(key), ModeClientCertificate, summary{Certs: []string{"leaf"}, HasKey: true}},
		{"PEM PKCS#8 key first, chain reordered", pkcs8PEM(t, key) + otherPEM + certPEM, ModeClientCertificate, summary{Certs: []string{"leaf", "ca"}, HasKey: true}},
		{"JSON secret overrides", `{"clientSecret":"js","tenantId":"contoso.onmicrosoft.com","clientId":"cid"}`, ModeClientSecret,
			summary{ClientSecret: "js", TenantID: "contoso.onmicrosoft.com", ClientID: "cid"}},
		{"JSON certificate", `{"certificate":` + string(jsonPEM) + `}`, ModeClientCertificate, summary{Certs: []string{"leaf"}, HasKey: true}},
		{"JSON public password", `{"username":"u@contoso.com","password":"pw"}`, ModePassword, summary{Username: "u@contoso.com", Password: "pw"}},
		{"JSON confidential password", `{"username":"u","password":"pw","clientSecret":"cs","unknown":1}`, ModePassword, summary{Username: "u", Password: "pw", ClientSecret: "cs"}},
		{"any mode", `{"username":"u"}`, "", summary{Username: "u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCredential(tt.raw, tt.mode)
			if err != nil {
				t.Fatalf("ParseCredential(%s) error %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, sum(got)); diff != "" {
				t.Errorf("ParseCredential(%s) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
	if c, _ := ParseCredential(certPEM+pkcs1PEM(key), ModeClientCertificate); !c.Certificate[0].Equal(cert) || c.Certificate[0].Equal(otherCert) {
		t.Errorf("ParseCredential(PEM) leaf is not the key's certificate")
	}
}

func TestParseCredentialErrors(t *testing.T) {
	key := testKey(t, "cred")
	other := testKey(t, "other")
	_, certPEM := testCert(t, key, "leaf")
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const canary = "CANARY-raw-value"
	tests := []struct {
		name string
		raw  string
		mode Mode
	}{
		{"empty", "  ", ModeClientSecret},
		{"too large", strings.Repeat("x", maxCredentialSize+1), ModeClientSecret},
		{"bad JSON", `{"clientSecret":"` + canary, ModeClientSecret},
		{"JSON wrong type", `{"clientSecret":1,"password":"` + canary + `"}`, ModeClientSecret},
		{"JSON without secret", `{"username":"u","password":"` + canary + `"}`, ModeClientSecret},
		{"bare secret for certificate", canary, ModeClientCertificate},
		{"certificate without key", certPEM, ModeClientCertificate},
		{"key without certificate", pkcs1PEM(key), ModeClientCertificate},
		{"mismatched key", certPEM + pkcs1PEM(other), ModeClientCertificate},
		{"EC key", certPEM + pkcs8PEM(t, ec), ModeClientCertificate},
		{"garbage certificate", "-----BEGIN CERTIFICATE-----\nQ0FOQVJZ\n-----END CERTIFICATE-----\n" + pkcs1PEM(key), ModeClientCertificate},
		{"garbage key", certPEM + "-----BEGIN RSA PRIVATE KEY-----\nQ0FOQVJZ\n-----END RSA PRIVATE KEY-----\n", ModeClientCertificate},
		{"encrypted key", certPEM + "-----BEGIN ENCRYPTED PRIVATE KEY-----\nQ0FOQVJZ\n-----END ENCRYPTED PRIVATE KEY-----\n", ModeClientCertificate},
		{"password without password", `{"username":"u","clientSecret":"` + canary + `"}`, ModePassword},
		{"bare secret for password", canary, ModePassword},
		{"managed identity", canary, ModeManagedIdentity},
		{"bad JSON tenant", `{"clientSecret":"` + canary + `","tenantId":"a/b"}`, ModeClientSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCredential(tt.raw, tt.mode)
			if err == nil {
				t.Fatalf("ParseCredential(%s) = %v, want an error", tt.name, got)
			}
			if strings.Contains(err.Error(), "CANARY") || strings.Contains(err.Error(), "PRIVATE KEY-----") {
				t.Errorf("ParseCredential(%s) error %q quotes the value", tt.name, err)
			}
		})
	}
}

func TestCredentialRedacts(t *testing.T) {
	key := testKey(t, "cred")
	_, certPEM := testCert(t, key, "leaf")
	raw, _ := json.Marshal(map[string]string{
		"clientSecret": "CANARY-cs", "username": "user@contoso.com", "password": "CANARY-pw",
		"certificate": certPEM + pkcs1PEM(key),
	})
	c, err := ParseCredential(string(raw), ModePassword)
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c))
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("cred", "cred", c, "value", *c)
	slog.New(slog.NewTextHandler(&b, nil)).Info("cred", "cred", c)
	outs = append(outs, b.String())
	keyPEM := pkcs1PEM(key)
	keyMarker := keyPEM[40:80] // some of the base64 key body
	for _, out := range outs {
		if strings.Contains(out, "CANARY") || strings.Contains(out, keyMarker) || strings.Contains(out, key.D.String()[:20]) {
			t.Errorf("formatted credential %q leaks a secret", out)
		}
	}
	if !strings.Contains(b.String(), c.Thumbprint()) || !strings.Contains(fmt.Sprint(c), "user@contoso.com") {
		t.Errorf("formatted credential %q lacks the thumbprint or the user name", b.String())
	}
}
