package atp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sequence answers the i-th request with statuses[i] (the last one repeats).
func sequence(hits *atomic.Int32, retryAfter string, statuses ...int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		i := int(hits.Add(1)) - 1
		st := statuses[min(i, len(statuses)-1)]
		if st == http.StatusTooManyRequests && retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(st)
		switch {
		case st == http.StatusCreated:
			_, _ = io.WriteString(w, `{"id":"`+actionID1+`","type":"Isolate","status":"Pending"}`)
		case st < 300:
			_, _ = io.WriteString(w, `{"id":"`+machineID1+`"}`)
		default:
			_, _ = io.WriteString(w, `{"error":{"code":"E","message":"m","target":"t"}}`)
		}
	}
}

func TestRetries(t *testing.T) {
	get := func(c *Client, ctx context.Context) error {
		_, err := c.GetMachine(ctx, machineID1)
		return err
	}
	post := func(c *Client, ctx context.Context) error {
		_, err := c.Isolate(ctx, machineID1, IsolateRequest{Comment: "c"})
		return err
	}
	tests := []struct {
		name       string
		do         func(*Client, context.Context) error
		statuses   []int
		retryAfter string
		timeout    time.Duration
		maxRetries int
		wantHits   int32
		wantStatus int  // 0: success
		wantRate   bool // *RateLimitError expected
		wantSleeps []time.Duration
	}{
		{name: "get 429 short retry-after", do: get, statuses: []int{429, 200}, retryAfter: "2", wantHits: 2, wantSleeps: []time.Duration{2 * time.Second}},
		{name: "post 429 short retry-after", do: post, statuses: []int{429, 201}, retryAfter: "1", wantHits: 2, wantSleeps: []time.Duration{time.Second}},
		{name: "get 429 retry-after beyond deadline", do: get, statuses: []int{429, 200}, retryAfter: "30", timeout: 5 * time.Second,
			wantHits: 1, wantStatus: 429, wantRate: true},
		{name: "post 429 retry-after beyond deadline", do: post, statuses: []int{429, 201}, retryAfter: "30", timeout: 5 * time.Second,
			wantHits: 1, wantStatus: 429, wantRate: true},
		{name: "get 429 retry-after beyond max wait", do: get, statuses: []int{429, 200}, retryAfter: "3600",
			wantHits: 1, wantStatus: 429, wantRate: true},
		{name: "get 429 forever", do: get, statuses: []int{429}, retryAfter: "1", maxRetries: 2,
			wantHits: 3, wantStatus: 429, wantRate: true, wantSleeps: []time.Duration{time.Second, time.Second}},
		{name: "get 503 retried", do: get, statuses: []int{503, 500, 200}, wantHits: 3, wantSleeps: []time.Duration{-1, -1}},
		{name: "get 500 exhausted", do: get, statuses: []int{500}, maxRetries: 3, wantHits: 4, wantStatus: 500, wantSleeps: []time.Duration{-1, -1, -1}},
		{name: "post 503 not retried", do: post, statuses: []int{503, 201}, wantHits: 1, wantStatus: 503},
		{name: "post 500 not retried", do: post, statuses: []int{500, 201}, wantHits: 1, wantStatus: 500},
		{name: "get 404 not retried", do: get, statuses: []int{404, 200}, wantHits: 1, wantStatus: 404},
		{name: "post 400 not retried", do: post, statuses: []int{400, 201}, wantHits: 1, wantStatus: 400},
		{name: "retries off", do: get, statuses: []int{503, 200}, maxRetries: -1, wantHits: 1, wantStatus: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			sl := &fakeSleep{}
			c, _ := newTestClient(t, sequence(&hits, tt.retryAfter, tt.statuses...), nil,
				&Options{Sleep: sl.Sleep, MaxRetries: tt.maxRetries, RetryBaseDelay: 100 * time.Millisecond})
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			err := tt.do(c, ctx)
			if got := hits.Load(); got != tt.wantHits {
				t.Errorf("server hits = %d, want %d", got, tt.wantHits)
			}
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("call = %v, want success", err)
				}
			} else {
				re := asResponseError(t, err)
				if re.StatusCode != tt.wantStatus || re.Attempts != int(tt.wantHits) {
					t.Errorf("call = %+v, want status %d after %d attempts", re, tt.wantStatus, tt.wantHits)
				}
				var rl *RateLimitError
				if got := errors.As(err, &rl); got != tt.wantRate {
					t.Errorf("call = %v, *RateLimitError %v, want %v", err, got, tt.wantRate)
				}
				if rl != nil && rl.RetryAfter != re.RetryAfter {
					t.Errorf("RateLimitError.RetryAfter = %v, want the Retry-After %v", rl.RetryAfter, re.RetryAfter)
				}
			}
			sleeps := sl.Delays()
			if len(sleeps) != len(tt.wantSleeps) {
				t.Fatalf("sleeps = %v, want %v", sleeps, tt.wantSleeps)
			}
			for i, want := range tt.wantSleeps {
				if want >= 0 && sleeps[i] != want {
					t.Errorf("sleep %d = %v, want %v", i, sleeps[i], want)
				}
			}
		})
	}
}

