package game

import (
	"fmt"
	"time"
)

// Seat is a player's place in a room, from 0 to the number of seated
// players minus one. Seats are assigned when the room is created and do not
// change; a player who reconnects gets the same seat.
type Seat int

// Player is one seated player.
type Player struct {
	// Seat is the player's seat.
	Seat Seat `json:"seat"`
	// UserID is the player's taisen user id.
	UserID string `json:"user_id"`
}

// Setup is what a room is created with.
type Setup struct {
	// Params are the game-specific room parameters given at creation
	// (a game's own encoding, often JSON); nil when none were given.
	Params []byte
	// Players are the seated players, seats 0 to len-1 in any order.
	Players []Player
	// Seed seeds the room's randomness (Context.Rand).
	Seed uint64
}

// InputKind says what an Input is.
type InputKind uint8

// The kinds of input a game receives.
const (
	// InputAction is a player's action: Seat, Type, Payload.
	InputAction InputKind = iota + 1
	// InputJoined: the player in Seat connected to the room for the first
	// time.
	InputJoined
	// InputLeft: the player in Seat left; Reason says whether the seat is
	// held for a reconnect.
	InputLeft
	// InputReconnected: the player in Seat came back within the grace.
	InputReconnected
	// InputTimer: the timer named Timer, scheduled by the game, is due.
	InputTimer
	// InputTick: tick number Tick (from 1) of a game with a tick rate.
	InputTick
)

var inputKindNames = [...]string{"", "action", "joined", "left", "reconnected", "timer", "tick"}

// String returns the kind's lowercase name ("action", "tick", ...).
func (k InputKind) String() string {
	if int(k) < len(inputKindNames) && k != 0 {
		return inputKindNames[k]
	}
	return fmt.Sprintf("InputKind(%d)", uint8(k))
}

// LeaveReason says why a player left.
type LeaveReason uint8

// The reasons of an InputLeft.
const (
	// LeaveDisconnected: the connection dropped; the seat is held for
	// Settings.Grace and an InputReconnected or an InputLeft with
	// LeaveGraceExpired follows.
	LeaveDisconnected LeaveReason = iota + 1
	// LeaveQuit: the player left the room on purpose; the seat stays empty.
	LeaveQuit
	// LeaveGraceExpired: a disconnected player did not come back in time;
	// the seat stays empty.
	LeaveGraceExpired
)

var leaveReasonNames = [...]string{"", "disconnected", "quit", "grace_expired"}

// String returns the reason's name ("disconnected", "quit", ...).
func (r LeaveReason) String() string {
	if int(r) < len(leaveReasonNames) && r != 0 {
		return leaveReasonNames[r]
	}
	return fmt.Sprintf("LeaveReason(%d)", uint8(r))
}

// Gone reports whether the seat stays empty (the player quit or the grace
// expired), as opposed to being held for a reconnect.
func (r LeaveReason) Gone() bool { return r == LeaveQuit || r == LeaveGraceExpired }

// Input is one thing that happens to a room. Kind says which fields are
// set; the constructors (Action, Joined, Left, Reconnected, TimerFired,
// Tick) build valid inputs.
type Input struct {
	// Kind is what happened.
	Kind InputKind `json:"kind"`
	// Seat is the player of an action, join, leave or reconnect.
	Seat Seat `json:"seat,omitempty"`
	// Type is an action's type, chosen by the game ("move", "play").
	Type string `json:"type,omitempty"`
	// Payload is an action's body as the client sent it: untrusted bytes
	// the game must validate. The game may keep them; nobody changes them
	// afterwards.
	Payload []byte `json:"payload,omitempty"`
	// Reason is why a player left (InputLeft).
	Reason LeaveReason `json:"reason,omitempty"`
	// Timer is the name of the timer that fired (InputTimer).
	Timer string `json:"timer,omitempty"`
	// Tick is the tick number, from 1 (InputTick).
	Tick uint64 `json:"tick,omitempty"`
}

// Action returns a player's action input.
func Action(seat Seat, typ string, payload []byte) Input {
	return Input{Kind: InputAction, Seat: seat, Type: typ, Payload: payload}
}

// Joined returns the input of a player's first connection to the room.
func Joined(seat Seat) Input { return Input{Kind: InputJoined, Seat: seat} }

// Left returns the input of a player leaving.
func Left(seat Seat, reason LeaveReason) Input {
	return Input{Kind: InputLeft, Seat: seat, Reason: reason}
}

// Reconnected returns the input of a disconnected player coming back.
func Reconnected(seat Seat) Input { return Input{Kind: InputReconnected, Seat: seat} }

// TimerFired returns the input of the named timer being due.
func TimerFired(name string) Input { return Input{Kind: InputTimer, Timer: name} }

// Tick returns the input of tick n (n ≥ 1).
func Tick(n uint64) Input { return Input{Kind: InputTick, Tick: n} }

// String describes the input for logs and test failures.
func (in Input) String() string {
	switch in.Kind {
	case InputAction:
		return fmt.Sprintf("action seat=%d type=%q payload=%q", in.Seat, in.Type, in.Payload)
	case InputJoined, InputReconnected:
		return fmt.Sprintf("%v seat=%d", in.Kind, in.Seat)
	case InputLeft:
		return fmt.Sprintf("left seat=%d reason=%v", in.Seat, in.Reason)
	case InputTimer:
		return fmt.Sprintf("timer %q", in.Timer)
	case InputTick:
		return fmt.Sprintf("tick %d", in.Tick)
	}
	return in.Kind.String()
}

// Entry is one record of a room's input log: the input with the sequence
// number and clock reading it was applied with. Replaying a room's entries
// through a new Instance with the same Setup and master data reproduces
// its states and effects exactly.
type Entry struct {
	// Seq is the input's sequence number, from 1, increasing (gaps are
	// allowed). Init runs with sequence number 0.
	Seq uint64 `json:"seq"`
	// At is the room clock reading the input was applied at: time since
	// the room started, never decreasing.
	At time.Duration `json:"at"`
	// Input is what happened.
	Input Input `json:"input"`
}
