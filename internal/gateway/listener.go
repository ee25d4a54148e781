package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// ListenerConfig mirrors the http.Server that serves what the fast path
// hands over.
type ListenerConfig struct {
	// Path is the WebSocket endpoint, "/ws".
	Path string
	// ReadHeaderTimeout bounds reading a request head (the server's
	// ReadHeaderTimeout); 0 means none.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes is the server's MaxHeaderBytes: net/http reads at
	// most this plus 4096 bytes of a head before it answers 431, and so
	// does the fast path before it hands the connection over.
	MaxHeaderBytes int
}

// Listener is the client listener's fast path for WebSockets. It accepts
// the connections of the listener it wraps, reads each one's first request
// head on a goroutine of a small reused pool, and upgrades a plain
// WebSocket request of its endpoint itself: the same checks as ServeHTTP
// (Gateway.admit), the handshake written by gobwas/ws, the socket handed to
// the engine. Every other connection (the HTTP API, /healthz, a CORS
// preflight, a refused or unusual upgrade) is returned by Accept with the
// bytes already read replayed first, for the http.Server serving the
// Listener to answer exactly as before, keep-alive included.
//
// A login then costs no net/http request parsing, header map, ServeMux
// routing, middleware or hijack. Close stops the accept loop, closes the
// connections whose head is still being read and waits for the pool.
type Listener struct {
	g     *Gateway
	ln    net.Listener
	cfg   ListenerConfig
	limit int // head bytes read before handing over (net/http's read limit)

	start      sync.Once
	handoff    chan net.Conn // to Accept
	done       chan struct{} // closed by Close
	acceptDone chan struct{} // closed when the accept loop returned
	acceptErr  error         // why it returned; set before acceptDone closes
	closeOnce  sync.Once

	work chan net.Conn // to an idle pool goroutine
	idle atomic.Int32
	wg   sync.WaitGroup // pool goroutines

	mu      sync.Mutex
	closed  bool                  // guarded by mu
	reading map[net.Conn]struct{} // guarded by mu; heads being read
}

// maxIdleHeadReaders bounds the goroutines the Listener keeps waiting for
// connections; more run while a storm of logins needs them.
const maxIdleHeadReaders = 64

// Listen wraps ln with the WebSocket fast path. Serve the result with the
// client http.Server; closing it (or the server's Shutdown) closes ln.
func (g *Gateway) Listen(ln net.Listener, cfg ListenerConfig) *Listener {
	if cfg.Path == "" {
		cfg.Path = "/ws"
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 1 << 20 // net/http's DefaultMaxHeaderBytes
	}
	return &Listener{
		g: g, ln: ln, cfg: cfg, limit: cfg.MaxHeaderBytes + 4096,
		handoff: make(chan net.Conn), done: make(chan struct{}), acceptDone: make(chan struct{}),
		work: make(chan net.Conn), reading: make(map[net.Conn]struct{}),
	}
}

// Accept returns the next connection for net/http. The first call starts
// accepting, so nothing is upgraded before the server serves.
func (l *Listener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.handoff:
		return c, nil
	case <-l.acceptDone:
		return nil, l.acceptErr
	}
}

// Addr is the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close closes the wrapped listener and every connection whose head is
// being read, and waits until the Listener's goroutines returned.
// Connections already upgraded belong to the gateway, and those already
// returned by Accept to the http.Server.
func (l *Listener) Close() error {
	err := fmt.Errorf("gateway: listener: %w", net.ErrClosed)
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		for c := range l.reading {
			_ = c.Close()
		}
		l.mu.Unlock()
		close(l.done)
		err = l.ln.Close()
		l.start.Do(func() { // never accepted: no loop to wait for
			l.acceptErr = net.ErrClosed
			close(l.acceptDone)
		})
		<-l.acceptDone
		l.wg.Wait() // the loop started every pool goroutine before it returned
	})
	return err
}

// acceptLoop accepts connections until the wrapped listener fails; like
// net/http it retries after temporary errors (out of descriptors).
func (l *Listener) acceptLoop() {
	defer close(l.acceptDone)
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
					continue
				case <-l.done:
					t.Stop()
				}
			}
			select {
			case <-l.done:
				err = net.ErrClosed
			default:
			}
			l.acceptErr = err
			return
		}
		delay = 0
		select {
		case l.work <- c: // an idle pool goroutine takes it
		default:
			l.wg.Add(1)
			go l.worker(c)
		}
	}
}

// worker serves connections until more than maxIdleHeadReaders wait, or
// Close. Reusing a goroutine reuses its grown stack.
func (l *Listener) worker(c net.Conn) {
	defer l.wg.Done()
	for {
		l.serveConn(c)
		c = nil
		if l.idle.Add(1) > maxIdleHeadReaders {
			l.idle.Add(-1)
			return
		}
		select {
		case c = <-l.work:
			l.idle.Add(-1)
		case <-l.done:
			l.idle.Add(-1)
			return
		}
	}
}

