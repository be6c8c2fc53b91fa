package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestTokenRequestRetries(t *testing.T) {
	tests := []struct {
		name      string
		fail      int // failing answers before a good one
		status    int
		body      string
		wantErr   bool
		wantCalls int64
	}{
		{"503 once", 1, 503, `<html>busy</html>`, false, 2},
		{"429 twice", 2, 429, `{"error":"temporarily_unavailable","error_description":"AADSTS50196: throttled"}`, false, 3},
		{"500 three times", 3, 500, `{"error":"server_error"}`, true, 3},
		{"bad secret is not retried", 5, 401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}`, true, 1},
		{"malformed success is retried", 1, 200, `{"access_token":`, false, 2},
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
			env := map[string]string{"MDE_TENANT_ID": "contoso.onmicrosoft.com", "MDE_CLIENT_ID": "app", "MDE_CLIENT_SECRET": "s3cret",
				"MDE_AUTHORITY_URL": srv.URL}
			cfg, err := LoadConfig(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			store := NewCredentialStore(cfg, NewEnvSecretSource("MDE_CLIENT_SECRET", "s3cret"), nil)
			ts, err := NewTokenSource(cfg, store, srv.Client(), nil)
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
			var ee *EntraError
			if tt.status == 401 && !errors.As(err, &ee) {
				t.Errorf("error %v is not an *EntraError", err)
			}
		})
	}
}
