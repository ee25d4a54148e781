// Package tictactoe is tic-tac-toe as a taisen game: two players, turns,
// and a turn clock that forfeits a player who does not move in time. It is
// the walkthrough of docs/games.md: every rule is in Apply, the turn clock
// is the game's own timer, and a bad move is rejected with a reason the
// player sees.
//
// Protocol: a client sends the action "move" with the JSON payload
// {"cell": 0..8} (cells row by row). The room sends "start" {"turn",
// "turn_ms"} once both players joined, "moved" {"seat", "cell", "next"}
// after every move, "board" (the whole State) to a player who reconnects,
// and ends with a Result, also broadcast as "over".
package tictactoe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taisen-dev/taisen/game"
)

// Name is the game's registered name.
const Name = "tictactoe"

// DefaultTurnTime is how long a player has for a move when the room's
// params do not say.
const DefaultTurnTime = 30 * time.Second

// turnTimer is the name of the turn clock's timer.
const turnTimer = "turn"

// Params are the room parameters (JSON, optional).
type Params struct {
	// TurnSeconds is the time per move, 1 to 3600; 0 means
	// DefaultTurnTime.
	TurnSeconds int `json:"turn_seconds"`
}

// State is a game of tic-tac-toe. It is a value: Apply changes its copy.
type State struct {
	// Board holds 0 for an empty cell, 1 for seat 0's mark, 2 for seat 1's,
	// row by row.
	Board [9]int8 `json:"board"`
	// Turn is the seat to move.
	Turn game.Seat `json:"turn"`
	// Joined says which seats have joined; play starts when both have.
	Joined [2]bool `json:"joined"`
	// Started is set when both players have joined.
	Started bool `json:"started"`
	// TurnTime is the time per move.
	TurnTime time.Duration `json:"turn_time"`
}

// Move is the payload of a "move" action.
type Move struct {
	// Cell is 0 to 8, row by row.
	Cell int `json:"cell"`
}

// Result is the room's result, JSON-encoded in its End effect.
type Result struct {
	// Winner is the winning seat, or -1 when nobody won.
	Winner game.Seat `json:"winner"`
	// Reason is "line", "draw", "timeout" (the loser's turn clock ran
	// out), "quit" (the loser left for good) or "abandoned" (a player left
	// before the start).
	Reason string `json:"reason"`
}

// Def is the game's definition; register it with game.New(tictactoe.Def).
var Def = game.Def[State]{
	Name:     Name,
	Settings: game.Settings{MinPlayers: 2, MaxPlayers: 2, Spectators: true},
	Init:     Init,
	Apply:    Apply,
	Summary:  Summary,
}

// Summary describes a game for an operator: the board as text, row by row
// ("X", "O", "."), and whose turn it is.
func Summary(st State) []byte {
	b := make([]byte, 0, 24)
	for i, c := range st.Board {
		if i > 0 && i%3 == 0 {
			b = append(b, '/')
		}
		b = append(b, ".XO"[c])
	}
	return fmt.Appendf(b, " turn %d", st.Turn)
}

// Init reads the params and returns the empty board.
func Init(_ *game.Context, setup game.Setup) (State, error) {
	p := Params{}
	if len(setup.Params) > 0 {
		if err := json.Unmarshal(setup.Params, &p); err != nil {
			return State{}, fmt.Errorf("params: %w", err)
		}
	}
	if p.TurnSeconds < 0 || p.TurnSeconds > 3600 {
		return State{}, fmt.Errorf("params: turn_seconds %d: want 1 to 3600", p.TurnSeconds)
	}
	st := State{TurnTime: DefaultTurnTime}
	if p.TurnSeconds > 0 {
		st.TurnTime = time.Duration(p.TurnSeconds) * time.Second
	}
	return st, nil
}

