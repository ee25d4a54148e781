// Package gametest runs a game's logic without a server, the way the room
// runtime will: a Room applies scripted inputs on a fake room clock that
// only moves when the test advances it (timers fire in order at their due
// times, ticks at the game's tick rate), pins in-memory master data
// (Versions), and records the input log and every step's effects and
// encoded state, for tests to compare with plain values.
//
// Replay reruns a recorded log; CheckReplay is the property test every game
// should have: random input logs, each played twice, replayed from the log
// and restored from a snapshot halfway, must give identical states and
// effects.
//
// A Room also checks the rules of game.Def as it goes: an Apply that
// changes the state it was given (instead of returning a new one) makes the
// step fail with ErrMutatedState.
package gametest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/taisen-dev/taisen/game"
)

// ErrMutatedState is returned (wrapped) when a game's Apply changed memory
// reachable from the state it was given: the runtime keeps that state when
// an input is rejected, so the game must return a new one.
var ErrMutatedState = errors.New("apply changed the state it was given")

// Config is how a Room is created.
type Config struct {
	// Players is the number of seated players, seats 0 to n-1 with user ids
	// "user-0", "user-1", ...; zero means the game's MinPlayers.
	Players int
	// Params are the room parameters.
	Params []byte
	// Seed is the room seed.
	Seed uint64
	// Master is the master data the room pins (Versions.Active); nil for
	// none.
	Master game.MasterData
}

// Step is one applied input and what came of it.
type Step struct {
	// Entry is the log entry: sequence number, clock reading, input.
	Entry game.Entry
	// Effects are the effects to carry out (nil when none, rejected or
	// failed).
	Effects []game.Effect
	// Rejected is the reason the input was refused, "" when it was not.
	Rejected string
	// Failed is the error that ended the room, "" when none.
	Failed string
	// State is the encoded state after the step.
	State []byte
}

// String describes the step for test failures.
func (s Step) String() string {
	out := fmt.Sprintf("#%d @%v %v", s.Entry.Seq, s.Entry.At, s.Entry.Input)
	if s.Rejected != "" {
		out += " rejected: " + s.Rejected
	}
	if s.Failed != "" {
		out += " failed: " + s.Failed
	}
	for _, f := range s.Effects {
		out += "\n\t" + f.String()
	}
	return out
}

// Room is one game room on a fake clock. It is not safe for concurrent use.
type Room[S any] struct {
	codec game.Codec[S]
	game  game.Game
	setup game.Setup
	inst  game.Instance
	now   time.Duration
	seq   uint64
	log   []game.Entry
	steps []Step
}

// Setup returns the game.Setup a Config gives for a game with settings s.
func (c Config) Setup(s game.Settings) game.Setup {
	n := c.Players
	if n == 0 {
		n = s.MinPlayers
	}
	players := make([]game.Player, n)
	for i := range players {
		players[i] = game.Player{Seat: game.Seat(i), UserID: fmt.Sprintf("user-%d", i)}
	}
	return game.Setup{Params: c.Params, Players: players, Seed: c.Seed}
}

// New creates a room of the game def at clock 0 (Init runs).
func New[S any](def game.Def[S], cfg Config) (*Room[S], error) {
	g, err := game.New(def)
	if err != nil {
		return nil, err
	}
	setup := cfg.Setup(def.Settings)
	inst, err := g.Start(setup, cfg.Master)
	if err != nil {
		return nil, err
	}
	codec := def.Codec
	if codec == nil {
		codec = game.JSONCodec[S]{}
	}
	return &Room[S]{codec: codec, game: g, setup: setup, inst: inst}, nil
}

// NewFrom creates a room of the game def whose state is st instead of
// Init's (Init still runs, to check the setup): for table tests that start
// from a given position. The room is otherwise new: clock 0, no timers,
// empty log, so a Replay of its log starts from Init's state, not st.
func NewFrom[S any](def game.Def[S], cfg Config, st S) (*Room[S], error) {
	r, err := New(def, cfg)
	if err != nil {
		return nil, err
	}
	snap, err := r.inst.Snapshot()
	if err != nil {
		return nil, err
	}
	if snap.State, err = r.codec.Marshal(st); err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	if r.inst, err = r.game.Restore(r.setup, cfg.Master, snap); err != nil {
		return nil, err
	}
	return r, nil
}

// Now returns the room clock.
func (r *Room[S]) Now() time.Duration { return r.now }

// State returns the current state.
func (r *Room[S]) State() S {
	s, err := game.StateOf[S](r.inst)
	if err != nil {
		panic(err) // cannot happen: the instance was made from a Def[S]
	}
	return s
}

