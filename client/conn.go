package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/wire"
)

// aLongTimeAgo is a deadline in the past, used to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// wsConn is one WebSocket connection of a Socket: from the upgrade to the
// end of its reader. A Socket that reconnects goes through several.
type wsConn struct {
	nc           net.Conn
	rd           *wsutil.Reader
	format       wire.Format
	op           ws.OpCode
	log          *slog.Logger
	writeTimeout time.Duration

	wmu       sync.Mutex  // serializes writes to nc
	closeSent atomic.Bool // a close frame was written

	lastSent atomic.Int64 // unix nanos of the last frame written
	lastRecv atomic.Int64 // unix nanos of the last frame read
	// blocked is set while the reader waits for the application to take
	// a push; the link is not dead then, just unread.
	blocked atomic.Bool

	// Set once by the handshake, read-only afterwards.
	welcome  *realtimev1.Welcome
	maxFrame int
	slots    chan struct{} // one token per request in flight

	mu      sync.Mutex
	pending map[uint32]*pendingReq // guarded by mu; by cid
	nextCID uint32                 // guarded by mu
	dead    bool                   // guarded by mu
	cause   error                  // guarded by mu; why the connection ended
	hb      *time.Timer            // guarded by mu; heartbeat timer
	// disconnect is the Disconnect frame the server sent, if any. Only the
	// reader touches it.
	disconnect *CloseError

	done chan struct{} // closed when the connection is finished
}

// pendingReq is a request awaiting its reply.
type pendingReq struct {
	ch   chan *realtimev1.ServerFrame // buffered 1
	slot bool                         // holds a token of slots
}

// connParams is what a handshake needs.
type connParams struct {
	format        wire.Format
	token         string
	auth          *apiv1.AuthenticateRequest
	urlToken      bool
	resumeID      string
	lastSeq       uint64
	clientVersion string
	localAddr     netip.Addr
	maxMessage    int64
	writeTimeout  time.Duration
}

// handshakeQuery returns the query of the socket URL.
func handshakeQuery(p connParams) url.Values {
	q := url.Values{}
	if p.format == wire.JSON {
		q.Set("format", "json")
	}
	if p.urlToken && p.token != "" {
		q.Set("token", p.token)
		if p.resumeID != "" {
			q.Set("resume", p.resumeID)
			q.Set("last_seq", strconv.FormatUint(p.lastSeq, 10))
		}
	}
	return q
}

// upgradeError turns a refused WebSocket upgrade into an *Error.
func upgradeError(status int, codeName, body string) error {
	code, ok := codeFromName(codeName)
	if !ok {
		code = codeFromHTTPStatus(status)
	}
	msg := strings.TrimSpace(body)
	if msg == "" {
		msg = http.StatusText(status)
	}
	return fmt.Errorf("upgrade refused with HTTP %d: %w", status, &Error{Code: code, Message: msg})
}

// dialConn connects, upgrades and authenticates a socket, and returns once
// the Welcome arrived. The whole handshake is bounded by ctx and the
// client's dial timeout.
func (c *Client) dialConn(ctx context.Context, p connParams) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()

	nd := c.netDialer
	local := p.localAddr
	if !local.IsValid() {
		local = c.localAddr
	}
	if local.IsValid() {
		nd.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	var (
		refusedStatus int
		refusedCode   string
		refusedBody   string
	)
	d := ws.Dialer{
		Protocols: []string{p.format.Subprotocol()},
		NetDial:   nd.DialContext,
		OnStatusError: func(status int, _ []byte, r io.Reader) {
			refusedStatus = status
			resp, err := http.ReadResponse(bufio.NewReader(r), nil)
			if err != nil {
				return
			}
			refusedCode = resp.Header.Get(apierr.CodeHeader)
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			refusedBody = string(b)
		},
	}
	nc, br, _, err := d.Dial(ctx, c.socketURL(handshakeQuery(p)))
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) && refusedStatus != 0 {
			return nil, upgradeError(refusedStatus, refusedCode, refusedBody)
		}
		return nil, fmt.Errorf("connect: %w", err)
	}
	var src io.Reader = br
	if br == nil {
		src = bufio.NewReaderSize(nc, 4096)
	}
	op := ws.OpBinary
	if p.format == wire.JSON {
		op = ws.OpText
	}
	wc := &wsConn{
		nc:           nc,
		rd:           &wsutil.Reader{Source: src, State: ws.StateClientSide, CheckUTF8: p.format == wire.JSON, MaxMessageSize: p.maxMessage},
		format:       p.format,
		op:           op,
		log:          c.log,
		writeTimeout: p.writeTimeout,
		pending:      make(map[uint32]*pendingReq),
		done:         make(chan struct{}),
	}
	now := time.Now().UnixNano()
	wc.lastSent.Store(now)
	wc.lastRecv.Store(now)

	// Bound the rest of the handshake by ctx too.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	w, err := wc.hello(p)
	if !stop() {
		if err == nil {
			err = ctx.Err()
		}
	} else {
		_ = nc.SetDeadline(time.Time{})
	}
	if err != nil {
		if ctx.Err() != nil && isTimeout(err) {
			err = ctx.Err()
		}
		wc.closeWith(ws.StatusNormalClosure)
		wc.finish(err)
		return nil, err
	}
	wc.welcome = w
	wc.maxFrame = int(w.GetMaxFrameBytes())
	wc.slots = make(chan struct{}, max(int(w.GetMaxInFlight()), 1))
	return wc, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// helloCID is the cid of Hello; later requests start after it.
