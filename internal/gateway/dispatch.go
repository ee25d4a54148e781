package gateway

import (
	"context"
	"errors"
	"slices"
	"time"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/wire"
)

// dispatch applies the session state machine and the limits to a frame.
// When a frame breaks several rules, the first check below decides the
// reply: socket closing (dropped), rate limit, heartbeat, authentication
// state, cid, requests in flight.
func (c *conn) dispatch(fr *realtimev1.ClientFrame) bool {
	cid := fr.Cid
	c.mu.Lock()
	state := c.state
	if state >= stateClosing {
		c.mu.Unlock()
		return false
	}
	switch body := fr.Body.(type) {
	case *realtimev1.ClientFrame_Send:
		return c.onSend(state, body.Send) // unlocks c.mu
	case *realtimev1.ClientFrame_Ack:
		return c.onAck(state, body.Ack) // unlocks c.mu
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
			ClientTimeMs: ping.Ping.ClientTimeMs, ServerTimeMs: c.g.clock.Now().UnixMilli()}}}, flushBackground)
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
	if cid == 0 || c.inFlight(cid) {
		c.mu.Unlock()
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_BAD_CID, "cid must be non-zero and not in use"))
		return c.violation()
	}
	if len(c.inflight) >= c.g.cfg.MaxInFlight {
		c.mu.Unlock()
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_TOO_MANY_IN_FLIGHT, "%d request(s) already awaiting a reply", c.g.cfg.MaxInFlight))
		return c.violation()
	}
	var run func(ctx context.Context)
	switch body := fr.Body.(type) {
	case *realtimev1.ClientFrame_Hello:
		c.state = stateAuthing
		run = func(ctx context.Context) { c.handleHello(ctx, cid, hello.Hello) }
	case *realtimev1.ClientFrame_Rpc:
		sess, start := c.sess, time.Now()
		run = func(ctx context.Context) { c.handleRPC(ctx, cid, sess, body.Rpc, start) }
	case *realtimev1.ClientFrame_Logout:
		sess := c.sess
		run = func(ctx context.Context) { c.handleLogout(ctx, cid, sess) }
	default:
		c.mu.Unlock()
		c.replyError(cid, apierr.BadRequest("unknown frame body"))
		return c.violation()
	}
	c.mu.Unlock()
	c.startRequest(cid, run)
	return true
}

// sendBucket is the rate budget of fire-and-forget messages, allocated
// with a socket's first Send.
type sendBucket struct {
	tokens float32
	at     int64 // clock.Mono nanos of the last refill
}

// onSend handles a fire-and-forget message: no reply; over budget or to
// an unknown handler it is dropped and counts as a violation. c.mu is
// held and released here.
func (c *conn) onSend(state connState, m *realtimev1.Send) bool {
	sess, ok := c.admitFireAndForget(state)
	if !ok {
		return c.violation()
	}
	fn, found := c.g.deps.RPC.LookupMessage(m.Name)
	if !found {
		c.g.metrics.sends.WithLabelValues("unknown").Inc()
		c.replyError(0, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNKNOWN_RPC, "no message handler named %q", m.Name))
		return c.violation()
	}
	c.g.metrics.sends.WithLabelValues("handled").Inc()
	fn(c.g.baseCtx, Call{UserID: sess.userID, Username: sess.username, SessionID: sess.id, Payload: m.Payload, JSON: c.format == wire.JSON})
	return true
}

// admitFireAndForget checks a Send or Ack against the state and the
// fire-and-forget budget. c.mu is held and released here. When it refuses
// (an unauthenticated socket is told so), the caller counts a violation.
func (c *conn) admitFireAndForget(state connState) (*Session, bool) {
	if state != stateOpen {
		c.mu.Unlock()
		c.replyError(0, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "authenticate first: send hello and wait for welcome"))
		return nil, false
	}
	ok := c.takeSend()
	sess := c.sess
	c.mu.Unlock()
	if !ok {
		c.g.metrics.sends.WithLabelValues("over_budget").Inc()
	}
	return sess, ok
}

