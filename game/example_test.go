package game_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/taisen-dev/taisen/game"
)

// guess is a small event-driven game: the room picks a secret number from
// its seeded RNG, players guess it, the first right guess wins, and the
// room ends after a minute without a winner.
type guess struct {
	Secret int `json:"secret"`
	Tries  int `json:"tries"`
}

var guessDef = game.Def[guess]{
	Name:     "guess",
	Settings: game.Settings{MinPlayers: 1, MaxPlayers: 4},
	Init: func(ctx *game.Context, _ game.Setup) (guess, error) {
		return guess{Secret: ctx.Rand().IntN(10)}, nil
	},
	Apply: func(ctx *game.Context, st guess, in game.Input) (guess, []game.Effect, error) {
		switch in.Kind {
		case game.InputJoined:
			if st.Tries == 0 {
				return st, []game.Effect{game.Schedule("deadline", time.Minute)}, nil
			}
		case game.InputAction:
			if in.Type != "guess" || len(in.Payload) != 1 || in.Payload[0] > 9 {
				return st, nil, game.Reject("send one byte, 0 to 9")
			}
			st.Tries++
			if int(in.Payload[0]) == st.Secret {
				return st, []game.Effect{
					game.Broadcast("won", []byte{byte(in.Seat)}),
					game.End([]byte(fmt.Sprintf("seat %d won after %d tries", in.Seat, st.Tries))),
				}, nil
			}
			return st, []game.Effect{game.SendSeats("wrong", nil, in.Seat)}, nil
		case game.InputTimer:
			return st, []game.Effect{game.End([]byte("nobody won"))}, nil
		}
		return st, nil, nil
	},
}

// A game is a Def over its state type; New checks it and erases the type,
// and the runtime drives the Game's Instances with log entries.
func Example() {
	g, err := game.New(guessDef)
	if err != nil {
		panic(err)
	}
	inst, err := g.Start(game.Setup{Players: []game.Player{{Seat: 0, UserID: "ann"}}, Seed: 42}, nil)
	if err != nil {
		panic(err)
	}
	st, _ := game.StateOf[guess](inst)
	entries := []game.Entry{
		{Seq: 1, Input: game.Joined(0)},
		{Seq: 2, At: time.Second, Input: game.Action(0, "guess", []byte{42})},
		{Seq: 3, At: 2 * time.Second, Input: game.Action(0, "guess", []byte{byte((st.Secret + 1) % 10)})},
		{Seq: 4, At: 3 * time.Second, Input: game.Action(0, "guess", []byte{byte(st.Secret)})},
	}
	for _, e := range entries {
		fx, err := inst.Apply(e)
		if reason, ok := game.IsRejection(err); ok {
			fmt.Printf("seq %d rejected: %s\n", e.Seq, reason)
			continue
		}
		for _, f := range fx {
			fmt.Printf("seq %d: %v\n", e.Seq, f)
		}
	}
	result, ended := inst.Ended()
	fmt.Printf("ended %v: %s\n", ended, result)
	// Output:
	// seq 1: schedule "deadline" after 1m0s
	// seq 2 rejected: send one byte, 0 to 9
	// seq 3: send to seats [0] type="wrong" payload=""
	// seq 4: send to players+spectators type="won" payload="\x00"
	// seq 4: end result="seat 0 won after 2 tries"
	// ended true: seat 0 won after 2 tries
}

// New rejects a definition with every problem it has.
func ExampleNew() {
	_, err := game.New(game.Def[guess]{Name: "guess", Settings: game.Settings{TickRate: 120, MinPlayers: 2, MaxPlayers: 1}})
	fmt.Println(err)
	// Output:
	// game "guess": tick rate 120 Hz: want 0 (event-driven) or 1 to 60
	// max players 1: want 2 to 1024
	// init function is nil
	// apply function is nil
}

// Reject refuses a player's input with the reason the player sees; the room
// goes on. Any other error ends the room.
func ExampleReject() {
	err := fmt.Errorf("move: %w", game.Reject("not your turn"))
	reason, ok := game.IsRejection(err)
	fmt.Println(reason, ok)
	_, ok = game.IsRejection(errors.New("board corrupted"))
	fmt.Println(ok)
	// Output:
	// not your turn true
	// false
}

// Instance.Next tells the runtime which timer or tick is due next; the
// runtime applies it at that clock reading.
func ExampleInstance_Next() {
	g := game.MustNew(guessDef)
	inst, _ := g.Start(game.Setup{Players: []game.Player{{Seat: 0, UserID: "ann"}}}, nil)
	inst.Apply(game.Entry{Seq: 1, Input: game.Joined(0)})
	at, in, _ := inst.Next()
	fmt.Println(at, in)
	fx, _ := inst.Apply(game.Entry{Seq: 2, At: at, Input: in})
	fmt.Println(fx[0])
	// Output:
	// 1m0s timer "deadline"
	// end result="nobody won"
}

// Load decodes a master data document once per version; every room that
// pinned the version shares the decoded value.
func ExampleLoad() {
	md := game.NewStatic("2026-11-30", map[string][]byte{
		"cards": []byte(`[{"id":"strike","damage":3}]`),
	})
	type card struct {
		ID     string `json:"id"`
		Damage int    `json:"damage"`
	}
	cards, err := game.Load[[]card](md, "cards")
	fmt.Println(md.Version(), cards, err)
	// Output:
	// 2026-11-30 [{strike 3}] <nil>
}
