package auth

import "context"

// EnvSecretSource serves a value taken from the environment (local
// development only).
type EnvSecretSource struct {
	name  string
	value string
}

// NewEnvSecretSource returns a source serving value; name is the variable it
// came from, for logs.
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
