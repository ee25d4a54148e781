// Package arena is a realtime taisen game: up to four players move avatars
// in a square arena, and the server is the authority on where everybody
// is. Players send the velocity they want; every tick (20 Hz) the game
// integrates positions, and broadcasts them as an ephemeral "pos" frame.
//
// Units are integers, so every machine computes the same positions: a
// position is in milli-units (the arena is Size × Size), a velocity in
// milli-units per second.
//
// Validation: a "move" payload that is not exactly 4 bytes is rejected. A
// velocity faster than MaxSpeed is not rejected but clamped to MaxSpeed in
// the same direction (clients round differently; an honest one must not be
// refused), and an avatar that reaches a wall stops at it: positions never
// leave [0, Size]. A client never sends positions, so it cannot teleport.
//
// Protocol: the action "move" carries vx, vy as two big-endian int16
// (milli-units per second). The room sends "pos" (ephemeral, every tick,
// see Frame) and ends after the params' duration with a Result: the
// distance each seat travelled, the winner travelled furthest.
package arena

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taisen-dev/taisen/game"
)

// Name is the game's registered name.
const Name = "arena"

// The arena's constants.
const (
	// TickRate is the simulation and broadcast rate, in Hz.
	TickRate = 20
	// Seats is the most players a room has.
	Seats = 4
	// Size is the arena's width and height, in milli-units.
	Size = 100_000
	// MaxSpeed is the fastest an avatar moves, in milli-units per second.
	MaxSpeed = 5_000
	// DefaultDuration is a round's length when the params do not say.
	DefaultDuration = 3 * time.Minute
)

// tickMillis is the time a tick advances, in milliseconds.
const tickMillis = 1000 / TickRate

// Params are the room parameters (JSON, optional).
type Params struct {
	// DurationSeconds is the round's length, 1 to 3600; 0 means
	// DefaultDuration.
	DurationSeconds int `json:"duration_seconds"`
}

// Avatar is one seat's avatar.
type Avatar struct {
	// X and Y are the position, 0 to Size.
	X int32 `json:"x"`
	Y int32 `json:"y"`
	// VX and VY are the velocity, |(VX, VY)| ≤ MaxSpeed.
	VX int32 `json:"vx"`
	VY int32 `json:"vy"`
	// Distance is how far the avatar travelled (sum of |dx| + |dy|).
	Distance int64 `json:"distance"`
	// Present is set while the player is in the room (joined and not
	// gone).
	Present bool `json:"present"`
}

// State is a round in the arena; a value, cheap to copy.
type State struct {
	// Players are the seats' avatars; only the first Seats are used.
	Players [Seats]Avatar `json:"players"`
	// Seats is the number of seated players.
	Seats int `json:"seats"`
	// Ends is the room clock reading at which the round ends.
	Ends time.Duration `json:"ends"`
}

// Result is the room's result, JSON-encoded in its End effect.
type Result struct {
	// Distance is how far each seat travelled, in milli-units.
	Distance []int64 `json:"distance"`
	// Winner is the seat that travelled furthest (the lowest seat on a
	// tie), -1 when every player left.
	Winner game.Seat `json:"winner"`
}

// Def is the game's definition.
var Def = game.Def[State]{
	Name:     Name,
	Settings: game.Settings{TickRate: TickRate, MinPlayers: 2, MaxPlayers: Seats, Spectators: true},
	Init:     Init,
	Apply:    Apply,
}

// spawn are the start positions, one corner region per seat.
var spawn = [Seats][2]int32{{Size / 10, Size / 10}, {Size * 9 / 10, Size / 10}, {Size / 10, Size * 9 / 10}, {Size * 9 / 10, Size * 9 / 10}}

// Init places the avatars in their corners.
func Init(_ *game.Context, setup game.Setup) (State, error) {
	p := Params{}
	if len(setup.Params) > 0 {
		if err := json.Unmarshal(setup.Params, &p); err != nil {
			return State{}, fmt.Errorf("params: %w", err)
		}
	}
	if p.DurationSeconds < 0 || p.DurationSeconds > 3600 {
		return State{}, fmt.Errorf("params: duration_seconds %d: want 1 to 3600", p.DurationSeconds)
	}
	st := State{Seats: len(setup.Players), Ends: DefaultDuration}
	if p.DurationSeconds > 0 {
		st.Ends = time.Duration(p.DurationSeconds) * time.Second
	}
	for i := range st.Seats {
		st.Players[i].X, st.Players[i].Y = spawn[i][0], spawn[i][1]
	}
	return st, nil
}

