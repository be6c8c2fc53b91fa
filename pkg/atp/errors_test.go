package atp

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestResponseErrorShapes(t *testing.T) {
	path := "/api/machines/" + machineID1
	tests := []struct {
		name        string
		status      int
		contentType string
		header      map[string]string
		body        string
		want        ResponseError
	}{
		{
			name: "defender json", status: 403, contentType: "application/json",
			body: `{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: Machine.Read.All.","target":"43f4cb08-8fac-4b65-9db1-745c2ae65f3a"}}`,
			want: ResponseError{StatusCode: 403, Code: "Forbidden", Message: "Missing application roles. API required roles: Machine.Read.All.",
				Target: "43f4cb08-8fac-4b65-9db1-745c2ae65f3a", CorrelationID: "43f4cb08-8fac-4b65-9db1-745c2ae65f3a"},
		},
		{
			name: "not found with header correlation", status: 404, contentType: "application/json",
			header: map[string]string{"X-Correlation-Id": "hdr-1"},
			body:   `{"error":{"code":"ResourceNotFound","message":"Machine was not found"}}`,
			want:   ResponseError{StatusCode: 404, Code: "ResourceNotFound", Message: "Machine was not found", CorrelationID: "hdr-1"},
		},
		{
			name: "html page", status: 502, contentType: "text/html",
			body: "<html><head><title>502 Bad Gateway</title></head><body>\n<h1>Bad\tGateway</h1>\x00\x1b[31m</body></html>",
			want: ResponseError{StatusCode: 502, Message: "502 Bad Gateway Bad Gateway [31m"},
		},
		{
			name: "empty", status: 503,
			want: ResponseError{StatusCode: 503},
		},
		{
			name: "plain text with control chars", status: 500, contentType: "text/plain",
			body: "boom\r\nInjected: header\x07",
			want: ResponseError{StatusCode: 500, Message: "boom Injected: header"},
		},
		{
			name: "oversized json", status: 400, contentType: "application/json",
			body: `{"error":{"code":"X","message":"` + strings.Repeat("a", 100<<10) + `"}}`,
			want: ResponseError{StatusCode: 400, Message: `{"error":{"code":"X","message":"` + strings.Repeat("a", 200-32) + "…"},
		},
		{
			name: "json message truncated and cleaned", status: 400, contentType: "application/json",
			body: `{"error":{"code":"InvalidRequestBody","message":"` + strings.Repeat("b", 400) + `\u202e\n"}}`,
			want: ResponseError{StatusCode: 400, Code: "InvalidRequestBody", Message: strings.Repeat("b", 300) + "…"},
		},
		{
			name: "json without error member", status: 400, contentType: "application/json",
			body: `{"message":"odd"}`,
			want: ResponseError{StatusCode: 400, Message: `{"message":"odd"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			c, _ := newTestClient(t, h, nil, &Options{MaxRetries: -1})
			_, err := c.GetMachine(context.Background(), machineID1)
			got := asResponseError(t, err)
			want := tt.want
			want.Method, want.Path, want.Attempts = http.MethodGet, path, 1
			if diff := cmp.Diff(want, *got); diff != "" {
				t.Errorf("GetMachine() error mismatch (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(err.Error(), "atp: get machine "+machineID1+": ") {
				t.Errorf("GetMachine() error = %q, want the atp prefix", err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		maxBody int64
		wantIs  error
	}{
		{name: "malformed", body: `{"id": "x",`},
		{name: "html on 200", body: `<html>hello</html>`},
		{name: "wrong type", body: `{"id": 5}`},
		{name: "oversized", body: `{"id":"` + strings.Repeat("a", 2000) + `"}`, maxBody: 1000, wantIs: ErrBodyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, jsonHandler(200, tt.body, nil), nil, &Options{MaxBodyBytes: tt.maxBody})
			_, err := c.GetMachine(context.Background(), machineID1)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("GetMachine() = %v (%T), want *DecodeError", err, err)
			}
			if de.StatusCode != 200 || de.Method != "GET" || de.Path != "/api/machines/"+machineID1 {
				t.Errorf("DecodeError = %+v, want 200 GET /api/machines/...", de)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("GetMachine() = %v, want errors.Is %v", err, tt.wantIs)
			}
		})
	}
	// Exactly at the limit is fine.
	body := `{"id":"` + machineID1 + `"}`
	c, _ := newTestClient(t, jsonHandler(200, body, nil), nil, &Options{MaxBodyBytes: int64(len(body))})
	if _, err := c.GetMachine(context.Background(), machineID1); err != nil {
		t.Errorf("GetMachine() with body at the limit = %v, want nil", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"7", 7 * time.Second},
		{" 30 ", 30 * time.Second},
		{"-5", 0},
		{"1.5", 0},
		{"abc", 0},
		{"99999999999999999999999", (1 << 31) * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	wrap := func(re *ResponseError) error { return errors.Join(errors.New("ctx"), re) }
	tests := []struct {
		name       string
		err        error
		wantActive bool
		wantNF     bool
	}{
		{name: "active request", err: wrap(&ResponseError{StatusCode: 400, Code: "ActiveRequestAlreadyExists"}), wantActive: true},
		{name: "other 400", err: wrap(&ResponseError{StatusCode: 400, Code: "InvalidRequestBody"})},
		{name: "code on wrong status", err: wrap(&ResponseError{StatusCode: 409, Code: "ActiveRequestAlreadyExists"})},
		{name: "not found", err: wrap(&ResponseError{StatusCode: 404, Code: "ResourceNotFound"}), wantNF: true},
		{name: "nil", err: nil},
		{name: "plain", err: errors.New("x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsActiveRequestAlreadyExists(tt.err); got != tt.wantActive {
				t.Errorf("IsActiveRequestAlreadyExists(%v) = %v, want %v", tt.err, got, tt.wantActive)
			}
			if got := IsNotFound(tt.err); got != tt.wantNF {
				t.Errorf("IsNotFound(%v) = %v, want %v", tt.err, got, tt.wantNF)
			}
		})
	}
}

func TestErrorStrings(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&ResponseError{StatusCode: 403, Code: "Forbidden", Message: "no", CorrelationID: "c1"}, "403 Forbidden: Forbidden: no (correlation id c1)"},
		{&ResponseError{StatusCode: 503, Attempts: 3}, "503 Service Unavailable after 3 attempts"},
		{&RateLimitError{RetryAfter: 5 * time.Second}, "call budget exhausted, retry after 5s"},
		{&ArgumentError{Name: "Top", Reason: "too big"}, "invalid Top: too big"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestCeilSecond(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{0, time.Second},
		{time.Millisecond, time.Second},
		{time.Second, time.Second},
		{1400 * time.Millisecond, 2 * time.Second},
		{30 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		if got := ceilSecond(tt.in); got != tt.want {
			t.Errorf("ceilSecond(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
