package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a Clock that only moves when told to. Tickers and AfterFunc
// timers fire from Advance, in deadline order. It is safe for concurrent
// use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time     // guarded by mu
	waiters []*fakeWaiter // guarded by mu
}

type fakeWaiter struct {
	at     time.Time
	period time.Duration // > 0 for tickers
	ch     chan time.Time
	fn     func()
	done   bool // stopped or fired (timers); guarded by Fake.mu
}

// NewFake returns a fake clock reading start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTicker returns a ticker driven by Advance. Like time.Ticker its
// channel holds one tick; ticks nobody received are dropped.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive ticker interval")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWaiter{at: f.now.Add(d), period: d, ch: make(chan time.Time, 1)}
	f.waiters = append(f.waiters, w)
	return &fakeTicker{f: f, w: w}
}

// AfterFunc schedules f for when Advance passes d from now.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWaiter{at: f.now.Add(d), fn: fn}
	f.waiters = append(f.waiters, w)
	return &fakeTimer{f: f, w: w}
}

// Advance moves the clock forward by d, firing every ticker and timer
// whose time comes, in order. Timer functions run on their own goroutines,
// like time.AfterFunc.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	for {
		w := f.nextLocked(end)
		if w == nil {
			break
		}
		f.now = w.at
		if w.period > 0 {
			select {
			case w.ch <- w.at:
			default:
			}
			w.at = w.at.Add(w.period)
			continue
		}
		w.done = true
		go w.fn()
	}
	f.now = end
	f.pruneLocked()
	f.mu.Unlock()
}

// Set jumps the clock to t (forward only), firing what comes due.
func (f *Fake) Set(t time.Time) {
	if d := t.Sub(f.Now()); d > 0 {
		f.Advance(d)
	}
}

// Jump moves the reading by d (backwards too) without firing anything:
// what code sees when a clock without a monotonic reading is stepped.
// Timers keep their deadlines.
func (f *Fake) Jump(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// Waiters reports how many tickers and timers are pending; tests use it to
// wait until the code under test has armed its timers.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneLocked()
	return len(f.waiters)
}

// nextLocked returns the earliest live waiter due at or before end.
func (f *Fake) nextLocked(end time.Time) *fakeWaiter {
	var next *fakeWaiter
	for _, w := range f.waiters {
		if w.done || w.at.After(end) {
			continue
		}
		if next == nil || w.at.Before(next.at) {
			next = w
		}
	}
	return next
}

func (f *Fake) pruneLocked() {
	live := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.done {
			live = append(live, w)
		}
	}
	for i := len(live); i < len(f.waiters); i++ {
		f.waiters[i] = nil
	}
	f.waiters = live
	sort.SliceStable(f.waiters, func(i, j int) bool { return f.waiters[i].at.Before(f.waiters[j].at) })
}

type fakeTicker struct {
	f *Fake
	w *fakeWaiter
}

func (t *fakeTicker) C() <-chan time.Time { return t.w.ch }

func (t *fakeTicker) Stop() {
	t.f.mu.Lock()
	t.w.done = true
	t.f.mu.Unlock()
}

type fakeTimer struct {
	f *Fake
	w *fakeWaiter
}

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	pending := !t.w.done
	t.w.done = true
	return pending
}
