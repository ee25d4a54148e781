package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/wire"
	"github.com/taisen-dev/taisen/taisentest"
)

// refusal is an upgrade the node answered with an HTTP error.
type refusal struct {
	status     int
	code       string // Taisen-Error-Code
	retryAfter string
}

// dialFrom opens a WebSocket from the loopback address localIP (Linux
// routes all of 127.0.0.0/8 to the loopback interface, so each one is a
// distinct client address). It returns the socket, or how the upgrade was
// refused.
func dialFrom(t *testing.T, n *taisentest.Node, localIP string) (*tconn, *refusal) {
	t.Helper()
	var ref *refusal
	d := ws.Dialer{
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
			return nd.DialContext(ctx, network, addr)
		},
		OnStatusError: func(status int, _ []byte, resp io.Reader) {
			r, err := http.ReadResponse(bufio.NewReader(resp), nil)
			if err != nil {
				ref = &refusal{status: status}
				return
			}
			r.Body.Close()
			ref = &refusal{status: status, code: r.Header.Get("Taisen-Error-Code"), retryAfter: r.Header.Get("Retry-After")}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, wsURL(n, ""))
	if ref != nil {
		return nil, ref
	}
	if err != nil {
		t.Fatalf("dial from %s: %v", localIP, err)
	}
	t.Cleanup(func() { conn.Close() })
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	return &tconn{t: t, c: conn, r: r, format: wire.Binary}, nil
}

func mustDialFrom(t *testing.T, n *taisentest.Node, localIP string) *tconn {
	t.Helper()
	c, ref := dialFrom(t, n, localIP)
	if ref != nil {
		t.Fatalf("dial from %s refused with %d %s", localIP, ref.status, ref.code)
	}
	return c
}

func expectRefused(t *testing.T, n *taisentest.Node, localIP, why string) {
	t.Helper()
	c, ref := dialFrom(t, n, localIP)
	if c != nil {
		t.Fatalf("%s: a dial from %s was upgraded, want 429", why, localIP)
	}
	if ref.status != http.StatusTooManyRequests || ref.code != "rate_limited" || ref.retryAfter == "" {
		t.Fatalf("%s: refused with %d, Taisen-Error-Code %q, Retry-After %q; want 429, rate_limited and a Retry-After",
			why, ref.status, ref.code, ref.retryAfter)
	}
}

func authenticate(t *testing.T, c *tconn, token string) {
	t.Helper()
	cid := c.request(tokenHello(token, "", 0))
	if fr := c.mustRecv(); fr.Cid != cid || fr.GetWelcome() == nil {
		t.Fatalf("hello: got %v, want welcome", fr)
	}
}

// TestUnauthenticatedSocketCaps checks that sockets which have not
// authenticated are bounded per client address and in total, that the
// refusal says why and when to retry, and that authenticating (or
// leaving) frees the slot.
func TestUnauthenticatedSocketCaps(t *testing.T) {
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Skipf("this test needs several loopback addresses (all of 127.0.0.0/8 on Linux): %v", err)
		}
		ln.Close()
	}
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.Gateway.MaxUnauthSockets, c.Gateway.MaxUnauthPerIP = 3, 2
	}})
	one := login(t, n, "device-unauth-0001")
	two := login(t, n, "device-unauth-0002")

	a1 := mustDialFrom(t, n, "127.0.0.1")
	a2 := mustDialFrom(t, n, "127.0.0.1")
	expectRefused(t, n, "127.0.0.1", "third unauthenticated socket of one address")
	// Authenticating frees the address's slot at once (it is released
	// before the Welcome is sent).
	authenticate(t, a1, one.Token)
	mustDialFrom(t, n, "127.0.0.1")

	// 127.0.0.1 holds two (a2, a3); one more from elsewhere fills the node.
	b1 := mustDialFrom(t, n, "127.0.0.2")
	expectRefused(t, n, "127.0.0.3", "unauthenticated socket over the node's total")
	authenticate(t, b1, two.Token)
	mustDialFrom(t, n, "127.0.0.3")

	// A socket that leaves unauthenticated frees its slot too.
	expectRefused(t, n, "127.0.0.1", "the address is full again")
	a2.c.Close()
	waitFor(t, "the server to see the socket gone", func() bool { return n.Gateway().Stats().Unauthenticated == 2 })
	mustDialFrom(t, n, "127.0.0.1")

	// Authenticated sockets do not count: with the node full of
	// unauthenticated sockets, a1 and b1 are still served.
	cid := a1.request(echo("still here"))
	if fr := a1.mustRecv(); fr.Cid != cid || string(fr.GetRpc().GetPayload()) != "still here" {
		t.Fatalf("authenticated socket: %v", fr)
	}
}

