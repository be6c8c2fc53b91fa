package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/pkg/auth"
)

const (
	testTenant = "11111111-2222-3333-4444-555555555555"
	testClient = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

// base is the minimal valid client-secret environment.
func base(extra ...string) map[string]string {
	m := map[string]string{
		"MDE_TENANT_ID":     testTenant,
		"MDE_CLIENT_ID":     testClient,
		"MDE_CLIENT_SECRET": "s3cr3t",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "<unset>" {
			delete(m, extra[i])
			continue
		}
		m[extra[i]] = extra[i+1]
	}
	return m
}

// want is the Config base() yields, modified by f.
func want(f func(c *Config)) *Config {
	c := &Config{
		TenantID:             testTenant,
		ClientID:             testClient,
		Auth:                 auth.ModeClientSecret,
		CredentialSource:     auth.SourceEnvironment,
		SecretName:           "mde-client-secret",
		ClientSecret:         "s3cr3t",
		SecretTTL:            5 * time.Minute,
		Cloud:                auth.CloudPublic,
		APIURL:               "https://api.security.microsoft.com",
		AuthorityURL:         "https://login.microsoftonline.com",
		TokenAudience:        "https://api.securitycenter.microsoft.com",
		TokenEndpointVersion: auth.TokenEndpointV2,
		LogLevel:             slog.LevelInfo,
		Timeout:              30 * time.Second,
		ListenAddr:           "127.0.0.1:7071",
		Warnings:             []string{"MDE_CLIENT_SECRET holds the credential in plain environment: use it for local development only"},
	}
	if f != nil {
		f(c)
	}
	return c
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want *Config
	}{
		{"defaults", base(), want(nil)},
		{"gcc", base("MDE_CLOUD", "gcc"), want(func(c *Config) {
			c.Cloud = auth.CloudGCC
			c.APIURL = "https://api-gcc.securitycenter.microsoft.us"
			c.TokenAudience = "https://api-gcc.securitycenter.microsoft.us"
		})},
		{"gcc-high", base("MDE_CLOUD", "gcc-high"), want(func(c *Config) {
			c.Cloud = auth.CloudGCCHigh
			c.APIURL = "https://api-gov.securitycenter.microsoft.us"
			c.AuthorityURL = "https://login.microsoftonline.us"
			c.TokenAudience = "https://api-gov.securitycenter.microsoft.us"
		})},
		{"dod upper case", base("MDE_CLOUD", "DoD"), want(func(c *Config) {
			c.Cloud = auth.CloudDoD
			c.APIURL = "https://api-gov.securitycenter.microsoft.us"
			c.AuthorityURL = "https://login.microsoftonline.us"
			c.TokenAudience = "https://api-gov.securitycenter.microsoft.us"
		})},
		{"explicit URLs override the cloud", base(
			"MDE_CLOUD", "gcc-high",
			"MDE_API_URL", "https://eu.api.security.microsoft.com/",
			"MDE_AUTHORITY_URL", "http://127.0.0.1:8443",
			"MDE_TOKEN_AUDIENCE", "https://aud.example/",
		), want(func(c *Config) {
			c.Cloud = auth.CloudGCCHigh
			c.APIURL = "https://eu.api.security.microsoft.com"
			c.AuthorityURL = "http://127.0.0.1:8443"
			c.TokenAudience = "https://aud.example"
		})},
		{"key vault wins, others warned", base(
			"MDE_KEYVAULT_URL", "https://v.vault.azure.net/",
			"MDE_SECRET_NAME", "other-name",
			"MDE_AWS_SECRET_ID", "arn:aws:secretsmanager:eu-west-1:1:secret:x",
			"MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION", "true",
		), want(func(c *Config) {
			c.CredentialSource = auth.SourceKeyVault
			c.KeyVaultURL = "https://v.vault.azure.net"
			c.SecretName = "other-name"
			c.AWSSecretID = "arn:aws:secretsmanager:eu-west-1:1:secret:x"
			c.KeyVaultDisableChallengeVerification = true
			c.Warnings = []string{
				"MDE_AWS_SECRET_ID is ignored: MDE_KEYVAULT_URL takes precedence",
				"MDE_CLIENT_SECRET is ignored: MDE_KEYVAULT_URL takes precedence",
			}
		})},
		{"aws wins over environment", base("MDE_AWS_SECRET_ID", "mde/cred"), want(func(c *Config) {
			c.CredentialSource = auth.SourceAWSSecretsManager
			c.AWSSecretID = "mde/cred"
			c.Warnings = []string{"MDE_CLIENT_SECRET is ignored: MDE_AWS_SECRET_ID takes precedence"}
		})},
		{"managed identity needs no client ID nor secret", base(
			"MDE_AUTH", "managed-identity", "MDE_CLIENT_ID", "<unset>", "MDE_CLIENT_SECRET", "<unset>",
		), want(func(c *Config) {
			c.Auth = auth.ModeManagedIdentity
			c.ClientID = ""
			c.ClientSecret = ""
			c.CredentialSource = SourceNone
			c.Warnings = nil
		})},
		{"every behaviour setting", base(
			"MDE_SECRET_TTL", "90s",
			"MDE_TOKEN_ENDPOINT_VERSION", "v1",
			"MDE_PROTECTED_TAGS", " crown-jewel, ,dc ,",
			"MDE_DRY_RUN", "true",
			"MDE_MAX_ISOLATIONS_PER_HOUR", "5",
			"MDE_LOG_LEVEL", "debug",
			"MDE_TIMEOUT", "1m30s",
			"MDE_LISTEN_ADDR", ":8080",
			"MDE_WEBHOOK_SECRET", "hook",
		), want(func(c *Config) {
			c.SecretTTL = 90 * time.Second
			c.TokenEndpointVersion = auth.TokenEndpointV1
			c.ProtectedTags = []string{"crown-jewel", "dc"}
			c.DryRun = true
			c.MaxIsolationsPerHour = 5
			c.LogLevel = slog.LevelDebug
			c.Timeout = 90 * time.Second
			c.ListenAddr = ":8080"
			c.WebhookSecret = "hook"
			c.Warnings = append(c.Warnings, "MDE_WEBHOOK_SECRET holds the webhook secret in plain environment: use it for local development only")
		})},
		{"webhook secret name wins", base(
			"MDE_KEYVAULT_URL", "https://v.vault.azure.net",
			"MDE_CLIENT_SECRET", "<unset>",
			"MDE_WEBHOOK_SECRET_NAME", "hook-secret",
			"MDE_WEBHOOK_SECRET", "plain",
		), want(func(c *Config) {
			c.CredentialSource = auth.SourceKeyVault
			c.KeyVaultURL = "https://v.vault.azure.net"
			c.ClientSecret = ""
			c.WebhookSecretName = "hook-secret"
			c.Warnings = []string{"MDE_WEBHOOK_SECRET is ignored: MDE_WEBHOOK_SECRET_NAME takes precedence"}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(env(tt.env))
			if err != nil {
				t.Fatalf("Load(%v) error %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load(%v) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	rsaKey := testKey(t, "config")
	_, certPEM := testCert(t, rsaKey, "config")
	tests := []struct {
		name    string
		env     map[string]string
		setting string
	}{
		{"no tenant", base("MDE_TENANT_ID", "<unset>"), "MDE_TENANT_ID"},
		{"bad tenant", base("MDE_TENANT_ID", "a/b"), "MDE_TENANT_ID"},
		{"no client", base("MDE_CLIENT_ID", "<unset>"), "MDE_CLIENT_ID"},
		{"unknown auth", base("MDE_AUTH", "kerberos"), "MDE_AUTH"},
		{"unknown cloud", base("MDE_CLOUD", "azure"), "MDE_CLOUD"},
		{"no credential source", base("MDE_CLIENT_SECRET", "<unset>"), "MDE_AUTH"},
		{"password without source", base("MDE_AUTH", "password", "MDE_CLIENT_SECRET", "<unset>"), "MDE_AUTH"},
		{"certificate with a bare secret", base("MDE_AUTH", "client-certificate"), "MDE_CLIENT_SECRET"},
		{"certificate without key", base("MDE_AUTH", "client-certificate", "MDE_CLIENT_SECRET", certPEM), "MDE_CLIENT_SECRET"},
		{"password with a bare secret", base("MDE_AUTH", "password"), "MDE_CLIENT_SECRET"},
		{"http key vault", base("MDE_KEYVAULT_URL", "http://127.0.0.1:1"), "MDE_KEYVAULT_URL"},
		{"relative key vault", base("MDE_KEYVAULT_URL", "v.vault.azure.net"), "MDE_KEYVAULT_URL"},
		{"bad secret name", base("MDE_KEYVAULT_URL", "https://v.vault.azure.net", "MDE_SECRET_NAME", "a_b"), "MDE_SECRET_NAME"},
		{"http API URL", base("MDE_API_URL", "http://api.security.microsoft.com"), "MDE_API_URL"},
		{"ftp API URL", base("MDE_API_URL", "ftp://127.0.0.1"), "MDE_API_URL"},
		{"API URL with query", base("MDE_API_URL", "https://a.example/?x=1"), "MDE_API_URL"},
		{"http authority", base("MDE_AUTHORITY_URL", "http://login.example"), "MDE_AUTHORITY_URL"},
		{"relative authority", base("MDE_AUTHORITY_URL", "/login"), "MDE_AUTHORITY_URL"},
		{"bad token version", base("MDE_TOKEN_ENDPOINT_VERSION", "v3"), "MDE_TOKEN_ENDPOINT_VERSION"},
		{"bad ttl", base("MDE_SECRET_TTL", "5"), "MDE_SECRET_TTL"},
		{"negative ttl", base("MDE_SECRET_TTL", "-1m"), "MDE_SECRET_TTL"},
		{"bad timeout", base("MDE_TIMEOUT", "soon"), "MDE_TIMEOUT"},
		{"loose bool dry run", base("MDE_DRY_RUN", "yes"), "MDE_DRY_RUN"},
		{"upper-case bool", base("MDE_DRY_RUN", "TRUE"), "MDE_DRY_RUN"},
		{"loose bool challenge", base("MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION", "1"), "MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION"},
		{"negative cap", base("MDE_MAX_ISOLATIONS_PER_HOUR", "-1"), "MDE_MAX_ISOLATIONS_PER_HOUR"},
		{"word cap", base("MDE_MAX_ISOLATIONS_PER_HOUR", "ten"), "MDE_MAX_ISOLATIONS_PER_HOUR"},
		{"bad log level", base("MDE_LOG_LEVEL", "verbose"), "MDE_LOG_LEVEL"},
		{"bad listen addr", base("MDE_LISTEN_ADDR", "7071"), "MDE_LISTEN_ADDR"},
		{"webhook name without vault", base("MDE_WEBHOOK_SECRET_NAME", "hook"), "MDE_WEBHOOK_SECRET_NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(env(tt.env))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load(%v) = %v, %v; want *Error", tt.name, got, err)
			}
			if ce.Setting != tt.setting {
				t.Errorf("Load(%v) error setting = %q, want %q (%v)", tt.name, ce.Setting, tt.setting, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tt.setting+": ") || strings.Contains(msg, "\n") {
				t.Errorf("Load(%v) error = %q, want one line starting with %q", tt.name, msg, tt.setting+": ")
			}
			if v := tt.env["MDE_CLIENT_SECRET"]; v != "" && strings.Contains(err.Error(), v) {
				t.Errorf("Load(%v) error quotes MDE_CLIENT_SECRET", tt.name)
			}
		})
	}
}

func TestLoadCertificateAndPassword(t *testing.T) {
	key := testKey(t, "config")
	_, certPEM := testCert(t, key, "config")
	for _, tt := range []struct {
		mode, secret string
	}{
		{"client-certificate", certPEM + pkcs1PEM(key)},
		{"password", `{"username":"u@contoso.com","password":"pw"}`},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			c, err := Load(env(base("MDE_AUTH", tt.mode, "MDE_CLIENT_SECRET", tt.secret)))
			if err != nil {
				t.Fatalf("Load(%s) error %v", tt.mode, err)
			}
			if c.Auth != auth.Mode(tt.mode) || c.CredentialSource != auth.SourceEnvironment {
				t.Errorf("Load(%s) = auth %q source %q, want %q environment", tt.mode, c.Auth, c.CredentialSource, tt.mode)
			}
		})
	}
}

func TestConfigRedacts(t *testing.T) {
	c, err := Load(env(base("MDE_CLIENT_SECRET", "canary-cfg-secret", "MDE_WEBHOOK_SECRET", "canary-cfg-hook")))
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		for _, v := range []any{c, *c} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "canary-cfg") || strings.Contains(out, fmt.Sprintf("%x", "canary-cfg")) {
				t.Errorf("Sprintf(%q, config) = %q, leaks a secret", verb, out)
			}
		}
	}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("config", "config", c)
	if strings.Contains(b.String(), "canary-cfg") {
		t.Errorf("slog of config = %s, leaks a secret", b.String())
	}
	if !strings.Contains(b.String(), testTenant) {
		t.Errorf("slog of config = %s, want the tenant ID", b.String())
	}
}
