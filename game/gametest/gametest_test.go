package gametest_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/game"
	"github.com/taisen-dev/taisen/game/gametest"
)

// clockState records what happened, with the clock readings the game saw.
type clockState struct {
	Seen   []string `json:"seen"`
	Ticks  int      `json:"ticks"`
	Board  []int    `json:"board"`
	hidden int      // not encoded: breaks snapshots on purpose
}

// clockDef's actions: "after" schedules timer <payload> after payload's
// length in seconds; "stop" cancels it; "poke" (mutates the given state in
// place, against the rules); "hidden" counts in a field the codec drops;
// "rand" records a random number; "end" ends the room.
func clockDef(tickRate int) game.Def[clockState] {
	return game.Def[clockState]{
		Name:     "clock",
		Settings: game.Settings{TickRate: tickRate, MinPlayers: 1, MaxPlayers: 4},
		Init: func(*game.Context, game.Setup) (clockState, error) {
			return clockState{Board: []int{0}}, nil
		},
		Apply: func(ctx *game.Context, st clockState, in game.Input) (clockState, []game.Effect, error) {
			note := func(s string) {
				st.Seen = append(st.Seen[:len(st.Seen):len(st.Seen)], fmt.Sprintf("%s@%v", s, ctx.Now()))
			}
			switch in.Kind {
			case game.InputAction:
				switch in.Type {
				case "after":
					return st, []game.Effect{game.Schedule(string(in.Payload), time.Duration(len(in.Payload))*time.Second)}, nil
				case "stop":
					return st, []game.Effect{game.Cancel(string(in.Payload))}, nil
				case "poke":
					st.Board[0]++
				case "hidden":
					st.hidden++
					return st, []game.Effect{game.Broadcast("hidden", []byte{byte(st.hidden)})}, nil
				case "rand":
					note(fmt.Sprint(ctx.Rand().IntN(1000)))
				case "end":
					return st, []game.Effect{game.End([]byte("over"))}, nil
				default:
					return st, nil, game.Rejectf("unknown action %q", in.Type)
				}
			case game.InputTimer:
				note(in.Timer)
			case game.InputTick:
				st.Ticks++
			}
			return st, nil, nil
		},
	}
}

