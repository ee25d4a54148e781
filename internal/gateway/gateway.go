// Package gateway runs the realtime sessions of a node: it upgrades
// WebSocket connections, reads them from an event-driven reactor (no
// goroutine per idle socket), applies the per-session state machine and
// limits (authentication first, bounded requests in flight, token-bucket
// rate limit, frame size, heartbeats), keeps one live session per user
// across the cluster through a TTL record in the bus KV, lets a dropped
// client resume and receive the pushes it missed, and delivers pushes to
// sessions. Socket operations are added through the RPC Registry; other
// nodes reach this node's sessions over the bus.
//
// Files: gateway.go (lifecycle, upgrade), listener.go and head.go (the
// client listener's fast path: upgrades without net/http), session.go (the session table,
// establish, resume, end), node.go (requests between nodes, Deliver,
// Kick), sweep.go (timers), conn.go (a socket's state), read.go (frames
// in), dispatch.go (state machine, limits, request handlers), write.go
// (the outbound queue and closing), engine*.go (the socket reactors).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/clock"
	"github.com/taisen-dev/taisen/internal/wire"
)

// Identity is an authenticated user.
type Identity struct {
	UserID   string
	Username string
}

// Authenticator checks credentials and session tokens for the gateway.
type Authenticator interface {
	// Authenticate checks (and with create, registers) a credential sent
	// in a Hello; clientIP is the socket's remote address (per-address
	// limits on password logins).
	Authenticate(ctx context.Context, req *apiv1.AuthenticateRequest, clientIP string) (*apiv1.AuthenticateResponse, error)
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
	// Clock drives every timer (idle, auth, grace, refresh, rate limits);
	// clock.Real() when nil.
	Clock clock.Clock
}

// SessionsBucket is the bus KV bucket holding one record per online user.
const SessionsBucket = "sessions"

// Gateway runs the realtime sessions of one node. Create it with New,
// start it with Start, mount it (it is an http.Handler for the WebSocket
// endpoint) and serve its client listener through Listen, and stop it
// with Drain and Close.
type Gateway struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	clock   clock.Clock
	mono    clock.Mono
	metrics *metrics
	seed    maphash.Seed

	baseCtx context.Context
	cancel  context.CancelFunc

	engine     engine
	engineErr  atomic.Pointer[error] // set when a socket loop stopped
	kv         bus.KV
	sub        bus.Subscription
	nodeq      []chan nodeMsg
	nextConnID atomic.Uint64
	draining   atomic.Bool
	started    atomic.Bool
	closed     atomic.Bool

	// openSockets counts sockets attached to a session.
	openSockets atomic.Int64
	// unauth bounds sockets that have not authenticated yet.
	unauth unauthLimiter

	conns connTable // every open socket

	sessMu   sync.Mutex
	sessions map[string]*Session // guarded by sessMu; every session of this node, by id

	refreshCh chan *Session
	hooks     hookQueue
	// changes is signalled when a socket closes or a session ends or
	// detaches; Drain waits on it.
	changes chan struct{}

	// lifeMu guards stopping; goroutines owned by the gateway start only
	// while it is false, so Close's Wait never races an Add.
	lifeMu   sync.RWMutex
	stopping bool
	wg       sync.WaitGroup
	// work hands a function to an idle worker of spawn: a send succeeds
	// only while one waits. idle counts the workers waiting, at most
	// maxIdleWorkers.
	work chan func()
	idle atomic.Int32
}

// maxIdleWorkers bounds the goroutines spawn keeps waiting for work. A
// worker's stack has grown to what requests need (a Hello runs the
// credential check, token signing and the session claim): reusing it
// saves the runtime growing and copying a fresh goroutine's stack several
// times per request. Idle stacks shrink at garbage collections.
const maxIdleWorkers = 128

