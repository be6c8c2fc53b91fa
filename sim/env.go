package sim

import (
	"maps"
	"slices"
)

// Env returns the environment a process needs to use the simulator: the
// MDE_* settings of the default app with its secret read from Key Vault
// through the managed identity endpoint, Azure and AWS endpoint variables,
// fake AWS credentials, and SSL_CERT_FILE and AWS_CA_BUNDLE naming the CA
// file (the AWS SDK trusts only AWS_CA_BUNDLE when it is set). overrides win; an
// override with the value "" removes the variable (for example
// {"MDE_KEYVAULT_URL": "", "MDE_AWS_SECRET_ID": sim.DefaultAWSSecretID} reads
// the secret from Secrets Manager instead).
func (s *Sim) Env(overrides map[string]string) map[string]string {
	env := map[string]string{
		"MDE_TENANT_ID":      s.tenantID,
		"MDE_CLIENT_ID":      DefaultClientID,
		"MDE_AUTHORITY_URL":  s.AuthorityURL(),
		"MDE_API_URL":        s.DefenderURL(),
		"MDE_TOKEN_AUDIENCE": s.audience,
		"MDE_KEYVAULT_URL":   s.VaultURL(),
		"MDE_SECRET_NAME":    DefaultSecretName,

		"MDE_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION": "true",

		"IDENTITY_ENDPOINT": s.IdentityEndpoint(),
		"IDENTITY_HEADER":   s.identityHeader,
		"SSL_CERT_FILE":     s.caFilePath(),
		"AWS_CA_BUNDLE":     s.caFilePath(),

		"AWS_ENDPOINT_URL_SECRETS_MANAGER": s.SecretsManagerURL(),
		"AWS_REGION":                       DefaultAWSRegion,
		"AWS_ACCESS_KEY_ID":                DefaultAWSAccessKeyID,
		"AWS_SECRET_ACCESS_KEY":            DefaultAWSSecretAccessKey,
		"AWS_EC2_METADATA_DISABLED":        "true",
	}
	for k, v := range overrides {
		if v == "" {
			delete(env, k)
			continue
		}
		env[k] = v
	}
	return env
}

// Environ is Env as a sorted "KEY=value" list, ready to append to
// os.Environ() for exec.Cmd.Env.
func (s *Sim) Environ(overrides map[string]string) []string {
	env := s.Env(overrides)
	var out []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func (s *Sim) caFilePath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caFile
}
