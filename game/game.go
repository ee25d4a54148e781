package game

import (
	"errors"
	"fmt"
	"time"
)

// InitFunc builds a room's first state from its setup. ctx reads clock 0
// and sequence number 0; its Rand is the room's first random stream (deal
// the cards here).
type InitFunc[S any] func(ctx *Context, setup Setup) (S, error)

// ApplyFunc applies one input to a state and returns the next state and
// the effects to carry out. It returns a *Rejection (Reject) to refuse a
// player's input, or another error when the game's own logic failed,
// which ends the room. It must not modify memory reachable from state.
type ApplyFunc[S any] func(ctx *Context, state S, in Input) (S, []Effect, error)

// Def defines a game over its state type S.
type Def[S any] struct {
	// Name is the game's registered name: 1 to 64 letters, digits, '.',
	// '_' or '-'.
	Name string
	// Settings are the game's static room settings.
	Settings Settings
	// Init builds a room's first state.
	Init InitFunc[S]
	// Apply applies one input.
	Apply ApplyFunc[S]
	// Codec encodes the state for snapshots; nil means JSONCodec[S].
	Codec Codec[S]
	// Summary, optional, describes a state for operators inspecting a
	// room (scores, whose turn, round): short, no secrets a player must
	// not see. Without it Instance.Summary returns nil.
	Summary func(state S) []byte
}

// Validate reports every problem with d, joined.
func (d Def[S]) Validate() error {
	var errs []error
	if err := validName(d.Name); err != nil {
		errs = append(errs, err)
	}
	if err := d.Settings.Validate(); err != nil {
		errs = append(errs, err)
	}
	if d.Init == nil {
		errs = append(errs, errors.New("init function is nil"))
	}
	if d.Apply == nil {
		errs = append(errs, errors.New("apply function is nil"))
	}
	return errors.Join(errs...)
}

func validName(name string) error {
	if name == "" {
		return errors.New("name is empty")
	}
	if len(name) > 64 {
		return fmt.Errorf("name %.20q...: longer than 64 bytes", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("name %q: %q is not a letter, digit, '.', '_' or '-'", name, r)
		}
	}
	return nil
}

// Game is a game with its state type erased: what the room runtime holds,
// whatever the game's state type.
type Game interface {
	// Name returns the game's registered name.
	Name() string
	// Settings returns the game's static settings.
	Settings() Settings
	// Start creates a room's Instance: it checks the setup against the
	// settings (player count, seats 0 to n-1 each once) and runs Init with
	// the room's pinned master data (nil for none).
	Start(setup Setup, md MasterData) (Instance, error)
	// Restore recreates an Instance from a Snapshot of one with the same
	// setup; md must be the version the snapshot pinned.
	Restore(setup Setup, md MasterData, snap Snapshot) (Instance, error)
}

// Instance is one room's game: it holds the state, applies the room's input
// log one Entry at a time, and keeps the room's pending timers. It is not
// safe for concurrent use: one goroutine owns it.
type Instance interface {
	// Apply applies one entry. A nil error: the returned effects are to be
	// carried out; the slice is reused by the next Apply. An error that
	// IsRejection: the input was refused, nothing changed but the
	// sequence number, clock and (for a due timer) the timer. An error
	// wrapping ErrBadEntry: the runtime's mistake, nothing changed. Any
	// other error (a *PanicError when the game panicked): the room has
	// ended with an error result. The effects stop at an End effect:
	// whatever the game returned after it is dropped.
	Apply(e Entry) ([]Effect, error)
	// Next returns the next input the runtime must generate itself and
	// when: the earliest pending timer, or the next tick of a game with a
	// tick rate. A timer due at the same time as a tick comes first;
	// timers due at the same time come in the order they were scheduled.
	// ok is false when nothing is pending or the room has ended.
	Next() (at time.Duration, in Input, ok bool)
	// Timers returns the pending timers in firing order.
	Timers() []Timer
	// Ended reports whether the room has ended, with the result of its End
	// effect (nil when it ended by an error).
	Ended() (result []byte, ended bool)
	// State returns the encoded state.
	State() ([]byte, error)
	// Summary returns the game's summary of the state (Def.Summary), or
	// nil when the game has none.
	Summary() []byte
	// Snapshot returns everything Restore needs besides the setup and the
	// master data: the encoded state, the timers, the last sequence
	// number, clock reading and tick.
	Snapshot() (Snapshot, error)
}

// Timer is a pending named timer.
type Timer struct {
	// Name is the name the game scheduled it with.
	Name string `json:"name"`
	// Due is the room clock reading at which it fires.
	Due time.Duration `json:"due"`
	// Order breaks ties between timers due at the same time: lower first
	// (the order they were scheduled in).
	Order uint64 `json:"order"`
}

// Snapshot is an Instance at rest. It holds no master data, only the
// version it pinned.
type Snapshot struct {
	// Game is the game's name.
	Game string `json:"game"`
	// MasterVersion is the pinned master data version ("" for none).
	MasterVersion string `json:"master_version"`
	// Seq and At are the last applied entry's sequence number and clock.
	Seq uint64        `json:"seq"`
	At  time.Duration `json:"at"`
	// Tick is the last tick applied (0 before the first).
	Tick uint64 `json:"tick"`
	// Timers are the pending timers; NextOrder is the next timer's Order.
	Timers    []Timer `json:"timers,omitempty"`
	NextOrder uint64  `json:"next_order"`
	// Ended is set once the room has ended; Result is its End result.
	Ended  bool   `json:"ended,omitempty"`
	Result []byte `json:"result,omitempty"`
	// State is the state encoded with the game's Codec.
	State []byte `json:"state"`
}

// New checks def and returns its Game.
func New[S any](def Def[S]) (Game, error) {
	if err := def.Validate(); err != nil {
		if def.Name != "" {
			return nil, fmt.Errorf("game %q: %w", def.Name, err)
		}
		return nil, fmt.Errorf("game: %w", err)
	}
	if def.Codec == nil {
		def.Codec = JSONCodec[S]{}
	}
	return &typedGame[S]{def: def}, nil
}

// MustNew is New for package-level game definitions: it panics when def is
// invalid.
func MustNew[S any](def Def[S]) Game {
	g, err := New(def)
	if err != nil {
		panic(err)
	}
	return g
}

// StateOf returns an Instance's typed state (for tests and tools); it
// fails when inst does not hold an S. The state shares memory with the
// instance's: read it, never change it.
func StateOf[S any](inst Instance) (S, error) {
	if t, ok := inst.(*instance[S]); ok {
		return t.state, nil
	}
	var zero S
	return zero, fmt.Errorf("instance does not hold a %T", zero)
}