// New validates cfg and builds a gateway; it starts nothing.
func New(cfg Config, deps Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: config: %w", err)
	}
	if deps.Bus == nil || deps.Auth == nil {
		return nil, errors.New("gateway: Bus and Auth are required")
	}
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.RPC == nil {
		deps.RPC = NewRegistry()
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real()
	}
	g := &Gateway{
		cfg:       cfg,
		deps:      deps,
		log:       deps.Logger,
		clock:     deps.Clock,
		mono:      clock.NewMono(deps.Clock),
		seed:      maphash.MakeSeed(),
		sessions:  make(map[string]*Session),
		refreshCh: make(chan *Session, 4096),
		changes:   make(chan struct{}, 1),
		work:      make(chan func()),
		hooks:     hookQueue{wake: make(chan struct{}, 1)},
		unauth:    unauthLimiter{max: cfg.MaxUnauthSockets, perIP: cfg.MaxUnauthPerIP},
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
	g.startNodeWorkers()
	sub, err := g.deps.Bus.Subscribe(NodeSubject(g.cfg.NodeID), g.onNodeRequest)
	if err != nil {
		eng.close()
		g.cancel()
		g.wg.Wait()
		return fmt.Errorf("gateway: subscribe node subject: %w", err)
	}
	g.sub = sub
	g.wg.Add(1)
	go g.sweepLoop(g.clock.NewTicker(g.cfg.SweepInterval))
	if len(g.hooks.fns) > 0 {
		g.wg.Add(1)
		go g.runHooks()
	}
	for i := 0; i < 4; i++ {
		g.wg.Add(1)
		go g.refreshLoop()
	}
	g.started.Store(true)
	g.log.Info("gateway started", "engine", g.cfg.Engine, "node", g.cfg.NodeID)
	return nil
}

// spawn runs fn on a goroutine the gateway owns (Close waits for it). It
// returns false, without running fn, once the gateway is closing.
func (g *Gateway) spawn(fn func()) bool {
	g.lifeMu.RLock()
	if g.stopping {
		g.lifeMu.RUnlock()
		return false
	}
	select {
	case g.work <- fn: // an idle worker runs it
		g.lifeMu.RUnlock()
		return true
	default:
	}
	g.wg.Add(1)
	g.lifeMu.RUnlock()
	go g.worker(fn)
	return true
}

// worker runs fn, then waits for more work from spawn while fewer than
// maxIdleWorkers wait, until Close (which sets stopping before it cancels
// baseCtx, so no work is handed over once the worker can see Done).
func (g *Gateway) worker(fn func()) {
	defer g.wg.Done()
	for {
		fn()
		fn = nil // what it holds is not kept while idle
		if g.idle.Add(1) > maxIdleWorkers {
			g.idle.Add(-1)
			return
		}
		select {
		case fn = <-g.work:
			g.idle.Add(-1)
		case <-g.baseCtx.Done():
			g.idle.Add(-1)
			return
		}
	}
}

// changed wakes Drain to look at the counts again.
func (g *Gateway) changed() {
	select {
	case g.changes <- struct{}{}:
	default:
	}
}

// engineFailed records that a socket loop stopped: the node is no longer
// ready and takes no new sockets.
func (g *Gateway) engineFailed(err error) {
	g.engineErr.CompareAndSwap(nil, &err)
	g.log.Error("socket loop stopped: this node takes no new sockets and reports not ready", "err", err)
}

// Healthy reports nil while the socket engine serves, else why not. A node
// whose engine failed must not be handed new clients.
func (g *Gateway) Healthy() error {
	if p := g.engineErr.Load(); p != nil {
		return fmt.Errorf("gateway: socket engine: %w", *p)
	}
	return nil
}

// ServeHTTP upgrades a request on the WebSocket endpoint. Query
// parameters: format=json|proto, token=<session token> (authenticate
// without a Hello), resume=<session id> and last_seq=<n> (with token).
// The client listener's fast path (Listener) upgrades most sockets without
// net/http; it hands every request it does not upgrade itself here.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ref := g.admit(r.URL.Query(), r.Header.Values("Sec-WebSocket-Protocol"), remoteIP(r.RemoteAddr))
	if ref != nil {
		if ref.count != nil {
			ref.count.Inc()
		}
		httpError(w, ref.status, ref.code, ref.msg, ref.retryAfter)
		return
	}
	up := ws.HTTPUpgrader{Timeout: handshakeWriteTimeout}
	if a.sub != "" {
		up.Protocol = func(p string) bool { return p == a.sub }
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		g.release(a)
		g.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	var buffered []byte
	if rw != nil && rw.Reader.Buffered() > 0 {
		buffered, _ = rw.Reader.Peek(rw.Reader.Buffered())
		buffered = append([]byte(nil), buffered...)
	}
	g.accept(nc, buffered, a)
}

