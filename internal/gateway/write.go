package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/wire"
)

// flushMode says who writes what a non-blocking write could not.
type flushMode uint8

const (
	// flushBackground leaves the rest to a flusher goroutine.
	flushBackground flushMode = iota
	// flushInline lets the calling goroutine (a request that is done
	// anyway) write the rest itself.
	flushInline
)

// noticeMode says whether a closing socket is told why.
type noticeMode uint8

const (
	// withNotice sends a Disconnect frame and a close frame first.
	withNotice noticeMode = iota
	// noNotice closes at once (the client is gone or must not learn more).
	noNotice
)

// replyError sends an error reply; unexpected errors are logged and reach
// the client as internal.
func (c *conn) replyError(cid uint32, err error) {
	e, internal := apierr.From(err)
	if internal {
		c.g.log.Error("request failed", "conn", c.id, "cid", cid, "err", err)
	}
	c.g.metrics.requestErrors.WithLabelValues(apierr.CodeName(e.Code)).Inc()
	// Messages may quote client input: keep them valid UTF-8, or the JSON
	// encoding of the reply fails.
	msg := strings.ToValidUTF8(e.Message, "\uFFFD")
	c.reply(&realtimev1.ServerFrame{Cid: cid, Body: &realtimev1.ServerFrame_Error{Error: &realtimev1.Error{Code: e.Code, Message: msg}}}, flushBackground)
}

// reply encodes and queues a server frame.
func (c *conn) reply(fr *realtimev1.ServerFrame, mode flushMode) {
	frame, err := c.encode(fr)
	if err != nil {
		c.g.log.Error("encode frame", "err", err)
		return
	}
	c.enqueue(frame, mode)
}

// encode returns a complete WebSocket frame (header and payload) for fr.
func (c *conn) encode(fr proto.Message) ([]byte, error) {
	op := byte(opBinary)
	if c.format == wire.JSON {
		op = opText
	}
	if c.format == wire.Binary {
		size := proto.Size(fr)
		buf := appendFrameHeader(make([]byte, 0, frameHeaderLen(size)+size), op, size)
		return wire.Marshal(wire.Binary, buf, fr)
	}
	body, err := wire.Marshal(wire.JSON, nil, fr)
	if err != nil {
		return nil, err
	}
	buf := appendFrameHeader(make([]byte, 0, frameHeaderLen(len(body))+len(body)), op, len(body))
	return append(buf, body...), nil
}

// enqueueRaw queues a control frame.
func (c *conn) enqueueRaw(op byte, payload []byte) {
	frame := appendFrameHeader(make([]byte, 0, 2+len(payload)), op, len(payload))
	c.enqueue(append(frame, payload...), flushBackground)
}

// enqueue queues an encoded frame and writes it. Callers must hold no
// session lock (see queue).
func (c *conn) enqueue(frame []byte, mode flushMode) bool {
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		return false
	}
	start, ok := c.queueBoundedLocked(frame)
	c.mu.Unlock()
	if start {
		c.startFlush(mode)
	}
	return ok
}

// queue appends frames to the outbound queue without writing: callers
// holding their session's lock queue under it (so pushes keep seq order)
// and call flushIfStarted after releasing it, so no lock is held across a
// socket write. When the queue would exceed its bound the client is too
// slow: the socket closes with reason slow, without delaying anyone else.
func (c *conn) queue(frames ...[]byte) (start bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state >= stateClosing {
		return false
	}
	for _, f := range frames {
		s, ok := c.queueBoundedLocked(f)
		start = start || s
		if !ok {
			return start
		}
	}
	return start
}

// queueBoundedLocked queues one frame unless the bound is exceeded, in
// which case it starts closing the socket (slow). c.mu is held.
func (c *conn) queueBoundedLocked(frame []byte) (start, ok bool) {
	if c.outBytes+len(frame) > c.g.cfg.OutboundQueueBytes {
		// The client does not read fast enough. Close it without a notice
		// (it would not read that either). finish runs on its own goroutine
		// because callers may hold their session's lock.
		c.state = stateClosing
		c.closeLabel = wire.ReasonName(realtimev1.CloseReason_CLOSE_REASON_SLOW)
		c.background(c.finish)
		return false, false
	}
	return c.queueLocked(false, frame), true
}

// flushIfStarted starts writing when queue reported that the caller owns
// the flush.
func (c *conn) flushIfStarted(start bool) {
	if start {
		c.startFlush(flushBackground)
	}
}

// queueLocked appends frames to the outbound queue (finishing: close the
// socket once they are written) and reports whether the caller must start
// flushing, which it then owns. c.mu is held.
func (c *conn) queueLocked(finishing bool, frames ...[]byte) (start bool) {
	for _, f := range frames {
		c.outq = append(c.outq, f)
		c.outBytes += len(f)
	}
	if finishing {
		c.finishing = true
	}
	start = !c.flushing
	c.flushing = true
	return start
}

// background runs fn on a goroutine the gateway owns (or a plain one once
// the gateway is closing): used for closes reachable from a session lock.
func (c *conn) background(fn func()) {
	if !c.g.spawn(fn) {
		go fn()
	}
}

