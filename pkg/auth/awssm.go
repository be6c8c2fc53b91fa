//go:build !mdefn_noaws

package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
)

// AWSSecretSource reads the current version (AWSCURRENT) of one AWS Secrets
// Manager secret. Safe for concurrent use.
type AWSSecretSource struct {
	client *secretsmanager.Client
	id     string
}

// NewAWSSecretSource returns a source for secretID (name or ARN), configured
// by the standard AWS SDK chain (region, credentials, endpoint overrides such
// as AWS_ENDPOINT_URL_SECRETS_MANAGER) plus optFns. httpClient (nil =
// default) carries the requests, except when AWS_CA_BUNDLE is set: the SDK
// then builds its own client trusting that bundle. Loading the configuration reads only the
// environment and shared config files; no network I/O happens before the
// first Secret call.
func NewAWSSecretSource(ctx context.Context, secretID string, httpClient *http.Client, optFns ...func(*config.LoadOptions) error) (*AWSSecretSource, error) {
	if httpClient != nil && os.Getenv("AWS_CA_BUNDLE") == "" {
		optFns = append([]func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}, optFns...)
	}
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return nil, fmt.Errorf("auth: aws configuration: %w", err)
	}
	return &AWSSecretSource{client: secretsmanager.NewFromConfig(cfg), id: secretID}, nil
}

// Secret returns SecretString, or SecretBinary as a string.
func (s *AWSSecretSource) Secret(ctx context.Context) (string, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id)})
	if err != nil {
		return "", s.error(err)
	}
	switch {
	case len(aws.ToString(out.SecretString)) > MaxSecretBytes || len(out.SecretBinary) > MaxSecretBytes:
		return "", tooLarge(SourceAWSSecretsManager, s.id)
	case out.SecretString != nil && *out.SecretString != "":
		return *out.SecretString, nil
	case len(out.SecretBinary) > 0:
		return string(out.SecretBinary), nil
	}
	return "", &SecretError{Source: string(SourceAWSSecretsManager), Name: s.id, Code: "EmptySecret", Message: "the secret has no value"}
}

// Name returns "aws-secrets-manager:<secret ID>".
func (s *AWSSecretSource) Name() string { return string(SourceAWSSecretsManager) + ":" + s.id }

func (s *AWSSecretSource) error(err error) error {
	se := &SecretError{Source: string(SourceAWSSecretsManager), Name: s.id, Err: err}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		se.StatusCode = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		se.Code, se.Message = ae.ErrorCode(), clip(ae.ErrorMessage(), 300)
	} else {
		// Credentials, connection, deadline: no secret in these.
		se.Message = clip(firstLine(err.Error()), 300)
	}
	return se
}
