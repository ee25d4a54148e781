package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

// Defaults of DialOptions.
const (
	// DefaultPushBuffer is the capacity of the Pushes channel.
	DefaultPushBuffer = 256
	// DefaultMaxMessageBytes bounds one frame read from the server.
	DefaultMaxMessageBytes = 16 << 20
	// DefaultWriteTimeout bounds one frame write.
	DefaultWriteTimeout = 10 * time.Second
	// eventBuffer is the capacity of the Events channel.
	eventBuffer = 32
	// closeWait is how long Close waits for the server to close the
	// connection after the client's close frame.
	closeWait = time.Second
	// refreshSkew refreshes a session token this long before it expires.
	refreshSkew = 5 * time.Second
)

// DialOptions configures a socket. Session or Authenticate is required.
type DialOptions struct {
	// Session holds the session token presented to the server and the
	// refresh token used when the session token expired. The socket keeps
	// its own copy; Socket.Session returns the current one.
	Session *apiv1.Session
	// Authenticate is a credential sent in Hello when there is no session
	// token (the Welcome then carries a new session), and again should the
	// refresh token be rejected.
	Authenticate *apiv1.AuthenticateRequest
	// Format is the frame format; the client's (binary unless set) when
	// FormatDefault.
	Format Format
	// UseURLToken sends the session token (and the resume request) in the
	// URL of the upgrade instead of in a Hello frame. It saves a round trip
	// but puts the token in proxy logs.
	UseURLToken bool
	// AutoReconnect reconnects and resumes after an unexpected drop or a
	// Disconnect that allows reconnecting. Without it the socket ends at
	// the first drop.
	AutoReconnect bool
	// Backoff is the reconnection schedule; DefaultBackoff() when zero.
	Backoff Backoff
	// MaxReconnectAttempts stops reconnecting after this many failed
	// attempts in a row; 0 means no limit.
	MaxReconnectAttempts int
	// ResumeSessionID resumes a session the application persisted (for
	// example across a restart), if it is still resumable.
	ResumeSessionID string
	// LastSeq is the highest push seq of ResumeSessionID the application
	// processed; the pushes after it are replayed.
	LastSeq uint64
	// PushBuffer is the capacity of the Pushes channel (DefaultPushBuffer
	// when 0).
	PushBuffer int
	// LocalAddr is the source IP of the connection; the client's
	// (WithLocalAddr) when invalid.
	LocalAddr netip.Addr
	// ClientVersion is sent in Hello for the server's logs.
	ClientVersion string
	// MaxMessageBytes bounds one frame from the server
	// (DefaultMaxMessageBytes when 0).
	MaxMessageBytes int64
	// WriteTimeout bounds one frame write (DefaultWriteTimeout when 0).
	WriteTimeout time.Duration
	// Notifications, when set, decodes the pushes of kind notify and
	// hands them to Socket.Notifications, each notification once, instead
	// of to Pushes.
	Notifications *NotificationOptions
}

func (o DialOptions) normalize(c *Client) (DialOptions, error) {
	if o.Session.GetToken() == "" && o.Authenticate == nil {
		return o, errors.New("a session token (Session) or a credential (Authenticate) is required")
	}
	if o.Format == FormatDefault {
		o.Format = c.format
	}
	if o.Format != FormatBinary && o.Format != FormatJSON {
		return o, fmt.Errorf("unknown format %d", o.Format)
	}
	if err := o.Backoff.Validate(); err != nil {
		return o, err
	}
	o.Backoff = o.Backoff.withDefaults()
	if o.MaxReconnectAttempts < 0 {
		return o, fmt.Errorf("max reconnect attempts %d: want 0 (no limit) or more", o.MaxReconnectAttempts)
	}
	if o.LastSeq != 0 && o.ResumeSessionID == "" {
		return o, errors.New("last seq without a session id to resume")
	}
	if o.PushBuffer <= 0 {
		o.PushBuffer = DefaultPushBuffer
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Session != nil {
		o.Session = proto.CloneOf(o.Session)
	}
	if o.Notifications != nil {
		n := *o.Notifications
		if n.Dedup == nil {
			n.Dedup = NewDeduper(DefaultDedupSize)
		}
		o.Notifications = &n
	}
	return o, nil
}

// EventKind is the kind of a socket Event.
type EventKind uint8

// The kinds of socket events.
const (
	// EventConnected means the socket is connected on a new session.
	EventConnected EventKind = iota + 1
	// EventResumed means the session was resumed after a reconnection; the
	// missed pushes follow on Pushes.
	EventResumed
	// EventReset means the session could not be resumed after a
	// reconnection and a fresh one started (push seq restarts at 1).
	// Pushes may have been missed: reload the state.
	EventReset
	// EventReconnecting means the connection dropped (Err says why) and
	// attempt number Attempt starts after Delay.
	EventReconnecting
	// EventTokenRefreshed means the session token was refreshed; Session
	// holds the new tokens, which the application may persist.
	EventTokenRefreshed
	// EventClosed means the socket ended for good; Err says why (as
	// Socket.Err).
	EventClosed
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case EventConnected:
		return "connected"
	case EventResumed:
		return "resumed"
	case EventReset:
		return "reset"
	case EventReconnecting:
		return "reconnecting"
	case EventTokenRefreshed:
		return "token_refreshed"
	case EventClosed:
		return "closed"
	}
	return fmt.Sprintf("event_%d", uint8(k))
}