// Apply applies one input.
func Apply(ctx *game.Context, st State, in game.Input) (State, []game.Effect, error) {
	switch in.Kind {
	case game.InputTick:
		return tick(ctx, st, in.Tick)
	case game.InputAction:
		if in.Type != "move" {
			return st, nil, game.Rejectf("unknown action %q", in.Type)
		}
		vx, vy, err := DecodeMove(in.Payload)
		if err != nil {
			return st, nil, game.Rejectf("bad move: %v", err)
		}
		st.Players[in.Seat].VX, st.Players[in.Seat].VY = vx, vy
	case game.InputJoined, game.InputReconnected:
		st.Players[in.Seat].Present = true
	case game.InputLeft:
		a := &st.Players[in.Seat]
		a.VX, a.VY = 0, 0 // a disconnected avatar stands still
		if in.Reason.Gone() {
			a.Present = false
		}
	}
	return st, nil, nil
}

func tick(ctx *game.Context, st State, n uint64) (State, []game.Effect, error) {
	for i := range st.Seats {
		a := &st.Players[i]
		if !a.Present {
			continue
		}
		x, y := clamp(a.X+a.VX*tickMillis/1000), clamp(a.Y+a.VY*tickMillis/1000)
		a.Distance += int64(abs(x-a.X)) + int64(abs(y-a.Y))
		a.X, a.Y = x, y
	}
	fx := append(ctx.Effects(), game.Broadcast("pos", AppendFrame(make([]byte, 0, FrameSize(st.Seats)), uint32(n), &st)).Ephemeral())
	if ctx.Now() >= st.Ends {
		fx = append(fx, game.End(result(&st)))
	}
	return st, fx, nil
}

func result(st *State) []byte {
	r := Result{Distance: make([]int64, st.Seats), Winner: -1}
	var best int64 = -1
	for i := range st.Seats {
		r.Distance[i] = st.Players[i].Distance
		if st.Players[i].Present && st.Players[i].Distance > best {
			best, r.Winner = st.Players[i].Distance, game.Seat(i)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // a struct of ints always encodes
	}
	return b
}

func clamp(v int32) int32 { return min(max(v, 0), Size) }

func abs(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

// DecodeMove decodes a "move" payload: vx, vy as big-endian int16
// (milli-units per second), clamped to MaxSpeed keeping the direction.
func DecodeMove(b []byte) (vx, vy int32, err error) {
	if len(b) != 4 {
		return 0, 0, fmt.Errorf("payload of %d bytes, want 4 (vx, vy as int16)", len(b))
	}
	vx, vy = int32(int16(binary.BigEndian.Uint16(b))), int32(int16(binary.BigEndian.Uint16(b[2:])))
	m2 := int64(vx)*int64(vx) + int64(vy)*int64(vy)
	if m2 <= MaxSpeed*MaxSpeed {
		return vx, vy, nil
	}
	m := isqrt(m2)
	if m*m < m2 {
		m++ // round up, so the clamped speed never exceeds MaxSpeed
	}
	return int32(int64(vx) * MaxSpeed / m), int32(int64(vy) * MaxSpeed / m), nil
}

// EncodeMove encodes a "move" payload (for clients and tests).
func EncodeMove(vx, vy int16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, uint16(vx)), uint16(vy))
}

// isqrt returns ⌊√n⌋ for n ≥ 0.
func isqrt(n int64) int64 {
	if n < 2 {
		return n
	}
	x, y := n, (n+1)/2
	for y < x {
		x, y = y, (y+n/y)/2
	}
	return x
}

// FrameSize returns the size of a "pos" frame for n seats.
func FrameSize(n int) int { return 4 + 8*n }

// AppendFrame appends a "pos" frame to b: the tick as a big-endian uint32,
// then each seat's X and Y as big-endian int32.
func AppendFrame(b []byte, tick uint32, st *State) []byte {
	b = binary.BigEndian.AppendUint32(b, tick)
	for i := range st.Seats {
		b = binary.BigEndian.AppendUint32(b, uint32(st.Players[i].X))
		b = binary.BigEndian.AppendUint32(b, uint32(st.Players[i].Y))
	}
	return b
}

// Frame is a decoded "pos" frame.
type Frame struct {
	// Tick is the tick the positions are from.
	Tick uint32
	// Pos are the seats' positions, [x, y].
	Pos [][2]int32
}

// DecodeFrame decodes a "pos" frame (for clients and tests).
func DecodeFrame(b []byte) (Frame, error) {
	if len(b) < 4 || (len(b)-4)%8 != 0 || len(b) > FrameSize(Seats) {
		return Frame{}, errors.New("pos frame: bad length")
	}
	f := Frame{Tick: binary.BigEndian.Uint32(b)}
	for p := b[4:]; len(p) > 0; p = p[8:] {
		f.Pos = append(f.Pos, [2]int32{int32(binary.BigEndian.Uint32(p)), int32(binary.BigEndian.Uint32(p[4:]))})
	}
	return f, nil
}
