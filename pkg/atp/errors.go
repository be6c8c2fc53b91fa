package atp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrToken is matched (with errors.Is) by every error caused by the token
// source failing to supply a token. The token source's own error is wrapped
// too and can be read with errors.As.
var ErrToken = errors.New("token source")

// ErrBodyTooLarge is wrapped by a [*DecodeError] when a response body exceeds
// [Options.MaxBodyBytes].
var ErrBodyTooLarge = errors.New("response body too large")

// ResponseError is a non-2xx answer from Defender. It never holds a token.
type ResponseError struct {
	StatusCode int    // HTTP status, e.g. 403
	Code       string // Defender's error code, e.g. "Forbidden", "ResourceNotFound", "ActiveRequestAlreadyExists"
	Message    string // Defender's message, or a short sanitized excerpt of a non-JSON body
	Target     string // Defender's "target" field, which holds a correlation id
	// CorrelationID identifies the request for Microsoft support: Target when
	// Defender set it, else a correlation header of the response.
	CorrelationID string
	// RetryAfter is the delay the Retry-After header asked for (zero if absent).
	RetryAfter time.Duration
	Method     string // request method
	Path       string // request path, without the query string
	Attempts   int    // how many times the request was sent (more than 1 means retries happened)
}

// Error returns e.g. "403 Forbidden: Forbidden: Missing application roles...".
func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.CorrelationID != "" {
		fmt.Fprintf(&b, " (correlation id %s)", e.CorrelationID)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	return b.String()
}

// RateLimitError reports throttling the client gave up waiting for: either
// its own call budget (Err is nil) or a Defender 429 (Err is the
// [*ResponseError]) whose Retry-After could not be waited out within the
// context's deadline, or that persisted through every retry. Callers should
// answer "try again after RetryAfter".
type RateLimitError struct {
	RetryAfter time.Duration // how long to wait before trying again (at least 1 s)
	Err        error         // the Defender answer, or nil for the client's own budget
}

// Error describes the throttling.
func (e *RateLimitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("call budget exhausted, retry after %s", e.RetryAfter)
	}
	return fmt.Sprintf("throttled, retry after %s: %v", e.RetryAfter, e.Err)
}

// Unwrap returns the Defender answer, if any.
func (e *RateLimitError) Unwrap() error { return e.Err }

// DecodeError is a 2xx answer whose body could not be decoded as the
// expected JSON (malformed, truncated, or larger than Options.MaxBodyBytes).
type DecodeError struct {
	StatusCode int
	Method     string
	Path       string
	Err        error
}

// Error describes the decoding failure.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %d answer to %s %s: %v", e.StatusCode, e.Method, e.Path, e.Err)
}

// Unwrap returns the underlying decoding error.
func (e *DecodeError) Unwrap() error { return e.Err }

// ArgumentError is an argument rejected before any call was made.
type ArgumentError struct {
	Name   string // the argument or option, e.g. "machineID", "Top"
	Reason string
}

// Error returns e.g. "invalid machineID: want 40 hexadecimal characters".
func (e *ArgumentError) Error() string { return "invalid " + e.Name + ": " + e.Reason }

func argErr(name, format string, a ...any) error {
	return &ArgumentError{Name: name, Reason: fmt.Sprintf(format, a...)}
}

// IsActiveRequestAlreadyExists reports whether err is Defender's refusal of
// a machine action because another one is pending on the device
// (400 ActiveRequestAlreadyExists).
func IsActiveRequestAlreadyExists(err error) bool {
	var re *ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusBadRequest &&
		strings.EqualFold(re.Code, "ActiveRequestAlreadyExists")
}

// IsNotFound reports whether err is a Defender 404.
func IsNotFound(err error) bool {
	var re *ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// maxMessage bounds the runes kept of an error message.
const maxMessage = 300

// correlationHeaders are response headers that may carry a correlation id.
var correlationHeaders = []string{"X-Correlation-Id", "X-Ms-Correlation-Id", "Request-Id", "X-Request-Id", "X-Ms-Request-Id"}

// newResponseError reads (boundedly) and closes resp's body.
func newResponseError(resp *http.Response, now time.Time) *ResponseError {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
	oversized := len(body) > maxErrorBody
	if oversized {
		body = body[:maxErrorBody]
	}
	e := &ResponseError{
		StatusCode: resp.StatusCode,
		Method:     resp.Request.Method,
		Path:       resp.Request.URL.Path,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
	}
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Target  string `json:"target"`
		} `json:"error"`
	}
	if !oversized && json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Code = sanitize(env.Error.Code, 100)
		e.Message = sanitize(env.Error.Message, maxMessage)
		e.Target = sanitize(env.Error.Target, 100)
	} else {
		e.Message = bodyExcerpt(body, resp.Header.Get("Content-Type"))
	}
	e.CorrelationID = e.Target
	for _, h := range correlationHeaders {
		if e.CorrelationID != "" {
			break
		}
		e.CorrelationID = sanitize(resp.Header.Get(h), 100)
	}
	return e
}

// bodyExcerpt is a short, printable description of a non-JSON error body.
func bodyExcerpt(body []byte, contentType string) string {
	if len(strings.TrimSpace(string(body))) == 0 {
		return ""
	}
	s := string(body)
	if strings.Contains(strings.ToLower(contentType), "html") || strings.HasPrefix(strings.TrimSpace(s), "<") {
		s = stripTags(s)
	}
	return sanitize(s, 200)
}

// stripTags drops anything between '<' and '>' (a crude HTML-to-text).
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sanitize replaces invalid UTF-8, control and format characters with
// spaces, collapses runs of white space and truncates to max runes ("…"
// appended).
func sanitize(s string, max int) string {
	s = strings.ToValidUTF8(s, " ")
	fields := strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
	})
	s = strings.Join(fields, " ")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max]) + "…"
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
// Unparsable or negative values yield zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, ok := parseUint(v); ok {
		const maxSecs = 1 << 31 // about 68 years, and no overflow
		if secs > maxSecs {
			secs = maxSecs
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func parseUint(s string) (uint64, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil { // only a range error is possible here
		return math.MaxUint64, true
	}
	return n, true
}

// ceilSecond rounds d up to whole seconds, and to at least one second, for
// Retry-After answers.
func ceilSecond(d time.Duration) time.Duration {
	return max(time.Second, (d + time.Second - 1).Truncate(time.Second))
}
