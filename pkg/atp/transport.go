package atp

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"golang.org/x/oauth2"
)

// ContextTokenSource is implemented by token sources that can honour a
// context (deadline, cancellation) while acquiring a token. The client
// prefers TokenContext over Token when the source has it.
type ContextTokenSource interface {
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

// Invalidator is implemented by caching token sources that can drop their
// cached token. On a Defender 401 the client calls Invalidate and sends the
// request once more with a fresh token.
type Invalidator interface {
	Invalidate()
}

// tokenError marks a failure of the token source inside the transport, so
// the retry loop does not mistake it for a connection failure.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return fmt.Sprintf("%v: %v", ErrToken, e.err) }

func (e *tokenError) Unwrap() []error { return []error{ErrToken, e.err} }

// authTransport adds "Authorization: Bearer <token>" to each request and, on
// a 401, invalidates the token (when the source allows) and retries once.
type authTransport struct {
	base   http.RoundTripper
	tokens oauth2.TokenSource
	ua     string
}

func (t *authTransport) token(ctx context.Context) (*oauth2.Token, error) {
	var (
		tok *oauth2.Token
		err error
	)
	if cs, ok := t.tokens.(ContextTokenSource); ok {
		tok, err = cs.TokenContext(ctx)
	} else {
		tok, err = t.tokens.Token()
	}
	if err != nil {
		return nil, &tokenError{err: err}
	}
	if tok == nil || tok.AccessToken == "" {
		return nil, &tokenError{err: fmt.Errorf("token source returned an empty token")}
	}
	return tok, nil
}

// RoundTrip implements http.RoundTripper.
func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.send(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	inv, ok := t.tokens.(Invalidator)
	if !ok || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
		return resp, nil
	}
	// Drop the cached token and try once more with a fresh one.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	inv.Invalidate()
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		retry.Body = body
	}
	return t.send(retry)
}

func (t *authTransport) send(req *http.Request) (*http.Response, error) {
	tok, err := t.token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	r.Header.Set("User-Agent", t.ua)
	return t.base.RoundTrip(r)
}
