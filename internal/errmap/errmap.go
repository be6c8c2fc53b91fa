// Package errmap is the one table that maps internal errors (Defender, Entra,
// the vaults, validation, deadlines) to the envelope's codes and statuses.
package errmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

// From maps any error to the contract's *Error. This is the one table that
// decides codes and statuses:
//
//	*Error                          itself
//	*atp.ArgumentError              invalid_request 400
//	*atp.RateLimitError             throttled 429 + Retry-After
//	*auth.SecretError               secret_unavailable 502 (upstream_timeout 504 on the deadline)
//	*auth.EntraError                token_acquisition_failed 502, upstream = Entra's error
//	other token-source failures     token_acquisition_failed 502 (upstream_timeout 504 on the deadline)
//	*atp.ResponseError 400          invalid_request 400, upstream = Defender's error
//	*atp.ResponseError 401          upstream_error 502 (Defender refused a fresh token)
//	*atp.ResponseError 403          forbidden 403 (Defender's message names the missing role)
//	*atp.ResponseError 404          not_found 404
//	*atp.ResponseError 429          throttled 429 + Retry-After
//	*atp.ResponseError other        upstream_error 502
//	*atp.DecodeError                upstream_error 502
//	context deadline / cancel       upstream_timeout 504
//	network failures                upstream_error 502
//	anything else                   internal_error 500 (cause logged, never written)
func From(err error) *envelope.Error {
	if err == nil {
		return nil
	}
	var e *envelope.Error
	if errors.As(err, &e) {
		return e
	}
	deadline := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)

	var arg *atp.ArgumentError
	if errors.As(err, &arg) {
		return &envelope.Error{Code: envelope.InvalidRequest, Message: fmt.Sprintf("%s: %s", arg.Name, arg.Reason), Err: err}
	}
	var rl *atp.RateLimitError
	if errors.As(err, &rl) {
		e := &envelope.Error{Code: envelope.Throttled, RetryAfter: rl.RetryAfter, Err: err,
			Message: fmt.Sprintf("Defender's rate limit (100 calls a minute, 1,500 an hour per app) cannot be waited out within this invocation; retry after %d s", envelope.RetryAfterSeconds(rl.RetryAfter))}
		var re *atp.ResponseError
		if errors.As(rl.Err, &re) {
			e.Upstream = upstreamOf(re)
		}
		return e
	}
	var se *auth.SecretError
	if errors.As(err, &se) {
		if deadline {
			return &envelope.Error{Code: envelope.UpstreamTimeout, Message: "the invocation's deadline passed while reading the credential from " + se.Source, Err: err}
		}
		e := &envelope.Error{Code: envelope.SecretUnavailable, Err: err,
			Message: fmt.Sprintf("the credential %q could not be read from %s; check that the secret exists and that the function's identity may read it", se.Name, se.Source)}
		if se.StatusCode != 0 || se.Code != "" {
			e.Upstream = &envelope.Upstream{Status: se.StatusCode, Code: se.Code, Message: clip(se.Message)}
		}
		return e
	}
	var ee *auth.EntraError
	if errors.As(err, &ee) {
		return &envelope.Error{Code: envelope.TokenAcquisitionFailed, Err: err,
			Message:  "Entra ID refused the token request; check MDE_TENANT_ID, MDE_CLIENT_ID, the credential and the app's consent",
			Upstream: &envelope.Upstream{Status: ee.StatusCode, Code: ee.Code, Message: clip(firstLine(ee.Description)), CorrelationID: ee.CorrelationID}}
	}
	if errors.Is(err, atp.ErrToken) || errors.Is(err, auth.ErrToken) {
		if deadline {
			return &envelope.Error{Code: envelope.UpstreamTimeout, Message: "the invocation's deadline passed while acquiring the Defender token", Err: err}
		}
		return &envelope.Error{Code: envelope.TokenAcquisitionFailed, Message: "the Defender token could not be acquired: Entra ID did not answer usefully; check MDE_AUTHORITY_URL and the network", Err: err}
	}
	var re *atp.ResponseError
	if errors.As(err, &re) {
		up := upstreamOf(re)
		switch {
		case re.StatusCode == http.StatusBadRequest:
			return &envelope.Error{Code: envelope.InvalidRequest, Upstream: up, Err: err, Message: "Defender rejected the request: " + clip(re.Message)}
		case re.StatusCode == http.StatusUnauthorized:
			return &envelope.Error{Code: envelope.UpstreamError, Upstream: up, Err: err,
				Message: "Defender refused the function's token even after a fresh one was acquired; check MDE_TOKEN_AUDIENCE and MDE_API_URL (same cloud)"}
		case re.StatusCode == http.StatusForbidden:
			return &envelope.Error{Code: envelope.Forbidden, Upstream: up, Err: err,
				Message: "the token lacks a Defender permission: " + clip(re.Message) + "; add it to the app registration and grant admin consent"}
		case re.StatusCode == http.StatusNotFound:
			return &envelope.Error{Code: envelope.NotFound, Upstream: up, Err: err, Message: "Defender has no such resource: " + clip(re.Message)}
		case re.StatusCode == http.StatusTooManyRequests:
			return &envelope.Error{Code: envelope.Throttled, Upstream: up, Err: err, RetryAfter: max(re.RetryAfter, time.Second),
				Message: "Defender is throttling this app; retry after the Retry-After delay"}
		}
		return &envelope.Error{Code: envelope.UpstreamError, Upstream: up, Err: err,
			Message: fmt.Sprintf("Defender answered %d; try again later", re.StatusCode)}
	}
	var de *atp.DecodeError
	if errors.As(err, &de) && !deadline {
		return &envelope.Error{Code: envelope.UpstreamError, Err: err, Message: "Defender's answer could not be read (malformed, truncated or too large)"}
	}
	if deadline {
		return &envelope.Error{Code: envelope.UpstreamTimeout, Message: "the invocation's deadline passed before the upstream answered; try again", Err: err}
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) {
		return &envelope.Error{Code: envelope.UpstreamError, Message: "Defender could not be reached; try again later", Err: err}
	}
	return &envelope.Error{Code: envelope.InternalError, Message: "internal error; see the function's logs for this invocation", Err: err}
}

func upstreamOf(re *atp.ResponseError) *envelope.Upstream {
	return &envelope.Upstream{Status: re.StatusCode, Code: re.Code, Message: clip(re.Message), CorrelationID: re.CorrelationID}
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// clip bounds a message taken from an upstream answer to 500 bytes, cutting
// at a character boundary so that the result stays valid UTF-8.
func clip(s string) string {
	const max = 500
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Write maps err with From and writes it as the error envelope.
func Write(w http.ResponseWriter, err error) *envelope.Error {
	return envelope.Write(w, From(err))
}