// Event is a change of a socket's connection.
type Event struct {
	// Kind says what happened.
	Kind EventKind
	// SessionID is the session after connected, resumed and reset.
	SessionID string
	// Welcome is the server's Welcome after connected, resumed and reset.
	Welcome *realtimev1.Welcome
	// Session is the new session after token_refreshed.
	Session *apiv1.Session
	// Attempt and Delay describe a reconnection attempt.
	Attempt int
	Delay   time.Duration
	// Err is why the connection dropped (reconnecting) or the socket
	// ended (closed).
	Err error
}

// Socket is a realtime connection to taisen, kept across reconnections
// when DialOptions.AutoReconnect is set. It is safe for concurrent use.
// Every Socket must be closed (Close or Logout) to release its goroutine.
type Socket struct {
	cl   *Client
	opts DialOptions
	log  *slog.Logger

	pushes     chan *realtimev1.Push
	notes      chan *apiv1.Notification
	ephemerals chan *realtimev1.Ephemeral
	events     chan Event
	// ephemeralDropped counts ephemeral messages dropped because
	// Ephemerals was full.
	ephemeralDropped atomic.Uint64
	// created is the first Welcome's created flag; set before Dial
	// returns, read-only afterwards.
	created bool

	ctx       context.Context // reconnection dials; canceled when the socket ends
	cancel    context.CancelFunc
	closing   chan struct{} // closed by Close: stop, do not reconnect
	closeOnce sync.Once
	done      chan struct{}

	mu         sync.Mutex
	cur        *wsConn             // guarded by mu; nil while not connected
	changed    chan struct{}       // guarded by mu; closed when cur changes
	tracker    seqTracker          // guarded by mu
	welcome    *realtimev1.Welcome // guarded by mu
	session    *apiv1.Session      // guarded by mu
	err        error               // guarded by mu; set when done is closed
	closed     bool                // guarded by mu; Close was called
	loggingOut bool                // guarded by mu

	// Notification acknowledgements waiting for their Ack frame (see
	// AckNotifications).
	ackMu    sync.Mutex
	ackIDs   []string    // guarded by ackMu
	ackTimer *time.Timer // guarded by ackMu; armed while ackIDs waits
	ackEnded bool        // guarded by ackMu; the socket ended
}

