package arena_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/examples/arena"
	"github.com/taisen-dev/taisen/game"
	"github.com/taisen-dev/taisen/game/gametest"
)

func joined(t testing.TB, players int, params string) *gametest.Room[arena.State] {
	t.Helper()
	cfg := gametest.Config{Players: players}
	if params != "" {
		cfg.Params = []byte(params)
	}
	r, err := gametest.New(arena.Def, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.JoinAll(); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMovement(t *testing.T) {
	const start, far = arena.Size / 10, arena.Size * 9 / 10
	tests := []struct {
		name   string
		vx, vy int16
		wait   time.Duration
		wantX  int32
		wantY  int32
	}{
		{"still", 0, 0, time.Second, start, start},
		{"right at full speed for 1 s", arena.MaxSpeed, 0, time.Second, start + arena.MaxSpeed, start},
		{"down at half speed for 2 s", 0, arena.MaxSpeed / 2, 2 * time.Second, start, start + arena.MaxSpeed},
		{"too fast is clamped", 20_000, 0, time.Second, start + arena.MaxSpeed, start},
		{"stops at the left wall", -arena.MaxSpeed, 0, 10 * time.Second, 0, start},
		{"stops at the bottom-right corner", 3000, 4000, 60 * time.Second, arena.Size, arena.Size},
		// 30 000 × √2 clamps to (3 535, -3 535) mm/s: 176 mm per tick.
		{"diagonal clamp keeps direction", 30_000, -30_000, time.Second, start + 20*176, start - 20*176},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := joined(t, 4, `{"duration_seconds":600}`)
			if _, err := r.Act(0, "move", arena.EncodeMove(tt.vx, tt.vy)); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Advance(tt.wait); err != nil {
				t.Fatal(err)
			}
			a := r.State().Players[0]
			if a.X != tt.wantX || a.Y != tt.wantY {
				t.Fatalf("position (%d, %d), want (%d, %d)", a.X, a.Y, tt.wantX, tt.wantY)
			}
			if other := r.State().Players[1]; other.X != far || other.Y != start {
				t.Fatalf("seat 1 moved to (%d, %d)", other.X, other.Y)
			}
		})
	}
}

