// Package logdam is the log "dam" of seed 004: a bounded, non-blocking
// writer between the code that logs and the slow file or pipe the logs go
// to. Write copies the line into a bounded queue and returns at once; one
// goroutine drains the queue to the destination. When the queue is full
// the line is dropped and counted, so a flood of log lines never blocks a
// session, and an operator can see exactly how much was lost.
package logdam

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
)

// Writer is a bounded non-blocking io.Writer. Each Write is one log line
// (slog handlers write a record per call).
type Writer struct {
	dst     io.Writer
	ch      chan []byte
	pool    sync.Pool
	dropped atomic.Uint64
	written atomic.Uint64
	errs    atomic.Uint64

	closeOnce sync.Once
	done      chan struct{}
	mu        sync.RWMutex // guards closed against concurrent Write
	closed    bool
}

// New starts a Writer that queues at most capacity lines for dst.
func New(dst io.Writer, capacity int) *Writer {
	if capacity < 1 {
		capacity = 1
	}
	w := &Writer{dst: dst, ch: make(chan []byte, capacity), done: make(chan struct{})}
	w.pool.New = func() any { b := make([]byte, 0, 256); return &b }
	go w.drain()
	return w
}

// Write queues a copy of p. It never blocks: when the queue is full the
// line is dropped and counted. It always reports len(p), nil so loggers do
// not treat a dropped line as a failure.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped.Add(1)
		return len(p), nil
	}
	bp := w.pool.Get().(*[]byte)
	b := append((*bp)[:0], p...)
	select {
	case w.ch <- b:
	default:
		*bp = b
		w.pool.Put(bp)
		w.dropped.Add(1)
	}
	return len(p), nil
}

func (w *Writer) drain() {
	defer close(w.done)
	for b := range w.ch {
		if _, err := w.dst.Write(b); err != nil {
			w.errs.Add(1)
		} else {
			w.written.Add(1)
		}
		if cap(b) <= 64<<10 {
			b = b[:0]
			w.pool.Put(&b)
		}
	}
}

// Dropped returns how many lines were dropped because the queue was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Written returns how many lines reached the destination.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Errors returns how many writes to the destination failed.
func (w *Writer) Errors() uint64 { return w.errs.Load() }

// Close stops accepting lines and waits until the queued ones are written
// or ctx ends.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.ch)
		w.mu.Unlock()
	})
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