const helloCID = 1

// hello sends Hello (unless the token went in the URL) and reads until the
// Welcome, an Error reply or the server closing the socket.
func (c *wsConn) hello(p connParams) (*realtimev1.Welcome, error) {
	var want uint32
	if !(p.urlToken && p.token != "") {
		h := &realtimev1.Hello{ResumeSessionId: p.resumeID, LastSeq: p.lastSeq, ClientVersion: p.clientVersion}
		if p.token != "" {
			h.Auth = &realtimev1.Hello_Token{Token: p.token}
		} else {
			h.Auth = &realtimev1.Hello_Authenticate{Authenticate: p.auth}
		}
		if err := c.send(&realtimev1.ClientFrame{Cid: helloCID, Body: &realtimev1.ClientFrame_Hello{Hello: h}}); err != nil {
			return nil, fmt.Errorf("send hello: %w", err)
		}
		want = helloCID
	}
	c.nextCID = helloCID
	for {
		fr, err := c.readFrame()
		if err != nil {
			if c.disconnect != nil {
				return nil, c.disconnect
			}
			return nil, err
		}
		switch body := fr.Body.(type) {
		case *realtimev1.ServerFrame_Welcome:
			if fr.Cid == want {
				return body.Welcome, nil
			}
		case *realtimev1.ServerFrame_Error:
			if fr.Cid == want || fr.Cid == 0 {
				return nil, &Error{Code: body.Error.Code, Message: body.Error.Message}
			}
		case *realtimev1.ServerFrame_Disconnect:
			c.disconnect = &CloseError{Reason: body.Disconnect.Reason, Message: body.Disconnect.Message, Reconnect: body.Disconnect.Reconnect}
			continue
		}
		c.log.Debug("client: unexpected frame before welcome", "cid", fr.Cid, "body", fmt.Sprintf("%T", fr.Body))
	}
}

// closeFrameError is a WebSocket close frame received from the server.
type closeFrameError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeFrameError) Error() string {
	return fmt.Sprintf("websocket closed by the server with status %d %q", e.code, e.reason)
}

// asCloseError converts a close frame with a taisen status (4000+reason)
// into a *CloseError.
func (e *closeFrameError) asCloseError() (*CloseError, bool) {
	r, ok := wire.ReasonFromCloseCode(uint16(e.code))
	if !ok {
		return nil, false
	}
	return &CloseError{Reason: r, Message: e.reason, Reconnect: ShouldReconnect(r)}, true
}

// readFrame reads the next protocol frame, answering control frames on
// the way. A close frame ends with *closeFrameError.
func (c *wsConn) readFrame() (*realtimev1.ServerFrame, error) {
	for {
		hdr, err := c.rd.NextFrame()
		if err != nil {
			return nil, err
		}
		var payload []byte
		if hdr.Fin && hdr.Length <= 64<<10 {
			// The usual message, one frame: one allocation of its exact
			// size (a fragmented one continues past hdr.Length).
			payload = make([]byte, hdr.Length)
			if _, err := io.ReadFull(c.rd, payload); err != nil {
				return nil, err
			}
		} else {
			var buf bytes.Buffer
			buf.Grow(64 << 10)
			if _, err := buf.ReadFrom(c.rd); err != nil {
				return nil, err
			}
			payload = buf.Bytes()
		}
		c.lastRecv.Store(time.Now().UnixNano())
		switch hdr.OpCode {
		case ws.OpPing:
			_ = c.writeRaw(ws.OpPong, payload)
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			echo := code
			if code.Empty() || code.IsProtocolReserved() {
				echo = ws.StatusNormalClosure
			}
			c.closeWith(echo)
			return nil, &closeFrameError{code: code, reason: reason}
		}
		fr, err := wire.DecodeServerFrame(c.format, payload)
		if err != nil {
			return nil, err
		}
		return fr, nil
	}
}

// send encodes and writes a client frame.
func (c *wsConn) send(fr *realtimev1.ClientFrame) error {
	var payload []byte
	var err error
	if c.format == wire.Binary {
		payload, err = proto.MarshalOptions{}.MarshalAppend(make([]byte, 0, proto.Size(fr)), fr)
	} else {
		payload, err = wire.Marshal(c.format, nil, fr)
	}
	if err != nil {
		return err
	}
	if c.maxFrame > 0 && len(payload) > c.maxFrame {
		return fmt.Errorf("%w (%d bytes, limit %d)", ErrFrameTooLarge, len(payload), c.maxFrame)
	}
	return c.writeRaw(c.op, payload)
}