func TestRetryWaitNeverPastDeadline(t *testing.T) {
	var hits atomic.Int32
	// Real sleeps: backoff of 2 s cannot fit in a 300 ms deadline.
	c, _ := newTestClient(t, sequence(&hits, "", 503, 200), nil, &Options{Sleep: sleepCtx, RetryBaseDelay: 4 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.GetMachine(ctx, machineID1)
	if re := asResponseError(t, err); re.StatusCode != 503 {
		t.Errorf("GetMachine() = %v, want 503", err)
	}
	if el := time.Since(start); el > 200*time.Millisecond {
		t.Errorf("GetMachine() took %v, want an immediate return", el)
	}
	if hits.Load() != 1 {
		t.Errorf("server hits = %d, want 1", hits.Load())
	}
}

func TestBackoff(t *testing.T) {
	c, err := NewClient("https://x", &fakeTokens{}, &Options{RetryBaseDelay: 100 * time.Millisecond, RetryMaxDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 20 {
			if d := c.backoff(attempt); d < want/2 || d > want {
				t.Errorf("backoff(%d) = %v, want in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

// closedAddr returns a loopback address with nothing listening.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestConnectionRefusedRetried(t *testing.T) {
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			sl := &fakeSleep{}
			c, err := NewClient("http://"+closedAddr(t), &fakeTokens{}, &Options{Sleep: sl.Sleep, MaxRetries: 2, CallsPerMinute: -1, CallsPerHour: -1})
			if err != nil {
				t.Fatal(err)
			}
			if method == "GET" {
				_, err = c.GetMachine(context.Background(), machineID1)
			} else {
				_, err = c.Isolate(context.Background(), machineID1, IsolateRequest{Comment: "c"})
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("%s = %v, want ECONNREFUSED", method, err)
			}
			if n := len(sl.Delays()); n != 2 {
				t.Errorf("%s retried %d times, want 2", method, n)
			}
		})
	}
}

func TestDialErrorThenSuccessForPost(t *testing.T) {
	var hits atomic.Int32
	var trips atomic.Int32
	srvHandler := sequence(&hits, "", 201)
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if trips.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	c, _ := newTestClient(t, srvHandler, nil, &Options{HTTPClient: &http.Client{Transport: rt}})
	a, err := c.Isolate(context.Background(), machineID1, IsolateRequest{Comment: "c"})
	if err != nil {
		t.Fatalf("Isolate() = %v, want success after a dial retry", err)
	}
	if a.ID != actionID1 || hits.Load() != 1 {
		t.Errorf("Isolate() = %+v with %d server hits, want action %s and 1 hit", a, hits.Load(), actionID1)
	}
}

// hangUp reads the request, then closes the connection without answering.
func hangUp(hits *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

func TestResetAfterWrite(t *testing.T) {
	tests := []struct {
		name     string
		post     bool
		wantHits int32
	}{
		{name: "get retried", post: false, wantHits: 3},
		{name: "post not retried", post: true, wantHits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			c, _ := newTestClient(t, hangUp(&hits), nil, &Options{MaxRetries: 2})
			var err error
			if tt.post {
				_, err = c.Isolate(context.Background(), machineID1, IsolateRequest{Comment: "c"})
			} else {
				_, err = c.GetMachine(context.Background(), machineID1)
			}
			if err == nil {
				t.Fatalf("call = nil error, want a connection error")
			}
			var re *ResponseError
			if errors.As(err, &re) {
				t.Errorf("call = %v, want a connection error, not a ResponseError", err)
			}
			// net/http itself may retry an idempotent GET once on a reused
			// connection; count at least our retries.
			if got := hits.Load(); got < tt.wantHits || (tt.post && got != 1) {
				t.Errorf("server hits = %d, want %d", got, tt.wantHits)
			}
		})
	}
}
