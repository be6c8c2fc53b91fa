package atp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// tokenHandler answers 401 unless the bearer token is one of valid.
func tokenHandler(hits *atomic.Int32, bodies *[]string, valid ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if bodies != nil {
			b, _ := io.ReadAll(r.Body)
			*bodies = append(*bodies, string(b))
		}
		auth := r.Header.Get("Authorization")
		for _, v := range valid {
			if auth == "Bearer "+v {
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, `{"id":"`+actionID1+`","type":"Isolate","status":"Pending"}`)
				return
			}
		}
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"Unauthorized","message":"Authorization token has expired","target":"c0rr"}}`)
	}
}

func TestUnauthorizedInvalidatesAndRetriesOnce(t *testing.T) {
	tests := []struct {
		name            string
		valid           []string
		wantHits        int32
		wantInvalidates int
		wantErr         bool
	}{
		{name: "fresh token accepted", valid: []string{testToken + "-1"}, wantHits: 2, wantInvalidates: 1},
		{name: "still unauthorized", valid: nil, wantHits: 2, wantInvalidates: 1, wantErr: true},
		{name: "first token accepted", valid: []string{testToken}, wantHits: 1, wantInvalidates: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			var bodies []string
			tokens := &fakeTokens{}
			c, _ := newTestClient(t, tokenHandler(&hits, &bodies, tt.valid...), tokens, nil)
			_, err := c.Isolate(context.Background(), machineID1, IsolateRequest{Comment: "inc 1"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Isolate() = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if re := asResponseError(t, err); re.StatusCode != 401 || re.Code != "Unauthorized" {
					t.Errorf("Isolate() = %+v, want 401 Unauthorized", re)
				}
			}
			if hits.Load() != tt.wantHits {
				t.Errorf("server hits = %d, want %d", hits.Load(), tt.wantHits)
			}
			if tokens.invalidates != tt.wantInvalidates {
				t.Errorf("Invalidate calls = %d, want %d", tokens.invalidates, tt.wantInvalidates)
			}
			for i, b := range bodies {
				if !strings.Contains(b, `"Comment":"inc 1"`) {
					t.Errorf("request %d body = %q, want the isolate body replayed", i, b)
				}
			}
		})
	}
}

func TestUnauthorizedWithoutInvalidator(t *testing.T) {
	var hits atomic.Int32
	tokens := &plainTokens{}
	c, _ := newTestClient(t, tokenHandler(&hits, nil), tokens, nil)
	_, err := c.GetMachine(context.Background(), machineID1)
	if re := asResponseError(t, err); re.StatusCode != 401 {
		t.Errorf("GetMachine() = %v, want 401", err)
	}
	if hits.Load() != 1 {
		t.Errorf("server hits = %d, want 1 (no retry without Invalidator)", hits.Load())
	}
	if tokens.calls.Load() != 1 {
		t.Errorf("Token calls = %d, want 1", tokens.calls.Load())
	}
}

type authFailure struct{ Code string }

func (e *authFailure) Error() string { return "auth: " + e.Code }

func TestTokenErrorsWrapped(t *testing.T) {
	var hits atomic.Int32
	tokens := &fakeTokens{err: &authFailure{Code: "invalid_client"}}
	c, _ := newTestClient(t, tokenHandler(&hits, nil, testToken), tokens, nil)
	_, err := c.GetMachine(context.Background(), machineID1)
	if !errors.Is(err, ErrToken) {
		t.Errorf("GetMachine() = %v, want errors.Is ErrToken", err)
	}
	var af *authFailure
	if !errors.As(err, &af) || af.Code != "invalid_client" {
		t.Errorf("GetMachine() = %v, want errors.As *authFailure", err)
	}
	if want := "atp: get machine " + machineID1 + ": token: auth: invalid_client"; err.Error() != want {
		t.Errorf("GetMachine() error text = %q, want %q", err, want)
	}
	if hits.Load() != 0 {
		t.Errorf("server hits = %d, want 0", hits.Load())
	}
	if tokens.calls != 1 {
		t.Errorf("token calls = %d, want 1 (token errors are not retried)", tokens.calls)
	}
}

func TestTokenContextUsed(t *testing.T) {
	var hits atomic.Int32
	tokens := &fakeTokens{}
	c, _ := newTestClient(t, tokenHandler(&hits, nil, testToken), tokens, nil)
	if _, err := c.GetMachine(context.Background(), machineID1); err != nil {
		t.Fatalf("GetMachine() = %v", err)
	}
	if tokens.ctxCalls != 1 {
		t.Errorf("TokenContext calls = %d, want 1", tokens.ctxCalls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.GetMachine(ctx, machineID1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("GetMachine(canceled) = %v, want context.Canceled", err)
	}
}

func TestEmptyToken(t *testing.T) {
	var hits atomic.Int32
	c, _ := newTestClient(t, tokenHandler(&hits, nil, testToken), emptyTokens{}, nil)
	_, err := c.GetMachine(context.Background(), machineID1)
	if !errors.Is(err, ErrToken) {
		t.Errorf("GetMachine() = %v, want ErrToken", err)
	}
	if hits.Load() != 0 {
		t.Errorf("server hits = %d, want 0", hits.Load())
	}
}
