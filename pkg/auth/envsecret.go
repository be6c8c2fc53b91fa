package auth

import "context"

// EnvSecretSource serves a fixed value, such as one taken from an
// environment variable (for local development: a secret in the environment
// is readable by anything that can read the process's environment). Safe for
// concurrent use.
type EnvSecretSource struct {
	name  string
	value string
}

// NewEnvSecretSource returns a source serving value; name is the variable it
// came from (or any label), for logs and errors.
func NewEnvSecretSource(name, value string) *EnvSecretSource {
	return &EnvSecretSource{name: name, value: value}
}

// Secret returns the value, or a *SecretError when it is empty.
func (s *EnvSecretSource) Secret(context.Context) (string, error) {
	if s.value == "" {
		return "", &SecretError{Source: string(SourceEnvironment), Name: s.name, Code: "EmptySecret", Message: "the variable is empty"}
	}
	return s.value, nil
}

// Name returns "environment:<variable>".
func (s *EnvSecretSource) Name() string { return string(SourceEnvironment) + ":" + s.name }