// Dial connects a socket and returns once the server's Welcome arrived, or
// with the error that prevented it: a *Error when authentication failed, a
// *CloseError when the server closed the socket, or a network error. ctx
// bounds only the dial; the socket lives until Close, Logout or a close by
// the server. The first connection is not retried: reconnection applies to
// established sockets.
//
// Login signs in and connects in one step, with the credential in Hello.
func (c *Client) Dial(ctx context.Context, opts DialOptions) (*Socket, error) {
	s, err := c.dial(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	return s, nil
}

// dial connects a socket for Dial and Login.
func (c *Client) dial(ctx context.Context, opts DialOptions) (*Socket, error) {
	opts, err := opts.normalize(c)
	if err != nil {
		return nil, err
	}
	s := &Socket{
		cl:     c,
		opts:   opts,
		log:    c.log,
		pushes: make(chan *realtimev1.Push, opts.PushBuffer),
		notes:  make(chan *apiv1.Notification, notesBuffer(opts)),

		ephemerals: make(chan *realtimev1.Ephemeral, opts.PushBuffer),
		events:     make(chan Event, eventBuffer),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
		changed:    make(chan struct{}),
		tracker:    seqTracker{session: opts.ResumeSessionID, last: opts.LastSeq},
		session:    opts.Session,
	}
	wc, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	s.created = wc.welcome.GetCreated()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.welcomed(wc)
	go s.run(wc)
	return s, nil
}

// notesBuffer is the capacity of the Notifications channel: none when
// notifications are not routed there.
func notesBuffer(o DialOptions) int {
	if o.Notifications == nil {
		return 0
	}
	return o.PushBuffer
}

// Pushes returns the channel of server pushes, in seq order and never
// twice. It has a bounded buffer (DialOptions.PushBuffer). When it is full
// the socket's reader waits: nothing is dropped, but nothing else is read
// either (replies included), and a server whose queue for this socket
// overflows closes it as slow. With DialOptions.Notifications, pushes of
// kind notify go to Notifications instead. The channel is closed when the
// socket ends.
func (s *Socket) Pushes() <-chan *realtimev1.Push { return s.pushes }

// Ephemerals returns the channel of ephemeral server messages (room state,
// typing indicators): not numbered, never replayed after a reconnect. It
// has the same buffer size as Pushes; when it is full, new ephemeral
// messages are dropped (EphemeralDropped counts them) rather than holding
// up the socket. The channel is closed when the socket ends.
func (s *Socket) Ephemerals() <-chan *realtimev1.Ephemeral { return s.ephemerals }

// EphemeralDropped counts the ephemeral messages dropped because
// Ephemerals was full.
func (s *Socket) EphemeralDropped() uint64 { return s.ephemeralDropped.Load() }

// Send sends a fire-and-forget message to the server handler registered
// under name (a room input): no reply, no retry. It fails with
// ErrDisconnected while the socket is reconnecting; the server drops
// messages over its send budget.
func (s *Socket) Send(name string, payload []byte) error {
	return s.fire(&realtimev1.ClientFrame_Send{Send: &realtimev1.Send{Name: name, Payload: payload}})
}

// Ack acknowledges pushes by id (Push.id), so their producer stops
// redelivering them. Fire-and-forget, like Send.
func (s *Socket) Ack(ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return s.fire(&realtimev1.ClientFrame_Ack{Ack: &realtimev1.Ack{Ids: ids}})
}

// fire writes a frame that gets no reply on the current connection.
func (s *Socket) fire(body any) error {
	s.mu.Lock()
	c, closed := s.cur, s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if c == nil {
		return ErrDisconnected
	}
	fr := &realtimev1.ClientFrame{}
	switch b := body.(type) {
	case *realtimev1.ClientFrame_Send:
		fr.Body = b
	case *realtimev1.ClientFrame_Ack:
		fr.Body = b
	}
	if err := c.send(fr); err != nil {
		if errors.Is(err, ErrFrameTooLarge) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrDisconnected, err)
	}
	return nil
}

// Events returns the channel of connection events. It has a small buffer;
// when the application does not read it, the oldest events are discarded
// (the current state is always available from SessionID, Welcome and Err).
// The channel is closed after EventClosed.
func (s *Socket) Events() <-chan Event { return s.events }

// Done returns a channel closed when the socket has ended for good.
func (s *Socket) Done() <-chan struct{} { return s.done }

// Err returns nil while the socket lives, and why it ended once Done is
// closed: ErrClosed after Close, a *CloseError when the server closed it
// without allowing a reconnection (or reconnecting is off), or the error
// that made reconnecting impossible.
func (s *Socket) Err() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// SessionID returns the id of the current (or last) session.
func (s *Socket) SessionID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tracker.session
}

// LastSeq returns the highest push seq of the current session delivered to
// Pushes; a resume asks for the pushes after it.
func (s *Socket) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tracker.last
}

// Welcome returns the server's latest Welcome. Do not modify it.
func (s *Socket) Welcome() *realtimev1.Welcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.welcome
}

