package game_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/game"
)

// counter is a small game for these tests: actions "add" (payload: one
// byte n) add n to the total; "boom" panics; "fail" returns an error;
// "odd" is rejected when the total is even; "timer" schedules timer
// "t<payload>" after payload seconds; "cancel" cancels one; "end" ends.
type counter struct {
	Total  int      `json:"total"`
	Events []string `json:"events"`
}

func counterDef() game.Def[counter] {
	return game.Def[counter]{
		Name:     "counter",
		Settings: game.Settings{MinPlayers: 1, MaxPlayers: 2},
		Init: func(ctx *game.Context, s game.Setup) (counter, error) {
			return counter{Total: len(s.Params)}, nil
		},
		Apply: func(ctx *game.Context, st counter, in game.Input) (counter, []game.Effect, error) {
			fx := ctx.Effects()
			switch in.Kind {
			case game.InputAction:
				switch in.Type {
				case "add":
					if len(in.Payload) != 1 {
						return st, nil, game.Reject("add wants one byte")
					}
					st.Total += int(in.Payload[0])
					fx = append(fx, game.Broadcast("total", []byte{byte(st.Total)}))
				case "boom":
					panic("boom")
				case "fail":
					return st, nil, errors.New("broken invariant")
				case "odd":
					if st.Total%2 == 0 {
						return st, nil, game.Rejectf("total %d is even", st.Total)
					}
				case "timer":
					fx = append(fx, game.Schedule("t"+string(in.Payload), time.Duration(in.Payload[0]-'0')*time.Second))
				case "cancel":
					fx = append(fx, game.Cancel("t"+string(in.Payload)))
				case "end":
					fx = append(fx, game.End([]byte("done")), game.Broadcast("after-end", nil))
				case "bad-seat":
					fx = append(fx, game.SendSeats("x", nil, 7))
				}
			case game.InputTimer:
				// Copy before changing: the old state must stay intact.
				st.Events = append(st.Events[:len(st.Events):len(st.Events)], fmt.Sprintf("%s@%v", in.Timer, ctx.Now()))
			case game.InputTick:
				st.Total++
			}
			return st, fx, nil
		},
	}
}

var onePlayer = game.Setup{Players: []game.Player{{Seat: 0, UserID: "u0"}}, Seed: 7}

func start(t *testing.T, def game.Def[counter]) game.Instance {
	t.Helper()
	g, err := game.New(def)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := g.Start(onePlayer, nil)
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func state(t *testing.T, inst game.Instance) counter {
	t.Helper()
	s, err := game.StateOf[counter](inst)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewValidates(t *testing.T) {
	ok := counterDef()
	tests := []struct {
		name string
		edit func(*game.Def[counter])
		want string // in the error; "" for none
	}{
		{"valid", func(*game.Def[counter]) {}, ""},
		{"empty name", func(d *game.Def[counter]) { d.Name = "" }, "name is empty"},
		{"bad name", func(d *game.Def[counter]) { d.Name = "tic tac" }, `' ' is not a letter`},
		{"long name", func(d *game.Def[counter]) { d.Name = strings.Repeat("a", 65) }, "longer than 64"},
		{"tick rate 61", func(d *game.Def[counter]) { d.Settings.TickRate = 61 }, "tick rate 61 Hz"},
		{"tick rate -1", func(d *game.Def[counter]) { d.Settings.TickRate = -1 }, "tick rate -1 Hz"},
		{"tick rate 60", func(d *game.Def[counter]) { d.Settings.TickRate = 60 }, ""},
		{"no min players", func(d *game.Def[counter]) { d.Settings.MinPlayers = 0 }, "min players 0"},
		{"max below min", func(d *game.Def[counter]) { d.Settings.MaxPlayers = 0 }, "max players 0"},
		{"negative grace", func(d *game.Def[counter]) { d.Settings.ReconnectGrace = -time.Second }, "reconnect grace"},
		{"nil init", func(d *game.Def[counter]) { d.Init = nil }, "init function is nil"},
		{"nil apply", func(d *game.Def[counter]) { d.Apply = nil }, "apply function is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ok
			tt.edit(&d)
			_, err := game.New(d)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New error = %v, want it to say %q", err, tt.want)
			}
		})
	}
	// Every problem is reported at once.
	d := ok
	d.Settings.TickRate, d.Apply = 99, nil
	_, err := game.New(d)
	if err == nil || !strings.Contains(err.Error(), "tick rate 99") || !strings.Contains(err.Error(), "apply function is nil") {
		t.Fatalf("New error = %v, want both problems", err)
	}
}

