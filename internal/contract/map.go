package contract

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

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
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	deadline := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)

	var arg *atp.ArgumentError
	if errors.As(err, &arg) {
		return &Error{Code: InvalidRequest, Message: fmt.Sprintf("%s: %s", arg.Name, arg.Reason), Err: err}
	}
	var rl *atp.RateLimitError
	if errors.As(err, &rl) {
		e := &Error{Code: Throttled, RetryAfter: rl.RetryAfter, Err: err,
			Message: fmt.Sprintf("Defender's rate limit (100 calls a minute, 1,500 an hour per app) cannot be waited out within this invocation; retry after %d s", RetryAfterSeconds(rl.RetryAfter))}
		var re *atp.ResponseError
		if errors.As(rl.Err, &re) {
			e.Upstream = upstreamOf(re)
		}
		return e
	}
	var se *auth.SecretError
	if errors.As(err, &se) {
		if deadline {
			return &Error{Code: UpstreamTimeout, Message: "the invocation's deadline passed while reading the credential from " + se.Source, Err: err}
		}
		e := &Error{Code: SecretUnavailable, Err: err,
			Message: fmt.Sprintf("the credential %q could not be read from %s; check that the secret exists and that the function's identity may read it", se.Name, se.Source)}
		if se.StatusCode != 0 || se.Code != "" {
			e.Upstream = &Upstream{Status: se.StatusCode, Code: se.Code, Message: clip(se.Message)}
		}
		return e
	}
	var ee *auth.EntraError
	if errors.As(err, &ee) {
		return &Error{Code: TokenAcquisitionFailed, Err: err,
			Message:  "Entra ID refused the token request; check MDE_TENANT_ID, MDE_CLIENT_ID, the credential and the app's consent",
			Upstream: &Upstream{Status: ee.StatusCode, Code: ee.Code, Message: clip(firstLine(ee.Description)), CorrelationID: ee.CorrelationID}}
	}
	if errors.Is(err, atp.ErrToken) || errors.Is(err, auth.ErrToken) {
		if deadline {
			return &Error{Code: UpstreamTimeout, Message: "the invocation's deadline passed while acquiring the Defender token", Err: err}
		}
		return &Error{Code: TokenAcquisitionFailed, Message: "the Defender token could not be acquired: Entra ID did not answer usefully; check MDE_AUTHORITY_URL and the network", Err: err}
	}
	var re *atp.ResponseError
	if errors.As(err, &re) {
		up := upstreamOf(re)
		switch {
		case re.StatusCode == http.StatusBadRequest:
			return &Error{Code: InvalidRequest, Upstream: up, Err: err, Message: "Defender rejected the request: " + clip(re.Message)}
		case re.StatusCode == http.StatusUnauthorized:
			return &Error{Code: UpstreamError, Upstream: up, Err: err,
				Message: "Defender refused the function's token even after a fresh one was acquired; check MDE_TOKEN_AUDIENCE and MDE_API_URL (same cloud)"}
		case re.StatusCode == http.StatusForbidden:
			return &Error{Code: Forbidden, Upstream: up, Err: err,
				Message: "the token lacks a Defender permission: " + clip(re.Message) + "; add it to the app registration and grant admin consent"}
		case re.StatusCode == http.StatusNotFound:
			return &Error{Code: NotFound, Upstream: up, Err: err, Message: "Defender has no such resource: " + clip(re.Message)}
		case re.StatusCode == http.StatusTooManyRequests:
			return &Error{Code: Throttled, Upstream: up, Err: err, RetryAfter: max(re.RetryAfter, time.Second),
				Message: "Defender is throttling this app; retry after the Retry-After delay"}
		}
		return &Error{Code: UpstreamError, Upstream: up, Err: err,
			Message: fmt.Sprintf("Defender answered %d; try again later", re.StatusCode)}
	}
	var de *atp.DecodeError
	if errors.As(err, &de) && !deadline {
		return &Error{Code: UpstreamError, Err: err, Message: "Defender's answer could not be read (malformed, truncated or too large)"}
	}
	if deadline {
		return &Error{Code: UpstreamTimeout, Message: "the invocation's deadline passed before the upstream answered; try again", Err: err}
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) {
		return &Error{Code: UpstreamError, Message: "Defender could not be reached; try again later", Err: err}
	}
	return &Error{Code: InternalError, Message: "internal error; see the function's logs for this invocation", Err: err}
}

func upstreamOf(re *atp.ResponseError) *Upstream {
	return &Upstream{Status: re.StatusCode, Code: re.Code, Message: clip(re.Message), CorrelationID: re.CorrelationID}
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// clip bounds a message taken from an upstream answer.
func clip(s string) string {
	const max = 500
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
