// Package gateway runs the realtime sessions of a node: it upgrades
// WebSocket connections, reads them from an event-driven reactor (no
// goroutine per idle socket), applies the per-session state machine and
// limits (authentication first, bounded requests in flight, token-bucket
// rate limit, frame size, heartbeats), keeps one live session per user
// across the cluster through a TTL record in the bus KV, lets a dropped
// client resume and receive the pushes it missed, and delivers pushes to
// sessions. Socket operations are added through the RPC Registry; other
// nodes reach this node's sessions over the bus.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/wire"
)

// Identity is an authenticated user.
type Identity struct {
	UserID   string
	Username string
}

// Authenticator checks credentials and session tokens for the gateway.
type Authenticator interface {
	// Authenticate checks (and with create, registers) a credential.
	Authenticate(ctx context.Context, req *apiv1.AuthenticateRequest) (*apiv1.AuthenticateResponse, error)
	// VerifyToken checks a session token.
	VerifyToken(token string) (Identity, error)
}

// Deps are the gateway's collaborators.
type Deps struct {
	Logger *slog.Logger
	Bus    bus.Bus
	Auth   Authenticator
	// RPC holds the socket operations; NewRegistry() when nil.
	RPC *Registry
	// Metrics registers the gateway's metrics; none when nil.
	Metrics prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// SessionsBucket is the bus KV bucket holding one record per online user.
const SessionsBucket = "sessions"

// NodeSubject is the bus subject on which a node answers requests about
// its sessions (clusterv1.NodeRequest).
func NodeSubject(nodeID string) string { return "taisen.node." + nodeID + ".session" }

// Gateway runs the realtime sessions of one node. Create it with New,
// start it with Start, mount it (it is an http.Handler for the WebSocket
// endpoint), and stop it with Drain and Close.
type Gateway struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	baseCtx context.Context
	cancel  context.CancelFunc

	engine     engine
	kv         bus.KV
	sub        bus.Subscription
	nextConnID atomic.Uint64
	draining   atomic.Bool
	started    atomic.Bool
	closed     atomic.Bool

	// openSockets counts sockets attached to a session.
	openSockets atomic.Int64

	conns connTable // every open socket

	sessMu   sync.Mutex
	sessions map[string]*Session // guarded by sessMu; by session id
	byUser   map[string]*Session // guarded by sessMu; by user id
	resuming map[string]*Session // guarded by sessMu; being established, by user id

	refreshCh chan *Session
	wg        sync.WaitGroup
}

// New validates cfg and builds a gateway; it starts nothing.
func New(cfg Config, deps Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: config: %w", err)
	}
	if deps.Bus == nil || deps.Auth == nil {
		return nil, errors.New("gateway: Bus and Auth are required")
	}
	cfg = cfg.withDefaults()
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.RPC == nil {
		deps.RPC = NewRegistry()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	g := &Gateway{
		cfg:       cfg,
		deps:      deps,
		log:       deps.Logger,
		now:       deps.Now,
		sessions:  make(map[string]*Session),
		byUser:    make(map[string]*Session),
		resuming:  make(map[string]*Session),
		refreshCh: make(chan *Session, 4096),
	}
	g.metrics = newMetrics(g, deps.Metrics)
	return g, nil
}

// Config returns the effective configuration (defaults applied).
func (g *Gateway) Config() Config { return g.cfg }

// Start opens the sessions bucket, subscribes to this node's subject and
// starts the socket engine and the timers. Goroutines it starts stop in
// Close.
func (g *Gateway) Start(ctx context.Context) error {
	kv, err := g.deps.Bus.KeyValue(ctx, bus.KVConfig{Bucket: SessionsBucket, TTL: g.cfg.SessionTTL, Memory: true, Replicas: g.cfg.KVReplicas})
	if err != nil {
		return fmt.Errorf("gateway: open sessions bucket: %w", err)
	}
	g.kv = kv
	g.baseCtx, g.cancel = context.WithCancel(context.Background())
	eng, err := newEngine(g)
	if err != nil {
		g.cancel()
		return fmt.Errorf("gateway: start %s engine: %w", g.cfg.Engine, err)
	}
	g.engine = eng
	sub, err := g.deps.Bus.Subscribe(NodeSubject(g.cfg.NodeID), g.onNodeRequest)
	if err != nil {
		eng.close()
		g.cancel()
		return fmt.Errorf("gateway: subscribe node subject: %w", err)
	}
	g.sub = sub
	g.wg.Add(1)
	go g.sweepLoop()
	for i := 0; i < 4; i++ {
		g.wg.Add(1)
		go g.refreshLoop()
	}
	g.started.Store(true)
	g.log.Info("gateway started", "engine", g.cfg.Engine, "node", g.cfg.NodeID)
	return nil
}

