package gateway

import (
	"sync"
	"time"
)

// SessionEventKind is a step in a session's life.
type SessionEventKind uint8

// The steps of a session's life, as hooks see them.
const (
	// SessionAttached: a fresh session went live on a socket (a login).
	SessionAttached SessionEventKind = iota
	// SessionResumed: a session got a socket again after a drop, on this
	// node (it may have come from another node).
	SessionResumed
	// SessionDetached: the socket went away; the session stays resumable
	// for the grace period. Presence may show "reconnecting".
	SessionDetached
	// SessionEnded: the session is over on this node; Cause says why.
	// EndMoved means it lives on on another node (not offline).
	SessionEnded
)

var sessionEventNames = [...]string{"attached", "resumed", "detached", "ended"}

func (k SessionEventKind) String() string {
	if int(k) < len(sessionEventNames) {
		return sessionEventNames[k]
	}
	return "unknown"
}

// SessionEvent is one step of a session's life on this node.
type SessionEvent struct {
	Kind      SessionEventKind
	UserID    string
	SessionID string
	// Cause is set for SessionEnded.
	Cause EndCause
	// At is when the step happened (the gateway's clock).
	At time.Time
}

// OnSession adds a hook called with every session lifecycle event of this
// node (presence, rooms, parties and the matchmaker react to disconnects).
// Hooks run one event at a time on one goroutine, in the order the events
// happened; a slow hook delays the others but never a session (events
// queue; taisen_session_hook_queue shows the backlog). Add hooks before
// Start. Events of other nodes are not seen here: a domain that needs them
// publishes its own on the bus.
func (g *Gateway) OnSession(fn func(SessionEvent)) {
	if g.started.Load() {
		panic("gateway: OnSession after Start")
	}
	g.hooks.fns = append(g.hooks.fns, fn)
}

// hookQueue carries lifecycle events to the hooks in order without ever
// blocking the session paths that emit them.
type hookQueue struct {
	fns  []func(SessionEvent) // set before Start
	mu   sync.Mutex
	q    []SessionEvent // guarded by mu
	wake chan struct{}
}

// emit queues ev for the hooks; without hooks it costs nothing.
func (g *Gateway) emit(ev SessionEvent) {
	if len(g.hooks.fns) == 0 {
		return
	}
	ev.At = g.clock.Now()
	g.hooks.mu.Lock()
	g.hooks.q = append(g.hooks.q, ev)
	n := len(g.hooks.q)
	g.hooks.mu.Unlock()
	g.metrics.hookQueue.Set(float64(n))
	select {
	case g.hooks.wake <- struct{}{}:
	default:
	}
}

// runHooks delivers queued events until the gateway stops.
func (g *Gateway) runHooks() {
	defer g.wg.Done()
	for {
		g.hooks.mu.Lock()
		batch := g.hooks.q
		g.hooks.q = nil
		g.hooks.mu.Unlock()
		for _, ev := range batch {
			for _, fn := range g.hooks.fns {
				fn(ev)
			}
		}
		g.metrics.hookQueue.Set(0)
		if len(batch) > 0 {
			continue
		}
		select {
		case <-g.baseCtx.Done():
			return
		case <-g.hooks.wake:
		}
	}
}
