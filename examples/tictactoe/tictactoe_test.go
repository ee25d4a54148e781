package tictactoe_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/examples/tictactoe"
	"github.com/taisen-dev/taisen/game"
	"github.com/taisen-dev/taisen/game/gametest"
)

func started(t *testing.T, params string) *gametest.Room[tictactoe.State] {
	t.Helper()
	cfg := gametest.Config{Players: 2}
	if params != "" {
		cfg.Params = []byte(params)
	}
	r, err := gametest.New(tictactoe.Def, cfg)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := r.JoinAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := gametest.Sent(steps, "start"); len(got) != 1 {
		t.Fatalf("start sent %d times after both joined", len(got))
	}
	return r
}

func move(cell int) []byte { return []byte(`{"cell":` + string(rune('0'+cell)) + `}`) }

func result(t *testing.T, r *gametest.Room[tictactoe.State]) (tictactoe.Result, bool) {
	t.Helper()
	b, ended := r.Ended()
	if !ended {
		return tictactoe.Result{}, false
	}
	var res tictactoe.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result %q: %v", b, err)
	}
	return res, true
}

func TestGamesToTheEnd(t *testing.T) {
	tests := []struct {
		name  string
		cells []int // alternate seats 0, 1, 0, ...
		want  tictactoe.Result
	}{
		{"top row", []int{0, 3, 1, 4, 2}, tictactoe.Result{Winner: 0, Reason: "line"}},
		{"column for seat 1", []int{0, 1, 3, 4, 8, 7}, tictactoe.Result{Winner: 1, Reason: "line"}},
		{"diagonal", []int{2, 0, 4, 1, 6}, tictactoe.Result{Winner: 0, Reason: "line"}},
		{"draw", []int{0, 1, 2, 4, 3, 5, 7, 6, 8}, tictactoe.Result{Winner: -1, Reason: "draw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := started(t, "")
			for i, c := range tt.cells {
				if _, err := r.Act(game.Seat(i%2), "move", move(c)); err != nil {
					t.Fatalf("move %d (cell %d): %v", i, c, err)
				}
				if _, ended := r.Ended(); ended != (i == len(tt.cells)-1) {
					t.Fatalf("after move %d ended = %v", i, ended)
				}
			}
			got, _ := result(t, r)
			if got != tt.want {
				t.Fatalf("result %+v, want %+v", got, tt.want)
			}
			if over := gametest.Sent(r.Steps(), "over"); len(over) != 1 {
				t.Fatalf("over sent %d times", len(over))
			}
			if len(r.Timers()) != 0 {
				t.Fatalf("turn clock still pending: %v", r.Timers())
			}
			if tt.name == "top row" {
				if got := string(r.Instance().Summary()); got != "XXX/OO./... turn 1" {
					t.Fatalf("summary %q", got)
				}
			}
		})
	}
}

