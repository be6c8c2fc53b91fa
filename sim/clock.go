package sim

import (
	"sync"
	"time"
)

// clock is the base time source plus an offset moved by Advance.
type clock struct {
	base func() time.Time

	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	off := c.offset
	c.mu.Unlock()
	base := time.Now
	if c.base != nil {
		base = c.base
	}
	return base().Add(off)
}

// Now returns the simulator's current time: Options.Clock (default
// time.Now) plus everything passed to Advance.
func (s *Sim) Now() time.Time { return s.clock.now() }

// Advance moves the simulator's clock forward by d (backward when d is
// negative). Tokens issued before then may expire; Defender actions progress.
func (s *Sim) Advance(d time.Duration) {
	s.clock.mu.Lock()
	s.clock.offset += d
	s.clock.mu.Unlock()
}