func TestBroadcastEveryTick(t *testing.T) {
	r := joined(t, 3, "")
	r.Act(2, "move", arena.EncodeMove(0, -arena.MaxSpeed))
	steps, err := r.Advance(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != arena.TickRate {
		t.Fatalf("%d steps in 1 s, want %d ticks", len(steps), arena.TickRate)
	}
	for i, s := range steps {
		if len(s.Effects) != 1 {
			t.Fatalf("tick %d: effects %v", i+1, s.Effects)
		}
		f := s.Effects[0]
		if f.Type != "pos" || f.Delivery != game.Ephemeral || !f.To.Players || !f.To.Spectators {
			t.Fatalf("tick %d: %v, want an ephemeral pos to everybody", i+1, f)
		}
		frame, err := arena.DecodeFrame(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		wantY := int32(arena.Size*9/10 - (i+1)*arena.MaxSpeed/arena.TickRate)
		if frame.Tick != uint32(i+1) || len(frame.Pos) != 3 || frame.Pos[2] != [2]int32{arena.Size / 10, wantY} {
			t.Fatalf("tick %d: frame %+v, want seat 2 at y %d", i+1, frame, wantY)
		}
	}
}

func TestRejectedInputs(t *testing.T) {
	tests := []struct {
		typ     string
		payload []byte
		want    string
	}{
		{"move", []byte{1, 2, 3}, "bad move: payload of 3 bytes, want 4"},
		{"move", nil, "payload of 0 bytes"},
		{"shoot", arena.EncodeMove(1, 1), `unknown action "shoot"`},
	}
	for _, tt := range tests {
		r := joined(t, 2, "")
		_, err := r.Act(0, tt.typ, tt.payload)
		if reason, ok := game.IsRejection(err); !ok || !strings.Contains(reason, tt.want) {
			t.Errorf("%s %v: err %v, want %q", tt.typ, tt.payload, err, tt.want)
		}
	}
}

func TestDisconnectStopsAvatar(t *testing.T) {
	r := joined(t, 2, "")
	r.Act(0, "move", arena.EncodeMove(arena.MaxSpeed, 0))
	r.Advance(time.Second)
	r.Apply(game.Left(0, game.LeaveDisconnected))
	x := r.State().Players[0].X
	r.Advance(time.Second)
	if got := r.State().Players[0].X; got != x {
		t.Fatalf("a disconnected avatar moved from %d to %d", x, got)
	}
	r.Apply(game.Reconnected(0))
	r.Act(0, "move", arena.EncodeMove(arena.MaxSpeed, 0))
	r.Advance(time.Second)
	if got := r.State().Players[0].X; got != x+arena.MaxSpeed {
		t.Fatalf("after reconnect x = %d, want %d", got, x+arena.MaxSpeed)
	}
}

func TestRoundEndsWithResult(t *testing.T) {
	r := joined(t, 4, `{"duration_seconds":2}`)
	r.Act(1, "move", arena.EncodeMove(-arena.MaxSpeed, 0))
	r.Act(3, "move", arena.EncodeMove(0, -arena.MaxSpeed/2))
	r.Apply(game.Left(2, game.LeaveQuit))
	steps, err := r.Advance(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2*arena.TickRate || steps[len(steps)-1].Entry.At != 2*time.Second {
		t.Fatalf("%d ticks, last at %v: want the round to end at 2s", len(steps), steps[len(steps)-1].Entry.At)
	}
	b, ended := r.Ended()
	var res arena.Result
	if !ended || json.Unmarshal(b, &res) != nil {
		t.Fatalf("ended %v, result %q", ended, b)
	}
	want := arena.Result{Distance: []int64{0, 2 * arena.MaxSpeed, 0, arena.MaxSpeed}, Winner: 1}
	if res.Winner != want.Winner || len(res.Distance) != 4 || res.Distance[1] != want.Distance[1] || res.Distance[3] != want.Distance[3] {
		t.Fatalf("result %+v, want %+v", res, want)
	}
}

func randomScript(r *rand.Rand) []gametest.Move {
	var moves []gametest.Move
	for s := range arena.Seats {
		moves = append(moves, gametest.Move{Input: game.Joined(game.Seat(s))})
	}
	for range r.IntN(60) {
		seat := game.Seat(r.IntN(arena.Seats))
		m := gametest.Move{Wait: time.Duration(r.IntN(400)) * time.Millisecond}
		switch n := r.IntN(20); {
		case n < 16:
			m.Input = game.Action(seat, "move", arena.EncodeMove(int16(r.IntN(65536)-32768), int16(r.IntN(20001)-10000)))
		case n < 17:
			m.Input = game.Action(seat, "move", []byte{byte(r.IntN(256))})
		case n < 18:
			m.Input = game.Left(seat, game.LeaveDisconnected)
		case n < 19:
			m.Input = game.Reconnected(seat)
		default:
			m.Input = game.Left(seat, game.LeaveQuit)
		}
		moves = append(moves, m)
	}
	return moves
}

func TestReplayProperty(t *testing.T) {
	cfg := gametest.Config{Players: arena.Seats, Params: []byte(`{"duration_seconds":5}`)}
	if err := gametest.CheckReplay(arena.Def, cfg, randomScript, 100, 3); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeMove(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add(arena.EncodeMove(-32768, -32768))
	f.Add(arena.EncodeMove(32767, 1))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		vx, vy, err := arena.DecodeMove(b)
		if err != nil {
			if len(b) == 4 {
				t.Fatalf("4 bytes %v rejected: %v", b, err)
			}
			return
		}
		if m2 := int64(vx)*int64(vx) + int64(vy)*int64(vy); m2 > arena.MaxSpeed*arena.MaxSpeed {
			t.Fatalf("%v decodes to (%d, %d), faster than MaxSpeed", b, vx, vy)
		}
		in := [2]int64{int64(int16(uint16(b[0])<<8 | uint16(b[1]))), int64(int16(uint16(b[2])<<8 | uint16(b[3])))}
		// The direction is kept: no sign flips, and a clamped vector points
		// the same way (cross product near zero).
		if in[0]*int64(vx) < 0 || in[1]*int64(vy) < 0 {
			t.Fatalf("%v: direction flipped to (%d, %d)", in, vx, vy)
		}
		if cross := in[0]*int64(vy) - in[1]*int64(vx); abs64(cross) > 2*(abs64(in[0])+abs64(in[1])) {
			t.Fatalf("%v: direction changed to (%d, %d)", in, vx, vy)
		}
	})
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