func newRoom(t *testing.T, def game.Def[clockState], cfg gametest.Config) *gametest.Room[clockState] {
	t.Helper()
	r, err := gametest.New(def, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAdvanceFiresTimersInOrder(t *testing.T) {
	r := newRoom(t, clockDef(0), gametest.Config{})
	for _, name := range []string{"ccc", "a", "bb"} {
		if _, err := r.Act(0, "after", []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Advance(500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Act(0, "stop", []byte("bb")); err != nil {
		t.Fatal(err)
	}
	steps, err := r.Advance(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.State().Seen, ","); got != "a@1s,ccc@3s" {
		t.Fatalf("timers seen %s, want a@1s,ccc@3s", got)
	}
	if len(steps) != 2 || steps[1].Entry.At != 3*time.Second {
		t.Fatalf("steps %v", steps)
	}
	if r.Now() != 10500*time.Millisecond {
		t.Fatalf("clock %v, want 10.5s", r.Now())
	}
}

func TestAdvanceTicksAtTickRate(t *testing.T) {
	r := newRoom(t, clockDef(20), gametest.Config{})
	steps, err := r.Advance(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 20 || r.State().Ticks != 20 {
		t.Fatalf("%d steps, %d ticks in 1s at 20 Hz", len(steps), r.State().Ticks)
	}
	for i, s := range steps {
		if want := time.Duration(i+1) * 50 * time.Millisecond; s.Entry.At != want || s.Entry.Input.Tick != uint64(i+1) {
			t.Fatalf("step %d: %v at %v, want tick %d at %v", i, s.Entry.Input, s.Entry.At, i+1, want)
		}
	}
	// 60 Hz does not drift: tick 60 lands on exactly one second.
	r = newRoom(t, clockDef(60), gametest.Config{})
	steps, _ = r.Advance(time.Second)
	if len(steps) != 60 || steps[59].Entry.At != time.Second {
		t.Fatalf("60 Hz: %d ticks, last at %v", len(steps), steps[len(steps)-1].Entry.At)
	}
}

func TestRejectionAndEnd(t *testing.T) {
	r := newRoom(t, clockDef(0), gametest.Config{})
	step, err := r.Act(0, "fly", nil)
	if reason, ok := game.IsRejection(err); !ok || reason != `unknown action "fly"` || step.Rejected != reason {
		t.Fatalf("err %v, step %v", err, step)
	}
	if _, err := r.Act(0, "end", nil); err != nil {
		t.Fatal(err)
	}
	if res, ended := r.Ended(); !ended || string(res) != "over" {
		t.Fatalf("Ended = %q %v", res, ended)
	}
	if _, err := r.Act(0, "rand", nil); !errors.Is(err, game.ErrEnded) {
		t.Fatalf("act after end: %v", err)
	}
	if n := len(r.Log()); n != 2 {
		t.Fatalf("log has %d entries, want 2 (the rejection is logged)", n)
	}
}

func TestDetectsMutatedState(t *testing.T) {
	r := newRoom(t, clockDef(0), gametest.Config{})
	_, err := r.Act(0, "poke", nil)
	if !errors.Is(err, gametest.ErrMutatedState) {
		t.Fatalf("err = %v, want ErrMutatedState", err)
	}
}

func TestReplayIdentical(t *testing.T) {
	r := newRoom(t, clockDef(10), gametest.Config{Seed: 3})
	err := r.Play([]gametest.Move{
		{Input: game.Action(0, "rand", nil)},
		{Wait: 250 * time.Millisecond, Input: game.Action(0, "after", []byte("x"))},
		{Wait: 2 * time.Second, Input: game.Action(0, "rand", nil)},
		{Input: game.Action(0, "nope", nil)},
	})
	if err != nil {
		t.Fatal(err)
	}
	steps, err := gametest.Replay(clockDef(10), r.Setup(), nil, r.Log())
	if err != nil {
		t.Fatal(err)
	}
	if d := gametest.Diff(r.Steps(), steps); d != "" {
		t.Fatal(d)
	}
	// Another seed draws other numbers: the diff says so.
	setup := r.Setup()
	setup.Seed++
	other, err := gametest.Replay(clockDef(10), setup, nil, r.Log())
	if err != nil {
		t.Fatal(err)
	}
	if d := gametest.Diff(r.Steps(), other); !strings.Contains(d, "states differ") {
		t.Fatalf("Diff with another seed = %q", d)
	}
}

func randomClockScript(r *rand.Rand) []gametest.Move {
	actions := []string{"rand", "after", "stop", "fly"}
	moves := make([]gametest.Move, r.IntN(40))
	for i := range moves {
		name := strings.Repeat("t", 1+r.IntN(3))
		moves[i] = gametest.Move{
			Wait:  time.Duration(r.IntN(1500)) * time.Millisecond,
			Input: game.Action(game.Seat(r.IntN(2)), actions[r.IntN(len(actions))], []byte(name)),
		}
	}
	return moves
}

func TestCheckReplayPasses(t *testing.T) {
	if err := gametest.CheckReplay(clockDef(5), gametest.Config{Players: 2}, randomClockScript, 50, 1); err != nil {
		t.Fatal(err)
	}
}

func TestCheckReplayCatchesNondeterminism(t *testing.T) {
	calls := 0 // state outside the game: a determinism bug
	def := clockDef(0)
	apply := def.Apply
	def.Apply = func(ctx *game.Context, st clockState, in game.Input) (clockState, []game.Effect, error) {
		calls++
		st, fx, err := apply(ctx, st, in)
		return st, append(fx, game.Broadcast("calls", []byte{byte(calls)})), err
	}
	script := func(*rand.Rand) []gametest.Move { return []gametest.Move{{Input: game.Action(0, "rand", nil)}} }
	err := gametest.CheckReplay(def, gametest.Config{}, script, 1, 1)
	if err == nil || !strings.Contains(err.Error(), "two plays of one script differ") {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckReplayCatchesLossySnapshot(t *testing.T) {
	script := func(*rand.Rand) []gametest.Move {
		m := gametest.Move{Input: game.Action(0, "hidden", nil)}
		return []gametest.Move{m, m, m, m}
	}
	err := gametest.CheckReplay(clockDef(0), gametest.Config{}, script, 1, 1)
	if err == nil || !strings.Contains(err.Error(), "restored from a snapshot") {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckReplayReportsPanics(t *testing.T) {
	def := clockDef(0)
	def.Apply = func(*game.Context, clockState, game.Input) (clockState, []game.Effect, error) {
		var m map[string]int
		m["x"] = 1
		return clockState{}, nil, nil
	}
	script := func(*rand.Rand) []gametest.Move { return []gametest.Move{{Input: game.Action(0, "rand", nil)}} }
	err := gametest.CheckReplay(def, gametest.Config{}, script, 1, 1)
	var p *game.PanicError
	if !errors.As(err, &p) {
		t.Fatalf("err = %v, want a *game.PanicError", err)
	}
}

func TestVersionsPinning(t *testing.T) {
	var v gametest.Versions
	if v.Active() != nil {
		t.Fatal("empty store has an active version")
	}
	if err := v.Push("v1", map[string][]byte{"x": []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if err := v.Push("v1", nil); err == nil {
		t.Fatal("pushed v1 twice")
	}
	if err := v.Activate("v2"); err == nil || !strings.Contains(err.Error(), "no such version") {
		t.Fatalf("activate unknown: %v", err)
	}
	if err := v.Activate("v1"); err != nil {
		t.Fatal(err)
	}
	pinned := v.Active()
	if err := v.Push("v2", map[string][]byte{"x": []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := v.Activate("v2"); err != nil {
		t.Fatal(err)
	}
	b, _ := pinned.Document("x")
	if pinned.Version() != "v1" || string(b) != "1" || v.Active().Version() != "v2" {
		t.Fatalf("pinned %s (%s), active %s", pinned.Version(), b, v.Active().Version())
	}
}

func TestNewFromStartsAtTheGivenState(t *testing.T) {
	r, err := gametest.NewFrom(clockDef(0), gametest.Config{}, clockState{Seen: []string{"given"}, Board: []int{5}})
	if err != nil {
		t.Fatal(err)
	}
	r.Act(0, "after", []byte("x"))
	r.Advance(time.Second)
	if got := strings.Join(r.State().Seen, ","); got != "given,x@1s" {
		t.Fatalf("seen %s", got)
	}
	if b := r.State().Board; len(b) != 1 || b[0] != 5 {
		t.Fatalf("board %v", b)
	}
}
