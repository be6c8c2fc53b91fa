// Package envelope is the error answer every function, adapter and document
// shares: the snake_case codes, the HTTP status of each, and the JSON body
// {"error": {"code", "message", "upstream", ...}} written for every non-2xx
// answer. It depends on the standard library only; the mapping from Defender,
// Entra and vault errors to these codes lives in internal/errmap.
package envelope

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Code is a contract error code (snake_case).
type Code string

// The error codes callers see, each with one HTTP status.
const (
	InvalidRequest          Code = "invalid_request"
	Unauthorized            Code = "unauthorized"
	Forbidden               Code = "forbidden"
	ProtectedDevice         Code = "protected_device"
	ProtectedIndicator      Code = "protected_indicator" // MDE_INDICATOR_NEVER_BLOCK refused a block
	TenantNotAllowed        Code = "tenant_not_allowed"  // the request's tenant is not in MDE_TENANTS
	NotFound                Code = "not_found"
	AmbiguousDevice         Code = "ambiguous_device"
	PayloadTooLarge         Code = "payload_too_large"
	Throttled               Code = "throttled"
	IsolationBudgetExceeded Code = "isolation_budget_exceeded"
	MethodNotAllowed        Code = "method_not_allowed"
	UpstreamError           Code = "upstream_error"
	TokenAcquisitionFailed  Code = "token_acquisition_failed"
	SecretUnavailable       Code = "secret_unavailable"
	UpstreamTimeout         Code = "upstream_timeout"
	InternalError           Code = "internal_error"
)

var statuses = map[Code]int{
	InvalidRequest:          http.StatusBadRequest,
	Unauthorized:            http.StatusUnauthorized,
	Forbidden:               http.StatusForbidden,
	ProtectedDevice:         http.StatusForbidden,
	ProtectedIndicator:      http.StatusForbidden,
	TenantNotAllowed:        http.StatusForbidden,
	NotFound:                http.StatusNotFound,
	AmbiguousDevice:         http.StatusConflict,
	PayloadTooLarge:         http.StatusRequestEntityTooLarge,
	Throttled:               http.StatusTooManyRequests,
	IsolationBudgetExceeded: http.StatusTooManyRequests,
	MethodNotAllowed:        http.StatusMethodNotAllowed,
	UpstreamError:           http.StatusBadGateway,
	TokenAcquisitionFailed:  http.StatusBadGateway,
	SecretUnavailable:       http.StatusBadGateway,
	UpstreamTimeout:         http.StatusGatewayTimeout,
	InternalError:           http.StatusInternalServerError,
}

// Codes lists every contract code.
func Codes() []Code {
	out := make([]Code, 0, len(statuses))
	for c := range statuses {
		out = append(out, c)
	}
	return out
}

// Status is the HTTP status of code c.
func (c Code) Status() int {
	if s, ok := statuses[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Upstream describes what Defender, Entra or the vault answered.
type Upstream struct {
	Status        int    `json:"status,omitempty"`
	Code          string `json:"code,omitempty"`
	Message       string `json:"message,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
}

// Error is an error with a contract code. Its Message is written to callers;
// Err (the cause) is only logged.
type Error struct {
	Code       Code
	Message    string
	Upstream   *Upstream
	Candidates any           // ambiguous_device: the candidate devices
	RetryAfter time.Duration // written as the Retry-After header when > 0
	Err        error         // internal cause; never written to a response
}

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return string(e.Code) + ": " + e.Message + ": " + e.Err.Error()
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status of the error's code.
func (e *Error) Status() int { return e.Code.Status() }

// Envelope is the JSON body of every non-2xx answer.
type Envelope struct {
	Error EnvelopeError `json:"error"`
}

// EnvelopeError is the inside of Envelope.
type EnvelopeError struct {
	Code       Code      `json:"code"`
	Message    string    `json:"message"`
	Upstream   *Upstream `json:"upstream,omitempty"`
	Candidates any       `json:"candidates,omitempty"`
}

// Envelope returns the body written for e.
func (e *Error) Envelope() Envelope {
	return Envelope{Error: EnvelopeError{Code: e.Code, Message: e.Message, Upstream: e.Upstream, Candidates: e.Candidates}}
}

// RetryAfterSeconds rounds d up to whole seconds (at least 1).
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// Write writes e as the error envelope, with Retry-After when e has a delay,
// and returns e. Errors of other types are mapped first by errmap.Write.
func Write(w http.ResponseWriter, e *Error) *Error {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(RetryAfterSeconds(e.RetryAfter)))
	}
	w.WriteHeader(e.Status())
	b, _ := json.Marshal(e.Envelope())
	_, _ = w.Write(append(b, '\n'))
	return e
}

// WriteJSON writes v as a JSON answer with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}
