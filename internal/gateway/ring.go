package gateway

import (
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

// pushRing keeps the most recent pushes of a session for resume, bounded by
// count and bytes. The zero value is empty and allocates nothing.
type pushRing struct {
	buf   []*realtimev1.Push // circular, len(buf) == capacity once used
	head  int                // index of the oldest push
	n     int                // number of pushes held
	bytes int                // payload bytes held
}

func pushSize(p *realtimev1.Push) int { return len(p.Payload) + len(p.Kind) + 32 }

// add appends p, evicting the oldest pushes beyond maxN or maxBytes.
func (r *pushRing) add(p *realtimev1.Push, maxN, maxBytes int) {
	if r.buf == nil {
		c := 8
		if maxN < c {
			c = maxN
		}
		r.buf = make([]*realtimev1.Push, c)
	}
	if r.n == len(r.buf) && len(r.buf) < maxN {
		grown := make([]*realtimev1.Push, min(2*len(r.buf), maxN))
		for i := 0; i < r.n; i++ {
			grown[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = grown, 0
	}
	if r.n == len(r.buf) {
		r.evict()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = p
	r.n++
	r.bytes += pushSize(p)
	for r.bytes > maxBytes && r.n > 1 {
		r.evict()
	}
}

func (r *pushRing) evict() {
	old := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	r.bytes -= pushSize(old)
}

// after returns the pushes with seq > last, oldest first, and whether the
// ring still holds every push after last given that lastSeq is the highest
// seq assigned so far.
func (r *pushRing) after(last, lastSeq uint64) (out []*realtimev1.Push, complete bool) {
	if last > lastSeq {
		return nil, false
	}
	if last == lastSeq {
		return nil, true
	}
	if r.n == 0 {
		return nil, false
	}
	oldest := r.buf[r.head].Seq
	if oldest > last+1 {
		return nil, false
	}
	for i := 0; i < r.n; i++ {
		p := r.buf[(r.head+i)%len(r.buf)]
		if p.Seq > last {
			out = append(out, p)
		}
	}
	return out, true
}
