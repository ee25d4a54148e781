package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/clock"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/taisentest"
)

func sendFrame(name, payload string) *realtimev1.ClientFrame {
	return &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Send{Send: &realtimev1.Send{Name: name, Payload: []byte(payload)}}}
}

func ackFrame(ids ...string) *realtimev1.ClientFrame {
	return &realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Ack{Ack: &realtimev1.Ack{Ids: ids}}}
}

// TestEphemeralMessages: ephemeral messages reach an attached socket,
// take no seq, are not kept for a resume, and report offline when no
// socket is attached.
func TestEphemeralMessages(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	gw := n.Gateway()
	ctx := context.Background()
	sess := login(t, n, "device-ephemeral")
	c, w := open(t, n, sess.Token, "", 0)

	if seq, err := gw.Send(ctx, sess.UserId, gateway.Message{Kind: "room.state", Payload: []byte("tick-1"), Ephemeral: true}); err != nil || seq != 0 {
		t.Fatalf("ephemeral send: seq %d err %v, want 0 and nil", seq, err)
	}
	fr := c.mustRecv()
	if e := fr.GetEphemeral(); e == nil || e.Kind != "room.state" || string(e.Payload) != "tick-1" || fr.Cid != 0 {
		t.Fatalf("got %v, want the ephemeral message", fr)
	}
	// A durable push after it is still seq 1.
	pushN(t, n, sess.UserId, 1, 1)
	readPushes(t, c, 0, 1)

	c.c.Close()
	waitFor(t, "the server to see the socket gone", func() bool { return gw.Stats().Sessions == 0 })
	if _, err := gw.Send(ctx, sess.UserId, gateway.Message{Kind: "room.state", Payload: []byte("tick-2"), Ephemeral: true}); !errors.Is(err, gateway.ErrOffline) {
		t.Fatalf("ephemeral to a detached session: %v, want ErrOffline", err)
	}
	pushN(t, n, sess.UserId, 2, 1) // durable: kept for the resume
	c2, w2 := open(t, n, sess.Token, w.SessionId, 1)
	if !w2.Resumed || w2.Replayed != 1 {
		t.Fatalf("welcome %v, want resumed with only the durable push replayed", w2)
	}
	readPushes(t, c2, 1, 1)
}

// TestMulticast sends one ephemeral message to players on two nodes.
func TestMulticast(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	nodes := []*taisentest.Node{a, b, a, b}
	var users []string
	var conns []*tconn
	for i, n := range nodes {
		sess := login(t, n, fmt.Sprintf("device-multicast-%d", i))
		c, _ := open(t, n, sess.Token, "", 0)
		users = append(users, sess.UserId)
		conns = append(conns, c)
	}
	// One more user is offline: left out by Resolve.
	offline := login(t, a, "device-multicast-off")
	ctx := context.Background()
	to, err := a.Gateway().Resolve(ctx, append(users, offline.UserId))
	if err != nil || len(to) != len(users) {
		t.Fatalf("resolve: %v %v, want %d recipients", to, err, len(users))
	}
	for round := 0; round < 3; round++ {
		payload := fmt.Sprintf("state-%d", round)
		if err := a.Gateway().Multicast(ctx, to, gateway.Message{Kind: "room.state", Payload: []byte(payload)}); err != nil {
			t.Fatal(err)
		}
		for i, c := range conns {
			fr := c.mustRecv()
			if e := fr.GetEphemeral(); e == nil || string(e.Payload) != payload {
				t.Fatalf("player %d round %d: got %v, want %s", i, round, fr, payload)
			}
		}
	}
}

