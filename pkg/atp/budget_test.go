package atp

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// maxInWindow returns the largest number of times in any half-open window
// [t, t+period) (times sorted ascending).
func maxInWindow(times []time.Time, period time.Duration) int {
	best := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < period; j++ {
			n++
		}
		best = max(best, n)
	}
	return best
}

func TestBudgetSlidingWindow(t *testing.T) {
	tests := []struct {
		name           string
		perMinute      int
		perHour        int
		calls          int
		period         time.Duration
		limit          int
		wantMinElapsed time.Duration
		wantFirstBurst int // calls let through at the first instant
	}{
		{name: "minute", perMinute: 10, perHour: -1, calls: 40, period: time.Minute, limit: 10, wantMinElapsed: 3 * time.Minute, wantFirstBurst: 2},
		{name: "hour", perMinute: -1, perHour: 20, calls: 45, period: time.Hour, limit: 20, wantMinElapsed: time.Hour, wantFirstBurst: 5},
		{name: "both", perMinute: 8, perHour: 12, calls: 30, period: time.Hour, limit: 12, wantMinElapsed: time.Hour, wantFirstBurst: 2},
		{name: "one per minute", perMinute: 1, perHour: -1, calls: 5, period: time.Minute, limit: 1, wantMinElapsed: 4 * time.Minute, wantFirstBurst: 1},
		{name: "defaults", calls: 400, period: time.Minute, limit: 100, wantMinElapsed: 4 * time.Minute, wantFirstBurst: 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			start := clock.Now()
			var times []time.Time
			h := jsonHandler(200, `{"id":"`+machineID1+`"}`, func(*http.Request) { times = append(times, clock.Now()) })
			o := &Options{CallsPerMinute: tt.perMinute, CallsPerHour: tt.perHour, Now: clock.Now, Sleep: clock.Sleep}
			if tt.name == "defaults" {
				o.CallsPerMinute, o.CallsPerHour = 0, 0
			}
			c, _ := newTestClient(t, h, nil, o)
			if tt.name == "defaults" {
				// newTestClient turns zero budgets off; restore the defaults.
				c.budget = newBudget(DefaultCallsPerMinute, DefaultCallsPerHour)
			}
			for i := range tt.calls {
				if _, err := c.GetMachine(context.Background(), machineID1); err != nil {
					t.Fatalf("call %d: GetMachine() = %v", i, err)
				}
			}
			if got := maxInWindow(times, tt.period); got > tt.limit {
				t.Errorf("%d calls in one %v window, want at most %d", got, tt.period, tt.limit)
			}
			if got := maxInWindow(times, time.Nanosecond); got != tt.wantFirstBurst {
				t.Errorf("burst = %d calls at one instant, want %d", got, tt.wantFirstBurst)
			}
			if el := times[len(times)-1].Sub(start); el < tt.wantMinElapsed {
				t.Errorf("%d calls took %v of clock, want at least %v", tt.calls, el, tt.wantMinElapsed)
			}
		})
	}
}

func TestBudgetOverDeadline(t *testing.T) {
	var hits atomic.Int32
	h := jsonHandler(200, `{"id":"`+machineID1+`"}`, func(*http.Request) { hits.Add(1) })
	c, _ := newTestClient(t, h, nil, &Options{CallsPerMinute: 5, CallsPerHour: -1, Sleep: sleepCtx})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	const n = 20
	var wg sync.WaitGroup
	var limited atomic.Int32
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := c.GetMachine(ctx, machineID1)
			var rl *RateLimitError
			if errors.As(err, &rl) {
				limited.Add(1)
				if rl.RetryAfter < time.Second || rl.Err != nil {
					errs <- err
				}
			} else if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("GetMachine() = %v, want success or a budget *RateLimitError", err)
	}
	// Burst 1, then one call per 15 s: only the first fits in 2 s.
	if hits.Load() != 1 || limited.Load() != n-1 {
		t.Errorf("hits = %d, rate limited = %d; want 1 and %d", hits.Load(), limited.Load(), n-1)
	}
}

func TestBudgetCancelledReservationsReturned(t *testing.T) {
	clock := newFakeClock()
	b := newBudget(2, -1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, ok := b.reserve(ctx, clock.Now()); !ok {
		t.Fatalf("first reserve not ok")
	}
	for i := range 5 {
		if wait, ok := b.reserve(ctx, clock.Now()); ok || wait <= time.Second {
			t.Fatalf("reserve %d = %v, %v; want refused with a wait over 1 s", i, wait, ok)
		}
	}
	// Refused reservations were given back: after one refill period one
	// call fits at once.
	later := clock.Now().Add(time.Minute)
	if wait, ok := b.reserve(context.Background(), later); !ok || wait != 0 {
		t.Errorf("reserve after a minute = %v, %v; want 0, true", wait, ok)
	}
}