// takeSend refills and takes from the fire-and-forget budget; c.mu is
// held.
func (c *conn) takeSend() bool {
	now := c.g.mono.Now()
	if c.send == nil {
		c.send = &sendBucket{tokens: float32(c.g.cfg.SendBurst), at: now}
	}
	b := c.send
	b.tokens = min(b.tokens+float32(max(now-b.at, 0))/float32(time.Second)*float32(c.g.cfg.SendRate), float32(c.g.cfg.SendBurst))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// maxAckIDs and maxAckIDLen bound one Ack.
const (
	maxAckIDs   = 64
	maxAckIDLen = 128
)

// onAck hands acknowledged push ids to the ack handler. c.mu is held and
// released here. Acks share the fire-and-forget budget.
func (c *conn) onAck(state connState, a *realtimev1.Ack) bool {
	sess, ok := c.admitFireAndForget(state)
	if !ok {
		return c.violation()
	}
	bad := len(a.Ids) == 0 || len(a.Ids) > maxAckIDs
	for _, id := range a.Ids {
		bad = bad || id == "" || len(id) > maxAckIDLen
	}
	if bad {
		c.replyError(0, apierr.BadRequest("ack needs 1 to %d ids of 1 to %d characters", maxAckIDs, maxAckIDLen))
		return c.violation()
	}
	for _, fn := range c.g.deps.RPC.ackHandlers() {
		fn(c.g.baseCtx, Call{UserID: sess.userID, Username: sess.username, SessionID: sess.id, JSON: c.format == wire.JSON}, a.Ids)
	}
	return true
}

// inFlight reports whether cid awaits a reply; c.mu is held.
func (c *conn) inFlight(cid uint32) bool {
	return slices.ContainsFunc(c.inflight, func(r inflight) bool { return r.cid == cid })
}

// startRequest runs a request on a goroutine the gateway owns, with a
// context that ends at the request timeout or when the socket closes.
func (c *conn) startRequest(cid uint32, run func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(c.g.baseCtx, c.g.cfg.RequestTimeout)
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		cancel()
		return
	}
	c.inflight = append(c.inflight, inflight{cid: cid, cancel: cancel})
	c.mu.Unlock()
	if !c.g.spawn(func() {
		defer cancel()
		run(ctx)
	}) {
		cancel()
		c.done(cid)
	}
}

// takeToken refills and takes from the rate-limit bucket; c.mu is held.
func (c *conn) takeToken() bool {
	now := c.g.mono.Now()
	elapsed := float32(max(now-c.tokensAt, 0)) / float32(time.Second)
	c.tokensAt = now
	c.tokens = min(c.tokens+elapsed*float32(c.g.cfg.RateLimit), float32(c.g.cfg.RateBurst))
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// violationDecay is how long it takes one violation to be forgiven.
const violationDecay = 10 * time.Second

// maxHelloFailures closes a socket after this many failed Hellos (reason
// auth_failed), so one socket cannot probe many credentials.
const maxHelloFailures = 3

// violation counts a protocol or policy violation and closes the socket
// once there are too many. It returns whether the socket stays open.
func (c *conn) violation() bool {
	c.g.metrics.violations.Inc()
	now := c.g.mono.Now()
	c.mu.Lock()
	// Violations decay by one per violationDecay, so only a sustained
	// pattern closes a long-lived session.
	if c.violations > 0 && c.lastViolation != 0 {
		decay := max(now-c.lastViolation, 0) / int64(violationDecay)
		c.violations = uint16(max(int64(c.violations)-decay, 0))
	}
	c.lastViolation = now
	c.violations++
	over := int(c.violations) > c.g.cfg.MaxViolations
	c.mu.Unlock()
	if over {
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION, "too many rejected requests", withNotice)
		return false
	}
	return true
}

// done removes cid from the requests in flight. It must run before the
// reply is queued, or a fast client could trip the in-flight limit.
func (c *conn) done(cid uint32) {
	c.mu.Lock()
	c.doneLocked(cid)
	c.mu.Unlock()
}

func (c *conn) doneLocked(cid uint32) {
	if i := slices.IndexFunc(c.inflight, func(r inflight) bool { return r.cid == cid }); i >= 0 {
		c.inflight = slices.Delete(c.inflight, i, i+1)
	}
}

