package platform

import (
	"encoding/json"
	"net/http"
)

// Outcome classifies a function's answer for platforms that retry deliveries.
type Outcome int

// The outcomes of an invocation.
const (
	Success   Outcome = iota // status 2xx
	Permanent                // a failure that a retry would repeat: log it and drop the delivery
	Retryable                // a failure worth a retry by the platform
)

// String returns "success", "permanent" or "retryable".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Retryable:
		return "retryable"
	default:
		return "permanent"
	}
}

// Classify decides the outcome of an answer from its status and its error
// envelope's code (contract §2): 2xx is Success; 5xx and 429 are Retryable,
// except code isolation_budget_exceeded, which must not replay; anything else
// is Permanent.
func Classify(status int, code string) Outcome {
	switch {
	case status >= 200 && status < 300:
		return Success
	case code == codeIsolationBudgetExceeded:
		return Permanent
	case status >= 500 && status < 600, status == http.StatusTooManyRequests:
		return Retryable
	default:
		return Permanent
	}
}

// Error codes the adapters produce themselves (contract §2), plus the one
// Classify treats specially.
const (
	codeInvalidRequest          = "invalid_request"
	codeNotFound                = "not_found"
	codeMethodNotAllowed        = "method_not_allowed"
	codePayloadTooLarge         = "payload_too_large"
	codeUpstreamTimeout         = "upstream_timeout"
	codeInternal                = "internal_error"
	codeIsolationBudgetExceeded = "isolation_budget_exceeded"
)

// envelope is the contract's error body.
type envelope struct {
	Error envelopeError `json:"error"`
}

type envelopeError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// envelopeJSON returns the error envelope for code and message.
func envelopeJSON(code, message string) []byte {
	b, err := json.Marshal(envelope{Error: envelopeError{Code: code, Message: message}})
	if err != nil { // cannot happen: two strings
		return []byte(`{"error":{"code":"internal_error","message":"cannot encode error"}}`)
	}
	return b
}

// parseEnvelope reads error.code and error.message from a function's
// non-2xx body; a body that is not an envelope gives empty strings.
func parseEnvelope(body []byte) (code, message string) {
	var e envelope
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Error.Code, e.Error.Message
}