// TestMulticastLocal: the same ephemeral frame, without the bus, reaches
// the listed sessions of this node; a session of another node is not
// reached.
func TestMulticastLocal(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	var sids []string
	var conns []*tconn
	for i, n := range []*taisentest.Node{a, a, b} {
		sess := login(t, n, fmt.Sprintf("device-mlocal-%d", i))
		c, w := open(t, n, sess.Token, "", 0)
		sids = append(sids, w.SessionId)
		conns = append(conns, c)
	}
	a.Gateway().MulticastLocal(sids, gateway.Message{Kind: "room.message", Payload: []byte("pos-1")})
	a.Gateway().MulticastLocal(sids[:1], gateway.Message{Kind: "room.message", Payload: []byte("pos-2")})
	for i, want := range []string{"pos-1", "pos-2"} {
		if e := conns[0].mustRecv().GetEphemeral(); e == nil || string(e.Payload) != want {
			t.Fatalf("local player 0, frame %d: %v, want %s", i, e, want)
		}
	}
	if e := conns[1].mustRecv().GetEphemeral(); e == nil || string(e.Payload) != "pos-1" {
		t.Fatalf("local player 1: %v", e)
	}
	// The player on node B gets what B sends, never A's local frame.
	b.Gateway().MulticastLocal(sids[2:], gateway.Message{Kind: "room.message", Payload: []byte("from-b")})
	if e := conns[2].mustRecv().GetEphemeral(); e == nil || string(e.Payload) != "from-b" {
		t.Fatalf("player on B: %v, want only B's frame", e)
	}
}

// TestFireAndForget: Send frames reach their handler in order with the
// caller's identity, get no reply, and are held to their own budget.
func TestFireAndForget(t *testing.T) {
	type input struct {
		user, payload string
	}
	got := make(chan input, 100)
	reg := gateway.NewRegistry()
	if err := reg.RegisterMessage("test.input", func(_ context.Context, c gateway.Call) {
		got <- input{c.UserID, string(c.Payload)}
	}); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Now())
	n := taisentest.StartNode(t, taisentest.Options{RPC: reg, Clock: clk, Configure: func(c *config.Config) {
		c.Gateway.SendRate = 10
		c.Gateway.SendBurst = 5
		c.Gateway.MaxViolations = 100
	}})
	sess := login(t, n, "device-inputs-01")
	c, _ := open(t, n, sess.Token, "", 0)
	// The fake clock stands still: exactly the burst gets through.
	for i := 0; i < 8; i++ {
		c.send(sendFrame("test.input", fmt.Sprintf("move-%d", i)))
	}
	// A request after them is answered: messages got no reply of their own.
	cid := c.request(echo("after"))
	if fr := c.mustRecv(); fr.Cid != cid || fr.GetRpc() == nil {
		t.Fatalf("got %v, want the echo reply (no reply to a Send)", fr)
	}
	for i := 0; i < 5; i++ {
		in := <-got
		if in.user != sess.UserId || in.payload != fmt.Sprintf("move-%d", i) {
			t.Fatalf("input %d: %+v", i, in)
		}
	}
	select {
	case in := <-got:
		t.Fatalf("input over the budget was handled: %+v", in)
	default:
	}
	// The budget refills with time.
	clk.Advance(time.Second)
	c.send(sendFrame("test.input", "later"))
	if in := <-got; in.payload != "later" {
		t.Fatalf("after a refill: %+v", in)
	}
	// An unknown handler is refused with cid 0.
	c.send(sendFrame("no.such", "x"))
	if fr := c.mustRecv(); fr.Cid != 0 || errCode(fr) != realtimev1.ErrorCode_ERROR_CODE_UNKNOWN_RPC {
		t.Fatalf("unknown message handler: %v", fr)
	}
}

