package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/clock"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/taisentest"
)

func TestHelloAndEcho(t *testing.T) {
	for _, engine := range []string{"epoll", "goroutine"} {
		for _, format := range []string{"", "format=json"} {
			t.Run(engine+"/"+format, func(t *testing.T) {
				n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) { c.Gateway.Engine = engine }})
				c := dial(t, n, format)
				cid := c.request(hello(deviceAuth("device-hello-0001")))
				fr := c.mustRecv()
				w := fr.GetWelcome()
				if fr.Cid != cid || w == nil {
					t.Fatalf("got %v, want welcome", fr)
				}
				if w.SessionId == "" || w.UserId == "" || !w.Created || w.Session.GetToken() == "" || w.Resumed {
					t.Errorf("welcome = %v", w)
				}
				if w.MaxInFlight != 1 || w.HeartbeatIntervalMs != 25000 || w.NodeId != n.NodeID {
					t.Errorf("welcome limits = %v", w)
				}
				cid = c.request(echo("ping-pong"))
				fr = c.mustRecv()
				if fr.Cid != cid || string(fr.GetRpc().GetPayload()) != "ping-pong" {
					t.Errorf("echo reply = %v", fr)
				}
				cid = c.request(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{ClientTimeMs: 42}}})
				fr = c.mustRecv()
				if fr.Cid != cid || fr.GetPong().GetClientTimeMs() != 42 || fr.GetPong().GetServerTimeMs() == 0 {
					t.Errorf("pong = %v", fr)
				}
			})
		}
	}
}

func TestStateMachine(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-state-0001")
	tests := []struct {
		name  string
		setup bool // authenticate first
		frame *realtimev1.ClientFrame
		cid   uint32
		want  realtimev1.ErrorCode
	}{
		{"rpc before auth", false, echo("x"), 1, realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{"ping before auth", false, &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{}}}, 1, realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{"logout before auth", false, &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Logout{Logout: &realtimev1.Logout{}}}, 1, realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{"bad token", false, tokenHello("not-a-token", "", 0), 1, realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED},
		{"wrong credential", false, hello(&apiv1.AuthenticateRequest{Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: "device-unknown-1"}}}), 1, realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS},
		{"invalid credential", false, hello(&apiv1.AuthenticateRequest{Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: "x"}}}), 1, realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST},
		{"empty hello", false, &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Hello{Hello: &realtimev1.Hello{}}}, 1, realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST},
		{"hello zero cid", false, tokenHello(sess.Token, "", 0), 0, realtimev1.ErrorCode_ERROR_CODE_BAD_CID},
		{"second hello", true, tokenHello(sess.Token, "", 0), 5, realtimev1.ErrorCode_ERROR_CODE_ALREADY_AUTHENTICATED},
		{"rpc zero cid", true, echo("x"), 0, realtimev1.ErrorCode_ERROR_CODE_BAD_CID},
		{"unknown rpc", true, &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "no.such"}}}, 5, realtimev1.ErrorCode_ERROR_CODE_UNKNOWN_RPC},
		{"no body", true, &realtimev1.ClientFrame{}, 5, realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c *tconn
			if tt.setup {
				c, _ = open(t, n, sess.Token, "", 0)
			} else {
				c = dial(t, n, "")
			}
			tt.frame.Cid = tt.cid
			c.send(tt.frame)
			fr := c.mustRecv()
			if got := errCode(fr); got != tt.want {
				t.Fatalf("got %v (%v), want %v", got, fr, tt.want)
			}
			if tt.name != "no body" && fr.Cid != tt.cid {
				t.Errorf("reply cid %d, want %d", fr.Cid, tt.cid)
			}
			if !tt.setup {
				// A failed hello leaves the socket usable for another try.
				cid := c.request(tokenHello(sess.Token, "", 0))
				fr := c.mustRecv()
				if fr.Cid != cid || fr.GetWelcome() == nil {
					t.Errorf("retry hello: %v", fr)
				}
			}
		})
	}
}

func TestURLToken(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-urltok-01")
	c := dial(t, n, "token="+sess.Token+"&format=json")
	fr := c.mustRecv()
	if fr.Cid != 0 || fr.GetWelcome().GetUserId() != sess.UserId {
		t.Fatalf("got %v, want unsolicited welcome", fr)
	}
	cid := c.request(echo("json"))
	if fr := c.mustRecv(); fr.Cid != cid || string(fr.GetRpc().GetPayload()) != "json" {
		t.Errorf("echo = %v", fr)
	}
	for _, q := range []string{"token=garbage", "format=xml", "resume=abc"} {
		resp, err := http.Get(n.ClientURL + "/ws?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 401 or 400", q, resp.StatusCode)
		}
	}
}

