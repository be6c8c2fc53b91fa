package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTokenRequestRetries(t *testing.T) {
	tests := []struct {
		name       string
		fail       int // failing answers before a good one
		status     int
		body       string
		wantErr    bool
		wantCalls  int64
		wantDelays []time.Duration
	}{
		{"503 once", 1, 503, `<html>busy</html>`, false, 2, []time.Duration{250 * time.Millisecond}},
		{"429 twice", 2, 429, `{"error":"temporarily_unavailable","error_description":"AADSTS50196: throttled"}`, false, 3,
			[]time.Duration{250 * time.Millisecond, time.Second}},
		{"500 three times", 3, 500, `{"error":"server_error"}`, true, 3, []time.Duration{250 * time.Millisecond, time.Second}},
		{"bad secret is not retried", 5, 401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}`, true, 1, nil},
		{"malformed success is retried", 1, 200, `{"access_token":`, false, 2, []time.Duration{250 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				if int(n) <= tt.fail {
					w.WriteHeader(tt.status)
					w.Write([]byte(tt.body))
					return
				}
				w.Write([]byte(`{"token_type":"Bearer","expires_in":3599,"access_token":"a.b.c"}`))
			}))
			defer srv.Close()
			store := NewCredentialStore(NewEnvSecretSource("secret", "s3cret"), ModeClientSecret, nil)
			sleep := &recordSleep{}
			ts, err := NewTokenSource(ModeClientSecret, "contoso.onmicrosoft.com", "app", store, srv.Client(), &TokenOptions{
				AuthorityURL: srv.URL, Sleep: sleep.Sleep, Logger: quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := ts.TokenContext(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("TokenContext() = %v, %v; want error %v", tok, err, tt.wantErr)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("token requests = %d, want %d", got, tt.wantCalls)
			}
			if diff := cmp.Diff(tt.wantDelays, sleep.Delays()); diff != "" {
				t.Errorf("retry delays mismatch (-want +got):\n%s", diff)
			}
			if got := ts.Stats().Requests; got != tt.wantCalls {
				t.Errorf("Stats().Requests = %d, want %d", got, tt.wantCalls)
			}
			var ee *EntraError
			if tt.status == 401 && !errors.As(err, &ee) {
				t.Errorf("error %v is not an *EntraError", err)
			}
		})
	}
}

func TestTokenRetryStopsWithTheDeadline(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(503)
	}))
	defer srv.Close()
	store := NewCredentialStore(NewEnvSecretSource("secret", "s3cret"), ModeClientSecret, nil)
	// The sleep sees the acquisition's own context end (as its timeout
	// would): no further request is sent.
	ts, err := NewTokenSource(ModeClientSecret, testTenant, testClient, store, srv.Client(), &TokenOptions{
		AuthorityURL: srv.URL, Logger: quiet,
		Sleep: func(context.Context, time.Duration) error { return context.DeadlineExceeded },
	})
	if err != nil {
		t.Fatal(err)
	}
	var ee *EntraError
	if _, err := ts.TokenContext(context.Background()); !errors.As(err, &ee) || ee.StatusCode != 503 {
		t.Errorf("TokenContext() error = %v, want the *EntraError 503", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}
}