// TestAck hands acknowledged ids to the ack handler; a bad Ack is refused.
func TestAck(t *testing.T) {
	acked := make(chan []string, 10)
	reg := gateway.NewRegistry()
	if err := reg.HandleAck(func(_ context.Context, c gateway.Call, ids []string) { acked <- ids }); err != nil {
		t.Fatal(err)
	}
	n := taisentest.StartNode(t, taisentest.Options{RPC: reg})
	sess := login(t, n, "device-acks-0001")
	c, _ := open(t, n, sess.Token, "", 0)
	if _, err := n.Gateway().Send(context.Background(), sess.UserId, gateway.Message{Kind: "inbox", Payload: []byte("gift"), ID: "item-1"}); err != nil {
		t.Fatal(err)
	}
	fr := c.mustRecv()
	if p := fr.GetPush(); p == nil || p.Id != "item-1" {
		t.Fatalf("got %v, want push with id item-1", fr)
	}
	c.send(ackFrame("item-1"))
	if ids := <-acked; len(ids) != 1 || ids[0] != "item-1" {
		t.Fatalf("acked %v", ids)
	}
	c.send(ackFrame(strings.Repeat("x", 129)))
	if fr := c.mustRecv(); fr.Cid != 0 || errCode(fr) != realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST {
		t.Fatalf("oversized ack id: %v", fr)
	}
}

// TestSessionHooks follows one user through login, drop, resume,
// replacement and logout as the hooks see it.
func TestSessionHooks(t *testing.T) {
	events := make(chan gateway.SessionEvent, 64)
	n := taisentest.StartNode(t, taisentest.Options{OnSession: func(ev gateway.SessionEvent) { events <- ev }})
	next := func(want gateway.SessionEventKind) gateway.SessionEvent {
		t.Helper()
		select {
		case ev := <-events:
			if ev.Kind != want {
				t.Fatalf("event %v (%+v), want %v", ev.Kind, ev, want)
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("no %v event", want)
		}
		return gateway.SessionEvent{}
	}
	sess := login(t, n, "device-hooks-001")
	c, w := open(t, n, sess.Token, "", 0)
	if ev := next(gateway.SessionAttached); ev.SessionID != w.SessionId || ev.UserID != sess.UserId {
		t.Fatalf("attached %+v", ev)
	}
	c.c.Close()
	next(gateway.SessionDetached)
	c2, _ := open(t, n, sess.Token, w.SessionId, 0)
	next(gateway.SessionResumed)
	c3, w3 := open(t, n, sess.Token, "", 0) // another device: replaces it
	first := <-events
	second := <-events
	// The new session goes live before the old one is told (the kick
	// comes from the claim), in either order the two events are there.
	if first.Kind == gateway.SessionAttached {
		first, second = second, first
	}
	if first.Kind != gateway.SessionEnded || first.Cause != gateway.EndReplaced || first.SessionID != w.SessionId {
		t.Fatalf("old session: %+v, want ended (replaced)", first)
	}
	if second.Kind != gateway.SessionAttached || second.SessionID != w3.SessionId {
		t.Fatalf("new session: %+v, want attached", second)
	}
	c2.expectClose() // its session had ended: no detached event for it
	cid := c3.request(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Logout{Logout: &realtimev1.Logout{}}})
	if fr := c3.mustRecv(); fr.Cid != cid || fr.GetLogout() == nil {
		t.Fatalf("logout: %v", fr)
	}
	if ev := next(gateway.SessionEnded); ev.Cause != gateway.EndLogout || ev.SessionID != w3.SessionId {
		t.Fatalf("after logout: %+v", ev)
	}
}