// startFlush writes the queue, which the caller now owns (flushing is
// set). It first tries a non-blocking write on the calling goroutine,
// which empties the queue in the common case without any goroutine; what
// the socket cannot take now is left to a flusher (the caller itself with
// flushInline).
func (c *conn) startFlush(mode flushMode) {
	if c.rc != nil {
		for {
			c.mu.Lock()
			q := c.outq
			if len(q) == 0 {
				c.flushing = false
				finish := c.finishing
				c.mu.Unlock()
				if finish {
					c.background(c.finish)
				}
				return
			}
			c.outq = nil
			c.mu.Unlock()
			total := 0
			for _, b := range q {
				total += len(b)
			}
			n, ok, err := c.writeNow(q)
			if !ok {
				c.requeue(q, 0)
				break
			}
			if err != nil {
				c.mu.Lock()
				c.flushing = false
				c.mu.Unlock()
				c.background(c.readFailed)
				return
			}
			c.mu.Lock()
			c.outBytes -= n
			c.mu.Unlock()
			if len(q) > 1 {
				c.g.metrics.coalesced.Add(float64(len(q) - 1))
			}
			if n < total {
				c.requeue(q, n)
				break
			}
		}
	}
	if mode == flushInline {
		c.flush()
	} else {
		c.background(c.flush)
	}
}

// requeue puts back the unwritten part of q (after n written bytes) in
// front of whatever was queued since.
func (c *conn) requeue(q [][]byte, n int) {
	for len(q) > 0 && n >= len(q[0]) {
		n -= len(q[0])
		q = q[1:]
	}
	if len(q) > 0 && n > 0 {
		q[0] = q[0][n:]
	}
	c.mu.Lock()
	c.outq = append(q, c.outq...)
	c.mu.Unlock()
}

// flush writes queued frames until the queue is empty. Frames queued while
// a write is in progress go out together in the next writev.
func (c *conn) flush() {
	for {
		c.mu.Lock()
		q := c.outq
		c.outq = nil
		if len(q) == 0 {
			c.flushing = false
			finish := c.finishing
			c.mu.Unlock()
			if finish {
				c.finish()
			}
			return
		}
		c.mu.Unlock()
		n := 0
		for _, b := range q {
			n += len(b)
		}
		// A socket deadline is a real-time timer of the runtime's network
		// poller, not one of the gateway's clock.
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
		bufs := net.Buffers(q)
		_, err := bufs.WriteTo(c.nc)
		c.mu.Lock()
		c.outBytes -= n
		c.mu.Unlock()
		if len(q) > 1 {
			c.g.metrics.coalesced.Add(float64(len(q) - 1))
		}
		if err != nil {
			var ne net.Error
			c.mu.Lock()
			if errors.As(err, &ne) && ne.Timeout() {
				c.closeLabel = wire.ReasonName(realtimev1.CloseReason_CLOSE_REASON_SLOW)
			}
			c.flushing = false
			c.mu.Unlock()
			c.readFailed()
			return
		}
	}
}

// closeMoved closes a socket whose session moved to another socket or
// node, silently: the client is already elsewhere.
func (c *conn) closeMoved() {
	c.mu.Lock()
	if c.closeLabel == "" {
		c.closeLabel = labelMoved
	}
	c.mu.Unlock()
	c.closeWith(realtimev1.CloseReason_CLOSE_REASON_REPLACED, "", noNotice)
}

// closeWith starts closing the socket. withNotice first sends the client
// a Disconnect frame and a close frame; the socket closes once they are
// written (or the write times out). It never closes the socket on the
// calling goroutine while frames are being written.
func (c *conn) closeWith(reason realtimev1.CloseReason, msg string, notice noticeMode) {
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		return
	}
	c.state = stateClosing
	if c.closeLabel == "" {
		c.closeLabel = wire.ReasonName(reason)
	}
	if notice == noNotice || c.outBytes > c.g.cfg.OutboundQueueBytes/2 {
		c.mu.Unlock()
		c.finish()
		return
	}
	c.mu.Unlock()
	frame, err := c.encode(&realtimev1.ServerFrame{Body: &realtimev1.ServerFrame_Disconnect{Disconnect: &realtimev1.Disconnect{
		Reason: reason, Message: msg, Reconnect: wire.Reconnect(reason)}}})
	if err != nil {
		c.finish()
		return
	}
	cp := closePayload(wire.CloseCode(reason), msg)
	closeFrame := append(appendFrameHeader(make([]byte, 0, 2+len(cp)), opClose, len(cp)), cp...)
	c.mu.Lock()
	start := c.queueLocked(true, frame, closeFrame)
	c.mu.Unlock()
	c.flushIfStarted(start)
}

// readFailed closes the socket after a read or write error.
func (c *conn) readFailed() {
	c.mu.Lock()
	if c.closeLabel == "" {
		c.closeLabel = labelClientGone
	}
	if c.state < stateClosing {
		c.state = stateClosing
	}
	c.mu.Unlock()
	c.finish()
}

// finish closes the socket for good, cancels its requests still running
// and detaches its session (which stays resumable for the grace period).
func (c *conn) finish() {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	s, label := c.sess, c.closeLabel
	c.outq = nil
	reqs := c.inflight
	c.inflight = nil
	c.mu.Unlock()
	for _, r := range reqs {
		r.cancel()
	}
	if label == "" {
		label = labelClientGone
	}
	_ = c.nc.Close()
	// The session detaches before the socket leaves the counts, so a
	// session counted as not attached is always resumable from then on.
	if s != nil {
		c.g.detach(s, c)
	}
	c.g.removeConn(c)
	c.g.metrics.closes.WithLabelValues(label).Inc()
	if c.g.log.Enabled(context.Background(), slog.LevelDebug) {
		c.g.log.Debug("socket closed", "conn", c.id, "reason", label)
	}
}
