package config

import (
	"context"
	"net/http"

	"github.com/mdefn/mdefn/pkg/auth"
)

// What the configuration means for pkg/auth's constructors. Each method
// returns a fresh value the caller may adjust (a logger, shorter retries).

// TokenOptions returns the token source options c implies: the authority,
// the audience and the token endpoint version.
func (c *Config) TokenOptions() *auth.TokenOptions {
	return &auth.TokenOptions{
		AuthorityURL:    c.AuthorityURL,
		Audience:        c.TokenAudience,
		EndpointVersion: c.TokenEndpointVersion,
	}
}

// StoreOptions returns the credential store options c implies: the TTL
// (MDE_SECRET_TTL).
func (c *Config) StoreOptions() *auth.StoreOptions {
	return &auth.StoreOptions{TTL: c.SecretTTL}
}

// KeyVaultOptions returns the Key Vault options c implies: challenge
// verification, and the user-assigned identity in managed-identity mode.
func (c *Config) KeyVaultOptions() *auth.KeyVaultOptions {
	opts := &auth.KeyVaultOptions{DisableChallengeResourceVerification: c.KeyVaultDisableChallengeVerification}
	if c.Auth == auth.ModeManagedIdentity {
		opts.ManagedIdentityClientID = c.ClientID
	}
	return opts
}

// SecretSource returns the credential source c selects by precedence: Key
// Vault (MDE_KEYVAULT_URL, MDE_SECRET_NAME), then AWS Secrets Manager
// (MDE_AWS_SECRET_ID), then MDE_CLIENT_SECRET. It returns a nil source and a
// nil error when no credential is stored (managed-identity mode).
// httpClient (nil = default) carries the vault's requests; kv nil means
// c.KeyVaultOptions(). It does no network I/O.
func (c *Config) SecretSource(httpClient *http.Client, kv *auth.KeyVaultOptions) (auth.SecretSource, error) {
	t, _ := c.DefaultTenant()
	return c.TenantSecretSource(t, httpClient, kv)
}

// TenantSecretSource is SecretSource for tenant t: with {tenant} in
// MDE_SECRET_NAME or MDE_AWS_SECRET_ID, the secret named for t; otherwise
// the one secret every tenant shares.
func (c *Config) TenantSecretSource(t Tenant, httpClient *http.Client, kv *auth.KeyVaultOptions) (auth.SecretSource, error) {
	switch c.CredentialSource {
	case auth.SourceKeyVault:
		return c.keyVault(forTenant(c.SecretName, t), httpClient, kv)
	case auth.SourceAWSSecretsManager:
		return awsSecret(forTenant(c.AWSSecretID, t), httpClient)
	case auth.SourceEnvironment:
		return auth.NewEnvSecretSource("MDE_CLIENT_SECRET", c.ClientSecret), nil
	}
	return nil, nil
}

// WebhookSecretSource returns the source of the webhook signing secret:
// MDE_WEBHOOK_SECRET_NAME read from Key Vault (when MDE_KEYVAULT_URL is set)
// or as an AWS Secrets Manager ID, else MDE_WEBHOOK_SECRET. It returns nil
// and a nil error when no webhook secret is configured. Wrap it in
// auth.NewCachedSecret. httpClient and kv are as for SecretSource.
func (c *Config) WebhookSecretSource(httpClient *http.Client, kv *auth.KeyVaultOptions) (auth.SecretSource, error) {
	switch {
	case c.WebhookSecretName != "" && c.KeyVaultURL != "":
		return c.keyVault(c.WebhookSecretName, httpClient, kv)
	case c.WebhookSecretName != "":
		return awsSecret(c.WebhookSecretName, httpClient)
	case c.WebhookSecret != "":
		return auth.NewEnvSecretSource("MDE_WEBHOOK_SECRET", c.WebhookSecret), nil
	}
	return nil, nil
}

func (c *Config) keyVault(name string, httpClient *http.Client, kv *auth.KeyVaultOptions) (auth.SecretSource, error) {
	if kv == nil {
		kv = c.KeyVaultOptions()
	}
	src, err := auth.NewKeyVaultSource(c.KeyVaultURL, name, httpClient, kv)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return src, nil
}

func awsSecret(id string, httpClient *http.Client) (auth.SecretSource, error) {
	src, err := auth.NewAWSSecretSource(context.Background(), id, httpClient)
	if err != nil {
		return nil, err
	}
	return src, nil
}
