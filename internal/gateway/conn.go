package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/wire"
)

// connState is where a socket is in its life.
type connState uint8

const (
	stateNew     connState = iota // connected, waiting for Hello
	stateAuthing                  // Hello (or ?token=) being processed
	stateOpen                     // authenticated, attached to a Session
	stateClosing                  // closing after the queued frames are written
	stateClosed                   // closed
)

// Labels of socket closes that have no CloseReason of their own.
const (
	labelClientGone = "client_gone"  // EOF, reset or a client close frame
	labelMoved      = "resumed_away" // the session was resumed on another socket
)

// conn is one WebSocket. It holds no goroutine while idle: the engine
// calls onData when bytes arrive, requests run on short-lived goroutines,
// and a flusher goroutine exists only while frames are queued.
type conn struct {
	g      *Gateway
	id     uint64
	nc     net.Conn
	rc     syscall.RawConn // set by the epoll engine
	format wire.Format

	openedAt int64        // unix nanos
	lastRecv atomic.Int64 // unix nanos of the last frame received

	mu            sync.Mutex
	state         connState // guarded by mu
	sess          *Session  // guarded by mu; set once the socket is open
	inflight      []uint32  // guarded by mu; cids awaiting a reply
	tokens        float32   // guarded by mu; rate-limit bucket
	tokensAt      int64     // guarded by mu; unix nanos of the last refill
	violations    uint16    // guarded by mu
	authFailures  uint8     // guarded by mu; failed Hellos
	lastViolation int64     // guarded by mu; unix nanos of the last violation
	outq          [][]byte  // guarded by mu; encoded frames waiting to be written
	outBytes      int       // guarded by mu; bytes in outq and being written
	flushing      bool      // guarded by mu; a flusher owns the socket's writes
	finishing     bool      // guarded by mu; close the socket once outq is written
	closeLabel    string    // guarded by mu; why the socket closes (metrics)
	endSession    bool      // guarded by mu; the close ends the session too

	// rs is the read state carried between reads: nil unless a frame or a
	// fragmented message is incomplete, so an idle socket holds none.
	// Touched only by the engine's one reader at a time.
	rs *readState
}

func (g *Gateway) newConn(nc net.Conn, f wire.Format) *conn {
	now := g.now().UnixNano()
	c := &conn{g: g, id: g.nextConnID.Add(1), nc: nc, format: f, openedAt: now, tokensAt: now, tokens: float32(g.cfg.RateBurst)}
	c.lastRecv.Store(now)
	if g.cfg.Engine == "epoll" {
		// Set before the socket is shared with any other goroutine.
		if sc, ok := nc.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				c.rc = rc
			}
		}
	}
	return c
}

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
				c.closeWith(realtimev1.CloseReason_CLOSE_REASON_FRAME_TOO_LARGE, err.Error(), true)
			} else {
				c.closeWith(realtimev1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR, err.Error(), true)
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
	c.lastRecv.Store(c.g.now().UnixNano())
	switch f.op {
	case opPing:
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
		if start {
			c.startFlush(false)
		}
		return false
	case opContinuation:
		if c.rs == nil || c.rs.frag == nil {
			c.closeWith(realtimev1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR, "continuation frame without a message", true)
			return false
		}
		if len(c.rs.frag)+len(f.payload) > c.g.cfg.MaxFrameBytes {
			c.closeWith(realtimev1.CloseReason_CLOSE_REASON_FRAME_TOO_LARGE, "fragmented message too large", true)
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
			c.closeWith(realtimev1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR, "new message inside a fragmented one", true)
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

// dispatch applies the session state machine and the limits to a frame.
func (c *conn) dispatch(fr *realtimev1.ClientFrame) bool {
	cid := fr.Cid
	c.mu.Lock()
	state := c.state
	if state >= stateClosing {
		c.mu.Unlock()
		return false
	}
	if !c.takeToken() {
		c.mu.Unlock()
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED, "request rate over %.0f/s", c.g.cfg.RateLimit))
		return c.violation()
	}
	if ping, ok := fr.Body.(*realtimev1.ClientFrame_Ping); ok && state == stateOpen {
		// Heartbeats are answered at once and never count as in flight.
		c.mu.Unlock()
		c.reply(&realtimev1.ServerFrame{Cid: cid, Body: &realtimev1.ServerFrame_Pong{Pong: &realtimev1.Pong{
			ClientTimeMs: ping.Ping.ClientTimeMs, ServerTimeMs: c.g.now().UnixMilli()}}}, false)
		return true
	}
	hello, isHello := fr.Body.(*realtimev1.ClientFrame_Hello)
	switch {
	case isHello && state == stateOpen:
		c.mu.Unlock()
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_ALREADY_AUTHENTICATED, "this socket is already authenticated"))
		return c.violation()
	case isHello && state == stateAuthing, !isHello && state != stateOpen:
		c.mu.Unlock()
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "authenticate first: send hello and wait for welcome"))
		return c.violation()
	}
	if cid == 0 || slices.Contains(c.inflight, cid) {
		c.mu.Unlock()
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_BAD_CID, "cid must be non-zero and not in use"))
		return c.violation()
	}
	if len(c.inflight) >= c.g.cfg.MaxInFlight {
		c.mu.Unlock()
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_TOO_MANY_IN_FLIGHT, "%d request(s) already awaiting a reply", c.g.cfg.MaxInFlight))
		return c.violation()
	}
	c.inflight = append(c.inflight, cid)
	if isHello {
		c.state = stateAuthing
	}
	sess := c.sess
	c.mu.Unlock()

	switch body := fr.Body.(type) {
	case *realtimev1.ClientFrame_Hello:
		go c.handleHello(cid, hello.Hello)
	case *realtimev1.ClientFrame_Rpc:
		go c.handleRPC(cid, sess, body.Rpc, time.Now())
	case *realtimev1.ClientFrame_Logout:
		go c.handleLogout(cid, sess)
	default:
		c.done(cid)
		c.replyError(cid, apierr.BadRequest("unknown frame body"))
		return c.violation()
	}
	return true
}