// handshakeWriteTimeout bounds writing the 101 answer of an upgrade.
const handshakeWriteTimeout = 5 * time.Second

// admission is an upgrade the gateway admitted: what the socket starts
// with. An unauthenticated one holds a place among the unauthenticated
// sockets of its address until accept or refuse takes it over.
type admission struct {
	format  wire.Format
	sub     string // the subprotocol to echo, "" for none
	ident   *Identity
	resume  string
	lastSeq uint64
	ip      string
}

// refusal is why an upgrade is refused: the answer and the metric it
// counts when given.
type refusal struct {
	status     int
	code       realtimev1.ErrorCode
	msg        string
	retryAfter string
	count      prometheus.Counter // nil: none
}

// admit runs every check an upgrade passes before the handshake, for
// both ServeHTTP and the listener's fast path: the node takes sockets,
// the format (query and offered subprotocols) is known, a ?token= is
// valid, and an unauthenticated socket fits the caps. A refusal has no
// effect (its metric is counted by whoever answers it); an admission of
// an unauthenticated socket holds its place (accept or refuse releases
// it).
func (g *Gateway) admit(q url.Values, protocols []string, ip string) (admission, *refusal) {
	if !g.started.Load() || g.draining.Load() || g.closed.Load() || g.Healthy() != nil {
		return admission{}, &refusal{status: http.StatusServiceUnavailable, code: realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE, msg: "node is draining: connect to another node", retryAfter: "1"}
	}
	format, sub, err := wire.FormatFromRequest(q, splitHeader(protocols))
	if err != nil {
		return admission{}, badUpgrade(err.Error())
	}
	a := admission{format: format, sub: sub, resume: q.Get("resume"), ip: ip}
	if tok := q.Get("token"); tok != "" {
		id, err := g.deps.Auth.VerifyToken(tok)
		if err != nil {
			e, _ := apierr.From(err)
			return admission{}, &refusal{status: http.StatusUnauthorized, code: e.Code, msg: e.Message, count: g.metrics.authFailures}
		}
		a.ident = &id
		if v := q.Get("last_seq"); v != "" {
			if a.lastSeq, err = strconv.ParseUint(v, 10, 64); err != nil {
				return admission{}, badUpgrade("last_seq must be an unsigned integer")
			}
		}
		return a, nil
	}
	if a.resume != "" {
		return admission{}, badUpgrade("resume needs token (or send resume_session_id in hello)")
	}
	// Sockets that have not authenticated cost memory and an auth
	// timeout each: bound them in total and per address.
	if err := g.unauth.acquire(ip); err != nil {
		return admission{}, &refusal{status: http.StatusTooManyRequests, code: realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED, msg: err.Error(), retryAfter: "1", count: g.metrics.unauthRefused}
	}
	return a, nil
}

func badUpgrade(msg string) *refusal {
	return &refusal{status: http.StatusBadRequest, code: realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST, msg: msg}
}

// release gives back the place an unauthenticated admission holds.
func (g *Gateway) release(a admission) {
	if a.ident == nil {
		g.unauth.release(a.ip)
	}
}