func TestRejectedMoves(t *testing.T) {
	tests := []struct {
		name    string
		before  []int // moves played first, alternating from seat 0
		seat    game.Seat
		typ     string
		payload string
		want    string
	}{
		{"not your turn", nil, 1, "move", `{"cell":4}`, "not your turn"},
		{"taken", []int{4}, 1, "move", `{"cell":4}`, "cell 4 is taken"},
		{"outside", nil, 0, "move", `{"cell":9}`, "bad move: cell 9: want 0 to 8"},
		{"not json", nil, 0, "move", `4`, "bad move: want {\"cell\": 0..8}"},
		{"missing cell", nil, 0, "move", `{}`, "bad move: cell is missing"},
		{"extra field", nil, 0, "move", `{"cell":1,"x":2}`, "unknown field"},
		{"trailing", nil, 0, "move", `{"cell":1}}`, "nothing after it"},
		{"unknown action", nil, 0, "jump", `{}`, `unknown action "jump"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := started(t, "")
			for i, c := range tt.before {
				if _, err := r.Act(game.Seat(i%2), "move", move(c)); err != nil {
					t.Fatal(err)
				}
			}
			before := r.State()
			step, err := r.Act(tt.seat, tt.typ, []byte(tt.payload))
			reason, ok := game.IsRejection(err)
			if !ok || !strings.Contains(reason, tt.want) {
				t.Fatalf("err = %v, want a rejection saying %q", err, tt.want)
			}
			if step.Effects != nil || r.State() != before {
				t.Fatalf("a rejected move changed something: %v", step)
			}
		})
	}
}

func TestMoveBeforeStartRejected(t *testing.T) {
	r, err := gametest.New(tictactoe.Def, gametest.Config{Players: 2})
	if err != nil {
		t.Fatal(err)
	}
	r.Apply(game.Joined(0))
	_, err = r.Act(0, "move", move(0))
	if reason, _ := game.IsRejection(err); reason != "the game has not started" {
		t.Fatalf("err = %v", err)
	}
	if len(r.Timers()) != 0 {
		t.Fatal("turn clock runs before both joined")
	}
}

func TestTurnClock(t *testing.T) {
	r := started(t, `{"turn_seconds":10}`)
	// Seat 0 moves at 8 s: the clock restarts for seat 1.
	r.Advance(8 * time.Second)
	if _, err := r.Act(0, "move", move(4)); err != nil {
		t.Fatal(err)
	}
	if steps, _ := r.Advance(9 * time.Second); len(steps) != 0 {
		t.Fatalf("something fired before seat 1's 10 s: %v", steps)
	}
	steps, err := r.Advance(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 || steps[0].Entry.At != 18*time.Second {
		t.Fatalf("turn clock steps %v, want one at 18s", steps)
	}
	got, ended := result(t, r)
	if !ended || got != (tictactoe.Result{Winner: 0, Reason: "timeout"}) {
		t.Fatalf("result %+v ended %v, want seat 0 wins on timeout", got, ended)
	}
}

func TestDefaultTurnTimeForfeitsFirstPlayer(t *testing.T) {
	r := started(t, "")
	r.Advance(tictactoe.DefaultTurnTime - time.Millisecond)
	if _, ended := r.Ended(); ended {
		t.Fatal("ended before the turn time")
	}
	r.Advance(time.Millisecond)
	if got, _ := result(t, r); got != (tictactoe.Result{Winner: 1, Reason: "timeout"}) {
		t.Fatalf("result %+v", got)
	}
}

func TestLeaving(t *testing.T) {
	tests := []struct {
		name   string
		start  bool
		reason game.LeaveReason
		want   *tictactoe.Result // nil: the game goes on
	}{
		{"disconnect keeps the game", true, game.LeaveDisconnected, nil},
		{"quit forfeits", true, game.LeaveQuit, &tictactoe.Result{Winner: 0, Reason: "quit"}},
		{"grace expiry forfeits", true, game.LeaveGraceExpired, &tictactoe.Result{Winner: 0, Reason: "quit"}},
		{"quit before the start", false, game.LeaveQuit, &tictactoe.Result{Winner: -1, Reason: "abandoned"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := gametest.New(tictactoe.Def, gametest.Config{Players: 2})
			r.Apply(game.Joined(1))
			if tt.start {
				r.Apply(game.Joined(0))
			}
			if _, err := r.Apply(game.Left(1, tt.reason)); err != nil {
				t.Fatal(err)
			}
			got, ended := result(t, r)
			if tt.want == nil {
				if ended {
					t.Fatalf("ended: %+v", got)
				}
				return
			}
			if !ended || got != *tt.want {
				t.Fatalf("result %+v (ended %v), want %+v", got, ended, *tt.want)
			}
		})
	}
}

func TestReconnectGetsBoard(t *testing.T) {
	r := started(t, "")
	r.Act(0, "move", move(4))
	r.Apply(game.Left(0, game.LeaveDisconnected))
	step, err := r.Apply(game.Reconnected(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(step.Effects) != 1 || step.Effects[0].Type != "board" || len(step.Effects[0].To.Seats) != 1 || step.Effects[0].To.Seats[0] != 0 {
		t.Fatalf("reconnect effects %v, want the board to seat 0", step.Effects)
	}
	var st tictactoe.State
	if err := json.Unmarshal(step.Effects[0].Payload, &st); err != nil || st.Board[4] != 1 || st.Turn != 1 {
		t.Fatalf("board %+v (%v)", st, err)
	}
}

func TestBadParams(t *testing.T) {
	for _, p := range []string{`{"turn_seconds":-1}`, `{"turn_seconds":3601}`, `nope`} {
		if _, err := gametest.New(tictactoe.Def, gametest.Config{Players: 2, Params: []byte(p)}); err == nil || !strings.Contains(err.Error(), "params") {
			t.Errorf("params %s: err %v", p, err)
		}
	}
}

// randomScript plays random, mostly sensible inputs: moves on random cells
// from either seat, waits (some past the turn clock), disconnects and
// reconnects, the odd quit and garbage payload.
func randomScript(r *rand.Rand) []gametest.Move {
	moves := []gametest.Move{{Input: game.Joined(0)}, {Input: game.Joined(1)}}
	disconnected := [2]bool{}
	for i := range r.IntN(40) {
		seat := game.Seat(i % 2) // mostly alternating, so games reach an end
		if r.IntN(5) == 0 {
			seat = 1 - seat
		}
		m := gametest.Move{Wait: time.Duration(r.IntN(4)) * time.Second}
		switch n := r.IntN(60); {
		case n < 48:
			m.Input = game.Action(seat, "move", move(r.IntN(9)))
		case n < 52:
			m.Input = game.Action(seat, "move", []byte(`{"cell":`))
		case n < 58:
			if disconnected[seat] {
				m.Input = game.Reconnected(seat)
			} else {
				m.Input = game.Left(seat, game.LeaveDisconnected)
			}
			disconnected[seat] = !disconnected[seat]
		case n < 59:
			m.Wait = 31 * time.Second // past the turn clock
		default:
			m.Input = game.Left(seat, game.LeaveQuit)
		}
		moves = append(moves, m)
	}
	return moves
}

func TestReplayProperty(t *testing.T) {
	if err := gametest.CheckReplay(tictactoe.Def, gametest.Config{Players: 2}, randomScript, 300, 7); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeMove(f *testing.F) {
	for _, s := range []string{`{"cell":4}`, `{"cell":0}`, `{"cell":-1}`, `{"cell":1e3}`, `{"cell":null}`, `[]`, `{"cell":4} `, `{"cell":4}{}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := tictactoe.DecodeMove(b)
		if err != nil {
			return
		}
		if m.Cell < 0 || m.Cell > 8 {
			t.Fatalf("accepted cell %d from %q", m.Cell, b)
		}
		again, err := tictactoe.DecodeMove(move(m.Cell))
		if err != nil || again != m {
			t.Fatalf("re-encoded move %+v does not decode: %v", m, err)
		}
	})
}
