package auth

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrToken is matched (with errors.Is) by every error TokenSource.TokenContext
// returns, whatever its cause (*EntraError, *SecretError, a network or
// context error, all still reachable with errors.As / errors.Is), so that
// callers can tell a token failure from their own.
var ErrToken = errors.New("auth: token")

// tokenError marks err as a token failure without changing its text.
type tokenError struct{ err error }

func (e *tokenError) Error() string   { return e.err.Error() }
func (e *tokenError) Unwrap() []error { return []error{ErrToken, e.err} }

// SecretError reports a failure to read or parse the stored credential. It
// never contains the secret's value.
type SecretError struct {
	Source     string // "keyvault", "aws-secrets-manager" or "environment"
	Name       string // secret name or ID (not its value)
	StatusCode int    // HTTP status from the vault; 0 when it did not answer
	Code       string // vault or AWS error code, e.g. "SecretNotFound", "ResourceNotFoundException"
	Message    string // the vault's message, or what went wrong
	Err        error  // underlying error, if any (for errors.Is on context errors)
}

// Error describes the failure without the secret's value.
func (e *SecretError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "auth: secret %q from %s", e.Name, e.Source)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": status %d", e.StatusCode)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *SecretError) Unwrap() error { return e.Err }

// EntraError reports an error answer from the Entra token endpoint or the
// managed identity endpoint. It never contains the request (secret, password
// or client assertion).
type EntraError struct {
	StatusCode    int    // HTTP status
	Code          string // OAuth "error", e.g. "invalid_client"
	Description   string // "error_description", with its AADSTS number
	ErrorCodes    []int  // "error_codes", e.g. [7000215]
	CorrelationID string // "correlation_id"
	TraceID       string // "trace_id"
}

// Error gives the status, OAuth error, first line of the description and
// correlation ID.
func (e *EntraError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "auth: token request: status %d", e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", firstLine(e.Description))
	}
	if e.CorrelationID != "" {
		fmt.Fprintf(&b, " (correlation %s)", e.CorrelationID)
	}
	return b.String()
}

// AADSTS returns the first AADSTS error number, or 0.
func (e *EntraError) AADSTS() int {
	if len(e.ErrorCodes) > 0 {
		return e.ErrorCodes[0]
	}
	return 0
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// oneLine joins the lines of s with "; " (for multi-line SDK messages).
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// clip shortens s to at most n bytes, cut at a rune boundary, marking the
// cut with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