// handleHello authenticates the socket and attaches it to a session.
func (c *conn) handleHello(ctx context.Context, cid uint32, h *realtimev1.Hello) {
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
		// The upgrade noted the address of a socket not yet authenticated;
		// formatting it again from the socket costs allocations per login.
		c.mu.Lock()
		ip := c.unauthIP
		c.mu.Unlock()
		if ip == "" {
			ip = remoteIP(c.nc.RemoteAddr().String())
		}
		resp, err := c.g.deps.Auth.Authenticate(ctx, a.Authenticate, ip)
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

func (c *conn) helloFailed(cid uint32, err error) {
	c.mu.Lock()
	if c.state == stateAuthing {
		c.state = stateNew
	}
	c.authFailures++
	tooMany := c.authFailures >= maxHelloFailures
	c.doneLocked(cid)
	c.mu.Unlock()
	c.replyError(cid, err)
	c.g.metrics.authFailures.Inc()
	if tooMany {
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_AUTH_FAILED, "too many failed authentications", withNotice)
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
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_DRAINING, "node is draining", withNotice)
		return
	}
	s, err := c.g.establish(ctx, ident, resumeID, lastSeq)
	if errors.Is(err, errReplaced) {
		c.done(cid)
		c.replyReplaced(cid)
		return
	}
	if err != nil {
		c.g.log.Error("establish session", "user", ident.UserID, "err", err)
		c.done(cid)
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE, "cannot establish the session now; retry"))
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_SERVER_ERROR, "cannot establish the session", withNotice)
		return
	}
	c.mu.Lock()
	if c.state >= stateClosing {
		c.mu.Unlock()
		// The socket went away while we authenticated: the session stays
		// resumable like any dropped one.
		s.mu.Lock()
		if s.conn == nil && s.detachedAt == 0 && s.state == sessLive {
			s.detachedAt = c.g.mono.Now()
		}
		s.mu.Unlock()
		return
	}
	c.state = stateOpen
	c.sess = s
	ip := c.unauthIP
	c.unauthIP = ""
	c.g.openSockets.Add(1) // removeConn takes it back
	c.doneLocked(cid)
	c.mu.Unlock()
	if ip != "" {
		c.g.unauth.release(ip)
	}
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

func (c *conn) handleRPC(ctx context.Context, cid uint32, s *Session, req *realtimev1.RpcRequest, start time.Time) {
	fn, ok := c.g.deps.RPC.Lookup(req.Name)
	if !ok {
		c.done(cid)
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNKNOWN_RPC, "no rpc named %q", req.Name))
		return
	}
	out, err := fn(ctx, Call{UserID: s.userID, Username: s.username, SessionID: s.id, Payload: req.Payload, JSON: c.format == wire.JSON})
	c.done(cid)
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		// The socket closed (or the node stops): nobody reads a reply,
		// and a handler giving up on its context is no internal error.
		return
	}
	defer func() { c.g.metrics.rpcDuration.WithLabelValues(req.Name).Observe(time.Since(start).Seconds()) }()
	if err != nil {
		if _, internal := apierr.From(err); internal && errors.Is(err, context.DeadlineExceeded) {
			err = apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_TIMEOUT, err, "request timed out")
		}
		c.replyError(cid, err)
		return
	}
	c.reply(&realtimev1.ServerFrame{Cid: cid, Body: &realtimev1.ServerFrame_Rpc{Rpc: &realtimev1.RpcResponse{Payload: out}}}, flushInline)
}

func (c *conn) handleLogout(ctx context.Context, cid uint32, s *Session) {
	c.g.logout(ctx, s)
	c.done(cid)
	c.reply(&realtimev1.ServerFrame{Cid: cid, Body: &realtimev1.ServerFrame_Logout{Logout: &realtimev1.LogoutResponse{}}}, flushInline)
	c.closeWith(realtimev1.CloseReason_CLOSE_REASON_NORMAL, "logged out", withNotice)
}

// replyReplaced answers a Hello whose session a newer login replaced
// before it went live, and closes the socket with reason replaced.
func (c *conn) replyReplaced(cid uint32) {
	if cid != 0 {
		c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE, "a newer login of this account replaced the session"))
	}
	c.closeWith(realtimev1.CloseReason_CLOSE_REASON_REPLACED, "signed in on another device", withNotice)
}
