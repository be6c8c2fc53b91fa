package errmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/mdefn/mdefn/internal/envelope"
	"github.com/mdefn/mdefn/pkg/atp"
	"github.com/mdefn/mdefn/pkg/auth"
)

func TestFrom(t *testing.T) {
	forbidden := &atp.ResponseError{StatusCode: 403, Code: "envelope.Forbidden", Message: "Missing application roles. API required roles: Machine.Isolate", CorrelationID: "c-1"}
	throttled := &atp.ResponseError{StatusCode: 429, Code: "TooManyRequests", Message: "slow down", RetryAfter: 40 * time.Second}
	tests := []struct {
		name       string
		err        error
		wantCode   envelope.Code
		wantStatus int
		wantUp     *envelope.Upstream
		wantRetry  time.Duration
	}{
		{"contract error", envelope.Errorf(envelope.NotFound, "x"), envelope.NotFound, 404, nil, 0},
		{"argument", fmt.Errorf("wrap: %w", &atp.ArgumentError{Name: "Top", Reason: "too big"}), envelope.InvalidRequest, 400, nil, 0},
		{"client budget", &atp.RateLimitError{RetryAfter: 3 * time.Second}, envelope.Throttled, 429, nil, 3 * time.Second},
		{"upstream 429 beyond the deadline", &atp.RateLimitError{RetryAfter: 40 * time.Second, Err: throttled}, envelope.Throttled, 429,
			&envelope.Upstream{Status: 429, Code: "TooManyRequests", Message: "slow down"}, 40 * time.Second},
		{"upstream 429", throttled, envelope.Throttled, 429, &envelope.Upstream{Status: 429, Code: "TooManyRequests", Message: "slow down"}, 40 * time.Second},
		{"secret", &auth.SecretError{Source: "keyvault", Name: "s", StatusCode: 403, Code: "envelope.Forbidden", Message: "no access"}, envelope.SecretUnavailable, 502,
			&envelope.Upstream{Status: 403, Code: "envelope.Forbidden", Message: "no access"}, 0},
		{"secret on the deadline", &auth.SecretError{Source: "keyvault", Name: "s", Err: context.DeadlineExceeded}, envelope.UpstreamTimeout, 504, nil, 0},
		{"secret through the token source", fmt.Errorf("atp: get machine: %w", &auth.SecretError{Source: "aws-secrets-manager", Name: "s", StatusCode: 400, Code: "ResourceNotFoundException"}), envelope.SecretUnavailable, 502,
			&envelope.Upstream{Status: 400, Code: "ResourceNotFoundException"}, 0},
		{"entra", fmt.Errorf("%w: %w", atp.ErrToken, &auth.EntraError{StatusCode: 401, Code: "invalid_client", Description: "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: t", CorrelationID: "k"}),
			envelope.TokenAcquisitionFailed, 502, &envelope.Upstream{Status: 401, Code: "invalid_client", Message: "AADSTS7000215: Invalid client secret provided.", CorrelationID: "k"}, 0},
		{"token, network", fmt.Errorf("%w: %w", atp.ErrToken, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), envelope.TokenAcquisitionFailed, 502, nil, 0},
		{"token source alone, network", fmt.Errorf("%w: %w", auth.ErrToken, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), envelope.TokenAcquisitionFailed, 502, nil, 0},
		{"token, deadline", fmt.Errorf("%w: %w", atp.ErrToken, context.DeadlineExceeded), envelope.UpstreamTimeout, 504, nil, 0},
		{"defender 400", &atp.ResponseError{StatusCode: 400, Code: "InvalidRequestBody", Message: "bad"}, envelope.InvalidRequest, 400, &envelope.Upstream{Status: 400, Code: "InvalidRequestBody", Message: "bad"}, 0},
		{"defender 401", &atp.ResponseError{StatusCode: 401, Code: "envelope.Unauthorized"}, envelope.UpstreamError, 502, &envelope.Upstream{Status: 401, Code: "envelope.Unauthorized"}, 0},
		{"defender 403", forbidden, envelope.Forbidden, 403, &envelope.Upstream{Status: 403, Code: "envelope.Forbidden", Message: forbidden.Message, CorrelationID: "c-1"}, 0},
		{"defender 404", &atp.ResponseError{StatusCode: 404, Code: "ResourceNotFound"}, envelope.NotFound, 404, &envelope.Upstream{Status: 404, Code: "ResourceNotFound"}, 0},
		{"defender 503", &atp.ResponseError{StatusCode: 503, Message: "<html>"}, envelope.UpstreamError, 502, &envelope.Upstream{Status: 503, Message: "<html>"}, 0},
		{"defender malformed", &atp.DecodeError{StatusCode: 200, Err: errors.New("unexpected EOF")}, envelope.UpstreamError, 502, nil, 0},
		{"deadline", fmt.Errorf("atp: list alerts: %w", context.DeadlineExceeded), envelope.UpstreamTimeout, 504, nil, 0},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, envelope.UpstreamError, 502, nil, 0},
		{"anything else", errors.New("boom"), envelope.InternalError, 500, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := From(tt.err)
			if e.Code != tt.wantCode || e.Status() != tt.wantStatus {
				t.Errorf("From(%v) = %s %d, want %s %d", tt.err, e.Code, e.Status(), tt.wantCode, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantUp, e.Upstream); diff != "" {
				t.Errorf("upstream (-want +got):\n%s", diff)
			}
			if e.RetryAfter != tt.wantRetry {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.wantRetry)
			}
			if e.Message == "" {
				t.Error("empty message")
			}
		})
	}
}

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, &envelope.Error{Code: envelope.AmbiguousDevice, Message: "two", Candidates: []string{"a", "b"}, RetryAfter: 1500 * time.Millisecond,
		Err: errors.New("internal detail that must not be written")})
	if w.Code != 409 {
		t.Errorf("status = %d, want 409", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (rounded up)", got)
	}
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"error": map[string]any{"code": "ambiguous_device", "message": "two", "candidates": []any{"a", "b"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

// TestStatuses pins the contract's code → status list.
func TestStatuses(t *testing.T) {
	want := map[envelope.Code]int{
		"invalid_request": 400, "unauthorized": 401, "forbidden": 403, "protected_device": 403, "not_found": 404,
		"ambiguous_device": 409, "payload_too_large": 413, "throttled": 429, "isolation_budget_exceeded": 429,
		"method_not_allowed": 405, "upstream_error": 502, "token_acquisition_failed": 502,
		"secret_unavailable": 502, "upstream_timeout": 504, "internal_error": 500, "no_such_code": 500,
	}
	for code, status := range want {
		if got := code.Status(); got != status {
			t.Errorf("%s.Status() = %d, want %d", code, got, status)
		}
	}
}

func TestClipKeepsUTF8(t *testing.T) {
	for n := 495; n <= 505; n++ {
		s := strings.Repeat("a", n) + strings.Repeat("é", 10)
		got := clip(s)
		if !utf8.ValidString(got) {
			t.Errorf("clip(%d bytes + é…) = invalid UTF-8 %q", n, got[len(got)-8:])
		}
		if len(got) > 500+len("…") {
			t.Errorf("clip(%d bytes + é…) is %d bytes long, want at most %d", n, len(got), 500+len("…"))
		}
	}
	if got := clip("short é"); got != "short é" {
		t.Errorf("clip(%q) = %q, want it unchanged", "short é", got)
	}
}
