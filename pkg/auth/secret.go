package auth

import (
	"context"
)

// SecretSource reads a stored secret's current value. Implementations are
// safe for concurrent use and do no caching: wrap one in a CredentialStore
// or CachedSecret.
type SecretSource interface {
	// Secret returns the current value. Errors are *SecretError and never
	// contain the value.
	Secret(ctx context.Context) (string, error)
	// Name identifies the source in logs and errors ("keyvault:<name>",
	// "aws-secrets-manager:<id>", "environment:<variable>").
	Name() string
}

// SourceKind names a kind of SecretSource: it is SecretError.Source and the
// prefix of SecretSource.Name.
type SourceKind string

// The kinds of the sources of this package.
const (
	SourceKeyVault          SourceKind = "keyvault"
	SourceAWSSecretsManager SourceKind = "aws-secrets-manager"
	SourceEnvironment       SourceKind = "environment"
)

// MaxSecretBytes bounds a stored credential's value: larger than any real
// one (Key Vault stores at most 25 KB, Secrets Manager 64 KiB), so a bigger
// value is a misconfiguration or a hostile answer, refused before use.
const MaxSecretBytes = 64 << 10

func tooLarge(source SourceKind, name string) error {
	return &SecretError{Source: string(source), Name: name, Code: "SecretTooLarge", Message: "the secret's value is larger than 64 KiB"}
}
