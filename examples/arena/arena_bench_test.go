package arena_test

import (
	"testing"

	"github.com/taisen-dev/taisen/examples/arena"
	"github.com/taisen-dev/taisen/game"
)

// BenchmarkTick is one 20 Hz tick of a room with 4 moving players, through
// the game.Instance the runtime drives: integrate, clamp, encode and
// broadcast the positions.
func BenchmarkTick(b *testing.B) {
	g := game.MustNew(arena.Def)
	players := make([]game.Player, arena.Seats)
	for i := range players {
		players[i] = game.Player{Seat: game.Seat(i), UserID: "u"}
	}
	inst, err := g.Start(game.Setup{Players: players, Params: []byte(`{"duration_seconds":3600}`)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	var seq, tick uint64
	apply := func(in game.Input) {
		seq++
		if _, err := inst.Apply(game.Entry{Seq: seq, At: arena.Def.Settings.TickTime(tick), Input: in}); err != nil {
			b.Fatal(err)
		}
	}
	join := func() {
		for s := range arena.Seats {
			apply(game.Joined(game.Seat(s)))
			apply(game.Action(game.Seat(s), "move", arena.EncodeMove(int16(1000*(s+1)), int16(-700*s))))
		}
	}
	join()
	const roundTicks = 3600 * arena.TickRate
	b.ReportAllocs()
	for b.Loop() {
		if tick == roundTicks-1 { // the next tick would end the round: start another
			b.StopTimer()
			inst, _ = g.Start(game.Setup{Players: players, Params: []byte(`{"duration_seconds":3600}`)}, nil)
			seq, tick = 0, 0
			join()
			b.StartTimer()
		}
		tick++
		seq++
		fx, err := inst.Apply(game.Entry{Seq: seq, At: arena.Def.Settings.TickTime(tick), Input: game.Tick(tick)})
		if err != nil || len(fx) != 1 {
			b.Fatal(fx, err)
		}
	}
}