// ServeHTTP upgrades a request on the WebSocket endpoint. Query
// parameters: format=json|proto, token=<session token> (authenticate
// without a Hello), resume=<session id> and last_seq=<n> (with token).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.started.Load() || g.draining.Load() || g.closed.Load() {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "node is draining: connect to another node", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	offered := splitHeader(r.Header.Values("Sec-WebSocket-Protocol"))
	format, sub, err := wire.FormatFromRequest(q, offered)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ident *Identity
	var lastSeq uint64
	resume := q.Get("resume")
	if tok := q.Get("token"); tok != "" {
		id, err := g.deps.Auth.VerifyToken(tok)
		if err != nil {
			e, _ := apierr.From(err)
			w.Header().Set(apierr.CodeHeader, apierr.CodeName(e.Code))
			http.Error(w, e.Message, http.StatusUnauthorized)
			g.metrics.authFailures.Inc()
			return
		}
		ident = &id
		if v := q.Get("last_seq"); v != "" {
			if lastSeq, err = strconv.ParseUint(v, 10, 64); err != nil {
				http.Error(w, "last_seq must be an unsigned integer", http.StatusBadRequest)
				return
			}
		}
	} else if resume != "" {
		http.Error(w, "resume needs token (or send resume_session_id in hello)", http.StatusBadRequest)
		return
	}
	up := ws.HTTPUpgrader{Timeout: 5 * time.Second}
	if sub != "" {
		up.Protocol = func(p string) bool { return p == sub }
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		g.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	var buffered []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		buffered, _ = rw.Reader.Peek(rw.Reader.Buffered())
		buffered = append([]byte(nil), buffered...)
	}
	c := g.newConn(nc, format)
	if ident != nil {
		c.state = stateAuthing
	}
	g.conns.add(c)
	g.metrics.accepted.Inc()
	if err := g.engine.serve(c, buffered); err != nil {
		g.log.Warn("cannot watch socket", "err", err)
		c.readFailed()
		return
	}
	if ident != nil {
		go func() {
			ctx, cancel := c.requestContext()
			defer cancel()
			c.open(ctx, 0, *ident, resume, lastSeq, nil, false)
		}()
	}
}

func splitHeader(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (g *Gateway) removeConn(c *conn) {
	g.conns.remove(c)
	c.mu.Lock()
	open := c.sess != nil
	c.mu.Unlock()
	if open {
		g.openSockets.Add(-1)
	}
}

// nodeRequest sends a request to a node's session subject.
func (g *Gateway) nodeRequest(ctx context.Context, nodeID string, req *clusterv1.NodeRequest) (*clusterv1.NodeReply, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("gateway: encode node request: %w", err)
	}
	out, err := g.deps.Bus.Request(ctx, NodeSubject(nodeID), b)
	if err != nil {
		return nil, fmt.Errorf("gateway: node %s: %w", nodeID, err)
	}
	reply := &clusterv1.NodeReply{}
	if err := proto.Unmarshal(out, reply); err != nil {
		return nil, fmt.Errorf("gateway: decode node reply: %w", err)
	}
	if reply.Error != "" {
		return nil, fmt.Errorf("gateway: node %s: %s", nodeID, reply.Error)
	}
	return reply, nil
}

// onNodeRequest answers another node (or this one) about local sessions.
func (g *Gateway) onNodeRequest(m *bus.Msg) {
	req := &clusterv1.NodeRequest{}
	reply := &clusterv1.NodeReply{}
	if err := proto.Unmarshal(m.Data, req); err != nil {
		reply.Error = "undecodable request: " + err.Error()
	} else {
		switch body := req.Body.(type) {
		case *clusterv1.NodeRequest_Kick:
			reply.Body = &clusterv1.NodeReply_Kick{Kick: g.handleKick(body.Kick)}
		case *clusterv1.NodeRequest_TakeOver:
			reply.Body = &clusterv1.NodeReply_TakeOver{TakeOver: g.handleTakeOver(body.TakeOver)}
		case *clusterv1.NodeRequest_Deliver:
			reply.Body = &clusterv1.NodeReply_Deliver{Deliver: g.handleDeliver(body.Deliver)}
		default:
			reply.Error = "unknown request"
		}
	}
	if !m.IsRequest() {
		return
	}
	out, _ := proto.Marshal(reply)
	if err := m.Respond(out); err != nil {
		g.log.Debug("respond to node request", "err", err)
	}
}