func TestInFlightLimit(t *testing.T) {
	release := make(chan struct{})
	reg := gateway.NewRegistry()
	if err := reg.Register("test.block", func(ctx context.Context, c gateway.Call) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []byte("done"), nil
	}); err != nil {
		t.Fatal(err)
	}
	n := taisentest.StartNode(t, taisentest.Options{RPC: reg})
	sess := login(t, n, "device-inflight1")
	c, _ := open(t, n, sess.Token, "", 0)
	first := c.request(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "test.block"}}})
	second := c.request(echo("too soon"))
	fr := c.mustRecv()
	if fr.Cid != second || errCode(fr) != realtimev1.ErrorCode_ERROR_CODE_TOO_MANY_IN_FLIGHT {
		t.Fatalf("got %v, want too_many_in_flight for cid %d", fr, second)
	}
	// Heartbeats are answered even with a request in flight.
	ping := c.request(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{}}})
	if fr := c.mustRecv(); fr.Cid != ping || fr.GetPong() == nil {
		t.Fatalf("got %v, want pong", fr)
	}
	close(release)
	if fr := c.mustRecv(); fr.Cid != first || string(fr.GetRpc().GetPayload()) != "done" {
		t.Fatalf("got %v, want reply to %d", fr, first)
	}
	// Exactly one reply per request: the next frame answers the next request.
	next := c.request(echo("after"))
	if fr := c.mustRecv(); fr.Cid != next {
		t.Fatalf("got %v, want reply to %d", fr, next)
	}
}

func TestRateLimitClosesFlooder(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.Gateway.RateLimit, c.Gateway.RateBurst, c.Gateway.MaxViolations = 1, 3, 5
		c.Gateway.MaxInFlight = 100
	}})
	sess := login(t, n, "device-flooder01")
	c, _ := open(t, n, sess.Token, "", 0)
	// Flood pings; the server may close the socket before all are written.
	for i := 0; i < 30; i++ {
		c.cid++
		b, _ := protoMarshal(withCid(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{}}}, c.cid))
		if _, err := c.c.Write(maskedClientFrame(ws.OpBinary, b)); err != nil {
			break
		}
	}
	var limited int
	for {
		fr, err := c.recv(5 * time.Second)
		if err != nil {
			break
		}
		if errCode(fr) == realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED {
			limited++
		}
		if d := fr.GetDisconnect(); d != nil {
			if d.Reason != realtimev1.CloseReason_CLOSE_REASON_POLICY_VIOLATION {
				t.Errorf("disconnect reason %v, want policy_violation", d.Reason)
			}
			break
		}
	}
	if limited == 0 {
		t.Error("no rate_limited replies before the close")
	}
	// Other sessions are unaffected.
	other := login(t, n, "device-bystander")
	c2, _ := open(t, n, other.Token, "", 0)
	cid := c2.request(echo("fine"))
	if fr := c2.mustRecv(); fr.Cid != cid {
		t.Errorf("bystander got %v", fr)
	}
}

