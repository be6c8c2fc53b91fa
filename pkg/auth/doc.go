// Package auth obtains the credentials and tokens the Microsoft Defender for
// Endpoint API needs, and inspects tokens.
//
// The pieces, in the order a program wires them once at start (no I/O
// happens until the first token is asked for):
//
//	src, err := auth.NewKeyVaultSource(vaultURL, "mde-client-secret", nil, nil) // or NewAWSSecretSource, NewEnvSecretSource
//	store := auth.NewCredentialStore(src, auth.ModeClientSecret, nil)
//	tokens, err := auth.NewTokenSource(auth.ModeClientSecret, tenantID, clientID, store, nil, nil)
//	client, err := atp.NewClient("https://api.security.microsoft.com", tokens, nil)
//
// In ModeManagedIdentity no stored credential is needed: pass a nil store.
// For another Microsoft cloud, take the URLs from Cloud.Endpoints and set
// TokenOptions.AuthorityURL and Audience.
//
// tokens is safe for concurrent use and meant to live for the whole process:
// it caches the access token in memory, refreshes it five minutes before
// expiry with a single upstream request, and the store rereads the secret
// after its TTL so a rotated secret is picked up without a restart. A
// CachedSecret caches any other secret (a webhook signing key) the same way.
//
// ParseUnverified decodes a token without checking it; a Verifier checks its
// signature against the tenant's published keys and its claims, and
// Claims.Check tells whether its roles or scopes allow an operation.
//
// Errors: *SecretError (the vault, Secrets Manager or the secret's format),
// *EntraError (the token endpoint or managed identity answered with an
// error); every TokenSource error matches ErrToken. None of them ever holds
// a secret, a password, a private key or a token.
//
// Build tags: mdefn_noazure leaves the Azure SDK out (NewKeyVaultSource and
// ModeManagedIdentity then fail with ErrNoAzure), mdefn_noaws the AWS SDK
// (NewAWSSecretSource fails with ErrNoAWS); mdefn's Lambda bootstraps and
// Azure executable are built with one each. Without either tag, both are in.
package auth
