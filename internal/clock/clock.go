// Package clock is the one source of time for taisen's timers: the
// gateway's idle and auth timeouts, resume grace, rate limits and session
// record refreshes, and later room ticks, turn clocks and matchmaker
// windows. Production code uses Real, whose readings carry Go's monotonic
// clock, so a wall-clock step (NTP, a VM resume, an operator's date
// command) neither fires nor delays a timer. Tests use Fake and move time
// by hand instead of sleeping.
//
// Durations between two readings must be taken with Time.Sub (or Since),
// never by comparing UnixNano values, which drop the monotonic reading.
package clock

import (
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	// Now returns the current time; Real's readings carry a monotonic
	// component.
	Now() time.Time
	// NewTicker returns a ticker that sends on its channel every d.
	NewTicker(d time.Duration) Ticker
	// AfterFunc calls f on its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Ticker delivers ticks on C until stopped.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop cancels the call; it reports whether the call was still pending.
	Stop() bool
}

// Real returns the system clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

// Mono turns readings of one clock into nanoseconds since an epoch, using
// the monotonic component when the readings have one. It lets hot paths
// keep times in an int64 (an atomic, a small struct field) without losing
// monotonicity.
type Mono struct {
	c     Clock
	epoch time.Time
}

// NewMono starts counting one second before c.Now(), so every reading is
// positive and callers can keep 0 to mean "not set".
func NewMono(c Clock) Mono { return Mono{c: c, epoch: c.Now().Add(-time.Second)} }

// Now returns the nanoseconds elapsed since the epoch (at least one
// second, unless the clock was stepped back).
func (m Mono) Now() int64 { return int64(m.c.Now().Sub(m.epoch)) }

// Clock returns the underlying clock.
func (m Mono) Clock() Clock { return m.c }
