package atp

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// budget keeps the client under N calls in any sliding period: a token
// bucket with burst b and refill rate (N-b)/period lets through at most
// b + (N-b) = N calls in any window of that length.
type budget struct {
	limiters []*rate.Limiter
}

func newBudget(perMinute, perHour int) *budget {
	b := &budget{}
	if perMinute > 0 {
		b.limiters = append(b.limiters, window(perMinute, time.Minute))
	}
	if perHour > 0 {
		b.limiters = append(b.limiters, window(perHour, time.Hour))
	}
	return b
}

// window returns a limiter allowing at most n events in any period.
func window(n int, period time.Duration) *rate.Limiter {
	burst := max(1, n/4)
	if n == 1 {
		// One call per period: burst 1, refill after a whole period.
		return rate.NewLimiter(rate.Every(period), 1)
	}
	return rate.NewLimiter(rate.Limit(float64(n-burst)/period.Seconds()), burst)
}

// reserve takes one call from every limiter and returns how long the caller
// must wait before making it. If that wait cannot finish before ctx's
// deadline the reservations are returned and the wait is reported with
// ok = false. Without a deadline the caller may wait as long as needed.
// now is the budget's clock; the deadline is always compared with real
// time, as contexts measure it.
func (b *budget) reserve(ctx context.Context, now time.Time) (wait time.Duration, ok bool) {
	rs := make([]*rate.Reservation, 0, len(b.limiters))
	for _, l := range b.limiters {
		r := l.ReserveN(now, 1)
		rs = append(rs, r)
		wait = max(wait, r.DelayFrom(now))
	}
	if wait == 0 {
		return 0, true
	}
	if dl, has := ctx.Deadline(); has && time.Until(dl) < wait {
		for _, r := range rs {
			r.CancelAt(now)
		}
		return wait, false
	}
	return wait, true
}
