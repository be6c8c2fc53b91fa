package platform

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/mdefn/mdefn/internal/envelope"
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
// envelope's code: 2xx is Success; a code listed in permanent is Permanent
// whatever its status; otherwise 5xx and 429 are Retryable and anything else
// is Permanent.
func Classify(status int, code envelope.Code, permanent []envelope.Code) Outcome {
	switch {
	case status >= 200 && status < 300:
		return Success
	case code != "" && slices.Contains(permanent, code):
		return Permanent
	case status >= 500 && status < 600, status == http.StatusTooManyRequests:
		return Retryable
	default:
		return Permanent
	}
}

// outcome classifies res with the App's permanent codes.
func (a *App) outcome(res result) Outcome { return Classify(res.status, res.code, a.PermanentCodes) }

// envelopeJSON returns the error envelope for code and message.
func envelopeJSON(code envelope.Code, message string) []byte {
	b, err := json.Marshal(envelope.Errorf(code, "%s", message).Envelope())
	if err != nil { // cannot happen: two strings
		return []byte(`{"error":{"code":"internal_error","message":"cannot encode error"}}`)
	}
	return b
}

// parseEnvelope reads error.code and error.message from a function's
// non-2xx body; a body that is not an envelope gives empty strings.
func parseEnvelope(body []byte) (envelope.Code, string) {
	var e envelope.Envelope
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return e.Error.Code, e.Error.Message
}
