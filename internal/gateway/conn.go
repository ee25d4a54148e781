package gateway

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
// calls onData when bytes arrive (read.go), requests run on short-lived
// goroutines the gateway owns (dispatch.go), and a flusher goroutine
// exists only while frames are queued (write.go).
type conn struct {
	g  *Gateway
	id uint64
	nc net.Conn
	rc syscall.RawConn // set by the epoll engine

	openedAt int64        // clock.Mono nanos
	lastRecv atomic.Int64 // clock.Mono nanos of the last frame received

	// Small fields together, so the struct packs (one allocation per
	// socket, 15 000 per node).
	format       wire.Format
	mu           sync.Mutex
	state        connState // guarded by mu
	authFailures uint8     // guarded by mu; failed Hellos
	flushing     bool      // guarded by mu; a flusher owns the socket's writes
	finishing    bool      // guarded by mu; close the socket once outq is written
	violations   uint16    // guarded by mu
	tokens       float32   // guarded by mu; rate-limit bucket

	sess          *Session    // guarded by mu; set once the socket is open
	inflight      []inflight  // guarded by mu; requests awaiting a reply
	tokensAt      int64       // guarded by mu; clock.Mono nanos of the last refill
	lastViolation int64       // guarded by mu; clock.Mono nanos of the last violation
	outq          [][]byte    // guarded by mu; encoded frames waiting to be written
	outBytes      int         // guarded by mu; bytes in outq and being written
	closeLabel    string      // guarded by mu; why the socket closes (metrics)
	unauthIP      string      // guarded by mu; set while counted as unauthenticated
	send          *sendBucket // guarded by mu; nil until the first Send

	// rs is the read state carried between reads: nil unless a frame or a
	// fragmented message is incomplete, so an idle socket holds none.
	// Touched only by the engine's one reader at a time.
	rs *readState
}

// inflight is a request awaiting its reply; cancel ends its context when
// the socket closes first.
type inflight struct {
	cid    uint32
	cancel context.CancelFunc
}

func (g *Gateway) newConn(nc net.Conn, f wire.Format) *conn {
	now := g.mono.Now()
	c := &conn{g: g, id: g.nextConnID.Add(1), nc: nc, format: f, openedAt: now, tokensAt: now, tokens: float32(g.cfg.RateBurst)}
	c.lastRecv.Store(now)
	if g.cfg.Engine == "epoll" {
		// Set before the socket is shared with any other goroutine.
		snc, rc, err := detachSocket(nc)
		if err == nil {
			c.nc, c.rc = snc, rc
			return c // nc is closed, with its deadlines
		}
		g.log.Debug("socket kept as net.Conn", "err", err)
		if sc, ok := nc.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				c.rc = rc
			}
		}
	}
	// The socket lives by the gateway's timers, not the deadline its
	// request head was read with.
	_ = nc.SetReadDeadline(time.Time{})
	return c
}