func TestStartChecksSetup(t *testing.T) {
	g := game.MustNew(counterDef())
	tests := []struct {
		name    string
		players []game.Player
		want    string
	}{
		{"no players", nil, "0 players: game counter seats 1 to 2"},
		{"too many", []game.Player{{0, "a"}, {1, "b"}, {2, "c"}}, "3 players"},
		{"seat twice", []game.Player{{0, "a"}, {0, "b"}}, "seat 0 given twice"},
		{"seat outside", []game.Player{{0, "a"}, {2, "b"}}, "seat 2 outside 0 to 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.Start(game.Setup{Players: tt.players}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start error = %v, want %q", err, tt.want)
			}
		})
	}
	inst, err := g.Start(game.Setup{Players: []game.Player{{1, "b"}, {0, "a"}}, Params: []byte("abc")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := state(t, inst); s.Total != 3 {
		t.Fatalf("Init state total = %d, want len(params) 3", s.Total)
	}
}

func TestApplyOutcomes(t *testing.T) {
	inst := start(t, counterDef())
	fx, err := inst.Apply(game.Entry{Seq: 1, Input: game.Action(0, "add", []byte{3})})
	if err != nil || len(fx) != 1 || fx[0].Type != "total" || !bytes.Equal(fx[0].Payload, []byte{3}) {
		t.Fatalf("add: effects %v, err %v", fx, err)
	}

	// A rejection: the player sees the reason, the state stays.
	_, err = inst.Apply(game.Entry{Seq: 2, Input: game.Action(0, "add", []byte{1, 2})})
	if reason, ok := game.IsRejection(err); !ok || reason != "add wants one byte" {
		t.Fatalf("bad add: err %v, want rejection 'add wants one byte'", err)
	}
	if _, err := inst.Apply(game.Entry{Seq: 3, Input: game.Action(0, "odd", nil)}); err != nil {
		t.Fatalf("odd with total 3: %v", err)
	}
	if got := state(t, inst).Total; got != 3 {
		t.Fatalf("total after rejection = %d, want 3", got)
	}
	if _, ended := inst.Ended(); ended {
		t.Fatal("a rejection ended the room")
	}

	// Any other error ends the room.
	_, err = inst.Apply(game.Entry{Seq: 4, Input: game.Action(0, "fail", nil)})
	if err == nil || !strings.Contains(err.Error(), "broken invariant") {
		t.Fatalf("fail: err %v", err)
	}
	if _, ok := game.IsRejection(err); ok {
		t.Fatal("a game error is reported as a rejection")
	}
	if res, ended := inst.Ended(); !ended || res != nil {
		t.Fatalf("after an error: ended %v result %q, want ended with no result", ended, res)
	}
	if _, err := inst.Apply(game.Entry{Seq: 5, Input: game.Action(0, "add", []byte{1})}); !errors.Is(err, game.ErrEnded) {
		t.Fatalf("input after the end: err %v, want ErrEnded", err)
	}
}

func TestApplyPanicEndsRoom(t *testing.T) {
	inst := start(t, counterDef())
	_, err := inst.Apply(game.Entry{Seq: 1, Input: game.Action(0, "boom", nil)})
	var p *game.PanicError
	if !errors.As(err, &p) || p.Value != "boom" || !bytes.Contains(p.Stack, []byte("game_test")) {
		t.Fatalf("err = %v, want a *PanicError with the value and the stack", err)
	}
	if _, ended := inst.Ended(); !ended {
		t.Fatal("room not ended after a panic")
	}
}

func TestEndDropsLaterEffectsAndTimers(t *testing.T) {
	inst := start(t, counterDef())
	if _, err := inst.Apply(game.Entry{Seq: 1, Input: game.Action(0, "timer", []byte("5"))}); err != nil {
		t.Fatal(err)
	}
	fx, err := inst.Apply(game.Entry{Seq: 2, Input: game.Action(0, "end", nil)})
	if err != nil {
		t.Fatal(err)
	}
	if len(fx) != 1 || fx[0].Kind != game.EffectEnd {
		t.Fatalf("effects %v, want only the End", fx)
	}
	if res, ended := inst.Ended(); !ended || string(res) != "done" {
		t.Fatalf("Ended() = %q, %v", res, ended)
	}
	if _, _, ok := inst.Next(); ok || len(inst.Timers()) != 0 {
		t.Fatalf("timers after the end: %v", inst.Timers())
	}
}

func TestBadEntries(t *testing.T) {
	def := counterDef()
	tests := []struct {
		name    string
		tick    int
		entries []game.Entry
		want    string
	}{
		{"seq repeats", 0, []game.Entry{{Seq: 1, Input: game.Joined(0)}, {Seq: 1, Input: game.Joined(0)}}, "seq 1 after 1"},
		{"clock goes back", 0, []game.Entry{{Seq: 1, At: time.Second, Input: game.Joined(0)}, {Seq: 2, Input: game.Joined(0)}}, "clock 0s before 1s"},
		{"unknown seat", 0, []game.Entry{{Seq: 1, Input: game.Action(3, "add", []byte{1})}}, "no seat 3"},
		{"timer not pending", 0, []game.Entry{{Seq: 1, Input: game.TimerFired("t1")}}, `timer "t1" is not pending`},
		{"timer early", 0, []game.Entry{{Seq: 1, Input: game.Action(0, "timer", []byte("2"))}, {Seq: 2, At: time.Second, Input: game.TimerFired("t2")}}, "due 2s"},
		{"tick event-driven", 0, []game.Entry{{Seq: 1, Input: game.Tick(1)}}, "event-driven"},
		{"tick skipped", 10, []game.Entry{{Seq: 1, Input: game.Tick(2)}}, "tick 2 after 0"},
		{"leave reason", 0, []game.Entry{{Seq: 1, Input: game.Left(0, 9)}}, "unknown reason"},
		{"no kind", 0, []game.Entry{{Seq: 1}}, "input kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := def
			d.Settings.TickRate = tt.tick
			inst := start(t, d)
			var err error
			for _, e := range tt.entries {
				if _, err = inst.Apply(e); err != nil {
					break
				}
			}
			if !errors.Is(err, game.ErrBadEntry) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrBadEntry saying %q", err, tt.want)
			}
			if _, ended := inst.Ended(); ended {
				t.Fatal("a bad entry ended the room")
			}
		})
	}
}

