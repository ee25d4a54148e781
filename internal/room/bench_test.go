package room

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/examples/arena"
	"github.com/taisen-dev/taisen/game"
	"github.com/taisen-dev/taisen/internal/clock"
)

// signaller is a Deliverer that drops everything but signals messages of
// one type.
type signaller struct {
	typ string
	ch  chan struct{}
}

func (s *signaller) Deliver(_ []string, m Message) {
	if m.Type == s.typ {
		s.ch <- struct{}{}
	}
}

var countGame = game.MustNew(game.Def[int]{
	Name:     "count",
	Settings: game.Settings{MinPlayers: 1, MaxPlayers: 1},
	Init:     func(*game.Context, game.Setup) (int, error) { return 0, nil },
	Apply: func(ctx *game.Context, n int, in game.Input) (int, []game.Effect, error) {
		if in.Type == "sync" {
			return n, append(ctx.Effects(), game.SendSeats("sync", nil, in.Seat)), nil
		}
		return n + 1, nil, nil
	},
})

func benchManager(b *testing.B, c clock.Clock, d Deliverer, g game.Game) *Manager {
	var games game.Registry
	if err := games.Register(g); err != nil {
		b.Fatal(err)
	}
	m, err := NewManager(Config{MaxInputsPerInstant: 1 << 30}, Deps{Games: &games, Deliver: d, Secret: testSecret, Clock: c})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// BenchmarkMailbox measures inputs through one room: the sender refills
// the mailbox as fast as the room drains it.
func BenchmarkMailbox(b *testing.B) {
	s := &signaller{typ: "sync", ch: make(chan struct{}, 1)}
	m := benchManager(b, clock.Real(), s, countGame)
	c, err := m.Create(CreateRequest{Game: "count", Players: []string{"p"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Join(context.Background(), c.Tickets[0].Ticket, "p"); err != nil {
		b.Fatal(err)
	}
	payload := []byte("payload")
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for m.Input(c.Room, "p", "x", payload) != nil {
			runtime.Gosched()
		}
	}
	for m.Input(c.Room, "p", "sync", nil) != nil {
		runtime.Gosched()
	}
	<-s.ch
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "inputs/s")
}

// BenchmarkArenaTick measures one arena tick through the runtime: the
// clock moves one tick interval, the room wakes, applies the tick and
// hands the "pos" frame to the deliverer.
func BenchmarkArenaTick(b *testing.B) {
	fake := clock.NewFake(time.Unix(0, 0))
	s := &signaller{typ: "pos", ch: make(chan struct{}, 1)}
	m := benchManager(b, fake, s, game.MustNew(arena.Def))
	users := []string{"a", "b", "c", "d"}
	var roomID string
	start := func() {
		if roomID != "" {
			if err := m.End(context.Background(), roomID, "next round"); err != nil {
				b.Fatal(err)
			}
		}
		c, err := m.Create(CreateRequest{Game: arena.Name, Params: []byte(`{"duration_seconds":3600}`), Players: users})
		if err != nil {
			b.Fatal(err)
		}
		roomID = c.Room
		for _, tk := range c.Tickets {
			if _, err := m.Join(context.Background(), tk.Ticket, tk.User); err != nil {
				b.Fatal(err)
			}
			if err := m.Input(c.Room, tk.User, "move", []byte{0x03, 0xe8, 0xfc, 0x18}); err != nil {
				b.Fatal(err)
			}
		}
	}
	const round = 3000 * arena.TickRate // ticks per room, inside its hour
	interval := time.Second / arena.TickRate
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%round == 0 {
			b.StopTimer()
			start()
			b.StartTimer()
		}
		fake.Advance(interval)
		<-s.ch
	}
}
