package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/bus/natsbus"
	"github.com/taisen-dev/taisen/internal/wire"
)

// These tests look inside the gateway (its session table, node workers
// and socket writes) with a real embedded NATS and real TCP sockets; the
// package's external tests cover what a client sees of a whole node.

// userIsToken accepts any non-empty token as the id of the user it names.
type userIsToken struct{}

func (userIsToken) Authenticate(context.Context, *apiv1.AuthenticateRequest, string) (*apiv1.AuthenticateResponse, error) {
	return nil, errors.New("credentials are not accepted in these tests")
}

func (userIsToken) VerifyToken(tok string) (Identity, error) {
	if tok == "" {
		return Identity{}, errors.New("empty token")
	}
	return Identity{UserID: tok, Username: tok}, nil
}

// startNATS starts an in-process NATS server (no TCP listener).
func startNATS(t *testing.T) *natsbus.Server {
	t.Helper()
	srv, err := natsbus.StartServer(context.Background(), natsbus.ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start NATS: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// connectBus opens a connection of its own to srv, as each node has.
func connectBus(t *testing.T, srv *natsbus.Server, name string) *natsbus.Bus {
	t.Helper()
	b, err := natsbus.Connect(context.Background(), natsbus.Config{Server: srv, Name: name})
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// startGateway starts a gateway named nodeID on b; it closes with the test.
func startGateway(t *testing.T, nodeID string, b bus.Bus) *Gateway {
	t.Helper()
	g, err := New(Config{NodeID: nodeID}, Deps{Bus: b, Auth: userIsToken{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// idleGateway builds a gateway that is not started: no bus, no engine,
// only the session table and the goroutines its sockets spawn.
func idleGateway(t *testing.T, cfg Config) *Gateway {
	t.Helper()
	cfg.NodeID = "idle"
	g, err := New(cfg, Deps{Bus: nodeBusUnused{}, Auth: userIsToken{}})
	if err != nil {
		t.Fatal(err)
	}
	g.baseCtx, g.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() {
		g.cancel()
		g.wg.Wait()
	})
	return g
}

// nodeBusUnused is the bus of a gateway whose tests never reach it.
type nodeBusUnused struct{ bus.Bus }

// interceptBus hands every node request to intercept before the gateway
// sees it: intercept returns the message to handle (m, or one wrapping
// it), or nil to swallow it unanswered, as a node that stopped answering
// would.
type interceptBus struct {
	bus.Bus
	intercept func(req *clusterv1.NodeRequest, m *bus.Msg) *bus.Msg
}

func (b interceptBus) Subscribe(subject string, h bus.Handler) (bus.Subscription, error) {
	return b.Bus.Subscribe(subject, func(m *bus.Msg) {
		req := &clusterv1.NodeRequest{}
		if err := proto.Unmarshal(m.Data, req); err == nil {
			if m = b.intercept(req, m); m == nil {
				return
			}
		}
		h(m)
	})
}

// wsClient is a bare WebSocket client of a gateway served by httptest.
type wsClient struct {
	t testing.TB
	c net.Conn
	r io.Reader
}

func dialGateway(t *testing.T, srv *httptest.Server, query string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{}.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?"+query)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	return &wsClient{t: t, c: conn, r: r}
}

// next reads the next server frame; a close frame is returned as
// wsutil.ClosedError.
func (w *wsClient) next(timeout time.Duration) (*realtimev1.ServerFrame, error) {
	_ = w.c.SetReadDeadline(time.Now().Add(timeout))
	data, _, err := wsutil.ReadServerData(struct {
		io.Reader
		io.Writer
	}{w.r, io.Discard})
	if err != nil {
		return nil, err
	}
	return wire.DecodeServerFrame(wire.Binary, data)
}

func (w *wsClient) welcome(timeout time.Duration) *realtimev1.Welcome {
	w.t.Helper()
	fr, err := w.next(timeout)
	if err != nil || fr.GetWelcome() == nil {
		w.t.Fatalf("got %v %v, want welcome", fr, err)
	}
	return fr.GetWelcome()
}

func (w *wsClient) push() *realtimev1.Push {
	w.t.Helper()
	fr, err := w.next(5 * time.Second)
	if err != nil || fr.GetPush() == nil {
		w.t.Fatalf("got %v %v, want push", fr, err)
	}
	return fr.GetPush()
}

// closed reads until the server closes the socket and returns the close
// status and the Disconnect notice; it fails the test when the socket is
// still open after timeout.
func (w *wsClient) closed(timeout time.Duration) (ws.StatusCode, *realtimev1.Disconnect) {
	w.t.Helper()
	var notice *realtimev1.Disconnect
	deadline := time.Now().Add(timeout)
	for {
		fr, err := w.next(time.Until(deadline))
		var ce wsutil.ClosedError
		switch {
		case errors.As(err, &ce):
			return ce.Code, notice
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return 0, notice
		case err != nil:
			w.t.Fatalf("socket still open %v later (%v)", timeout, err)
		case fr.GetDisconnect() != nil:
			notice = fr.GetDisconnect()
		}
	}
}

// TestTakeOverUnansweredEndsOldCopy resumes a session on node B while
// node A, which holds it, does not answer the TakeOver (it answers
// everything else). B must start a fresh session and A's copy must not
// live on beside it: A's socket is told replaced at once (not at A's next
// record refresh, SessionTTL/3 later), and pushes reach the new socket.
func TestTakeOverUnansweredEndsOldCopy(t *testing.T) {
	srv := startNATS(t)
	busA := interceptBus{Bus: connectBus(t, srv, "node-a"), intercept: func(req *clusterv1.NodeRequest, m *bus.Msg) *bus.Msg {
		if req.GetTakeOver() != nil {
			return nil
		}
		return m
	}}
	a := startGateway(t, "node-a", busA)
	b := startGateway(t, "node-b", connectBus(t, srv, "node-b"))
	httpA, httpB := httptest.NewServer(a), httptest.NewServer(b)
	t.Cleanup(httpA.Close)
	t.Cleanup(httpB.Close)
	ctx := context.Background()

	old := dialGateway(t, httpA, "token=user-1")
	w := old.welcome(5 * time.Second)
	if seq, err := b.Deliver(ctx, "user-1", "before", nil); err != nil || seq != 1 {
		t.Fatalf("deliver before the resume: %d %v", seq, err)
	}
	if p := old.push(); p.Kind != "before" {
		t.Fatalf("old socket got %v", p)
	}

	fresh := dialGateway(t, httpB, "token=user-1&resume="+w.SessionId+"&last_seq=1")
	w2 := fresh.welcome(10 * time.Second) // after the TakeOver timed out
	if w2.Resumed || w2.SessionId == w.SessionId || w2.NodeId != "node-b" {
		t.Fatalf("welcome on B %v, want a fresh session (A never handed over)", w2)
	}
	code, d := old.closed(3 * time.Second)
	if code != ws.StatusCode(wire.CloseCode(realtimev1.CloseReason_CLOSE_REASON_REPLACED)) || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_REPLACED {
		t.Errorf("old socket closed with %d %v, want replaced", code, d)
	}
	for _, g := range []*Gateway{a, b} {
		kind := "after-via-" + g.cfg.NodeID
		seq, err := g.Deliver(ctx, "user-1", kind, nil)
		if err != nil {
			t.Fatalf("deliver via %s: %v", g.cfg.NodeID, err)
		}
		if p := fresh.push(); p.Kind != kind || p.Seq != seq {
			t.Fatalf("new socket got %v, want %s seq %d", p, kind, seq)
		}
	}
	rec, err := a.Lookup(ctx, "user-1")
	if err != nil || rec.SessionId != w2.SessionId || rec.NodeId != "node-b" {
		t.Errorf("record %v %v, want session %s on node-b", rec, err, w2.SessionId)
	}
}

// TestLogoutRacingRefreshLeavesNoRecord runs a session's record refresh
// and its logout at the same moment, many times: whichever reaches the
// bus first, the user must read as offline afterwards (a refresh that
// lost the race must not re-create the record, and a logout must not
// leave a refreshed one behind).
func TestLogoutRacingRefreshLeavesNoRecord(t *testing.T) {
	g := startGateway(t, "node-1", connectBus(t, startNATS(t), "node-1"))
	ctx := context.Background()
	const user = "user-racer"
	for round := 0; round < 200; round++ {
		s, err := g.establish(ctx, Identity{UserID: user, Username: user}, "", 0)
		if err != nil {
			t.Fatalf("round %d: establish: %v", round, err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_ = g.refresh(ctx, s)
		}()
		go func() {
			defer wg.Done()
			<-start
			g.logout(ctx, s)
		}()
		close(start)
		wg.Wait()
		if rec, err := g.Lookup(ctx, user); !errors.Is(err, ErrOffline) {
			t.Fatalf("round %d: after logout the user reads online: record %v, %v", round, rec, err)
		}
	}
}

// TestPushesToEstablishingSession checks what the sender of a push to a
// session still being established learns: nothing until the session's
// fate is known, then "not delivered" when its establish fails (here a
// newer login kicks it first; Deliver then reports offline instead of
// dropping the push), or the push's seq, in arrival order, once it is
// live.
func TestPushesToEstablishingSession(t *testing.T) {
	g := idleGateway(t, Config{Engine: "goroutine"})
	deliver := func(s *Session, payload string) <-chan *clusterv1.DeliverReply {
		got := make(chan *clusterv1.DeliverReply, 2)
		g.handleDeliver(&clusterv1.Deliver{UserId: s.userID, SessionId: s.id, Kind: "k", Payload: []byte(payload)},
			func(r *clusterv1.DeliverReply) { got <- r })
		return got
	}
	establishing := func(user string) *Session {
		s := &Session{id: newSessionID(), userID: user, state: sessEstablishing}
		g.register(s)
		return s
	}
	answered := func(ch <-chan *clusterv1.DeliverReply) *clusterv1.DeliverReply {
		select {
		case r := <-ch:
			return r
		default:
			return nil
		}
	}

	t.Run("establish fails", func(t *testing.T) {
		s := establishing("user-fails")
		var replies []<-chan *clusterv1.DeliverReply
		for i := 1; i <= 3; i++ {
			replies = append(replies, deliver(s, fmt.Sprintf("p%d", i)))
		}
		for i, ch := range replies {
			if r := answered(ch); r != nil {
				t.Fatalf("push %d answered %v before the session's fate was known", i+1, r)
			}
		}
		// A newer login kicks it before it goes live: its establish fails.
		if r := g.handleKick(&clusterv1.Kick{UserId: s.userID, SessionId: s.id, Reason: realtimev1.CloseReason_CLOSE_REASON_REPLACED}); !r.Found {
			t.Fatal("the kick did not find the session being established")
		}
		if err := g.activate(s); err == nil {
			t.Fatal("a session kicked while being established went live")
		}
		for i, ch := range replies {
			r := answered(ch)
			if r == nil || r.Delivered || r.Seq != 0 {
				t.Fatalf("push %d to a session that failed: reply %v, want not delivered", i+1, r)
			}
		}
		if r := answered(deliver(s, "late")); r == nil || r.Delivered {
			t.Fatalf("push after the failure: %v, want not delivered at once", r)
		}
	})

	t.Run("establish succeeds", func(t *testing.T) {
		s := establishing("user-lives")
		var replies []<-chan *clusterv1.DeliverReply
		for i := 1; i <= 3; i++ {
			replies = append(replies, deliver(s, fmt.Sprintf("p%d", i)))
		}
		if err := g.activate(s); err != nil {
			t.Fatal(err)
		}
		for i, ch := range replies {
			r := answered(ch)
			if r == nil || !r.Delivered || r.Seq != uint64(i+1) {
				t.Fatalf("push %d: reply %v, want delivered with seq %d", i+1, r, i+1)
			}
		}
		if r := answered(deliver(s, "p4")); r == nil || !r.Delivered || r.Seq != 4 {
			t.Fatalf("push once live: %v, want seq 4 at once", r)
		}
		s.mu.Lock()
		kept, complete := s.after(0)
		s.mu.Unlock()
		if !complete || len(kept) != 4 {
			t.Fatalf("kept %d pushes (complete %v), want 4", len(kept), complete)
		}
		for i, p := range kept {
			if want := fmt.Sprintf("p%d", i+1); p.Seq != uint64(i+1) || string(p.Payload) != want {
				t.Fatalf("kept push %d: seq %d %q, want seq %d %q", i, p.Seq, p.Payload, i+1, want)
			}
		}
	})
}

// TestBusyUserDoesNotDelayOthers blocks the handling of one user's node
// request (its reply does not go out) and checks that another user's
// push through the bus is delivered meanwhile, and that the busy user's
// later push is answered, in order, once the first one is.
func TestBusyUserDoesNotDelayOthers(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	busy := interceptBus{Bus: connectBus(t, startNATS(t), "node-1"), intercept: func(req *clusterv1.NodeRequest, m *bus.Msg) *bus.Msg {
		if req.GetDeliver().GetKind() != "stuck" {
			return m
		}
		return bus.NewMsg(m.Subject, m.Data, func(out []byte) error {
			close(entered)
			<-release
			return m.Respond(out)
		})
	}}
	g := startGateway(t, "node-1", busy)
	t.Cleanup(unblock) // before the gateway closes
	ctx := context.Background()

	// Two users whose requests go to different workers.
	const userA = "user-a"
	worker := func(user string) uint64 { return maphash.String(g.seed, user) % uint64(len(g.nodeq)) }
	userB := ""
	for i := 0; userB == ""; i++ {
		if u := fmt.Sprintf("user-b%d", i); worker(u) != worker(userA) {
			userB = u
		}
	}
	for _, u := range []string{userA, userB} {
		if _, err := g.establish(ctx, Identity{UserID: u, Username: u}, "", 0); err != nil {
			t.Fatal(err)
		}
	}

	type result struct {
		seq uint64
		err error
	}
	deliverA := func(kind string) <-chan result {
		ch := make(chan result, 1)
		go func() {
			seq, err := g.Deliver(ctx, userA, kind, nil)
			ch <- result{seq, err}
		}()
		return ch
	}
	stuck := deliverA("stuck")
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("user A's push never reached the node")
	}
	// A's worker is busy answering A's push; B's push must not wait for it.
	bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if seq, err := g.Deliver(bctx, userB, "other", nil); err != nil || seq != 1 {
		t.Fatalf("push to user B while user A's request is busy: seq %d, %v", seq, err)
	}
	later := deliverA("later")
	unblock()
	for i, ch := range []<-chan result{stuck, later} {
		select {
		case r := <-ch:
			if r.err != nil || r.seq != uint64(i+1) {
				t.Fatalf("user A's push %d: seq %d, %v; want seq %d", i+1, r.seq, r.err, i+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("user A's push %d never answered", i+1)
		}
	}
}

// TestSpawnReusesWorkers: functions handed to spawn all run at once, never
// queued behind busy workers, before and after workers turn idle; once the
// gateway is stopping spawn refuses work, and the idle workers end (the
// cleanup's Wait returns; goleak checks at the end of the package).
func TestSpawnReusesWorkers(t *testing.T) {
	g := idleGateway(t, Config{})
	for round := range 3 {
		const n = maxIdleWorkers + 50
		release := make(chan struct{})
		var started, done sync.WaitGroup
		started.Add(n)
		done.Add(n)
		for range n {
			if !g.spawn(func() {
				started.Done()
				<-release
				done.Done()
			}) {
				t.Fatalf("round %d: spawn refused work", round)
			}
		}
		started.Wait() // every function runs while all the others block
		close(release)
		done.Wait()
	}
	g.lifeMu.Lock()
	g.stopping = true
	g.lifeMu.Unlock()
	if g.spawn(func() { t.Error("ran after stopping") }) {
		t.Error("spawn accepted work once stopping")
	}
}