func TestInvalidEffectEndsRoom(t *testing.T) {
	inst := start(t, counterDef())
	_, err := inst.Apply(game.Entry{Seq: 1, Input: game.Action(0, "bad-seat", nil)})
	if err == nil || !strings.Contains(err.Error(), "send to seat 7 of 1") {
		t.Fatalf("err = %v", err)
	}
	if _, ended := inst.Ended(); !ended {
		t.Fatal("room goes on after an invalid effect")
	}
}

func TestTimersAndTicks(t *testing.T) {
	d := counterDef()
	d.Settings.TickRate = 1
	inst := start(t, d)
	apply := func(seq uint64, at time.Duration, in game.Input) {
		t.Helper()
		if _, err := inst.Apply(game.Entry{Seq: seq, At: at, Input: in}); err != nil {
			t.Fatalf("%v: %v", in, err)
		}
	}
	apply(1, 0, game.Action(0, "timer", []byte("3")))  // t3 at 3s
	apply(2, 0, game.Action(0, "timer", []byte("1")))  // t1 at 1s, same time as tick 1
	apply(3, 0, game.Action(0, "timer", []byte("2")))  // t2 at 2s
	apply(4, 0, game.Action(0, "cancel", []byte("2"))) // gone
	apply(5, 0, game.Action(0, "timer", []byte("3")))  // t3 rescheduled: now after... still 3s

	var got []string
	seq := uint64(6)
	for len(got) < 6 {
		at, in, ok := inst.Next()
		if !ok {
			t.Fatal("nothing next")
		}
		got = append(got, fmt.Sprintf("%v@%v", in, at))
		apply(seq, at, in)
		seq++
	}
	want := []string{`timer "t1"@1s`, "tick 1@1s", "tick 2@2s", `timer "t3"@3s`, "tick 3@3s", "tick 4@4s"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("order:\n got %v\nwant %v", got, want)
	}
	if ev := state(t, inst).Events; strings.Join(ev, ",") != "t1@1s,t3@3s" {
		t.Fatalf("timer events %v: the game saw the wrong clock", ev)
	}
}

