package auth

import (
	"context"
	"errors"
	"net/http"
)

// SecretSource reads the stored credential's current value. Implementations
// are safe for concurrent use and do no caching: wrap one in a
// CredentialStore or CachedSecret.
type SecretSource interface {
	// Secret returns the current value. Errors are *SecretError and never
	// contain the value.
	Secret(ctx context.Context) (string, error)
	// Name identifies the source in logs and errors ("keyvault:<name>",
	// "aws-secrets-manager:<id>", "environment:MDE_CLIENT_SECRET").
	Name() string
}

// MaxSecretBytes bounds a stored credential's value: larger than any real
// one (Key Vault stores at most 25 KB, Secrets Manager 64 KiB), so a bigger
// value is a misconfiguration or a hostile answer, refused before use.
const MaxSecretBytes = 64 << 10

func tooLarge(source SourceKind, name string) error {
	return &SecretError{Source: string(source), Name: name, Code: "SecretTooLarge", Message: "the secret's value is larger than 64 KiB"}
}

// KeyVaultOptionsFor returns the Key Vault options cfg implies (challenge
// verification, the user-assigned identity in managed-identity mode); callers
// may adjust the copy, e.g. its Retry.
func KeyVaultOptionsFor(cfg *Config) *KeyVaultOptions {
	opts := &KeyVaultOptions{DisableChallengeResourceVerification: cfg.KeyVaultDisableChallengeVerification}
	if cfg.Auth == AuthManagedIdentity {
		opts.ManagedIdentityClientID = cfg.ClientID
	}
	return opts
}

// NewSecretSource returns the credential source cfg selects by precedence:
// Key Vault (read with azidentity's default chain: managed identity, then
// environment or Azure CLI), then AWS Secrets Manager (the standard AWS SDK
// chain), then MDE_CLIENT_SECRET. In managed-identity mode it returns a nil
// source and a nil error. httpClient (nil = default) carries the vault's
// requests. It does no network I/O.
func NewSecretSource(cfg *Config, httpClient *http.Client) (SecretSource, error) {
	return newSource(cfg, cfg.CredentialSource, cfg.SecretName, cfg.AWSSecretID, cfg.ClientSecret, "MDE_CLIENT_SECRET", httpClient)
}

// NewWebhookSecretSource returns the source of the webhook signing secret:
// MDE_WEBHOOK_SECRET_NAME read from Key Vault (when MDE_KEYVAULT_URL is set)
// or as an AWS Secrets Manager ID, else MDE_WEBHOOK_SECRET. It returns nil
// and a nil error when no webhook secret is configured. Wrap it in
// NewCachedSecret.
func NewWebhookSecretSource(cfg *Config, httpClient *http.Client) (SecretSource, error) {
	switch {
	case cfg.WebhookSecretName != "" && cfg.KeyVaultURL != "":
		return newSource(cfg, SourceKeyVault, cfg.WebhookSecretName, "", "", "", httpClient)
	case cfg.WebhookSecretName != "":
		return newSource(cfg, SourceAWSSecretsManager, "", cfg.WebhookSecretName, "", "", httpClient)
	case cfg.WebhookSecret != "":
		return NewEnvSecretSource("MDE_WEBHOOK_SECRET", cfg.WebhookSecret), nil
	}
	return nil, nil
}

func newSource(cfg *Config, kind SourceKind, vaultName, awsID, envValue, envName string, httpClient *http.Client) (SecretSource, error) {
	switch kind {
	case SourceKeyVault:
		return NewKeyVaultSource(cfg.KeyVaultURL, vaultName, httpClient, KeyVaultOptionsFor(cfg))
	case SourceAWSSecretsManager:
		return NewAWSSecretSource(context.Background(), awsID, httpClient)
	case SourceEnvironment:
		return NewEnvSecretSource(envName, envValue), nil
	case SourceNone:
		return nil, nil
	}
	return nil, errors.New("auth: unknown credential source " + string(kind))
}