// EncodedState returns the current state encoded with the game's codec.
func (r *Room[S]) EncodedState() ([]byte, error) { return r.inst.State() }

// Instance returns the game.Instance the room drives.
func (r *Room[S]) Instance() game.Instance { return r.inst }

// Setup returns the room's setup.
func (r *Room[S]) Setup() game.Setup { return r.setup }

// Log returns the input log so far (rejected inputs included: they use a
// sequence number and replay to the same rejection).
func (r *Room[S]) Log() []game.Entry { return slices.Clone(r.log) }

// Steps returns every step so far.
func (r *Room[S]) Steps() []Step { return slices.Clone(r.steps) }

// Timers returns the pending timers in firing order.
func (r *Room[S]) Timers() []game.Timer { return r.inst.Timers() }

// Ended reports whether the room has ended and its result.
func (r *Room[S]) Ended() (result []byte, ended bool) { return r.inst.Ended() }

// Apply applies an input at the current clock. The error is the
// instance's: a rejection (game.IsRejection), the game's failure (the room
// has ended), game.ErrEnded, or ErrMutatedState. The step is returned
// whenever the input was applied, rejected or not.
func (r *Room[S]) Apply(in game.Input) (Step, error) {
	return r.apply(in, r.now)
}

// Act applies a player's action.
func (r *Room[S]) Act(seat game.Seat, typ string, payload []byte) (Step, error) {
	return r.Apply(game.Action(seat, typ, payload))
}

// JoinAll applies Joined for every seat in order.
func (r *Room[S]) JoinAll() ([]Step, error) {
	var steps []Step
	for _, p := range r.setup.Players {
		s, err := r.Apply(game.Joined(p.Seat))
		if err != nil {
			return steps, fmt.Errorf("join seat %d: %w", p.Seat, err)
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// Advance moves the clock forward by d, applying every timer and tick due
// on the way at its due time (see game.Instance.Next for the order). It
// stops at the first error that is not a rejection, with the clock at that
// input; after the room ends the clock still moves.
func (r *Room[S]) Advance(d time.Duration) ([]Step, error) {
	target := r.now + d
	var steps []Step
	for {
		at, in, ok := r.inst.Next()
		if !ok || at > target {
			break
		}
		s, err := r.apply(in, at)
		if err != nil {
			if _, rej := game.IsRejection(err); !rej {
				return append(steps, s), err
			}
		}
		steps = append(steps, s)
	}
	r.now = target
	return steps, nil
}

// AdvanceTo moves the clock to t (never back), like Advance.
func (r *Room[S]) AdvanceTo(t time.Duration) ([]Step, error) {
	return r.Advance(max(t-r.now, 0))
}

func (r *Room[S]) apply(in game.Input, at time.Duration) (Step, error) {
	if _, ended := r.inst.Ended(); ended {
		return Step{}, fmt.Errorf("%v: %w", in, game.ErrEnded)
	}
	before := r.State()
	beforeBytes, err := r.codec.Marshal(before)
	if err != nil {
		return Step{}, fmt.Errorf("encode state: %w", err)
	}
	e := game.Entry{Seq: r.seq + 1, At: at, Input: cloneInput(in)}
	step, applyErr := applyStep(r.inst, e)
	if errors.Is(applyErr, game.ErrBadEntry) {
		return Step{}, applyErr
	}
	r.seq, r.now = e.Seq, at
	r.log = append(r.log, e)
	r.steps = append(r.steps, step)
	if again, err := r.codec.Marshal(before); err != nil || !bytes.Equal(again, beforeBytes) {
		return step, fmt.Errorf("%v: %w:\nbefore %s\nafter  %s", in, ErrMutatedState, beforeBytes, again)
	}
	return step, applyErr
}

// applyStep applies one entry and records it as a Step.
func applyStep(inst game.Instance, e game.Entry) (Step, error) {
	fx, err := inst.Apply(e)
	if errors.Is(err, game.ErrBadEntry) || errors.Is(err, game.ErrEnded) {
		return Step{}, err
	}
	s := Step{Entry: e}
	if len(fx) > 0 {
		s.Effects = make([]game.Effect, len(fx))
		copy(s.Effects, fx)
	}
	if err != nil {
		if reason, ok := game.IsRejection(err); ok {
			s.Rejected = reason
		} else {
			s.Failed = err.Error()
		}
	}
	st, encErr := inst.State()
	if encErr != nil {
		return s, fmt.Errorf("encode state: %w", encErr)
	}
	s.State = st
	return s, err
}

func cloneInput(in game.Input) game.Input {
	in.Payload = bytes.Clone(in.Payload)
	return in
}