func TestBadFrames(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) { c.Gateway.MaxFrameBytes = 1024 }})
	sess := login(t, n, "device-badframe1")
	t.Run("oversized", func(t *testing.T) {
		c, _ := open(t, n, sess.Token, "", 0)
		c.request(echo(strings.Repeat("x", 2000)))
		code, d := c.expectClose()
		if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_FRAME_TOO_LARGE) || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_FRAME_TOO_LARGE || !d.GetReconnect() {
			t.Errorf("close %d %v, want %d and a Disconnect", code, d, closeCode(realtimev1.CloseReason_CLOSE_REASON_FRAME_TOO_LARGE))
		}
	})
	t.Run("garbage protobuf", func(t *testing.T) {
		c, _ := open(t, n, sess.Token, "", 0)
		if _, err := c.c.Write(maskedClientFrame(ws.OpBinary, []byte{0xff, 0xff, 0xff, 0x01})); err != nil {
			t.Fatal(err)
		}
		fr := c.mustRecv()
		if errCode(fr) != realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST {
			t.Fatalf("got %v, want bad_request", fr)
		}
		cid := c.request(echo("still alive"))
		if fr := c.mustRecv(); fr.Cid != cid {
			t.Errorf("after garbage: %v", fr)
		}
	})
	t.Run("text frame on binary socket", func(t *testing.T) {
		c, _ := open(t, n, sess.Token, "", 0)
		if _, err := c.c.Write(maskedClientFrame(ws.OpText, []byte(`{"cid":1}`))); err != nil {
			t.Fatal(err)
		}
		if fr := c.mustRecv(); errCode(fr) != realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST {
			t.Fatalf("got %v, want bad_request", fr)
		}
	})
	t.Run("unmasked frame", func(t *testing.T) {
		c, _ := open(t, n, sess.Token, "", 0)
		if _, err := c.c.Write([]byte{0x82, 0x01, 0x00}); err != nil {
			t.Fatal(err)
		}
		code, d := c.expectClose()
		if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR) || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR {
			t.Errorf("close %d %v, want %d and a Disconnect", code, d, closeCode(realtimev1.CloseReason_CLOSE_REASON_PROTOCOL_ERROR))
		}
	})
	t.Run("invalid UTF-8 text", func(t *testing.T) {
		c := dial(t, n, "format=json")
		c.request(tokenHello(sess.Token, "", 0))
		if fr := c.mustRecv(); fr.GetWelcome() == nil {
			t.Fatalf("hello: got %v", fr)
		}
		if _, err := c.c.Write(maskedClientFrame(ws.OpText, []byte("{\"cid\":1,\"ping\":{}}\xff"))); err != nil {
			t.Fatal(err)
		}
		code, d := c.expectClose()
		if code != 1007 || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_INVALID_PAYLOAD || !d.GetReconnect() {
			t.Errorf("close %d %v, want 1007 and Disconnect{INVALID_PAYLOAD}", code, d)
		}
	})
	t.Run("fragmented message", func(t *testing.T) {
		c, _ := open(t, n, sess.Token, "", 0)
		c.cid++
		msg := echo("in pieces")
		msg.Cid = c.cid
		b, _ := protoMarshal(msg)
		half := len(b) / 2
		first := maskedClientFrameFin(false, ws.OpBinary, b[:half])
		second := maskedClientFrameFin(true, ws.OpContinuation, b[half:])
		if _, err := c.c.Write(append(first, second...)); err != nil {
			t.Fatal(err)
		}
		if fr := c.mustRecv(); fr.Cid != c.cid || string(fr.GetRpc().GetPayload()) != "in pieces" {
			t.Errorf("got %v", fr)
		}
	})
	// The node is still healthy.
	resp, err := http.Get(n.AdminURL + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz after bad frames: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestTimeouts(t *testing.T) {
	clk := clock.NewFake(time.Now())
	n := taisentest.StartNode(t, taisentest.Options{Clock: clk, Configure: func(c *config.Config) {
		c.Gateway.AuthTimeout = 3 * time.Second
		c.Gateway.HeartbeatInterval = 2 * time.Second
		c.Gateway.IdleTimeout = 6 * time.Second
	}})
	t.Run("auth", func(t *testing.T) {
		c := dial(t, n, "")
		// Counted as unauthenticated when admitted, in the socket table
		// (with its opening time on the clock) a moment later: wait for
		// both before moving the clock.
		waitFor(t, "the socket to be registered", func() bool {
			st := n.Gateway().Stats()
			return st.Unauthenticated == 1 && st.Sockets == 1
		})
		clk.Advance(2 * time.Second)
		cid := c.request(echo("too early")) // not authenticated: refused, not closed
		if fr := c.mustRecv(); fr.Cid != cid || errCode(fr) != realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
			t.Fatalf("before the auth timeout: %v", fr)
		}
		clk.Advance(2 * time.Second)
		code, d := c.expectClose()
		if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_AUTH_TIMEOUT) || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_AUTH_TIMEOUT ||
			d.GetMessage() != "not authenticated in time" {
			t.Errorf("close %d %v", code, d)
		}
	})
	t.Run("idle", func(t *testing.T) {
		sess := login(t, n, "device-idle-0001")
		c, _ := open(t, n, sess.Token, "", 0)
		clk.Advance(7 * time.Second)
		code, d := c.expectClose()
		if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_IDLE_TIMEOUT) || !d.GetReconnect() {
			t.Errorf("close %d %v", code, d)
		}
	})
	t.Run("heartbeats keep it open", func(t *testing.T) {
		sess := login(t, n, "device-idle-0002")
		c, _ := open(t, n, sess.Token, "", 0)
		for i := 0; i < 8; i++ {
			clk.Advance(1500 * time.Millisecond) // 12 s in all: twice the idle timeout
			cid := c.request(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{}}})
			if fr := c.mustRecv(); fr.Cid != cid {
				t.Fatalf("ping %d: %v", i, fr)
			}
		}
	})
	t.Run("a clock stepping back limits nothing", func(t *testing.T) {
		sess := login(t, n, "device-idle-0003")
		c, _ := open(t, n, sess.Token, "", 0)
		clk.Jump(-time.Hour)
		for i := 0; i < 5; i++ {
			cid := c.request(echo("still open"))
			if fr := c.mustRecv(); fr.Cid != cid || fr.GetRpc() == nil {
				t.Fatalf("echo %d after the clock stepped back: %v", i, fr)
			}
		}
		clk.Jump(time.Hour)
	})
}

