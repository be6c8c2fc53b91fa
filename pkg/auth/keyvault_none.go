//go:build mdefn_noazure

package auth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// ErrNoAzure is returned, in an executable built with the tag mdefn_noazure
// (the AWS Lambda bootstraps, which so do not link the Azure SDK), by
// NewKeyVaultSource and by a ModeManagedIdentity token source.
var ErrNoAzure = errors.New("auth: this executable is built without the Azure SDK (tag mdefn_noazure, as the AWS Lambda bootstraps are): " +
	"Key Vault and managed identity are not available; on Lambda store the credential in Secrets Manager (MDE_AWS_SECRET_ID)")

// AzureRetryOptions has the fields of azcore's policy.RetryOptions (the type
// in the default build), so that settings compile in both builds.
type AzureRetryOptions struct {
	MaxRetries    int32
	TryTimeout    time.Duration
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	StatusCodes   []int
	ShouldRetry   func(*http.Response, error) bool
}

// KeyVaultOptions tune NewKeyVaultSource (see the default build; Credential
// is an azcore.TokenCredential there).
type KeyVaultOptions struct {
	Credential                           any
	ManagedIdentityClientID              string
	DisableChallengeResourceVerification bool
	Retry                                AzureRetryOptions
}

// KeyVaultSource is not available in this build.
type KeyVaultSource struct{ name string }

// NewKeyVaultSource returns ErrNoAzure in this build.
func NewKeyVaultSource(vaultURL, secretName string, httpClient *http.Client, opts *KeyVaultOptions) (*KeyVaultSource, error) {
	return nil, ErrNoAzure
}

// Secret returns ErrNoAzure.
func (s *KeyVaultSource) Secret(context.Context) (string, error) { return "", ErrNoAzure }

// Name returns "keyvault:<secret name>".
func (s *KeyVaultSource) Name() string { return string(SourceKeyVault) + ":" + s.name }

type managedIdentity struct{}

func newManagedIdentity(clientID, audience string, httpClient *http.Client, retry AzureRetryOptions) (*managedIdentity, error) {
	return nil, ErrNoAzure
}

func (m *managedIdentity) token(context.Context) (*oauth2.Token, error) { return nil, ErrNoAzure }
