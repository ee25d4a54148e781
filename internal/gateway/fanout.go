package gateway

import (
	"runtime"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

// PushLocal delivers m as a durable push to sessions of this node (a topic
// item fanned out from the node's own index). Each session gets its own
// seq and keeps the push for resume, but the push is marshalled once: a
// binary socket's frame is the shared encoding with the session's seq
// prepended. It returns how many sessions took the push; unknown or ended
// sessions are skipped.
//
// The frames are queued on every socket first and written afterwards
// (see writeQueued), so a large fan-out returns once everything is
// queued: a socket still being written when the next item arrives takes
// both items in one writev.
func (g *Gateway) PushLocal(sessionIDs []string, m Message) int {
	now := g.clock.Now().UnixMilli()
	tmpl := &realtimev1.Push{Kind: m.Kind, Payload: m.Payload, SentAtMs: now, Id: m.ID, PayloadType: m.PayloadType}
	body, err := proto.Marshal(tmpl) // seq 0 is not encoded
	if err != nil {
		g.log.Error("encode fan-out push", "err", err)
		return 0
	}
	n := 0
	var toWrite []*conn
	for _, id := range sessionIDs {
		s := g.session(id)
		if s == nil {
			continue
		}
		p := &realtimev1.Push{Kind: m.Kind, Payload: m.Payload, SentAtMs: now, Id: m.ID, PayloadType: m.PayloadType}
		s.mu.Lock()
		if s.state != sessLive {
			// An establishing session loads its inbox and retained items
			// itself once live; an ended one is gone.
			s.mu.Unlock()
			continue
		}
		c, start := g.sequenceLocked(s, p, body)
		s.mu.Unlock()
		if start {
			toWrite = append(toWrite, c)
		}
		n++
	}
	g.metrics.pushes.Add(float64(n))
	g.writeQueued(toWrite)
	return n
}

// Writing a fan-out's sockets.
const (
	// fanInline is the largest fan-out written on the calling goroutine.
	fanInline = 64
	// fanPerWriter is the fewest sockets worth one more writer goroutine.
	fanPerWriter = 1024
)

// writeQueued starts writing the sockets whose flush PushLocal owns. A
// small fan-out is written on the calling goroutine; a large one by
// writer goroutines (up to one per two cores: the writes are mostly
// syscalls, and the epoll loops and everything else need the other
// cores; on two cores one writer carried a fifth more than two), each
// taking a share of the sockets, so the caller can queue the next item
// meanwhile: frames queued on a socket its writer has not reached yet go
// out in the same writev. Every write is non-blocking (startFlush): what
// a socket cannot take now goes to that socket's own flusher, so a slow
// client delays no one.
func (g *Gateway) writeQueued(conns []*conn) {
	if len(conns) <= fanInline {
		for _, c := range conns {
			c.startFlush(flushBackground)
		}
		return
	}
	writers := min(max(runtime.GOMAXPROCS(0)/2, 1), (len(conns)+fanPerWriter-1)/fanPerWriter)
	share := (len(conns) + writers - 1) / writers
	for len(conns) > 0 {
		part := conns[:min(share, len(conns))]
		conns = conns[len(part):]
		write := func() {
			for _, c := range part {
				c.startFlush(flushBackground)
			}
		}
		if !g.spawn(write) {
			write() // the gateway is stopping: write here
		}
	}
}

// binaryPushFrame builds the WebSocket frame of ServerFrame{push: body
// with seq}: body is a marshalled Push without seq, so only the seq field
// and the two length prefixes are new.
func binaryPushFrame(seq uint64, body []byte) []byte {
	pushLen := 1 + protowire.SizeVarint(seq) + len(body)
	frameLen := 1 + protowire.SizeVarint(uint64(pushLen)) + pushLen
	out := appendFrameHeader(make([]byte, 0, frameHeaderLen(frameLen)+frameLen), opBinary, frameLen)
	out = protowire.AppendTag(out, 6, protowire.BytesType) // ServerFrame.push
	out = protowire.AppendVarint(out, uint64(pushLen))
	out = protowire.AppendTag(out, 1, protowire.VarintType) // Push.seq
	out = protowire.AppendVarint(out, seq)
	return append(out, body...)
}