// appendFrame appends a masked client frame with payload p to dst.
func appendFrame(dst []byte, op ws.OpCode, p []byte, mask [4]byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Masked: true, Mask: mask, Length: int64(len(p))}
	var hb [ws.MaxHeaderSize]byte
	bw := bytes.NewBuffer(hb[:0])
	_ = ws.WriteHeader(bw, h)
	dst = append(dst, bw.Bytes()...)
	start := len(dst)
	dst = append(dst, p...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// writeRaw writes one frame with a write deadline. A failed write closes
// the connection, which ends its reader.
func (c *wsConn) writeRaw(op ws.OpCode, p []byte) error {
	frame := appendFrame(make([]byte, 0, len(p)+ws.MaxHeaderSize), op, p, ws.NewMask())
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	_, err := c.nc.Write(frame)
	if err != nil {
		_ = c.nc.Close()
		return err
	}
	c.lastSent.Store(time.Now().UnixNano())
	return nil
}

// closeWith sends a close frame, best effort and without waiting long.
func (c *wsConn) closeWith(code ws.StatusCode) {
	if c.closeSent.Swap(true) {
		return
	}
	body := ws.NewCloseFrameBody(code, "")
	frame := appendFrame(nil, ws.OpClose, body, ws.NewMask())
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.nc.Write(frame)
}

// register allocates a cid for a request.
func (c *wsConn) register(slot bool) (uint32, *pendingReq, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return 0, nil, c.cause
	}
	for {
		c.nextCID++
		if c.nextCID == 0 {
			continue
		}
		if _, busy := c.pending[c.nextCID]; !busy {
			break
		}
	}
	p := &pendingReq{ch: make(chan *realtimev1.ServerFrame, 1), slot: slot}
	c.pending[c.nextCID] = p
	return c.nextCID, p, nil
}

// unregister forgets a request that was not sent.
func (c *wsConn) unregister(cid uint32) {
	c.mu.Lock()
	p := c.pending[cid]
	delete(c.pending, cid)
	c.mu.Unlock()
	if p != nil && p.slot {
		<-c.slots
	}
}

// deliver hands a reply to its request and frees the request's slot. It
// reports false when no request waits for cid.
func (c *wsConn) deliver(fr *realtimev1.ServerFrame) bool {
	c.mu.Lock()
	p := c.pending[fr.Cid]
	delete(c.pending, fr.Cid)
	c.mu.Unlock()
	if p == nil {
		return false
	}
	if p.slot {
		<-c.slots
	}
	p.ch <- fr
	return true
}

// err returns why the connection ended, once it did.
func (c *wsConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// finish ends the connection: requests in flight fail, the heartbeat
// stops and the socket closes. It is idempotent.
func (c *wsConn) finish(cause error) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.dead = true
	c.cause = cause
	if c.hb != nil {
		c.hb.Stop()
	}
	c.pending = nil
	c.mu.Unlock()
	_ = c.nc.Close()
	close(c.done)
}

// startHeartbeat sends a Ping whenever nothing was written for interval,
// and closes the connection when nothing was read for deadAfter (while the
// reader was reading): the link is dead, and the reader's error starts a
// reconnection.
func (c *wsConn) startHeartbeat(interval, deadAfter time.Duration) {
	if interval <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	c.hb = time.AfterFunc(interval, func() { c.heartbeat(interval, deadAfter) })
}

func (c *wsConn) heartbeat(interval, deadAfter time.Duration) {
	now := time.Now()
	if deadAfter > 0 && !c.blocked.Load() && now.Sub(time.Unix(0, c.lastRecv.Load())) > deadAfter {
		c.log.Info("client: nothing received from the server in time; closing the connection", "after", deadAfter)
		_ = c.nc.Close()
		return
	}
	next := interval - now.Sub(time.Unix(0, c.lastSent.Load()))
	if next <= interval/20 {
		// Ping replies carry the next cid but are not awaited: the Pong
		// only counts as received traffic.
		c.mu.Lock()
		cid := uint32(0)
		if !c.dead {
			c.nextCID++
			if c.nextCID == 0 {
				c.nextCID++
			}
			cid = c.nextCID
		}
		c.mu.Unlock()
		if cid == 0 {
			return
		}
		err := c.send(&realtimev1.ClientFrame{Cid: cid, Body: &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{ClientTimeMs: now.UnixMilli()}}})
		if err != nil {
			return
		}
		next = interval
	}
	c.mu.Lock()
	if !c.dead {
		c.hb.Reset(next)
	}
	c.mu.Unlock()
}
