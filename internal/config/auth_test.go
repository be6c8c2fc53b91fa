package config

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/pkg/auth"
)

func TestOptions(t *testing.T) {
	c, err := Load(env(base("MDE_CLOUD", "gcc-high", "MDE_TOKEN_ENDPOINT_VERSION", "v1", "MDE_SECRET_TTL", "2m",
		"MDE_KEYVAULT_URL", "https://v.vault.azure.net", "MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION", "true")))
	if err != nil {
		t.Fatal(err)
	}
	want := &auth.TokenOptions{AuthorityURL: "https://login.microsoftonline.us", Audience: "https://api-gov.securitycenter.microsoft.us", EndpointVersion: auth.TokenEndpointV1}
	if diff := cmp.Diff(want, c.TokenOptions()); diff != "" {
		t.Errorf("TokenOptions() mismatch (-want +got):\n%s", diff)
	}
	if got := c.StoreOptions(); got.TTL != 2*time.Minute {
		t.Errorf("StoreOptions().TTL = %v, want 2m", got.TTL)
	}
	if diff := cmp.Diff(&auth.KeyVaultOptions{DisableChallengeResourceVerification: true}, c.KeyVaultOptions()); diff != "" {
		t.Errorf("KeyVaultOptions() mismatch (-want +got):\n%s", diff)
	}
	mi, err := Load(env(base("MDE_AUTH", "managed-identity", "MDE_CLIENT_ID", "uami", "MDE_CLIENT_SECRET", "<unset>")))
	if err != nil {
		t.Fatal(err)
	}
	if got := mi.KeyVaultOptions().ManagedIdentityClientID; got != "uami" {
		t.Errorf("KeyVaultOptions().ManagedIdentityClientID in managed-identity mode = %q, want uami", got)
	}
}

func TestSecretSources(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CA_BUNDLE", "")
	tests := []struct {
		name              string
		env               map[string]string
		secret, webhook   string // the sources' names; "" = none
		secretV, webhookV string // the values of plain-environment sources
	}{
		{"environment", base("MDE_WEBHOOK_SECRET", "hook"), "environment:MDE_CLIENT_SECRET", "environment:MDE_WEBHOOK_SECRET", "s3cr3t", "hook"},
		{"key vault first", base("MDE_KEYVAULT_URL", "https://v.vault.azure.net", "MDE_AWS_SECRET_ID", "aws-id", "MDE_WEBHOOK_SECRET_NAME", "hook"),
			"keyvault:mde-client-secret", "keyvault:hook", "", ""},
		{"secrets manager", base("MDE_AWS_SECRET_ID", "aws-id", "MDE_WEBHOOK_SECRET_NAME", "mde/hook"),
			"aws-secrets-manager:aws-id", "aws-secrets-manager:mde/hook", "", ""},
		{"managed identity, no webhook", base("MDE_AUTH", "managed-identity", "MDE_CLIENT_SECRET", "<unset>"), "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []struct {
				what      string
				get       func() (auth.SecretSource, error)
				name, val string
			}{
				{"SecretSource", func() (auth.SecretSource, error) { return c.SecretSource(nil, nil) }, tt.secret, tt.secretV},
				{"WebhookSecretSource", func() (auth.SecretSource, error) { return c.WebhookSecretSource(nil, nil) }, tt.webhook, tt.webhookV},
			} {
				src, err := s.get()
				if err != nil {
					t.Fatalf("%s() error %v", s.what, err)
				}
				if s.name == "" {
					if src != nil {
						t.Errorf("%s() = %s, want none", s.what, src.Name())
					}
					continue
				}
				if src == nil || src.Name() != s.name {
					t.Fatalf("%s() = %v, want %s", s.what, src, s.name)
				}
				if s.val != "" {
					if v, err := src.Secret(context.Background()); err != nil || v != s.val {
						t.Errorf("%s().Secret() = %q, %v; want %q", s.what, v, err, s.val)
					}
				}
			}
		})
	}
}
