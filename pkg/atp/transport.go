package atp

import (
	"context"
	"fmt"
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
// request once more with a fresh token; that re-send waits for, and counts
// against, the call budget like any other call.
type Invalidator interface {
	Invalidate()
}

// tokenError marks a failure of the token source inside the transport, so
// the retry loop does not mistake it for a connection failure.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return fmt.Sprintf("%v: %v", ErrToken, e.err) }

func (e *tokenError) Unwrap() []error { return []error{ErrToken, e.err} }

// authTransport adds "Authorization: Bearer <token>" and the User-Agent to
// each request. It sends every request exactly once: the re-send after a
// 401 is the client's (see Client.send), so that it waits for the call
// budget like any other call.
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
