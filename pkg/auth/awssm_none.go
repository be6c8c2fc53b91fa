//go:build mdefn_noaws

package auth

import (
	"context"
	"errors"
	"net/http"
)

// ErrNoAWS is returned by NewAWSSecretSource in an executable built with the
// tag mdefn_noaws (the Azure custom handler, which so does not link the AWS
// SDK).
var ErrNoAWS = errors.New("auth: this executable is built without the AWS SDK (tag mdefn_noaws, as the Azure custom handler is): " +
	"Secrets Manager is not available; in Azure store the credential in Key Vault (MDE_KEYVAULT_URL)")

// AWSSecretSource is not available in this build.
type AWSSecretSource struct{ id string }

// NewAWSSecretSource returns ErrNoAWS in this build. optFns are the default
// build's AWS configuration options (func(*config.LoadOptions) error), typed
// any here so that this build does not link the AWS SDK.
func NewAWSSecretSource(ctx context.Context, secretID string, httpClient *http.Client, optFns ...any) (*AWSSecretSource, error) {
	return nil, ErrNoAWS
}

// Secret returns ErrNoAWS.
func (s *AWSSecretSource) Secret(context.Context) (string, error) { return "", ErrNoAWS }

// Name returns "aws-secrets-manager:<secret ID>".
func (s *AWSSecretSource) Name() string { return string(SourceAWSSecretsManager) + ":" + s.id }
