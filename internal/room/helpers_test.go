package room

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/taisen-dev/taisen/examples/arena"
	"github.com/taisen-dev/taisen/examples/tictactoe"
	"github.com/taisen-dev/taisen/game"
	"github.com/taisen-dev/taisen/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// got is one message delivered to one user.
type got struct {
	user string
	m    Message
}

// recorder is a Deliverer that records every message; a message whose
// type is in hold blocks the room until release is closed.
type recorder struct {
	ch      chan got
	mu      sync.Mutex
	backlog []got
	hold    string
	held    chan struct{}
	release chan struct{}
}

func newRecorder() *recorder {
	return &recorder{ch: make(chan got, 1<<16), held: make(chan struct{}, 1), release: make(chan struct{})}
}

func (d *recorder) Deliver(users []string, m Message) {
	m.Payload = append([]byte(nil), m.Payload...)
	for _, u := range users {
		d.ch <- got{u, m}
	}
	if d.hold != "" && m.Type == d.hold {
		d.held <- struct{}{}
		<-d.release
	}
}

// wait returns the first message to user matching pred, keeping the
// others for later waits.
func (d *recorder) wait(t testing.TB, user string, what string, pred func(Message) bool) Message {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, g := range d.backlog {
		if g.user == user && pred(g.m) {
			d.backlog = append(d.backlog[:i], d.backlog[i+1:]...)
			return g.m
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case g := <-d.ch:
			if g.user == user && pred(g.m) {
				return g.m
			}
			d.backlog = append(d.backlog, g)
		case <-timeout:
			var seen []string
			for _, g := range d.backlog {
				seen = append(seen, fmt.Sprintf("%s: %+v", g.user, g.m))
			}
			t.Fatalf("%s never received %s; received:\n%s", user, what, strings.Join(seen, "\n"))
			return Message{}
		}
	}
}

func (d *recorder) game(t testing.TB, user, typ, payload string) {
	t.Helper()
	d.wait(t, user, fmt.Sprintf("%s %q", typ, payload), func(m Message) bool {
		return m.Kind == KindGame && m.Type == typ && (payload == "" || string(m.Payload) == payload)
	})
}

func (d *recorder) ended(t testing.TB, user string) Message {
	t.Helper()
	return d.wait(t, user, "the end", func(m Message) bool { return m.Kind == KindEnded })
}

// sink is an EndedSink that records results.
type sink struct{ ch chan Result }

func (s *sink) RoomEnded(_ context.Context, r Result) error {
	s.ch <- r
	return nil
}

func (s *sink) wait(t testing.TB) Result {
	t.Helper()
	select {
	case r := <-s.ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no room ended")
		return Result{}
	}
}

// echo is a test game: it broadcasts every input it gets as "in" with the
// input's text; actions "boom" (panic), "fail" (error), "bad" (reject),
// "loop" (a timer rescheduling itself with no delay), "end" (end with the
// payload), "hold" (a message the recorder may block on).
type echoState struct{ N int }

func echoApply(ctx *game.Context, st echoState, in game.Input) (echoState, []game.Effect, error) {
	fx := ctx.Effects()
	st.N++
	if in.Kind == game.InputAction {
		switch in.Type {
		case "boom":
			panic("boom on purpose")
		case "fail":
			return st, nil, errors.New("the rules are broken")
		case "bad":
			return st, nil, game.Reject("not now")
		case "loop":
			return st, append(fx, game.Schedule("loop", 0)), nil
		case "end":
			return st, append(fx, game.End(in.Payload)), nil
		case "hold":
			return st, append(fx, game.SendSeats("hold", nil, in.Seat)), nil
		case "later":
			return st, append(fx, game.Schedule("later", 3*time.Second)), nil
		}
	}
	if in.Kind == game.InputTimer && in.Timer == "loop" {
		return st, append(fx, game.Schedule("loop", 0)), nil
	}
	if in.Kind == game.InputTick {
		return st, append(fx, game.Broadcast("tick", fmt.Appendf(nil, "%d", in.Tick)).Ephemeral()), nil
	}
	return st, append(fx, game.Broadcast("in", []byte(in.String()))), nil
}

var echoGame = game.MustNew(game.Def[echoState]{
	Name:     "echo",
	Settings: game.Settings{MinPlayers: 1, MaxPlayers: 4, Spectators: true, ReconnectGrace: 5 * time.Second},
	Init:     func(*game.Context, game.Setup) (echoState, error) { return echoState{}, nil },
	Apply:    echoApply,
	Summary:  func(s echoState) []byte { return fmt.Appendf(nil, "n=%d", s.N) },
})

var tickGame = game.MustNew(game.Def[echoState]{
	Name:     "ticker",
	Settings: game.Settings{TickRate: 10, MinPlayers: 1, MaxPlayers: 2},
	Init:     func(*game.Context, game.Setup) (echoState, error) { return echoState{}, nil },
	Apply:    echoApply,
})

type env struct {
	m     *Manager
	clock *clock.Fake
	d     *recorder
	sink  *sink
	reg   *prometheus.Registry
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	var games game.Registry
	for _, g := range []game.Game{echoGame, tickGame, game.MustNew(tictactoe.Def), game.MustNew(arena.Def)} {
		if err := games.Register(g); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{clock: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), d: newRecorder(),
		sink: &sink{ch: make(chan Result, 100)}, reg: prometheus.NewRegistry()}
	m, err := NewManager(cfg, Deps{Games: &games, Deliver: e.d, Ended: e.sink, Secret: testSecret, Clock: e.clock, Metrics: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return e
}

// create makes a room of g for users and joins all of them.
func (e *env) create(t testing.TB, g string, params string, users ...string) Created {
	t.Helper()
	c, err := e.m.Create(CreateRequest{Game: g, Params: []byte(params), Players: users, Labels: map[string]string{"mode": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) join(t testing.TB, tk SeatTicket) JoinInfo {
	t.Helper()
	info, err := e.m.Join(context.Background(), tk.Ticket, tk.User)
	if err != nil {
		t.Fatalf("join %s: %v", tk.User, err)
	}
	return info
}

func (e *env) input(t testing.TB, c Created, user, typ, payload string) {
	t.Helper()
	if err := e.m.Input(c.Room, user, typ, []byte(payload)); err != nil {
		t.Fatalf("input %s %s: %v", user, typ, err)
	}
}
