package clock

import (
	"testing"
	"time"
)

func TestFakeTickerAndTimers(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	tk := f.NewTicker(time.Second)
	fired := make(chan time.Time, 3)
	f.AfterFunc(2500*time.Millisecond, func() { fired <- f.Now() })
	stopped := f.AfterFunc(time.Second, func() { t.Error("stopped timer fired") })
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}

	f.Advance(999 * time.Millisecond)
	select {
	case <-tk.C():
		t.Fatal("ticker fired early")
	default:
	}
	f.Advance(time.Millisecond)
	if got := <-tk.C(); !got.Equal(start.Add(time.Second)) {
		t.Fatalf("tick at %v, want %v", got, start.Add(time.Second))
	}
	f.Advance(2 * time.Second) // ticks at 2s and 3s; one buffered
	if got := <-fired; !got.After(start.Add(2 * time.Second)) {
		t.Fatalf("timer ran at %v", got)
	}
	if got := <-tk.C(); !got.Equal(start.Add(2 * time.Second)) {
		t.Fatalf("buffered tick %v, want the 2s tick (later ones dropped like time.Ticker)", got)
	}
	tk.Stop()
	f.Advance(5 * time.Second)
	select {
	case <-tk.C():
		t.Fatal("stopped ticker fired")
	default:
	}
	if n := f.Waiters(); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
}

func TestMonoIgnoresWallSteps(t *testing.T) {
	// Real readings carry the monotonic clock: a reading moved by a wall
	// step (simulated by stripping and shifting) is not what Mono uses.
	m := NewMono(Real())
	a := m.Now()
	time.Sleep(time.Millisecond)
	b := m.Now()
	if b <= a {
		t.Fatalf("mono went %d -> %d", a, b)
	}
	f := NewFake(time.Unix(100, 0))
	fm := NewMono(f)
	f.Advance(3 * time.Second)
	if got := fm.Now(); got != int64(4*time.Second) {
		t.Fatalf("fake mono %d, want 4s (3 s after an epoch 1 s back)", got)
	}
}

func TestSetFiresDueTimers(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	done := make(chan int64, 2)
	f.AfterFunc(2*time.Second, func() { done <- 1 })
	f.AfterFunc(time.Second, func() { done <- 1 })
	f.Set(time.Unix(10, 0))
	<-done
	<-done
	if f.Now() != time.Unix(10, 0) {
		t.Fatalf("now %v", f.Now())
	}
}
