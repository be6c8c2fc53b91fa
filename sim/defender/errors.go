package defender

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error codes the server answers with, as listed in Microsoft's "Common
// Microsoft Defender for Endpoint API errors" page, plus
// ActiveRequestAlreadyExists from the machine action endpoints.
const (
	CodeBadRequest                 = "BadRequest"
	CodeODataError                 = "ODataError"
	CodeInvalidInput               = "InvalidInput"
	CodeInvalidRequestBody         = "InvalidRequestBody"
	CodeInvalidHashValue           = "InvalidHashValue"
	CodeInvalidIPAddress           = "InvalidIpAddress"
	CodeMissingRequiredParameter   = "MissingRequiredParameter"
	CodeActiveRequestAlreadyExists = "ActiveRequestAlreadyExists"
	CodeUnauthorized               = "Unauthorized"
	CodeForbidden                  = "Forbidden"
	CodeNotFound                   = "NotFound"
	CodeResourceNotFound           = "ResourceNotFound"
	CodeMethodNotAllowed           = "MethodNotAllowed"
	CodeTooManyRequests            = "TooManyRequests"
	CodeInternalServerError        = "InternalServerError"
)

// apiError is an error answered to the client in Defender's envelope
// {"error":{"code","message","target"}}.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration // only for 429
}

func (e *apiError) Error() string {
	return fmt.Sprintf("defender: %d %s: %s", e.status, e.code, e.message)
}

func errBadRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

// toAPIError returns err as an *apiError, or a 400 BadRequest carrying it.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return errBadRequest(CodeBadRequest, "%s", err.Error())
}

func errNotFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeResourceNotFound, message: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target"`
}

// writeError answers e in Defender's error envelope. The target is a fresh
// correlation GUID, as Defender puts one there for every error.
func writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	if e.status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.FormatInt(retrySeconds(e.retryAfter), 10))
	}
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", "Bearer")
	}
	w.WriteHeader(e.status)
	b, _ := json.Marshal(errorBody{Error: errorDetail{Code: e.code, Message: e.message, Target: newGUID()}})
	_, _ = w.Write(b)
}

// newGUID returns a random version 4 UUID in its canonical lowercase form.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// retrySeconds rounds d up to whole seconds, at least 1.
func retrySeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}
