package contract

import (
	"context"
	"errors"
)

// From maps any error to the contract's *Error. This is the one table that
// decides codes and statuses; mappers for the Defender, Entra and vault error
// types are registered below.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	for _, m := range mappers {
		if e := m(err); e != nil {
			return e
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: UpstreamTimeout, Message: "the invocation's deadline passed before the upstream answered; try again", Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Code: UpstreamTimeout, Message: "the invocation was cancelled before the upstream answered", Err: err}
	}
	return &Error{Code: InternalError, Message: "internal error; see the function's logs for this invocation", Err: err}
}

var mappers []func(error) *Error
