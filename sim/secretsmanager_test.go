package sim

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

// awsClient returns the real Secrets Manager client configured only through
// the standard chain from the simulator's environment (endpoint override,
// region, static keys, AWS_CA_BUNDLE), as a child process of `mdefn dev` is.
func awsClient(t *testing.T, s *Sim, accessKeyID string) *secretsmanager.Client {
	t.Helper()
	for k, v := range s.Env(map[string]string{"AWS_ACCESS_KEY_ID": accessKeyID}) {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	return secretsmanager.NewFromConfig(cfg)
}

func TestSecretsManager(t *testing.T) {
	s := newSim(t, nil)
	c := awsClient(t, s, DefaultAWSAccessKeyID)
	ctx := context.Background()

	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(DefaultAWSSecretID)})
	if err != nil {
		t.Fatalf("GetSecretValue(%q) error: %v", DefaultAWSSecretID, err)
	}
	if aws.ToString(out.SecretString) != DefaultClientSecret || aws.ToString(out.Name) != DefaultAWSSecretID ||
		aws.ToString(out.ARN) != s.AWSSecretARN(DefaultAWSSecretID) || out.CreatedDate == nil ||
		len(out.VersionStages) != 1 || out.VersionStages[0] != "AWSCURRENT" {
		t.Errorf("GetSecretValue(%q) = name %q arn %q stages %v created %v; want the default secret, AWSCURRENT",
			DefaultAWSSecretID, aws.ToString(out.Name), aws.ToString(out.ARN), out.VersionStages, out.CreatedDate)
	}
	first := aws.ToString(out.VersionId)

	second := s.SetAWSSecret(DefaultAWSSecretID, "rotated")
	byARN, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.AWSSecretARN(DefaultAWSSecretID))})
	if err != nil || aws.ToString(byARN.SecretString) != "rotated" || aws.ToString(byARN.VersionId) != second {
		t.Errorf("GetSecretValue(ARN) after rotation = version %q (error %v), want %q", aws.ToString(byARN.VersionId), err, second)
	}
	prev, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(DefaultAWSSecretID),
		VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(prev.VersionId) != first {
		t.Errorf("GetSecretValue(AWSPREVIOUS) = version %q (error %v), want %q", aws.ToString(prev.VersionId), err, first)
	}

	s.SetAWSSecretBinary("bin", []byte{0, 1, 2, 255})
	bin, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin")})
	if err != nil || string(bin.SecretBinary) != "\x00\x01\x02\xff" || bin.SecretString != nil {
		t.Errorf("GetSecretValue(bin) = %v (error %v), want the binary value", bin.SecretBinary, err)
	}
	if n := s.AWSSecretReads(); n != 4 {
		t.Errorf("AWSSecretReads() = %d, want 4", n)
	}
}

func TestSecretsManagerErrors(t *testing.T) {
	s := newSim(t, nil)
	s.SetAWSAccess("AKIADENIED0000000001", false)
	ctx := context.Background()
	tests := []struct {
		name     string
		akid     string
		id       string
		version  string
		wantCode string
	}{
		{"not found", DefaultAWSAccessKeyID, "nope", "", "ResourceNotFoundException"},
		{"unknown version", DefaultAWSAccessKeyID, DefaultAWSSecretID, "11111111-1111-4111-8111-111111111111", "ResourceNotFoundException"},
		{"denied", "AKIADENIED0000000001", DefaultAWSSecretID, "", "AccessDeniedException"},
		{"unknown key", "AKIAUNKNOWN000000001", DefaultAWSSecretID, "", "UnrecognizedClientException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := awsClient(t, s, tt.akid)
			in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(tt.id)}
			if tt.version != "" {
				in.VersionId = aws.String(tt.version)
			}
			_, err := c.GetSecretValue(ctx, in)
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != tt.wantCode {
				t.Errorf("GetSecretValue(%q) error = %v, want %s", tt.id, err, tt.wantCode)
			}
		})
	}

	c := awsClient(t, s, DefaultAWSAccessKeyID)
	_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("GetSecretValue(nope) error = %T %v, want *types.ResourceNotFoundException", err, err)
	}

	for _, f := range []struct {
		fault Fault
		code  string
	}{
		{AWSError(400, "DecryptionFailure", "Secrets Manager can't decrypt the protected secret text using the provided KMS key."), "DecryptionFailure"},
		{AWSError(500, "InternalServiceError", "An error occurred on the server side."), "InternalServiceError"},
	} {
		h := s.Inject(SecretsManager, f.fault)
		_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(DefaultAWSSecretID)})
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != f.code {
			t.Errorf("with fault %s, GetSecretValue error = %v, want %s", f.code, err, f.code)
		}
		h.Remove()
	}
}

// A caller passing its own HTTP client (trusting the CA) and a BaseEndpoint
// works as well, with AWS_CA_BUNDLE unset (the SDK refuses to combine them).
func TestSecretsManagerExplicitClient(t *testing.T) {
	s := newSim(t, nil)
	t.Setenv("AWS_CA_BUNDLE", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", "")
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithHTTPClient(s.HTTPClient()),
		config.WithRegion(DefaultAWSRegion), config.WithRetryMaxAttempts(1),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(DefaultAWSAccessKeyID, DefaultAWSSecretAccessKey, "")))
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	c := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(s.SecretsManagerURL()) })
	out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(DefaultAWSSecretID)})
	if err != nil || aws.ToString(out.SecretString) != DefaultClientSecret {
		t.Errorf("GetSecretValue(%q) error = %v, want the default secret", DefaultAWSSecretID, err)
	}
}
