package duel_test

import (
	"testing"

	"github.com/taisen-dev/taisen/examples/duel"
	"github.com/taisen-dev/taisen/game"
)

// BenchmarkPlay is one duel input through the game.Instance the runtime
// drives: decode the payload, validate, read the pinned catalog (decoded
// once per version), apply the card, draw, encode the messages.
func BenchmarkPlay(b *testing.B) {
	md := master(b, "v1", `[{"id":"strike","damage":1},{"id":"jab","damage":1}]`)
	g := game.MustNew(duel.Def)
	setup := game.Setup{Players: []game.Player{{Seat: 0, UserID: "a"}, {Seat: 1, UserID: "b"}}, Params: []byte(`{"hp":1000}`), Seed: 1}
	var (
		inst game.Instance
		seq  uint64
	)
	start := func() {
		var err error
		if inst, err = g.Start(setup, md); err != nil {
			b.Fatal(err)
		}
		seq = 0
		for s := range 2 {
			seq++
			inst.Apply(game.Entry{Seq: seq, Input: game.Joined(game.Seat(s))})
		}
	}
	start()
	payloads := map[string][]byte{"strike": playJSON("strike"), "jab": playJSON("jab")}
	b.ReportAllocs()
	for b.Loop() {
		st, _ := game.StateOf[duel.State](inst)
		if st.HP[0] <= 1 || st.HP[1] <= 1 {
			b.StopTimer()
			start()
			b.StartTimer()
			st, _ = game.StateOf[duel.State](inst)
		}
		seq++
		fx, err := inst.Apply(game.Entry{Seq: seq, Input: game.Action(st.Turn, "play", payloads[st.Hands[st.Turn][0]])})
		if err != nil || len(fx) != 2 {
			b.Fatal(fx, err)
		}
	}
}