// takeToken refills and takes from the rate-limit bucket; c.mu is held.
func (c *conn) takeToken() bool {
	now := c.g.now().UnixNano()
	elapsed := float32(now-c.tokensAt) / float32(time.Second)
	c.tokensAt = now
	c.tokens = min(c.tokens+elapsed*float32(c.g.cfg.RateLimit), float32(c.g.cfg.RateBurst))
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// violation counts a protocol or policy violation and closes the socket
// once there are too many. It returns whether the socket stays open.
func (c *conn) violation() bool {
	c.g.metrics.violations.Inc()
	now := c.g.now().UnixNano()
	c.mu.Lock()
	// Violations decay by one per violationDecay, so only a sustained
	// pattern closes a long-lived session.
	if c.violations > 0 && c.lastViolation != 0 {
		decay := (now - c.lastViolation) / int64(violationDecay)
		c.violations = uint16(max(int64(c.violations)-decay, 0))
	}
	c.lastViolation = now
	c.violations++
	over := int(c.violations) > c.g.cfg.MaxViolations
	c.mu.Unlock()
	if over {
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION, "too many rejected requests", true)
		return false
	}
	return true
}

// done removes cid from the requests in flight. It must run before the
// reply is queued, or a fast client could trip the in-flight limit.
func (c *conn) done(cid uint32) {
	c.mu.Lock()
	if i := slices.Index(c.inflight, cid); i >= 0 {
		c.inflight = slices.Delete(c.inflight, i, i+1)
	}
	c.mu.Unlock()
}

func (c *conn) requestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.g.baseCtx, c.g.cfg.RequestTimeout)
}

// handleHello authenticates the socket and attaches it to a session.
func (c *conn) handleHello(cid uint32, h *realtimev1.Hello) {
	ctx, cancel := c.requestContext()
	defer cancel()
	var (
		ident   Identity
		session *apiv1.Session
		created bool
	)
	switch a := h.Auth.(type) {
	case *realtimev1.Hello_Token:
		id, err := c.g.deps.Auth.VerifyToken(a.Token)
		if err != nil {
			c.helloFailed(cid, err)
			return
		}
		ident = id
	case *realtimev1.Hello_Authenticate:
		resp, err := c.g.deps.Auth.Authenticate(ctx, a.Authenticate)
		if err != nil {
			c.helloFailed(cid, err)
			return
		}
		session, created = resp.Session, resp.Created
		ident = Identity{UserID: resp.Session.UserId, Username: resp.Session.Username}
	default:
		c.helloFailed(cid, apierr.BadRequest("hello needs a token or a credential"))
		return
	}
	c.open(ctx, cid, ident, h.ResumeSessionId, h.LastSeq, session, created)
}

// violationDecay is how long it takes one violation to be forgiven.
const violationDecay = 10 * time.Second

// maxHelloFailures closes a socket after this many failed Hellos (reason
// auth_failed), so one socket cannot probe many credentials.
const maxHelloFailures = 3

func (c *conn) helloFailed(cid uint32, err error) {
	c.mu.Lock()
	if c.state == stateAuthing {
		c.state = stateNew
	}
	c.authFailures++
	tooMany := c.authFailures >= maxHelloFailures
	c.mu.Unlock()
	c.done(cid)
	c.replyError(cid, err)
	c.g.metrics.authFailures.Inc()
	if tooMany {
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_AUTH_FAILED, "too many failed authentications", true)
		return
	}
	c.violation()
}