// Session returns a copy of the current session tokens (nil when the
// socket authenticated with a credential and the server returned none).
func (s *Socket) Session() *apiv1.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session == nil {
		return nil
	}
	return proto.CloneOf(s.session)
}

// Request sends a request frame and waits for its reply. It assigns the
// frame's cid (the frame itself is not modified), waits for a free request
// slot when the server's Welcome.max_in_flight requests are already
// awaiting replies (Ping needs none), and waits for a connection while the
// socket is reconnecting. An Error reply is returned as a *Error. When the
// connection drops before the reply, the error matches ErrDisconnected: the
// server may or may not have processed the request. When ctx ends first
// the request stays in flight on the server and keeps its slot until the
// reply arrives. Hello cannot be sent this way: Dial sends it.
func (s *Socket) Request(ctx context.Context, f *realtimev1.ClientFrame) (*realtimev1.ServerFrame, error) {
	r, err := s.do(ctx, f.GetBody())
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, err
		}
		return nil, fmt.Errorf("client: request: %w", err)
	}
	return r, nil
}

// RPC calls a named socket operation and returns its reply payload.
func (s *Socket) RPC(ctx context.Context, name string, payload []byte) ([]byte, error) {
	r, err := s.do(ctx, &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: name, Payload: payload}})
	if err != nil {
		return nil, fmt.Errorf("client: rpc %s: %w", name, err)
	}
	rpc := r.GetRpc()
	if rpc == nil {
		return nil, fmt.Errorf("client: rpc %s: unexpected reply %T", name, r.GetBody())
	}
	return rpc.GetPayload(), nil
}

// Ping sends a Ping and returns the round-trip time to its Pong. Pings
// need no request slot: the server answers them at once.
func (s *Socket) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	r, err := s.do(ctx, &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{ClientTimeMs: start.UnixMilli()}})
	if err != nil {
		return 0, fmt.Errorf("client: ping: %w", err)
	}
	if r.GetPong() == nil {
		return 0, fmt.Errorf("client: ping: unexpected reply %T", r.GetBody())
	}
	return time.Since(start), nil
}

// Logout sends the acknowledgements AckNotifications queued, then ends
// the session for good on the server (no resume) and waits until the
// server closed the socket; Err then reports CLOSE_REASON_NORMAL.
// If ctx ends first the socket is closed locally. If the connection drops
// during Logout, the socket ends anyway and the server session expires
// after its resume grace.
func (s *Socket) Logout(ctx context.Context) error {
	s.flushAcks()
	s.mu.Lock()
	s.loggingOut = true
	s.mu.Unlock()
	if _, err := s.do(ctx, &realtimev1.ClientFrame_Logout{Logout: &realtimev1.Logout{}}); err != nil {
		s.mu.Lock()
		s.loggingOut = false
		s.mu.Unlock()
		return fmt.Errorf("client: logout: %w", err)
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		_ = s.Close()
	}
	return nil
}

// Close closes the socket: it sends the acknowledgements AckNotifications
// queued (when connected), then a WebSocket close frame, waits briefly
// for the server to close the connection, and stops the socket's
// goroutines. The server keeps the session resumable for its resume grace
// (Logout ends it). Requests in flight fail. Close is idempotent and
// always returns nil.
func (s *Socket) Close() error {
	s.flushAcks() // best effort: on a live connection only
	s.mu.Lock()
	s.closed = true
	c := s.cur
	s.mu.Unlock()
	s.closeOnce.Do(func() { close(s.closing) })
	if c != nil {
		c.closeWith(ws.StatusNormalClosure)
		t := time.NewTimer(closeWait)
		select {
		case <-s.done:
		case <-t.C:
		}
		t.Stop()
	}
	s.cancel()
	s.mu.Lock()
	c = s.cur
	s.mu.Unlock()
	if c != nil {
		_ = c.nc.Close()
	}
	<-s.done
	return nil
}

