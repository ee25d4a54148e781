package gametest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"time"

	"github.com/taisen-dev/taisen/game"
)

// Replay starts a new instance of def with setup and master data md and
// applies log to it, recording every step as a Room does. Rejections and a
// game failure are recorded in the steps, not returned; the error is for a
// log the instance refuses (game.ErrBadEntry, game.ErrEnded).
func Replay[S any](def game.Def[S], setup game.Setup, md game.MasterData, log []game.Entry) ([]Step, error) {
	g, err := game.New(def)
	if err != nil {
		return nil, err
	}
	inst, err := g.Start(setup, md)
	if err != nil {
		return nil, err
	}
	return replayOn(inst, log)
}

func replayOn(inst game.Instance, log []game.Entry) ([]Step, error) {
	steps := make([]Step, 0, len(log))
	for _, e := range log {
		s, err := applyStep(inst, e)
		if errors.Is(err, game.ErrBadEntry) || errors.Is(err, game.ErrEnded) {
			return steps, fmt.Errorf("replay seq %d: %w", e.Seq, err)
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// Diff compares two step sequences and describes the first difference, or
// returns "" when they are identical (entries, effects, outcomes and
// encoded states).
func Diff(a, b []Step) string {
	for i := range min(len(a), len(b)) {
		x, y := a[i], b[i]
		switch {
		case !reflect.DeepEqual(x.Entry, y.Entry):
			return fmt.Sprintf("step %d: entries differ:\n%v\n%v", i, x.Entry, y.Entry)
		case x.Rejected != y.Rejected || x.Failed != y.Failed:
			return fmt.Sprintf("step %d (%v): outcomes differ: rejected %q / %q, failed %q / %q", i, x.Entry.Input, x.Rejected, y.Rejected, x.Failed, y.Failed)
		case !reflect.DeepEqual(x.Effects, y.Effects):
			return fmt.Sprintf("step %d: effects differ:\n%v\n%v", i, x, y)
		case !bytes.Equal(x.State, y.State):
			return fmt.Sprintf("step %d (%v): states differ:\n%s\n%s", i, x.Entry.Input, x.State, y.State)
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d steps and %d steps", len(a), len(b))
	}
	return ""
}

// Move is one step of a script: let time pass, then apply an input.
type Move struct {
	// Wait is how long the clock advances first (timers and ticks fire).
	Wait time.Duration
	// Input is applied after the wait; a zero Input (Kind 0) applies
	// nothing.
	Input game.Input
}

// Play plays moves in order. Rejected inputs are part of the log and do
// not stop it; it stops when the room has ended, and at the first other
// error (the game failed, or changed its given state).
func (r *Room[S]) Play(moves []Move) error {
	for i, m := range moves {
		if _, ended := r.Ended(); ended {
			return nil
		}
		if m.Wait > 0 {
			if _, err := r.Advance(m.Wait); err != nil {
				return fmt.Errorf("move %d: wait %v: %w", i, m.Wait, err)
			}
		}
		if _, ended := r.Ended(); ended || m.Input.Kind == 0 {
			continue
		}
		if _, err := r.Apply(m.Input); err != nil {
			if _, ok := game.IsRejection(err); !ok {
				return fmt.Errorf("move %d: %w", i, err)
			}
		}
	}
	return nil
}

// Generator returns a random script for one run of a property test. It
// must build the script from r alone.
type Generator func(r *rand.Rand) []Move

// CheckReplay is the determinism property test. For each of runs runs (each
// with its own room seed and script from gen, derived from seed) it plays
// the script in two fresh rooms, replays the first room's log, and restores
// a snapshot taken halfway through the log and replays the rest; all four
// must give identical steps. It also fails when the game fails on a
// scripted input or changes the state it was given. The error names the
// run, its seed and the first difference.
func CheckReplay[S any](def game.Def[S], cfg Config, gen Generator, runs int, seed uint64) error {
	for run := range runs {
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		c := cfg
		c.Seed = rng.Uint64()
		moves := gen(rng)
		if err := checkOnce(def, c, moves); err != nil {
			return fmt.Errorf("run %d (seed %d, room seed %d, %d moves): %w", run, seed, c.Seed, len(moves), err)
		}
	}
	return nil
}

func checkOnce[S any](def game.Def[S], cfg Config, moves []Move) error {
	var rooms [2]*Room[S]
	for i := range rooms {
		r, err := New(def, cfg)
		if err != nil {
			return err
		}
		if err := r.Play(moves); err != nil {
			return fmt.Errorf("play %d: %w", i+1, err)
		}
		rooms[i] = r
	}
	a := rooms[0].Steps()
	if d := Diff(a, rooms[1].Steps()); d != "" {
		return fmt.Errorf("two plays of one script differ: %s", d)
	}
	log := rooms[0].Log()
	setup := rooms[0].Setup()
	replayed, err := Replay(def, setup, cfg.Master, log)
	if err != nil {
		return err
	}
	if d := Diff(a, replayed); d != "" {
		return fmt.Errorf("replay differs from play: %s", d)
	}

	// Snapshot halfway, restore, replay the rest.
	half := len(log) / 2
	g := game.MustNew(def)
	inst, err := g.Start(setup, cfg.Master)
	if err != nil {
		return err
	}
	if _, err := replayOn(inst, log[:half]); err != nil {
		return err
	}
	snap, err := inst.Snapshot()
	if err != nil {
		return err
	}
	restored, err := g.Restore(setup, cfg.Master, snap)
	if err != nil {
		return err
	}
	rest, err := replayOn(restored, log[half:])
	if err != nil {
		return err
	}
	if d := Diff(a[half:], rest); d != "" {
		return fmt.Errorf("restored from a snapshot at seq %d, replay differs: %s", snap.Seq, d)
	}
	return nil
}

// Effects returns the effects of steps, in order, in one slice.
func Effects(steps []Step) []game.Effect {
	var out []game.Effect
	for _, s := range steps {
		out = append(out, s.Effects...)
	}
	return out
}

// Sent returns the payloads of the messages of type typ sent in steps, in
// order.
func Sent(steps []Step, typ string) [][]byte {
	var out [][]byte
	for _, s := range steps {
		for _, f := range s.Effects {
			if f.Kind == game.EffectSend && f.Type == typ {
				out = append(out, f.Payload)
			}
		}
	}
	return out
}
