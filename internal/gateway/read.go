package gateway

import (
	"errors"
	"unicode/utf8"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/wire"
)

// readState is what a socket's reader keeps between reads.
type readState struct {
	rbuf   []byte // partial frame carried over between reads
	frag   []byte // payload of a fragmented message being assembled
	fragOp byte
}

// onData consumes bytes read from the socket. It returns false once the
// socket is closing and must not be read any more.
func (c *conn) onData(data []byte) bool {
	var buf []byte
	if c.rs != nil && len(c.rs.rbuf) > 0 {
		c.rs.rbuf = append(c.rs.rbuf, data...)
		buf = c.rs.rbuf
	} else {
		buf = data
	}
	for len(buf) > 0 {
		f, n, err := parseFrame(buf, c.g.cfg.MaxFrameBytes)
		if err != nil {
			if errors.Is(err, errFrameTooLarge) {
				c.closeWith(realtimev1.CloseReason_CLOSE_REASON_FRAME_TOO_LARGE, err.Error(), withNotice)
			} else {
				c.closeWith(realtimev1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR, err.Error(), withNotice)
			}
			return false
		}
		if n == 0 {
			break
		}
		buf = buf[n:]
		if !c.onFrame(f) {
			return false
		}
	}
	switch {
	case len(buf) == 0:
		if c.rs != nil {
			c.rs.rbuf = nil
			if c.rs.frag == nil {
				c.rs = nil
			}
		}
	case c.rs == nil:
		c.rs = &readState{rbuf: append(make([]byte, 0, len(buf)+512), buf...)}
	case len(c.rs.rbuf) == 0 || &buf[0] != &c.rs.rbuf[0]:
		c.rs.rbuf = append(make([]byte, 0, len(buf)+512), buf...)
	}
	return true
}

// onFrame handles one WebSocket frame.
func (c *conn) onFrame(f wsFrame) bool {
	c.lastRecv.Store(c.g.mono.Now())
	switch f.op {
	case opPing:
		// WebSocket pings cost a write each: they share the rate budget
		// of requests.
		c.mu.Lock()
		ok := c.takeToken()
		c.mu.Unlock()
		if !ok {
			return c.violation()
		}
		c.enqueueRaw(opPong, f.payload)
		return true
	case opPong:
		return true
	case opClose:
		// Echo the client's close (RFC 6455 §5.5.1), then close the socket.
		// The session stays resumable: only Logout ends it.
		var status []byte
		if len(f.payload) >= 2 {
			status = f.payload[:2]
		}
		closeFrame := append(appendFrameHeader(make([]byte, 0, 4), opClose, len(status)), status...)
		c.mu.Lock()
		if c.state >= stateClosing {
			c.mu.Unlock()
			return false
		}
		c.state = stateClosing
		if c.closeLabel == "" {
			c.closeLabel = labelClientGone
		}
		start := c.queueLocked(true, closeFrame)
		c.mu.Unlock()
		c.flushIfStarted(start)
		return false
	case opContinuation:
		if c.rs == nil || c.rs.frag == nil {
			c.closeWith(realtimev1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR, "continuation frame without a message", withNotice)
			return false
		}
		if len(c.rs.frag)+len(f.payload) > c.g.cfg.MaxFrameBytes {
			c.closeWith(realtimev1.CloseReason_CLOSE_REASON_FRAME_TOO_LARGE, "fragmented message too large", withNotice)
			return false
		}
		c.rs.frag = append(c.rs.frag, f.payload...)
		if !f.fin {
			return true
		}
		msg, op := c.rs.frag, c.rs.fragOp
		c.rs.frag = nil
		return c.onMessage(op, msg)
	default: // text or binary
		if c.rs != nil && c.rs.frag != nil {
			c.closeWith(realtimev1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR, "new message inside a fragmented one", withNotice)
			return false
		}
		if !f.fin {
			if c.rs == nil {
				c.rs = &readState{}
			}
			c.rs.frag = append(make([]byte, 0, 2*len(f.payload)), f.payload...)
			c.rs.fragOp = f.op
			return true
		}
		return c.onMessage(f.op, f.payload)
	}
}

// onMessage decodes one protocol frame and dispatches it.
func (c *conn) onMessage(op byte, msg []byte) bool {
	if op == opText && !utf8.Valid(msg) {
		// RFC 6455 §8.1: a text message must be UTF-8, or the connection
		// fails with 1007.
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_INVALID_PAYLOAD, "text message is not valid UTF-8", withNotice)
		return false
	}
	if (op == opText) != (c.format == wire.JSON) {
		c.replyError(0, apierr.BadRequest("frame type does not match the negotiated format %s", c.format))
		return c.violation()
	}
	fr, err := wire.DecodeClientFrame(c.format, msg)
	if err != nil {
		var cid uint32
		if fr != nil {
			cid = fr.Cid
		}
		c.replyError(cid, apierr.BadRequest("cannot decode frame: %v", err))
		return c.violation()
	}
	c.g.metrics.frames.Inc()
	return c.dispatch(fr)
}