// headBufSize is the buffer a head is read into first; a longer head
// grows it up to the limit.
const headBufSize = 4096

var headBufs = sync.Pool{New: func() any { b := make([]byte, 0, headBufSize); return &b }}

// serveConn reads c's first request head and upgrades it or hands c over.
func (l *Listener) serveConn(c net.Conn) {
	if !l.track(c) {
		_ = c.Close()
		return
	}
	bp := headBufs.Get().(*[]byte)
	buf, end, err := l.readHead(c, (*bp)[:0])
	l.untrack(c)
	var ne net.Error
	switch {
	case err != nil && errors.As(err, &ne) && ne.Timeout():
		// net/http answers nothing to a head that is not complete in
		// time.
		_ = c.Close()
	case err == nil && end >= 0 && l.upgrade(c, buf[:end], buf[end:]):
	default:
		// Not ours, too large, or cut short: net/http reads the same
		// bytes and answers as it always did.
		l.handOff(c, bytes.Clone(buf))
	}
	if cap(buf) == headBufSize {
		*bp = buf[:0]
		headBufs.Put(bp)
	}
}

// readHead reads into buf until it holds a complete request head (end is
// the index past it; bytes after it are the client's next bytes), or the
// limit is reached (end -1), or reading fails.
func (l *Listener) readHead(c net.Conn, buf []byte) (_ []byte, end int, err error) {
	if d := l.cfg.ReadHeaderTimeout; d > 0 {
		if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
			return buf, -1, fmt.Errorf("gateway: read deadline: %w", err)
		}
	}
	from := 0
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		room := buf[len(buf):cap(buf)]
		if left := l.limit - len(buf); len(room) > left {
			room = room[:left]
		}
		n, err := c.Read(room)
		buf = buf[:len(buf)+n]
		if end, from = headEnd(buf, from); end >= 0 {
			return buf, end, nil
		}
		if len(buf) >= l.limit {
			return buf, -1, nil
		}
		if err != nil {
			return buf, -1, err
		}
	}
}

// upgrade upgrades c when head is a plain WebSocket request of the
// endpoint that the gateway admits; rest are the bytes read after the
// head. It returns false, having written nothing, for net/http to serve
// the request instead: a refused upgrade is answered there by ServeHTTP,
// whose admit decides the same way, so the answer is exactly today's.
func (l *Listener) upgrade(c net.Conn, head, rest []byte) bool {
	h, ok := parseUpgradeHead(head, l.cfg.Path)
	if !ok {
		return false
	}
	q, _ := url.ParseQuery(h.rawQuery) // net/http's Request.URL.Query ignores the error too
	a, ref := l.g.admit(q, h.protocols, remoteIP(c.RemoteAddr().String()))
	if ref != nil {
		return false
	}
	// gobwas/ws writes the handshake answer (the same as ServeHTTP's)
	// into resp; it only fails on a malformed Sec-WebSocket-Protocol,
	// which net/http then answers as before. It canonicalises the case
	// of header names in head, as net/http does when it reads them.
	var resp handshakeBuffer
	up := ws.Upgrader{}
	if a.sub != "" {
		up.Protocol = func(p []byte) bool { return string(p) == a.sub }
	}
	if _, err := up.Upgrade(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(head), &resp}); err != nil {
		l.g.release(a)
		return false
	}
	// The answer is the first thing written on the connection: it fits
	// in the empty send buffer, so the write does not wait for the
	// client and needs no deadline. The read deadline of the head is
	// cleared by newConn, unless the socket is detached from c (closed).
	if _, err := c.Write(resp.b); err != nil {
		l.g.release(a)
		_ = c.Close()
		l.g.log.Debug("websocket upgrade failed", "remote", a.ip, "err", err)
		return true
	}
	var buffered []byte
	if len(rest) > 0 {
		buffered = bytes.Clone(rest)
	}
	l.g.accept(c, buffered, a)
	return true
}

// handshakeBuffer collects the handshake answer gobwas/ws writes.
type handshakeBuffer struct{ b []byte }

func (w *handshakeBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// handOff gives c to Accept, prefix replayed first.
func (l *Listener) handOff(c net.Conn, prefix []byte) {
	select {
	case l.handoff <- &replayConn{Conn: c, prefix: prefix}:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.reading[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.reading, c)
	l.mu.Unlock()
}

// replayConn is a connection handed to net/http: its Read returns the
// bytes the Listener already read, then the connection's own.
type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.prefix) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.prefix)
	c.prefix = c.prefix[n:]
	return n, nil
}

// CloseWrite lets net/http half-close after an error answer (as it does
// on a bare TCP connection), so the client reads the answer before the
// connection closes.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
