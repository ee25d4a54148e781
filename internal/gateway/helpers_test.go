package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/goleak"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/api/v1/apiv1connect"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/wire"
	"github.com/taisen-dev/taisen/taisentest"
)

// TestMain fails the package when a goroutine outlives the tests,
// including one blocked on a socket: the gateway's main leak risk.
func TestMain(m *testing.M) {
	code := m.Run()
	// The tests' own HTTP clients keep idle keep-alive connections; close
	// them so only the server's goroutines are judged.
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// tconn is a bare WebSocket test client speaking the protocol frame by
// frame, so tests can also send what a well-behaved SDK never would.
type tconn struct {
	t      testing.TB
	c      net.Conn
	r      io.Reader
	format wire.Format
	cid    uint32
}

func wsURL(n *taisentest.Node, query string) string {
	u := strings.Replace(n.ClientURL, "http://", "ws://", 1) + "/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

func dial(t testing.TB, n *taisentest.Node, query string) *tconn {
	t.Helper()
	c, err := tryDial(n, query)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.c.Close() })
	c.t = t
	return c
}

func tryDial(n *taisentest.Node, query string) (*tconn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{}.Dial(ctx, wsURL(n, query))
	if err != nil {
		return nil, err
	}
	f := wire.Binary
	if strings.Contains(query, "format=json") {
		f = wire.JSON
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	return &tconn{c: conn, r: r, format: f}, nil
}

func (c *tconn) send(fr *realtimev1.ClientFrame) {
	c.t.Helper()
	b, err := wire.Marshal(c.format, nil, fr)
	if err != nil {
		c.t.Fatal(err)
	}
	op := ws.OpBinary
	if c.format == wire.JSON {
		op = ws.OpText
	}
	if err := wsutil.WriteClientMessage(c.c, op, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// request sends a body with a fresh cid and returns the cid.
func (c *tconn) request(body *realtimev1.ClientFrame) uint32 {
	c.cid++
	body.Cid = c.cid
	c.send(body)
	return c.cid
}

type rw struct {
	io.Reader
	io.Writer
}

// recv reads the next server frame; a close frame is returned as error.
// Control replies (the close echo) are discarded: a test client must see
// the server's close status even when the server has already hung up.
func (c *tconn) recv(timeout time.Duration) (*realtimev1.ServerFrame, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(timeout))
	data, _, err := wsutil.ReadServerData(rw{c.r, io.Discard})
	if err != nil {
		return nil, err
	}
	return wire.DecodeServerFrame(c.format, data)
}

func (c *tconn) mustRecv() *realtimev1.ServerFrame {
	c.t.Helper()
	fr, err := c.recv(5 * time.Second)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return fr
}

// expectClose reads until the server closes and returns the close status
// and the Disconnect notice (nil when none came).
func (c *tconn) expectClose() (ws.StatusCode, *realtimev1.Disconnect) {
	c.t.Helper()
	var notice *realtimev1.Disconnect
	for {
		fr, err := c.recv(10 * time.Second)
		if err != nil {
			var ce wsutil.ClosedError
			if errors.As(err, &ce) {
				return ce.Code, notice
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset") {
				return 0, notice
			}
			c.t.Fatalf("waiting for close: %v", err)
		}
		if d := fr.GetDisconnect(); d != nil {
			notice = d
		}
	}
}

func hello(auth *apiv1.AuthenticateRequest) *realtimev1.ClientFrame {
	return &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Hello{Hello: &realtimev1.Hello{Auth: &realtimev1.Hello_Authenticate{Authenticate: auth}}}}
}

func deviceAuth(id string) *apiv1.AuthenticateRequest {
	return &apiv1.AuthenticateRequest{Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: id}}, Create: true}
}

func tokenHello(token, resume string, lastSeq uint64) *realtimev1.ClientFrame {
	return &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Hello{Hello: &realtimev1.Hello{
		Auth: &realtimev1.Hello_Token{Token: token}, ResumeSessionId: resume, LastSeq: lastSeq}}}
}

func echo(payload string) *realtimev1.ClientFrame {
	return &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "taisen.echo", Payload: []byte(payload)}}}
}

// login authenticates over HTTP and returns the session.
func login(t testing.TB, n *taisentest.Node, device string) *apiv1.Session {
	t.Helper()
	cl := apiv1connect.NewAuthServiceClient(http.DefaultClient, n.ClientURL)
	resp, err := cl.Authenticate(context.Background(), connect.NewRequest(deviceAuth(device)))
	if err != nil {
		t.Fatalf("authenticate %s: %v", device, err)
	}
	return resp.Msg.Session
}

// open dials and authenticates with a token, returning the Welcome.
func open(t testing.TB, n *taisentest.Node, token, resume string, lastSeq uint64) (*tconn, *realtimev1.Welcome) {
	t.Helper()
	c := dial(t, n, "")
	cid := c.request(tokenHello(token, resume, lastSeq))
	fr := c.mustRecv()
	if fr.Cid != cid || fr.GetWelcome() == nil {
		t.Fatalf("hello: got %v, want welcome for cid %d", fr, cid)
	}
	return c, fr.GetWelcome()
}

func errCode(fr *realtimev1.ServerFrame) realtimev1.ErrorCode {
	if e := fr.GetError(); e != nil {
		return e.Code
	}
	return realtimev1.ErrorCode_ERROR_CODE_UNSPECIFIED
}

func closeCode(r realtimev1.CloseReason) ws.StatusCode { return ws.StatusCode(wire.CloseCode(r)) }

// reader bufio helper to keep imports honest.
var _ = bufio.NewReader

func protoMarshal(fr *realtimev1.ClientFrame) ([]byte, error) {
	return wire.Marshal(wire.Binary, nil, fr)
}

func withCid(fr *realtimev1.ClientFrame, cid uint32) *realtimev1.ClientFrame {
	fr.Cid = cid
	return fr
}

func maskedClientFrame(op ws.OpCode, payload []byte) []byte {
	return maskedClientFrameFin(true, op, payload)
}

func maskedClientFrameFin(fin bool, op ws.OpCode, payload []byte) []byte {
	var buf strings.Builder
	h := ws.Header{Fin: fin, OpCode: op, Length: int64(len(payload)), Masked: true, Mask: ws.NewMask()}
	_ = ws.WriteHeader(&buf, h)
	p := append([]byte(nil), payload...)
	ws.Cipher(p, h.Mask, 0)
	buf.Write(p)
	return []byte(buf.String())
}