// accept makes an upgraded connection a socket of the gateway and starts
// reading it; buffered are bytes the client sent after its upgrade
// request that were already read.
func (g *Gateway) accept(nc net.Conn, buffered []byte, a admission) {
	if rc, ok := nc.(*replayConn); ok {
		// Handed over by the listener: what net/http did not read of the
		// replayed bytes follows what it did.
		nc, buffered = rc.Conn, append(buffered, rc.prefix...)
	}
	c := g.newConn(nc, a.format)
	if a.ident != nil {
		c.state = stateAuthing
	} else {
		c.unauthIP = a.ip
	}
	g.conns.add(c)
	g.metrics.accepted.Inc()
	if err := g.engine.serve(c, buffered); err != nil {
		g.log.Warn("cannot watch socket", "err", err)
		c.readFailed()
		return
	}
	if a.ident != nil {
		id, resume, lastSeq := *a.ident, a.resume, a.lastSeq
		c.startRequest(0, func(ctx context.Context) {
			c.open(ctx, 0, id, resume, lastSeq, nil, false)
		})
	}
}

// httpError answers a refused upgrade the way the HTTP API answers errors:
// the code in the Taisen-Error-Code header and a sentence in the body.
func httpError(w http.ResponseWriter, status int, code realtimev1.ErrorCode, msg, retryAfter string) {
	w.Header().Set(apierr.CodeHeader, apierr.CodeName(code))
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	http.Error(w, msg, status)
}

func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
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
	ip := c.unauthIP
	c.unauthIP = ""
	c.mu.Unlock()
	if ip != "" {
		g.unauth.release(ip)
	}
	if open {
		g.openSockets.Add(-1)
	}
	g.changed()
}

// Stats is a snapshot of the gateway's counts.
type Stats struct {
	// Sockets counts open WebSockets, authenticated or not.
	Sockets int
	// Sessions counts sessions attached to a socket.
	Sessions int
	// Detached counts sessions waiting to be resumed (and sessions being
	// established).
	Detached int
	// Unauthenticated counts sockets that have not authenticated yet.
	Unauthenticated int
}

// Stats returns the current counts.
func (g *Gateway) Stats() Stats {
	st := Stats{Sockets: g.conns.len(), Unauthenticated: g.unauth.count()}
	st.Sessions = int(g.openSockets.Load())
	g.sessMu.Lock()
	total := len(g.sessions)
	g.sessMu.Unlock()
	st.Detached = max(total-st.Sessions, 0)
	return st
}

// DrainOptions say what Drain waits for.
type DrainOptions struct {
	// WaitResume also waits until the sessions of the closed sockets were
	// resumed on other nodes or expired. Only useful when other nodes
	// share this node's bus.
	WaitResume bool
}

// Drain stops taking sockets, tells every client to reconnect elsewhere
// (reason draining) and waits until the sockets are gone (and, with
// WaitResume, their sessions resumed elsewhere or expired), or until ctx
// ends.
func (g *Gateway) Drain(ctx context.Context, opts DrainOptions) error {
	g.draining.Store(true)
	all := g.conns.all()
	g.log.Info("draining: asking clients to reconnect elsewhere", "sockets", len(all))
	for _, c := range all {
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_DRAINING, "node is draining; reconnect", withNotice)
	}
	for {
		st := g.Stats()
		if st.Sockets == 0 && (!opts.WaitResume || st.Detached == 0) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway: drain: %d sockets and %d resumable sessions left: %w", st.Sockets, st.Detached, ctx.Err())
		case <-g.changes:
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
	g.lifeMu.Lock()
	g.stopping = true
	g.lifeMu.Unlock()
	g.cancel()
	g.wg.Wait()
	return nil
}

// unauthLimiter counts sockets that have not authenticated, in total and
// per remote address.
type unauthLimiter struct {
	max, perIP int
	mu         sync.Mutex
	n          int            // guarded by mu
	byIP       map[string]int // guarded by mu
}

var errTooManyUnauth = errors.New("too many connections waiting to authenticate; retry shortly")

func (l *unauthLimiter) acquire(ip string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.max || l.byIP[ip] >= l.perIP {
		return errTooManyUnauth
	}
	if l.byIP == nil {
		l.byIP = make(map[string]int)
	}
	l.n++
	l.byIP[ip]++
	return nil
}

func (l *unauthLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if l.byIP[ip] <= 1 {
		delete(l.byIP, ip)
	} else {
		l.byIP[ip]--
	}
}

func (l *unauthLimiter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