// do sends a request body and waits for the reply (see Request).
func (s *Socket) do(ctx context.Context, body any) (*realtimev1.ServerFrame, error) {
	var fr realtimev1.ClientFrame
	slot := true
	switch b := body.(type) {
	case nil:
		return nil, errors.New("frame has no body")
	case *realtimev1.ClientFrame_Hello:
		return nil, errors.New("hello is sent by Dial, not as a request")
	case *realtimev1.ClientFrame_Ping:
		fr.Body, slot = b, false
	case *realtimev1.ClientFrame_Rpc:
		fr.Body = b
	case *realtimev1.ClientFrame_Logout:
		fr.Body = b
	default:
		return nil, fmt.Errorf("unknown frame body %T", body)
	}
	for {
		c, err := s.waitConn(ctx)
		if err != nil {
			return nil, err
		}
		if slot {
			select {
			case c.slots <- struct{}{}:
			case <-c.done:
				continue // not sent: try again on the next connection
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		cid, p, err := c.register(slot)
		if err != nil {
			if slot {
				<-c.slots
			}
			continue
		}
		fr.Cid = cid
		if err := c.send(&fr); err != nil {
			c.unregister(cid)
			if errors.Is(err, ErrFrameTooLarge) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", ErrDisconnected, err)
		}
		select {
		case r := <-p.ch:
			return replyOrError(r)
		case <-c.done:
			select {
			case r := <-p.ch:
				return replyOrError(r)
			default:
			}
			return nil, fmt.Errorf("%w: %w", ErrDisconnected, c.err())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func replyOrError(r *realtimev1.ServerFrame) (*realtimev1.ServerFrame, error) {
	if e := r.GetError(); e != nil {
		return nil, &Error{Code: e.GetCode(), Message: e.GetMessage()}
	}
	return r, nil
}

// waitConn returns the current connection, waiting while the socket
// reconnects.
func (s *Socket) waitConn(ctx context.Context) (*wsConn, error) {
	for {
		s.mu.Lock()
		c, ch, closed := s.cur, s.changed, s.closed
		s.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if c != nil {
			select {
			case <-c.done: // ended; wait until it is replaced
			default:
				return c, nil
			}
		}
		select {
		case <-ch:
		case <-s.done:
			return nil, s.Err()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// connect dials a connection for the current session, refreshing the
// session token first when it expired.
func (s *Socket) connect(ctx context.Context) (*wsConn, error) {
	refreshed := false
	for {
		s.mu.Lock()
		sess := s.session
		resumeID, lastSeq := s.tracker.resumeFrom()
		s.mu.Unlock()
		if !refreshed && sess.GetRefreshToken() != "" && tokenExpired(sess, time.Now()) {
			refreshed = true
			if err := s.refresh(ctx, sess); err != nil {
				return nil, err
			}
			continue
		}
		p := connParams{
			format:        s.opts.Format.wire(),
			token:         sess.GetToken(),
			auth:          s.opts.Authenticate,
			urlToken:      s.opts.UseURLToken,
			resumeID:      resumeID,
			lastSeq:       lastSeq,
			clientVersion: s.opts.ClientVersion,
			localAddr:     s.opts.LocalAddr,
			maxMessage:    s.opts.MaxMessageBytes,
			writeTimeout:  s.opts.WriteTimeout,
		}
		c, err := s.cl.dialConn(ctx, p)
		if err == nil {
			return c, nil
		}
		if refreshed || p.token == "" || CodeOf(err) != realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED {
			return nil, err
		}
		refreshed = true
		if rerr := s.refresh(ctx, sess); rerr != nil {
			return nil, fmt.Errorf("%w (refresh failed: %w)", err, rerr)
		}
	}
}

// tokenExpired reports whether a session token is expired or about to.
func tokenExpired(sess *apiv1.Session, now time.Time) bool {
	exp := sess.GetTokenExpiresAtMs()
	return exp != 0 && now.Add(refreshSkew).UnixMilli() >= exp
}

// refresh replaces the session with a refreshed one. When the refresh
// token is refused and the socket has a credential, the session is dropped
// so that the next Hello authenticates with the credential.
func (s *Socket) refresh(ctx context.Context, sess *apiv1.Session) error {
	dropSession := func() {
		s.mu.Lock()
		s.session = nil
		s.mu.Unlock()
	}
	if sess.GetRefreshToken() == "" {
		if s.opts.Authenticate != nil {
			dropSession()
			return nil
		}
		return errors.New("no refresh token")
	}
	ns, err := s.cl.Refresh(ctx, sess.GetRefreshToken())
	if err != nil {
		var e *Error
		if errors.As(err, &e) && !retryable(e.Code) && s.opts.Authenticate != nil {
			s.log.Info("client: refresh token refused; authenticating with the credential", "err", err)
			dropSession()
			return nil
		}
		return err
	}
	s.mu.Lock()
	s.session = ns
	s.mu.Unlock()
	s.emit(Event{Kind: EventTokenRefreshed, Session: proto.CloneOf(ns)})
	return nil
}

// welcomed makes c the socket's connection. It reports false when the
// socket was closed meanwhile.
func (s *Socket) welcomed(c *wsConn) bool {
	w := c.welcome
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	outcome := s.tracker.welcome(w)
	s.welcome = w
	if w.GetSession().GetToken() != "" {
		s.session = w.GetSession()
	}
	s.cur = c
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	hb := time.Duration(w.GetHeartbeatIntervalMs()) * time.Millisecond
	dead := time.Duration(w.GetIdleTimeoutMs()) * time.Millisecond
	if dead == 0 {
		dead = 3 * hb
	}
	c.startHeartbeat(hb, dead)
	// Acknowledgements queued while reconnecting: the inbox is the
	// user's, so they apply on any session.
	s.flushAcks()
	kind := EventConnected
	switch outcome {
	case outcomeResumed:
		kind = EventResumed
	case outcomeReset:
		kind = EventReset
	}
	s.log.Debug("client: welcome", "event", kind, "session", w.GetSessionId(), "replayed", w.GetReplayed(), "node", w.GetNodeId())
	s.emit(Event{Kind: kind, SessionID: w.GetSessionId(), Welcome: w})
	return true
}

// emit queues an event, discarding the oldest when the buffer is full.
// Only the socket's own goroutine (or Dial, before it starts) emits.
func (s *Socket) emit(e Event) {
	for {
		select {
		case s.events <- e:
			return
		default:
		}
		select {
		case old := <-s.events:
			s.log.Debug("client: event buffer full; discarding an event", "kind", old.Kind)
		default:
		}
	}
}

// run is the socket's goroutine: it reads the connection and reconnects.
func (s *Socket) run(c *wsConn) {
	var final error
	defer func() { s.finish(final) }()
	for {
		cause := s.serve(c)
		c.finish(cause)
		s.mu.Lock()
		if s.cur == c {
			s.cur = nil
			close(s.changed)
			s.changed = make(chan struct{})
		}
		s.mu.Unlock()
		if final = s.afterDrop(cause); final != nil {
			return
		}
		s.log.Info("client: connection dropped; reconnecting", "err", cause)
		if c, final = s.reconnect(cause); final != nil {
			return
		}
	}
}

// afterDrop returns why the socket ends after its connection ended with
// cause, or nil when it should reconnect.
func (s *Socket) afterDrop(cause error) error {
	s.mu.Lock()
	closed, out := s.closed, s.loggingOut
	s.mu.Unlock()
	var ce *CloseError
	isClose := errors.As(cause, &ce)
	switch {
	case closed:
		return ErrClosed
	case isClose && (out || !ce.Reconnect || !s.opts.AutoReconnect):
		return cause
	case out || !s.opts.AutoReconnect:
		return fmt.Errorf("%w: %w", ErrDisconnected, cause)
	}
	return nil
}

// dialRetryable reports whether a failed reconnection may be tried again.
func dialRetryable(err error) bool {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Reconnect
	}
	var e *Error
	if errors.As(err, &e) {
		return retryable(e.Code)
	}
	return true
}

// reconnect dials until a connection is welcomed, the socket is closed,
// or an error says retrying is pointless.
func (s *Socket) reconnect(cause error) (*wsConn, error) {
	for attempt := 0; ; attempt++ {
		if n := s.opts.MaxReconnectAttempts; n > 0 && attempt >= n {
			return nil, fmt.Errorf("client: gave up reconnecting after %d attempts: %w", attempt, cause)
		}
		delay := s.opts.Backoff.Delay(attempt, rand.Float64)
		s.emit(Event{Kind: EventReconnecting, Attempt: attempt + 1, Delay: delay, Err: cause})
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			return nil, ErrClosed
		}
		c, err := s.connect(s.ctx)
		if err == nil {
			if s.welcomed(c) {
				return c, nil
			}
			c.closeWith(ws.StatusNormalClosure)
			c.finish(ErrClosed)
			return nil, ErrClosed
		}
		select {
		case <-s.closing:
			return nil, ErrClosed
		default:
		}
		if !dialRetryable(err) {
			return nil, fmt.Errorf("client: reconnect: %w", err)
		}
		s.log.Info("client: reconnection failed", "attempt", attempt+1, "err", err)
		cause = err
	}
}

// serve reads c until it ends and returns why.
func (s *Socket) serve(c *wsConn) error {
	for {
		fr, err := c.readFrame()
		if err != nil {
			if c.disconnect != nil {
				return c.disconnect
			}
			var cf *closeFrameError
			if errors.As(err, &cf) {
				if ce, ok := cf.asCloseError(); ok {
					return ce
				}
			}
			return err
		}
		if fr.GetCid() != 0 {
			if !c.deliver(fr) && fr.GetPong() == nil {
				s.log.Debug("client: reply for no request", "cid", fr.GetCid())
			}
			continue
		}
		switch body := fr.GetBody().(type) {
		case *realtimev1.ServerFrame_Push:
			if !s.push(c, body.Push) {
				return ErrClosed
			}
		case *realtimev1.ServerFrame_Ephemeral:
			select {
			case s.ephemerals <- body.Ephemeral:
			default:
				s.ephemeralDropped.Add(1)
			}
		case *realtimev1.ServerFrame_Disconnect:
			d := body.Disconnect
			c.disconnect = &CloseError{Reason: d.GetReason(), Message: d.GetMessage(), Reconnect: d.GetReconnect()}
			s.log.Info("client: server disconnects", "reason", d.GetReason(), "message", d.GetMessage(), "reconnect", d.GetReconnect())
			// The server closes the connection right after; do not wait
			// for it long.
			_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		case *realtimev1.ServerFrame_Error:
			s.log.Warn("client: server rejected a frame", "code", body.Error.GetCode(), "message", body.Error.GetMessage())
		default:
			s.log.Debug("client: unexpected frame", "body", fmt.Sprintf("%T", fr.GetBody()))
		}
	}
}

// push delivers a push to the application unless it is a duplicate. It
// waits while Pushes is full and reports false when the socket is closed
// meanwhile.
func (s *Socket) push(c *wsConn, p *realtimev1.Push) bool {
	s.mu.Lock()
	ok, gap := s.tracker.accept(p.GetSeq())
	last := s.tracker.last
	if ok {
		// Counted as delivered before the hand-over, so an application
		// that has received the push reads a LastSeq covering it; taken
		// back below if the socket closes before the push is taken.
		s.tracker.delivered(p.GetSeq())
	}
	s.mu.Unlock()
	if !ok {
		s.log.Debug("client: duplicate push dropped", "seq", p.GetSeq(), "last", last)
		return true
	}
	if gap {
		s.log.Warn("client: pushes are missing", "last", last, "seq", p.GetSeq())
	}
	if s.opts.Notifications != nil && p.GetKind() == PushKindNotification {
		if routed, ok := s.notification(c, p, p.GetSeq(), last); routed {
			return ok
		}
	}
	return handOver(s, c, s.pushes, p, p.GetSeq(), last)
}

// handOver sends v on ch for the application, waiting while ch is full.
// It reports false when the socket is closed meanwhile; the push with seq
// then counts as not delivered (the tracker goes back to last).
func handOver[T any](s *Socket, c *wsConn, ch chan T, v T, seq, last uint64) bool {
	select {
	case ch <- v:
	default:
		c.blocked.Store(true)
		select {
		case ch <- v:
			c.blocked.Store(false)
		case <-s.closing:
			c.blocked.Store(false)
			s.mu.Lock()
			if s.tracker.last == seq {
				s.tracker.last = last
			}
			s.mu.Unlock()
			return false
		}
	}
	return true
}

// finish ends the socket.
func (s *Socket) finish(err error) {
	if err == nil {
		err = ErrClosed
	}
	s.mu.Lock()
	s.err = err
	s.cur = nil
	s.mu.Unlock()
	s.log.Debug("client: socket ended", "err", err)
	s.endAcks()
	s.emit(Event{Kind: EventClosed, Err: err})
	close(s.pushes)
	close(s.notes)
	close(s.ephemerals)
	close(s.events)
	s.cancel()
	close(s.done)
}