// Apply applies one input.
func Apply(ctx *game.Context, st State, in game.Input) (State, []game.Effect, error) {
	fx := ctx.Effects()
	switch in.Kind {
	case game.InputJoined:
		st.Joined[in.Seat] = true
		if st.Started || !st.Joined[0] || !st.Joined[1] {
			return st, fx, nil
		}
		st.Started = true
		fx = append(fx,
			game.Broadcast("start", mustJSON(map[string]int64{"turn": int64(st.Turn), "turn_ms": st.TurnTime.Milliseconds()})),
			game.Schedule(turnTimer, st.TurnTime))
		return st, fx, nil

	case game.InputReconnected:
		return st, append(fx, game.SendSeats("board", mustJSON(st), in.Seat)), nil

	case game.InputLeft:
		if !in.Reason.Gone() {
			return st, fx, nil // the seat is held; the turn clock keeps running
		}
		if !st.Started {
			return st, end(fx, Result{Winner: -1, Reason: "abandoned"}), nil
		}
		return st, end(fx, Result{Winner: 1 - in.Seat, Reason: "quit"}), nil

	case game.InputTimer:
		// Only the turn clock exists: the player to move ran out of time.
		return st, end(fx, Result{Winner: 1 - st.Turn, Reason: "timeout"}), nil

	case game.InputAction:
		return move(st, fx, in)
	}
	return st, fx, nil
}

func move(st State, fx []game.Effect, in game.Input) (State, []game.Effect, error) {
	if in.Type != "move" {
		return st, nil, game.Rejectf("unknown action %q", in.Type)
	}
	if !st.Started {
		return st, nil, game.Reject("the game has not started")
	}
	if in.Seat != st.Turn {
		return st, nil, game.Reject("not your turn")
	}
	m, err := DecodeMove(in.Payload)
	if err != nil {
		return st, nil, game.Rejectf("bad move: %v", err)
	}
	if st.Board[m.Cell] != 0 {
		return st, nil, game.Rejectf("cell %d is taken", m.Cell)
	}
	st.Board[m.Cell] = int8(in.Seat) + 1
	st.Turn = 1 - in.Seat
	fx = append(fx, game.Broadcast("moved", mustJSON(map[string]int{"seat": int(in.Seat), "cell": m.Cell, "next": int(st.Turn)})))
	switch {
	case wins(st.Board, int8(in.Seat)+1):
		return st, end(fx, Result{Winner: in.Seat, Reason: "line"}), nil
	case full(st.Board):
		return st, end(fx, Result{Winner: -1, Reason: "draw"}), nil
	}
	// A new turn: Schedule replaces the pending turn timer.
	return st, append(fx, game.Schedule(turnTimer, st.TurnTime)), nil
}

// end broadcasts the result and ends the room with it; ending also drops
// the turn timer.
func end(fx []game.Effect, r Result) []game.Effect {
	b := mustJSON(r)
	return append(fx, game.Broadcast("over", b), game.End(b))
}

var lines = [8][3]int{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {0, 3, 6}, {1, 4, 7}, {2, 5, 8}, {0, 4, 8}, {2, 4, 6}}

func wins(b [9]int8, mark int8) bool {
	for _, l := range lines {
		if b[l[0]] == mark && b[l[1]] == mark && b[l[2]] == mark {
			return true
		}
	}
	return false
}

func full(b [9]int8) bool {
	for _, c := range b {
		if c == 0 {
			return false
		}
	}
	return true
}

// maxMovePayload bounds a move payload before it is decoded.
const maxMovePayload = 64

// DecodeMove decodes a "move" payload from a client: exactly one JSON
// object {"cell": n} with n from 0 to 8, nothing else.
func DecodeMove(b []byte) (Move, error) {
	if len(b) > maxMovePayload {
		return Move{}, fmt.Errorf("payload of %d bytes, want at most %d", len(b), maxMovePayload)
	}
	var raw struct {
		Cell *int `json:"cell"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return Move{}, fmt.Errorf("want {\"cell\": 0..8}: %w", err)
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return Move{}, errors.New("want one JSON object and nothing after it")
	}
	if raw.Cell == nil {
		return Move{}, errors.New("cell is missing")
	}
	if *raw.Cell < 0 || *raw.Cell > 8 {
		return Move{}, fmt.Errorf("cell %d: want 0 to 8", *raw.Cell)
	}
	return Move{Cell: *raw.Cell}, nil
}

// mustJSON encodes values this package builds, which always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