// TestWebSocketPingFloodIsClosed floods WebSocket ping control frames
// (opcode 0x9), each of which costs the server a pong write: the flooder
// is closed for policy violation like a flooder of protocol frames, and a
// well-behaved client of the same node keeps being served, pings included.
func TestWebSocketPingFloodIsClosed(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.Gateway.RateLimit, c.Gateway.RateBurst, c.Gateway.MaxViolations = 1, 3, 5
	}})
	good := login(t, n, "device-pingok-001")
	bad := login(t, n, "device-pingflood1")
	bystander, _ := open(t, n, good.Token, "", 0)
	flooder, _ := open(t, n, bad.Token, "", 0)

	var flood []byte
	for i := 0; i < 100; i++ {
		flood = append(flood, maskedClientFrame(ws.OpPing, []byte("ping"))...)
	}
	_ = flooder.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = flooder.c.Write(flood) // the server may hang up before it has read it all
	code, d := flooder.expectClose()
	if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION) || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION {
		t.Fatalf("ping flooder closed with %d %v, want %d and Disconnect{POLICY_VIOLATION}",
			code, d, closeCode(realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION))
	}

	// The bystander's own WebSocket ping is answered, and so are its requests.
	if _, err := bystander.c.Write(maskedClientFrame(ws.OpPing, []byte("hi"))); err != nil {
		t.Fatal(err)
	}
	_ = bystander.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ws.ReadFrame(bystander.r)
	if err != nil || f.Header.OpCode != ws.OpPong || string(f.Payload) != "hi" {
		t.Fatalf("bystander's ping: got %v %q %v, want a pong", f.Header.OpCode, f.Payload, err)
	}
	cid := bystander.request(echo("unaffected"))
	if fr := bystander.mustRecv(); fr.Cid != cid || string(fr.GetRpc().GetPayload()) != "unaffected" {
		t.Fatalf("bystander's echo: %v", fr)
	}
}

// TestRequestContextEndsWithSocket checks that a request still running
// when its socket goes away sees its context cancelled then, not at the
// request timeout, whether the client left or the server closed it.
func TestRequestContextEndsWithSocket(t *testing.T) {
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	reg := gateway.NewRegistry()
	if err := reg.Register("test.wait", func(ctx context.Context, _ gateway.Call) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	const requestTimeout = time.Minute
	n := taisentest.StartNode(t, taisentest.Options{RPC: reg, Configure: func(c *config.Config) {
		c.Gateway.RequestTimeout = requestTimeout
	}})
	tests := []struct {
		name  string
		close func(c *tconn, userID string)
	}{
		{"client closes", func(c *tconn, _ string) { c.c.Close() }},
		{"server kicks", func(_ *tconn, userID string) {
			if ok, err := n.Disconnect(context.Background(), userID); err != nil || !ok {
				t.Fatalf("disconnect: %v %v", ok, err)
			}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess := login(t, n, "device-ctxcancel"+string(rune('a'+i)))
			c, _ := open(t, n, sess.Token, "", 0)
			c.request(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "test.wait"}}})
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler never started")
			}
			tt.close(c, sess.UserId)
			select {
			case err := <-ended:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("handler's context ended with %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the handler still runs 5 s after its socket closed (request timeout %v)", requestTimeout)
			}
		})
	}
}