// waitFor polls cond until it holds (or fails the test after 5 s): it
// synchronises with the server, it asserts nothing by itself.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSingleLoginSameNode(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-single-01")
	first, w1 := open(t, n, sess.Token, "", 0)
	_, w2 := open(t, n, sess.Token, "", 0)
	if w1.SessionId == w2.SessionId {
		t.Fatal("second login got the same session id")
	}
	code, d := first.expectClose()
	if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_REPLACED) || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_REPLACED || d.GetReconnect() {
		t.Errorf("first session closed with %d %v, want replaced without reconnect", code, d)
	}
}

func TestSingleLoginAcrossNodes(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
	// B shares A's data dir: the same SQLite file (WAL) and token secret,
	// as two nodes share one PostgreSQL in production.
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	sessA := login(t, a, "device-cluster-01")
	onA, w1 := open(t, a, sessA.Token, "", 0)
	if w1.NodeId != a.NodeID {
		t.Fatalf("welcome node %s, want %s", w1.NodeId, a.NodeID)
	}
	// Same user on node B: authenticate the same device there.
	c := dial(t, b, "")
	cid := c.request(hello(&apiv1.AuthenticateRequest{Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: "device-cluster-01"}}}))
	fr := c.mustRecv()
	if fr.Cid != cid || fr.GetWelcome() == nil {
		t.Fatalf("hello on B: %v", fr)
	}
	code, d := onA.expectClose()
	if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_REPLACED) || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_REPLACED {
		t.Errorf("session on A closed with %d %v, want replaced", code, d)
	}
	got, err := a.Session(context.Background(), w1.UserId)
	if err != nil || got.NodeId != b.NodeID {
		t.Errorf("session record = %v, %v; want node %s", got, err, b.NodeID)
	}
}

func TestRepeatedAuthFailuresClose(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := dial(t, n, "")
	for i := 0; i < 3; i++ {
		cid := c.request(tokenHello("forged-token", "", 0))
		if fr := c.mustRecv(); fr.Cid != cid || errCode(fr) != realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED {
			t.Fatalf("attempt %d: %v", i, fr)
		}
	}
	code, d := c.expectClose()
	if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_AUTH_FAILED) || d.GetReconnect() {
		t.Errorf("close %d %v, want auth_failed without reconnect", code, d)
	}
}

func TestClientCloseIsEchoed(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-closeecho")
	c, w := open(t, n, sess.Token, "", 0)
	if _, err := c.c.Write(maskedClientFrame(ws.OpClose, []byte{0x03, 0xe8})); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.expectClose(); code != 1000 {
		t.Errorf("close echo status %d, want 1000", code)
	}
	// A client-initiated close leaves the session resumable.
	_, w2 := open(t, n, sess.Token, w.SessionId, 0)
	if !w2.Resumed {
		t.Errorf("session not resumable after a client close: %v", w2)
	}
}

func TestFramesSplitAcrossReads(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-trickle-1")
	c := dial(t, n, "")
	b, _ := protoMarshal(withCid(tokenHello(sess.Token, "", 0), 1))
	frame := maskedClientFrame(ws.OpBinary, b)
	// The hello trickles in a byte at a time.
	for i := range frame[:len(frame)-1] {
		if _, err := c.c.Write(frame[i : i+1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if fr, err := c.recv(200 * time.Millisecond); err == nil {
		t.Fatalf("got %v before the hello was complete", fr)
	}
	if _, err := c.c.Write(frame[len(frame)-1:]); err != nil {
		t.Fatal(err)
	}
	if fr := c.mustRecv(); fr.Cid != 1 || fr.GetWelcome() == nil {
		t.Fatalf("got %v, want welcome", fr)
	}
	// Then the end of one frame and the start of the next share a write,
	// and the rest of the second comes later.
	b2, _ := protoMarshal(withCid(echo("two in one"), 2))
	b3, _ := protoMarshal(withCid(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Ping{Ping: &realtimev1.Ping{ClientTimeMs: 3}}}, 3))
	first, second := maskedClientFrame(ws.OpBinary, b2), maskedClientFrame(ws.OpBinary, b3)
	if _, err := c.c.Write(first[:len(first)-3]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.c.Write(append(append([]byte(nil), first[len(first)-3:]...), second[:5]...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := c.c.Write(second[5:]); err != nil {
		t.Fatal(err)
	}
	// The echo runs on its own goroutine and the ping is answered at
	// once: the two replies come in either order.
	got := map[uint32]*realtimev1.ServerFrame{}
	for len(got) < 2 {
		fr := c.mustRecv()
		got[fr.Cid] = fr
	}
	if string(got[2].GetRpc().GetPayload()) != "two in one" || got[3].GetPong().GetClientTimeMs() != 3 {
		t.Fatalf("got %v, want the echo and the pong", got)
	}
}