// open establishes (or resumes) the session of an authenticated socket and
// sends Welcome followed by any replayed pushes.
func (c *conn) open(ctx context.Context, cid uint32, ident Identity, resumeID string, lastSeq uint64, session *apiv1.Session, created bool) {
	if c.g.draining.Load() {
		c.done(cid)
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE, "node is draining; reconnect to another node"))
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_DRAINING, "node is draining", true)
		return
	}
	s, err := c.g.establish(ctx, ident, resumeID, lastSeq)
	if err != nil {
		c.g.log.Error("establish session", "user", ident.UserID, "err", err)
		c.done(cid)
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE, "cannot establish the session now; retry"))
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_SERVER_ERROR, "cannot establish the session", true)
		return
	}
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		// The socket went away while we authenticated: the session stays
		// resumable like any dropped one.
		c.g.detach(s, nil)
		return
	}
	c.state = stateOpen
	c.sess = s
	c.g.openSockets.Add(1) // removeConn takes it back
	if cid != 0 {
		if i := slices.Index(c.inflight, cid); i >= 0 {
			c.inflight = slices.Delete(c.inflight, i, i+1)
		}
	}
	c.mu.Unlock()
	welcome := &realtimev1.Welcome{
		SessionId:           s.id,
		UserId:              s.userID,
		Resumed:             s.resumed,
		HeartbeatIntervalMs: uint32(c.g.cfg.HeartbeatInterval / time.Millisecond),
		IdleTimeoutMs:       uint32(c.g.cfg.IdleTimeout / time.Millisecond),
		ResumeGraceMs:       uint32(c.g.cfg.ResumeGrace / time.Millisecond),
		Session:             session,
		Created:             created,
		NodeId:              c.g.cfg.NodeID,
		MaxInFlight:         uint32(c.g.cfg.MaxInFlight),
		MaxFrameBytes:       uint32(c.g.cfg.MaxFrameBytes),
	}
	c.g.attach(s, c, welcome, cid)
}

func (c *conn) handleRPC(cid uint32, s *Session, req *realtimev1.RpcRequest, start time.Time) {
	fn, ok := c.g.deps.RPC.Lookup(req.Name)
	if !ok {
		c.done(cid)
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNKNOWN_RPC, "no rpc named %q", req.Name))
		return
	}
	ctx, cancel := c.requestContext()
	defer cancel()
	out, err := fn(ctx, Call{UserID: s.userID, Username: s.username, SessionID: s.id, Payload: req.Payload})
	c.done(cid)
	defer func() { c.g.metrics.rpcDuration.WithLabelValues(req.Name).Observe(time.Since(start).Seconds()) }()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_TIMEOUT, err, "request timed out")
		}
		c.replyError(cid, err)
		return
	}
	c.reply(&realtimev1.ServerFrame{Cid: cid, Body: &realtimev1.ServerFrame_Rpc{Rpc: &realtimev1.RpcResponse{Payload: out}}}, true)
}

func (c *conn) handleLogout(cid uint32, s *Session) {
	ctx, cancel := c.requestContext()
	defer cancel()
	c.g.endSession(ctx, s, true)
	c.done(cid)
	c.reply(&realtimev1.ServerFrame{Cid: cid, Body: &realtimev1.ServerFrame_Logout{Logout: &realtimev1.LogoutResponse{}}}, true)
	c.closeWith(realtimev1.CloseReason_CLOSE_REASON_NORMAL, "logged out", true)
}

// replyError sends an error reply; unexpected errors are logged and reach
// the client as internal.
func (c *conn) replyError(cid uint32, err error) {
	e, internal := apierr.From(err)
	if internal {
		c.g.log.Error("request failed", "conn", c.id, "cid", cid, "err", err)
	}
	c.g.metrics.requestErrors.WithLabelValues(apierr.CodeName(e.Code)).Inc()
	c.reply(&realtimev1.ServerFrame{Cid: cid, Body: &realtimev1.ServerFrame_Error{Error: &realtimev1.Error{Code: e.Code, Message: e.Message}}}, false)
}

// reply encodes and queues a server frame. inline lets the calling
// goroutine write the socket itself instead of starting a flusher.
func (c *conn) reply(fr *realtimev1.ServerFrame, inline bool) {
	frame, err := c.encode(fr)
	if err != nil {
		c.g.log.Error("encode frame", "err", err)
		return
	}
	c.enqueue(frame, inline)
}