// TestTypedPayloads: a typed operation and a typed push reach a binary
// socket as protobuf and a JSON socket as protojson.
func TestTypedPayloads(t *testing.T) {
	reg := gateway.NewRegistry()
	if err := gateway.RegisterTyped(reg, "test.ping", func(_ context.Context, c gateway.Call, req *realtimev1.Ping) (*realtimev1.Pong, error) {
		return &realtimev1.Pong{ClientTimeMs: req.ClientTimeMs, ServerTimeMs: 7}, nil
	}); err != nil {
		t.Fatal(err)
	}
	n := taisentest.StartNode(t, taisentest.Options{RPC: reg})
	for _, format := range []string{"", "format=json"} {
		sess := login(t, n, "device-typed-"+map[string]string{"": "bin", "format=json": "json"}[format])
		c := dial(t, n, format)
		cid := c.request(tokenHello(sess.Token, "", 0))
		if fr := c.mustRecv(); fr.Cid != cid || fr.GetWelcome() == nil {
			t.Fatalf("hello: %v", fr)
		}
		var payload []byte
		if format == "" {
			payload, _ = proto.Marshal(&realtimev1.Ping{ClientTimeMs: 42})
		} else {
			payload = []byte(`{"clientTimeMs":"42"}`)
		}
		cid = c.request(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "test.ping", Payload: payload}}})
		fr := c.mustRecv()
		if fr.Cid != cid || fr.GetRpc() == nil {
			t.Fatalf("%q: reply %v", format, fr)
		}
		got := &realtimev1.Pong{}
		if format == "" {
			err := proto.Unmarshal(fr.GetRpc().Payload, got)
			if err != nil || got.ClientTimeMs != 42 || got.ServerTimeMs != 7 {
				t.Fatalf("binary reply %v %v", got, err)
			}
		} else if s := string(fr.GetRpc().Payload); !strings.Contains(s, `"clientTimeMs":"42"`) {
			t.Fatalf("json reply payload %s", s)
		}
		// A push with a typed payload.
		pb, _ := proto.Marshal(&realtimev1.Pong{ServerTimeMs: 9})
		if _, err := n.Gateway().Send(context.Background(), sess.UserId, gateway.Message{Kind: "typed", Payload: pb, PayloadType: gateway.TypeName(&realtimev1.Pong{})}); err != nil {
			t.Fatal(err)
		}
		p := c.mustRecv().GetPush()
		if p == nil || p.PayloadType != "taisen.realtime.v1.Pong" {
			t.Fatalf("push %v", p)
		}
		if format == "" && string(p.Payload) != string(pb) {
			t.Fatalf("binary push payload %x", p.Payload)
		}
		if format != "" && !strings.Contains(string(p.Payload), `"serverTimeMs":"9"`) {
			t.Fatalf("json push payload %s", p.Payload)
		}
		// A payload that does not decode is refused.
		cid = c.request(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Rpc{Rpc: &realtimev1.RpcRequest{Name: "test.ping", Payload: []byte{0xff, 0xff}}}})
		if fr := c.mustRecv(); fr.Cid != cid || errCode(fr) != realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST {
			t.Fatalf("bad payload: %v", fr)
		}
	}
}

// TestSendMany delivers to users on two nodes and one offline user with
// one request per node; every online player gets the push.
func TestSendMany(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	var users []string
	var conns []*tconn
	for i, n := range []*taisentest.Node{a, b, a, b, a} {
		sess := login(t, n, fmt.Sprintf("device-sendmany-%d", i))
		c, _ := open(t, n, sess.Token, "", 0)
		users = append(users, sess.UserId)
		conns = append(conns, c)
	}
	offline := login(t, a, "device-sendmany-off")
	all := append(append([]string(nil), users...), offline.UserId)
	for round := 1; round <= 2; round++ {
		seqs, errs := b.Gateway().SendMany(context.Background(), all, gateway.Message{Kind: "bulk", Payload: []byte{byte(round)}})
		for i := range users {
			if errs[i] != nil || seqs[i] != uint64(round) {
				t.Fatalf("round %d user %d: seq %d err %v", round, i, seqs[i], errs[i])
			}
			fr := conns[i].mustRecv()
			if p := fr.GetPush(); p == nil || p.Seq != uint64(round) || p.Kind != "bulk" {
				t.Fatalf("round %d user %d: got %v", round, i, fr)
			}
		}
		if !errors.Is(errs[len(users)], gateway.ErrOffline) {
			t.Fatalf("offline user: %v", errs[len(users)])
		}
	}
}