func TestTimersSameDueKeepScheduleOrder(t *testing.T) {
	inst := start(t, counterDef())
	for i, name := range []string{"5", "5b", "5a"} {
		if _, err := inst.Apply(game.Entry{Seq: uint64(i + 1), Input: game.Action(0, "timer", []byte(name))}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, tm := range inst.Timers() {
		names = append(names, fmt.Sprintf("%s@%v", tm.Name, tm.Due))
	}
	if got := strings.Join(names, ","); got != "t5@5s,t5b@5s,t5a@5s" {
		t.Fatalf("timers %s, want schedule order", got)
	}
}

func TestRandIsSeedAndSeq(t *testing.T) {
	draw := func(seed, seq uint64) [3]uint64 {
		c := game.NewContext(game.ContextOptions{Seed: seed, Seq: seq})
		return [3]uint64{c.Rand().Uint64(), c.Rand().Uint64(), c.Rand().Uint64()}
	}
	a, b := draw(1, 5), draw(1, 5)
	if a != b {
		t.Fatalf("same seed and seq: %v and %v", a, b)
	}
	if a[0] == a[1] {
		t.Fatalf("calls in one input repeat: %v", a)
	}
	if c := draw(1, 6); c == a {
		t.Fatal("neighbouring sequence numbers give the same stream")
	}
	if c := draw(2, 5); c == a {
		t.Fatal("different seeds give the same stream")
	}
}

func TestSnapshotRestore(t *testing.T) {
	d := counterDef()
	g := game.MustNew(d)
	md := game.NewStatic("v1", nil)
	a, err := g.Start(onePlayer, md)
	if err != nil {
		t.Fatal(err)
	}
	entries := []game.Entry{
		{Seq: 1, Input: game.Action(0, "add", []byte{4})},
		{Seq: 2, Input: game.Action(0, "timer", []byte("2"))},
		{Seq: 3, Input: game.Action(0, "timer", []byte("1"))},
	}
	for _, e := range entries {
		if _, err := a.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Restore(onePlayer, game.NewStatic("v2", nil), snap); err == nil || !strings.Contains(err.Error(), `pinned master data "v1", given "v2"`) {
		t.Fatalf("restore with another version: %v", err)
	}
	b, err := g.Restore(onePlayer, md, snap)
	if err != nil {
		t.Fatal(err)
	}
	// Both instances go on identically.
	for _, inst := range []game.Instance{a, b} {
		for seq := uint64(4); seq < 6; seq++ {
			at, in, ok := inst.Next()
			if !ok {
				t.Fatal("timer lost")
			}
			if _, err := inst.Apply(game.Entry{Seq: seq, At: at, Input: in}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sa, _ := a.State()
	sb, _ := b.State()
	if !bytes.Equal(sa, sb) {
		t.Fatalf("restored instance diverged:\n%s\n%s", sa, sb)
	}
	if want := `{"total":4,"events":["t1@1s","t2@2s"]}`; string(sa) != want {
		t.Fatalf("state %s, want %s", sa, want)
	}
}

func TestApplyReusesEffects(t *testing.T) {
	inst := start(t, counterDef())
	seq := uint64(0)
	payload := []byte{0}
	allocs := testing.AllocsPerRun(100, func() {
		seq++
		if _, err := inst.Apply(game.Entry{Seq: seq, Input: game.Action(0, "add", payload)}); err != nil {
			t.Fatal(err)
		}
	})
	// The broadcast's one-byte payload is the only allocation.
	if allocs > 1 {
		t.Fatalf("Apply allocates %.1f times per input, want ≤ 1", allocs)
	}
}

func TestLoadDecodesOncePerVersion(t *testing.T) {
	md := &countingMaster{Static: game.NewStatic("v1", map[string][]byte{"cards": []byte(`{"strike":3}`)})}
	for range 3 {
		m, err := game.Load[map[string]int](md, "cards")
		if err != nil || m["strike"] != 3 {
			t.Fatalf("Load = %v, %v", m, err)
		}
	}
	if md.reads != 1 {
		t.Fatalf("document read %d times, want once", md.reads)
	}
	// Another type is another cache entry.
	if _, err := game.Load[map[string]float64](md, "cards"); err != nil || md.reads != 2 {
		t.Fatalf("Load as another type: err %v, reads %d", err, md.reads)
	}
	if _, err := game.Load[map[string]int](md, "missing"); !errors.Is(err, game.ErrNoDocument) {
		t.Fatalf("missing document: %v", err)
	}
	if _, err := game.Load[[]int](md, "cards"); err == nil || !strings.Contains(err.Error(), `master data v1 document "cards"`) {
		t.Fatalf("undecodable document: %v", err)
	}
}

type countingMaster struct {
	*game.Static
	reads int
}

func (c *countingMaster) Document(name string) ([]byte, error) {
	c.reads++
	return c.Static.Document(name)
}

func (c *countingMaster) Value(key any, load func(game.MasterData) (any, error)) (any, error) {
	return c.Static.Value(key, func(game.MasterData) (any, error) { return load(c) })
}

func TestRegistry(t *testing.T) {
	var r game.Registry
	g := game.MustNew(counterDef())
	if err := r.Register(g); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(g); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("second Register: %v", err)
	}
	if got, ok := r.Lookup("counter"); !ok || got != g {
		t.Fatal("Lookup lost the game")
	}
	if names := r.Names(); len(names) != 1 || names[0] != "counter" {
		t.Fatalf("Names = %v", names)
	}
}

func TestSummary(t *testing.T) {
	inst := start(t, counterDef())
	if inst.Summary() != nil {
		t.Fatal("summary without Def.Summary")
	}
	d := counterDef()
	d.Summary = func(s counter) []byte { return fmt.Appendf(nil, "total %d", s.Total) }
	inst = start(t, d)
	inst.Apply(game.Entry{Seq: 1, Input: game.Action(0, "add", []byte{5})})
	if got := string(inst.Summary()); got != "total 5" {
		t.Fatalf("Summary = %q", got)
	}
}

func TestLoadConcurrent(t *testing.T) {
	md := game.NewStatic("v1", map[string][]byte{"cards": []byte(`{"strike":3}`)})
	var wg sync.WaitGroup
	got := make([]map[string]int, 8)
	for i := range got {
		wg.Go(func() {
			m, err := game.Load[map[string]int](md, "cards")
			if err != nil {
				t.Error(err)
			}
			got[i] = m
		})
	}
	wg.Wait()
	for i, m := range got {
		if m["strike"] != 3 {
			t.Fatalf("room %d read %v", i, m)
		}
	}
}

func TestSettingsClock(t *testing.T) {
	tests := []struct {
		s        game.Settings
		interval time.Duration
		tick3    time.Duration
		grace    time.Duration
	}{
		{game.Settings{}, 0, 0, game.DefaultReconnectGrace},
		{game.Settings{TickRate: 20, ReconnectGrace: time.Minute}, 50 * time.Millisecond, 150 * time.Millisecond, time.Minute},
		{game.Settings{TickRate: 60}, 16666666, 50 * time.Millisecond, game.DefaultReconnectGrace},
	}
	for _, tt := range tests {
		if got := tt.s.TickInterval(); got != tt.interval {
			t.Errorf("%+v: TickInterval %v, want %v", tt.s, got, tt.interval)
		}
		if got := tt.s.TickTime(3); got != tt.tick3 {
			t.Errorf("%+v: TickTime(3) %v, want %v", tt.s, got, tt.tick3)
		}
		if got := tt.s.Grace(); got != tt.grace {
			t.Errorf("%+v: Grace %v, want %v", tt.s, got, tt.grace)
		}
	}
}