func (g *Gateway) handleKick(k *clusterv1.Kick) *clusterv1.KickReply {
	g.sessMu.Lock()
	var s *Session
	if k.SessionId != "" {
		s = g.sessions[k.SessionId]
	} else {
		s = g.byUser[k.UserId]
	}
	pending := g.resuming[k.UserId]
	g.sessMu.Unlock()
	if s == nil && pending != nil {
		// The session claimed its record but is not registered yet: mark
		// it ended so it never goes live.
		pending.mu.Lock()
		hit := k.SessionId == "" || pending.id == k.SessionId
		if hit {
			pending.ended = true
		}
		pending.mu.Unlock()
		return &clusterv1.KickReply{Found: hit}
	}
	if s == nil || s.userID != k.UserId {
		return &clusterv1.KickReply{}
	}
	if c := g.forget(s); c != nil {
		c.closeWith(k.Reason, k.Message, true)
	}
	return &clusterv1.KickReply{Found: true}
}

func (g *Gateway) handleTakeOver(t *clusterv1.TakeOver) *clusterv1.TakeOverReply {
	g.sessMu.Lock()
	s := g.sessions[t.SessionId]
	g.sessMu.Unlock()
	if s == nil || s.userID != t.UserId {
		return &clusterv1.TakeOverReply{}
	}
	s.mu.Lock()
	if s.ended || s.resuming {
		s.mu.Unlock()
		return &clusterv1.TakeOverReply{}
	}
	pushes, complete := s.after(t.LastSeq)
	reply := &clusterv1.TakeOverReply{Found: true, Complete: complete, Pushes: pushes, LastSeq: s.seq, SinceMs: s.sinceMs}
	s.mu.Unlock()
	if c := g.forget(s); c != nil {
		c.mu.Lock()
		c.closeLabel = labelMoved
		c.mu.Unlock()
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_REPLACED, "", false)
	}
	return reply
}

func (g *Gateway) handleDeliver(d *clusterv1.Deliver) *clusterv1.DeliverReply {
	g.sessMu.Lock()
	s := g.byUser[d.UserId]
	if s == nil {
		s = g.resuming[d.UserId]
	}
	g.sessMu.Unlock()
	if s == nil {
		return &clusterv1.DeliverReply{}
	}
	seq, ok := g.push(s, d.Kind, d.Payload)
	return &clusterv1.DeliverReply{Delivered: ok, Seq: seq}
}

// ErrOffline means the user has no live or resumable session.
var ErrOffline = errors.New("gateway: user is offline")

// Deliver pushes a message to a user's session wherever it lives in the
// cluster. It returns the push's seq, or ErrOffline.
func (g *Gateway) Deliver(ctx context.Context, userID, kind string, payload []byte) (uint64, error) {
	req := &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_Deliver{Deliver: &clusterv1.Deliver{UserId: userID, Kind: kind, Payload: payload}}}
	// A session may move between reading its record and delivering; one
	// retry follows it.
	for attempt := 0; attempt < 2; attempt++ {
		rec, err := g.Lookup(ctx, userID)
		if err != nil {
			return 0, err
		}
		reply, err := g.nodeRequest(ctx, rec.NodeId, req)
		if errors.Is(err, bus.ErrNoResponders) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if d := reply.GetDeliver(); d.GetDelivered() {
			return d.Seq, nil
		}
	}
	return 0, ErrOffline
}

// Lookup returns the session record of a user, or ErrOffline.
func (g *Gateway) Lookup(ctx context.Context, userID string) (*clusterv1.SessionRecord, error) {
	e, err := g.kv.Get(ctx, userID)
	if errors.Is(err, bus.ErrKeyNotFound) {
		return nil, ErrOffline
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: read session record: %w", err)
	}
	return decodeRecord(e.Value)
}

// Kick closes a user's session wherever it is, with the given reason.
func (g *Gateway) Kick(ctx context.Context, userID string, reason realtimev1.CloseReason, msg string) (bool, error) {
	rec, err := g.Lookup(ctx, userID)
	if errors.Is(err, ErrOffline) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	reply, err := g.nodeRequest(ctx, rec.NodeId, &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_Kick{Kick: &clusterv1.Kick{
		UserId: userID, SessionId: rec.SessionId, Reason: reason, Message: msg}}})
	if errors.Is(err, bus.ErrNoResponders) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return reply.GetKick().GetFound(), nil
}

