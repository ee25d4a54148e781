package client

import (
	"fmt"
	"time"
)

// Backoff is the reconnection schedule: exponential from Min, doubling per
// failed attempt up to Max, each delay shortened by a random fraction of up
// to Jitter so that many clients dropped at once do not reconnect in step.
// The zero value means DefaultBackoff; otherwise a zero Min or Max takes
// its default and Jitter is used as given (zero: no jitter).
type Backoff struct {
	// Min is the delay before the first attempt.
	Min time.Duration
	// Max caps the delay.
	Max time.Duration
	// Jitter in [0, 1] is the largest fraction removed from a delay at
	// random.
	Jitter float64
}

// DefaultBackoff returns the default schedule: 250ms doubling up to 30s,
// with up to half of each delay removed at random.
func DefaultBackoff() Backoff {
	return Backoff{Min: 250 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.5}
}

// withDefaults fills the zero fields of b from DefaultBackoff.
func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff()
	if b == (Backoff{}) {
		return d
	}
	if b.Min <= 0 {
		b.Min = d.Min
	}
	if b.Max <= 0 {
		b.Max = max(d.Max, b.Min)
	}
	return b
}

// Validate reports a schedule that makes no sense.
func (b Backoff) Validate() error {
	b = b.withDefaults()
	if b.Max < b.Min {
		return fmt.Errorf("client: backoff max %v is below min %v", b.Max, b.Min)
	}
	if b.Jitter < 0 || b.Jitter > 1 {
		return fmt.Errorf("client: backoff jitter %v: want 0..1", b.Jitter)
	}
	return nil
}

// Delay returns the wait before reconnection attempt number attempt
// (0-based). rnd returns a uniform number in [0, 1), for example
// math/rand/v2.Float64; it is a parameter so the schedule is testable.
func (b Backoff) Delay(attempt int, rnd func() float64) time.Duration {
	b = b.withDefaults()
	d := b.Min
	for i := 0; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if b.Jitter > 0 && rnd != nil {
		d -= time.Duration(float64(d) * b.Jitter * rnd())
	}
	return max(d, 0)
}
