//go:build !mdefn_noazure

package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// AzureRetryOptions is azcore's retry policy, for the Key Vault client and
// the managed identity credential.
type AzureRetryOptions = policy.RetryOptions

// KeyVaultOptions tune NewKeyVaultSource. The zero value is the production
// setting.
type KeyVaultOptions struct {
	// Credential authenticates to the vault. Nil means azidentity's
	// DefaultAzureCredential (managed identity in Azure; environment, Azure
	// CLI or developer login locally), preceded by the user-assigned
	// identity ManagedIdentityClientID when set.
	Credential azcore.TokenCredential

	// ManagedIdentityClientID selects a user-assigned managed identity.
	ManagedIdentityClientID string

	// DisableChallengeResourceVerification is for a local vault emulator
	// whose host is not a Key Vault domain.
	DisableChallengeResourceVerification bool

	// Retry overrides azcore's retry policy (zero value = its defaults).
	Retry AzureRetryOptions
}

// KeyVaultSource reads the current version of one Key Vault secret. Safe for
// concurrent use.
type KeyVaultSource struct {
	client *azsecrets.Client
	name   string
}

// NewKeyVaultSource returns a source for secret secretName in the vault at
// vaultURL (https). httpClient (nil = default) carries both the vault's and
// the credential's requests. No I/O happens before the first Secret call.
func NewKeyVaultSource(vaultURL, secretName string, httpClient *http.Client, opts *KeyVaultOptions) (*KeyVaultSource, error) {
	if opts == nil {
		opts = &KeyVaultOptions{}
	}
	co := azcore.ClientOptions{Retry: opts.Retry}
	if httpClient != nil {
		co.Transport = httpClient
	}
	cred := opts.Credential
	if cred == nil {
		var err error
		if cred, err = defaultAzureCredential(co, opts.ManagedIdentityClientID); err != nil {
			return nil, fmt.Errorf("auth: key vault credential: %w", err)
		}
	}
	client, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{
		ClientOptions:                        co,
		DisableChallengeResourceVerification: opts.DisableChallengeResourceVerification,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: key vault client: %w", err)
	}
	return &KeyVaultSource{client: client, name: secretName}, nil
}

func defaultAzureCredential(co azcore.ClientOptions, userAssignedID string) (azcore.TokenCredential, error) {
	dac, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: co})
	if err != nil {
		return nil, err
	}
	if userAssignedID == "" {
		return dac, nil
	}
	mi, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: co, ID: azidentity.ClientID(userAssignedID),
	})
	if err != nil {
		return nil, err
	}
	return azidentity.NewChainedTokenCredential([]azcore.TokenCredential{mi, dac}, nil)
}

// Secret reads the secret's current version.
func (s *KeyVaultSource) Secret(ctx context.Context) (string, error) {
	resp, err := s.client.GetSecret(ctx, s.name, "", nil)
	if err != nil {
		return "", s.error(err)
	}
	if resp.Value == nil || *resp.Value == "" {
		return "", &SecretError{Source: string(SourceKeyVault), Name: s.name, Code: "EmptySecret", Message: "the secret has no value"}
	}
	if len(*resp.Value) > MaxSecretBytes {
		return "", tooLarge(SourceKeyVault, s.name)
	}
	return *resp.Value, nil
}

// Name returns "keyvault:<secret name>".
func (s *KeyVaultSource) Name() string { return string(SourceKeyVault) + ":" + s.name }

func (s *KeyVaultSource) error(err error) error {
	se := &SecretError{Source: string(SourceKeyVault), Name: s.name, Err: err}
	var re *azcore.ResponseError
	var af *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &af):
		se.Code = "AuthenticationFailed"
		se.Message = "could not get a token for the vault: " + clip(oneLine(af.Error()), 600)
		if af.RawResponse != nil {
			se.StatusCode = af.RawResponse.StatusCode
		}
	case errors.As(err, &re):
		se.StatusCode, se.Code = re.StatusCode, re.ErrorCode
		se.Message = vaultMessage(re.RawResponse)
		if se.Code == "" {
			se.Code = http.StatusText(re.StatusCode)
		}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		se.Message = "no answer from the vault: " + err.Error()
	default:
		// Credential unavailable (the chain lists each attempt), connection
		// refused, TLS: no secret in these.
		se.Message = clip(oneLine(err.Error()), 600)
	}
	return se
}

// vaultMessage extracts error.message from a Key Vault error body.
func vaultMessage(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	body, err := runtime.Payload(resp)
	if err != nil {
		return ""
	}
	var v struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return clip(v.Error.Message, 300)
}
