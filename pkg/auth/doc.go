// Package auth reads mdefn's configuration and obtains the credentials and
// tokens the Defender for Endpoint API needs.
//
// The pieces, in the order a function wires them at cold start:
//
//	cfg, err := auth.LoadConfig(os.Getenv)        // no I/O; exit non-zero on error
//	src, err := auth.NewSecretSource(cfg, nil)    // Key Vault, Secrets Manager or environment
//	store := auth.NewCredentialStore(cfg, src, nil)   // nil in managed-identity mode
//	tokens, err := auth.NewTokenSource(cfg, store, nil, nil)
//
// tokens is safe for concurrent use and meant to live for the whole process:
// it caches the access token in memory, refreshes it five minutes before
// expiry with a single upstream request, and rereads the secret after the
// store's TTL so a rotated secret is picked up without a restart.
//
// ParseUnverified decodes a token without checking it; a Verifier checks its
// signature against the tenant's published keys and its claims, and
// Permissions tells which mdefn functions a token's roles or scopes allow.
//
// Errors: *ConfigError (a setting), *SecretError (the vault, Secrets Manager
// or the secret's format), *EntraError (the token endpoint or managed
// identity answered with an error). None of them ever holds a secret, a
// password, a private key or a token.
package auth
