package logdam

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// blockingWriter blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func TestWriterNeverBlocksAndCountsDrops(t *testing.T) {
	dst := &blockingWriter{release: make(chan struct{})}
	w := New(dst, 10)
	logger := slog.New(slog.NewTextHandler(w, nil))
	start := time.Now()
	for i := 0; i < 1000; i++ {
		logger.Info("flood", "i", i)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("1000 log lines took %v with a blocked destination; Write must not block", elapsed)
	}
	close(dst.release)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// At most capacity+1 lines got through (one may be in the drainer's hands).
	if got := w.Written(); got > 11 || got == 0 {
		t.Errorf("written = %d, want 1..11", got)
	}
	if got, want := w.Dropped()+w.Written(), uint64(1000); got != want {
		t.Errorf("dropped+written = %d, want %d", got, want)
	}
}

func TestWriterDeliversInOrder(t *testing.T) {
	var buf bytes.Buffer
	w := New(&buf, 100)
	for i := 0; i < 50; i++ {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if buf.String() != want.String() {
		t.Errorf("got %q, want %q", buf.String(), want.String())
	}
	if w.Dropped() != 0 {
		t.Errorf("dropped = %d, want 0", w.Dropped())
	}
	// Writes after Close are dropped, not a panic.
	fmt.Fprintln(w, "late")
	if w.Dropped() != 1 {
		t.Errorf("dropped after close = %d, want 1", w.Dropped())
	}
}

func BenchmarkWrite(b *testing.B) {
	w := New(io.Discard, 10000)
	line := []byte(`time=2026-11-22T00:00:00Z level=INFO msg="session opened" user=0193 node=n1` + "\n")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = w.Write(line)
		}
	})
	b.StopTimer()
	_ = w.Close(context.Background())
}
