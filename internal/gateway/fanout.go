package gateway

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/wire"
)

// PushLocal delivers m as a durable push to sessions of this node (a topic
// item fanned out from the node's own index). Each session gets its own
// seq and keeps the push for resume, but the push is marshalled once: a
// binary socket's frame is the shared encoding with the session's seq
// prepended. It returns how many sessions took the push; unknown or ended
// sessions are skipped.
func (g *Gateway) PushLocal(sessionIDs []string, m Message) int {
	now := g.clock.Now().UnixMilli()
	tmpl := &realtimev1.Push{Kind: m.Kind, Payload: m.Payload, SentAtMs: now, Id: m.ID, PayloadType: m.PayloadType}
	body, err := proto.Marshal(tmpl) // seq 0 is not encoded
	if err != nil {
		g.log.Error("encode fan-out push", "err", err)
		return 0
	}
	n := 0
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
		s.seq++
		p.Seq = s.seq
		s.keep(p, g.cfg)
		c := s.conn
		start := false
		if c != nil {
			var frame []byte
			if c.format == wire.Binary {
				frame = binaryPushFrame(p.Seq, body)
			} else if frame, err = c.encodePush(p); err != nil {
				g.log.Error("encode fan-out push", "err", err)
			}
			if frame != nil {
				start = c.queue(frame)
			}
		}
		s.mu.Unlock()
		if c != nil {
			c.flushIfStarted(start)
		}
		n++
	}
	g.metrics.pushes.Add(float64(n))
	return n
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