// encode returns a complete WebSocket frame (header and payload) for fr.
func (c *conn) encode(fr proto.Message) ([]byte, error) {
	op := byte(opBinary)
	if c.format == wire.JSON {
		op = opText
	}
	var size int
	if c.format == wire.Binary {
		size = proto.Size(fr)
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
	c.enqueue(append(frame, payload...), false)
}

// enqueue queues an encoded frame for writing. When the queue would exceed
// its bound the client is too slow: the socket is closed with reason slow,
// without delaying anyone else.
func (c *conn) enqueue(frame []byte, inline bool) bool {
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		return false
	}
	if c.outBytes+len(frame) > c.g.cfg.OutboundQueueBytes {
		// The client does not read fast enough. Close it without a notice
		// (it would not read that either). finish runs on its own goroutine
		// because callers may hold their session's lock.
		c.state = stateClosing
		c.closeLabel = wire.ReasonName(realtimev1.CloseReason_CLOSE_REASON_SLOW)
		c.mu.Unlock()
		go c.finish()
		return false
	}
	start := c.queueLocked(false, frame)
	c.mu.Unlock()
	if start {
		c.startFlush(inline)
	}
	return true
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

// startFlush writes the queue, which the caller now owns (flushing is
// set). It first tries a non-blocking write on the calling goroutine,
// which empties the queue in the common case without any goroutine; what
// the socket cannot take now is left to a flusher (the caller itself when
// inline).
func (c *conn) startFlush(inline bool) {
	if c.rc != nil {
		for {
			c.mu.Lock()
			q := c.outq
			if len(q) == 0 {
				c.flushing = false
				finish := c.finishing
				c.mu.Unlock()
				if finish {
					// Callers may hold their session's lock: finish, which
					// detaches the session, runs on its own goroutine.
					go c.finish()
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
				go c.readFailed() // see above: never close under a session lock
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
	if inline {
		c.flush()
	} else {
		go c.flush()
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
		_ = c.nc.SetWriteDeadline(c.g.now().Add(c.g.cfg.WriteTimeout))
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
			if errors.As(err, &ne) && ne.Timeout() {
				c.mu.Lock()
				c.closeLabel = wire.ReasonName(realtimev1.CloseReason_CLOSE_REASON_SLOW)
				c.mu.Unlock()
			}
			c.mu.Lock()
			c.flushing = false
			c.mu.Unlock()
			c.readFailed()
			return
		}
	}
}

// closeWith starts closing the socket. With notify the client first gets a
// Disconnect frame and a close frame; the socket closes once they are
// written (or the write times out).
func (c *conn) closeWith(reason realtimev1.CloseReason, msg string, notify bool) {
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		return
	}
	c.state = stateClosing
	if c.closeLabel == "" {
		c.closeLabel = wire.ReasonName(reason)
	}
	switch reason {
	case realtimev1.CloseReason_CLOSE_REASON_REPLACED, realtimev1.CloseReason_CLOSE_REASON_KICKED:
		c.endSession = true
	}
	if !notify || c.outBytes > c.g.cfg.OutboundQueueBytes/2 {
		c.mu.Unlock()
		c.finish()
		return
	}
	c.mu.Unlock()
	reconnect := reason != realtimev1.CloseReason_CLOSE_REASON_REPLACED &&
		reason != realtimev1.CloseReason_CLOSE_REASON_KICKED &&
		reason != realtimev1.CloseReason_CLOSE_REASON_NORMAL &&
		reason != realtimev1.CloseReason_CLOSE_REASON_AUTH_FAILED &&
		reason != realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION
	notice, err := c.encode(&realtimev1.ServerFrame{Body: &realtimev1.ServerFrame_Disconnect{Disconnect: &realtimev1.Disconnect{
		Reason: reason, Message: msg, Reconnect: reconnect}}})
	if err != nil {
		c.finish()
		return
	}
	cp := closePayload(wire.CloseCode(reason), msg)
	closeFrame := append(appendFrameHeader(make([]byte, 0, 2+len(cp)), opClose, len(cp)), cp...)
	c.mu.Lock()
	start := c.queueLocked(true, notice, closeFrame)
	c.mu.Unlock()
	if start {
		c.startFlush(false)
	}
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

// finish closes the socket for good and detaches (or ends) its session.
func (c *conn) finish() {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	s, label, end := c.sess, c.closeLabel, c.endSession
	c.outq = nil
	c.mu.Unlock()
	if label == "" {
		label = labelClientGone
	}
	_ = c.nc.Close()
	c.g.removeConn(c)
	c.g.metrics.closes.WithLabelValues(label).Inc()
	if c.g.log.Enabled(context.Background(), slog.LevelDebug) {
		c.g.log.Debug("socket closed", "conn", c.id, "reason", label)
	}
	if s != nil {
		if end {
			c.g.forget(s)
		} else {
			c.g.detach(s, c)
		}
	}
}