// Stats is a snapshot of the gateway's counts.
type Stats struct {
	// Sockets counts open WebSockets, authenticated or not.
	Sockets int
	// Sessions counts sessions attached to a socket.
	Sessions int
	// Detached counts sessions waiting to be resumed.
	Detached int
}

// Stats returns the current counts.
func (g *Gateway) Stats() Stats {
	st := Stats{Sockets: g.conns.len()}
	st.Sessions = int(g.openSockets.Load())
	g.sessMu.Lock()
	total := len(g.sessions)
	g.sessMu.Unlock()
	st.Detached = max(total-st.Sessions, 0)
	return st
}

// sweepLoop runs the timers: auth and idle timeouts, resume grace and
// session record refreshes, all from one goroutine.
func (g *Gateway) sweepLoop() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-g.baseCtx.Done():
			return
		case <-t.C:
			g.sweep()
		}
	}
}

func (g *Gateway) sweep() {
	now := g.now().UnixNano()
	authLimit := int64(g.cfg.AuthTimeout)
	idleLimit := int64(g.cfg.IdleTimeout)
	type closing struct {
		c      *conn
		reason realtimev1.CloseReason
	}
	var toClose []closing
	g.conns.each(func(c *conn) {
		c.mu.Lock()
		st := c.state
		c.mu.Unlock()
		switch {
		case st >= stateClosing:
		case st != stateOpen && now-c.openedAt > authLimit:
			toClose = append(toClose, closing{c, realtimev1.CloseReason_CLOSE_REASON_AUTH_TIMEOUT})
		case now-c.lastRecv.Load() > idleLimit:
			toClose = append(toClose, closing{c, realtimev1.CloseReason_CLOSE_REASON_IDLE_TIMEOUT})
		}
	})
	for _, x := range toClose {
		x.c.closeWith(x.reason, "no frame received in time", true)
	}

	grace := int64(g.cfg.ResumeGrace)
	var expired []*Session
	g.sessMu.Lock()
	for _, s := range g.sessions {
		s.mu.Lock()
		switch {
		case s.ended:
		case s.conn == nil && s.detachedAt != 0 && now-s.detachedAt > grace:
			expired = append(expired, s)
		case s.refreshAt <= now:
			s.refreshAt = now + int64(g.cfg.SessionTTL/3)
			select {
			case g.refreshCh <- s:
			default:
				s.refreshAt = now // retry on the next sweep
			}
		}
		s.mu.Unlock()
	}
	g.sessMu.Unlock()
	for _, s := range expired {
		// The record is left to expire by its TTL: a mass disconnect costs
		// no writes (seed 004).
		g.forget(s)
		g.metrics.expired.Inc()
	}
}

func (g *Gateway) refreshLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.baseCtx.Done():
			return
		case s := <-g.refreshCh:
			ctx, cancel := context.WithTimeout(g.baseCtx, 5*time.Second)
			g.refresh(ctx, s)
			cancel()
		}
	}
}

// Drain stops taking sockets, tells every client to reconnect elsewhere
// (reason draining) and waits until the sockets are gone and, when
// waitResume is set, until their sessions were resumed on other nodes or
// expired, or until ctx ends.
func (g *Gateway) Drain(ctx context.Context, waitResume bool) error {
	g.draining.Store(true)
	all := g.conns.all()
	g.log.Info("draining: asking clients to reconnect elsewhere", "sockets", len(all))
	for _, c := range all {
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_DRAINING, "node is draining; reconnect", true)
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		st := g.Stats()
		if st.Sockets == 0 && (!waitResume || st.Detached == 0) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway: drain: %d sockets and %d resumable sessions left: %w", st.Sockets, st.Detached, ctx.Err())
		case <-t.C:
		}
	}
}

// Draining reports whether Drain was called.
func (g *Gateway) Draining() bool { return g.draining.Load() }

// Close closes every socket and stops the gateway's goroutines.
func (g *Gateway) Close() error {
	if !g.closed.CompareAndSwap(false, true) {
		return nil
	}
	if !g.started.Load() {
		return nil
	}
	if g.sub != nil {
		_ = g.sub.Unsubscribe()
	}
	all := g.conns.all()
	for _, c := range all {
		c.mu.Lock()
		if c.closeLabel == "" {
			c.closeLabel = "shutdown"
		}
		c.mu.Unlock()
		c.readFailed()
	}
	g.engine.close()
	g.cancel()
	g.wg.Wait()
	return nil
}
