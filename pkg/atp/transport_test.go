package atp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
	if want := "atp: get machine " + machineID1 + ": token source: auth: invalid_client"; err.Error() != want {
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

// TestUnauthorizedResendCountsAgainstBudget checks that the re-send after a
// 401 waits for the call budget like any other call: with one call a
// minute, the re-send goes out a minute after the first request, and with
// a deadline too short for that wait it is not sent at all.
func TestUnauthorizedResendCountsAgainstBudget(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration // 0: no deadline
		wantHits int32
		wantGap  time.Duration // between the first request and the re-send
		wantRate bool          // a budget *RateLimitError instead of success
	}{
		{name: "waits for the budget", wantHits: 2, wantGap: time.Minute},
		{name: "budget outlasts the deadline", timeout: 5 * time.Second, wantHits: 1, wantRate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var hits atomic.Int32
			var mu sync.Mutex
			var times []time.Time
			valid := tokenHandler(&hits, nil, testToken+"-1")
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				times = append(times, clock.Now())
				mu.Unlock()
				valid(w, r)
			})
			tokens := &fakeTokens{}
			c, _ := newTestClient(t, h, tokens, &Options{CallsPerMinute: 1, CallsPerHour: -1, Now: clock.Now, Sleep: clock.Sleep})
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			_, err := c.Isolate(ctx, machineID1, IsolateRequest{Comment: "inc 1"})
			var rl *RateLimitError
			if got := errors.As(err, &rl); got != tt.wantRate || (!tt.wantRate && err != nil) {
				t.Fatalf("Isolate() = %v, want budget *RateLimitError %v", err, tt.wantRate)
			}
			if rl != nil && (rl.Err != nil || rl.RetryAfter < time.Second) {
				t.Errorf("Isolate() = %+v, want the client's own budget refusal", rl)
			}
			if hits.Load() != tt.wantHits {
				t.Errorf("server hits = %d, want %d", hits.Load(), tt.wantHits)
			}
			if tokens.invalidates != 1 {
				t.Errorf("Invalidate calls = %d, want 1", tokens.invalidates)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(times) == 2 {
				if gap := times[1].Sub(times[0]); gap < tt.wantGap {
					t.Errorf("re-send %v after the first request, want at least %v (one call a minute)", gap, tt.wantGap)
				}
			}
		})
	}
}

// TestUnauthorizedResendNotARetry checks that the re-send after a 401 does
// not use up a retry: with retries off, a 429 after it is still not
// retried, and with one retry a 429 after it is retried once.
func TestUnauthorizedResendNotARetry(t *testing.T) {
	var hits atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch hits.Add(1) {
		case 1:
			w.WriteHeader(http.StatusUnauthorized)
		case 2:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			_, _ = io.WriteString(w, `{"id":"`+machineID1+`"}`)
		}
	})
	c, _ := newTestClient(t, h, &fakeTokens{}, &Options{MaxRetries: 1})
	if _, err := c.GetMachine(context.Background(), machineID1); err != nil {
		t.Errorf("GetMachine() = %v, want success on the third request", err)
	}
	if hits.Load() != 3 {
		t.Errorf("server hits = %d, want 3 (first, re-send after 401, one retry after 429)", hits.Load())
	}
}
