package room

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/examples/tictactoe"
	"github.com/taisen-dev/taisen/game"
)

func TestTicTacToePlayedToAWin(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.create(t, tictactoe.Name, `{"turn_seconds":10}`, "alice", "bob")
	if len(c.Tickets) != 2 || c.Tickets[0].Seat != 0 || c.Tickets[1].Seat != 1 {
		t.Fatalf("tickets %+v", c.Tickets)
	}
	info := e.join(t, c.Tickets[0])
	if info.Seat != 0 || info.Game != tictactoe.Name || len(info.Players) != 2 {
		t.Fatalf("join info %+v", info)
	}
	e.join(t, c.Tickets[1])
	for _, u := range []string{"alice", "bob"} {
		e.d.game(t, u, "start", `{"turn":0,"turn_ms":10000}`)
	}
	// Bob moves out of turn: only bob hears why.
	e.input(t, c, "bob", "move", `{"cell":4}`)
	rej := e.d.wait(t, "bob", "a rejection", func(m Message) bool { return m.Kind == KindRejected })
	if rej.Reason != "not your turn" || rej.Type != "move" {
		t.Fatalf("rejection %+v", rej)
	}
	for i, mv := range []struct{ user, cell string }{{"alice", "0"}, {"bob", "3"}, {"alice", "1"}, {"bob", "4"}, {"alice", "2"}} {
		e.input(t, c, mv.user, "move", `{"cell":`+mv.cell+`}`)
		want := `{"cell":` + mv.cell + `,"next":` + map[bool]string{true: "1", false: "0"}[i%2 == 0] + `,"seat":` + map[bool]string{true: "0", false: "1"}[i%2 == 0] + `}`
		e.d.game(t, "alice", "moved", want)
		e.d.game(t, "bob", "moved", want)
	}
	for _, u := range []string{"alice", "bob"} {
		e.d.game(t, u, "over", `{"winner":0,"reason":"line"}`)
		end := e.d.ended(t, u)
		if end.Status != StatusFinished || string(end.Payload) != `{"winner":0,"reason":"line"}` {
			t.Fatalf("%s: end %+v", u, end)
		}
	}
	res := e.sink.wait(t)
	if res.Room != c.Room || res.Game != tictactoe.Name || res.Status != StatusFinished ||
		string(res.Result) != `{"winner":0,"reason":"line"}` || res.Labels["mode"] != "test" || len(res.Players) != 2 {
		t.Fatalf("result %+v", res)
	}
	if err := e.m.Input(c.Room, "alice", "move", []byte(`{"cell":5}`)); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("input after the end: %v, want ErrNoRoom", err)
	}
}

func TestTurnClockFiresOnTheInjectedClock(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.create(t, tictactoe.Name, `{"turn_seconds":10}`, "alice", "bob")
	e.join(t, c.Tickets[0])
	e.join(t, c.Tickets[1])
	e.d.game(t, "bob", "start", "")
	e.clock.Advance(9 * time.Second)
	e.input(t, c, "alice", "move", `{"cell":0}`) // at ~9s: bob's clock starts now
	e.d.game(t, "bob", "moved", "")
	e.clock.Advance(9 * time.Second)
	e.clock.Advance(time.Second)
	e.d.game(t, "alice", "over", `{"winner":0,"reason":"timeout"}`)
	if res := e.sink.wait(t); res.Status != StatusFinished {
		t.Fatalf("result %+v", res)
	}
}

func TestBusyMailboxRefusesWithoutBlocking(t *testing.T) {
	e := newEnv(t, Config{Mailbox: 4})
	e.d.hold = "hold"
	c := e.create(t, "echo", "", "alice")
	e.join(t, c.Tickets[0])
	e.input(t, c, "alice", "hold", "")
	<-e.d.held // the room is now stuck in a slow delivery
	var busy error
	for i := 0; i < 5 && busy == nil; i++ {
		busy = e.m.Input(c.Room, "alice", "x", nil)
	}
	if !errors.Is(busy, ErrBusy) {
		t.Fatalf("5th input into a mailbox of 4: %v, want ErrBusy", busy)
	}
	close(e.d.release)
	// The room drains its mailbox and takes input again.
	e.d.game(t, "alice", "in", `action seat=0 type="x" payload=""`)
	if err := e.m.Input(c.Room, "alice", "after", nil); err != nil {
		t.Fatal(err)
	}
	e.d.game(t, "alice", "in", `action seat=0 type="after" payload=""`)
}

func TestGameFailureEndsOnlyItsRoom(t *testing.T) {
	for _, tc := range []struct{ action, reason string }{
		{"boom", "game panicked: boom on purpose"},
		{"fail", "the rules are broken"},
	} {
		t.Run(tc.action, func(t *testing.T) {
			e := newEnv(t, Config{})
			bad := e.create(t, "echo", "", "alice", "bob")
			good := e.create(t, "echo", "", "carol")
			for _, tk := range append(bad.Tickets, good.Tickets...) {
				e.join(t, tk)
			}
			e.input(t, bad, "alice", tc.action, "")
			for _, u := range []string{"alice", "bob"} {
				end := e.d.ended(t, u)
				if end.Status != StatusError || !strings.Contains(end.Reason, tc.reason) || !strings.HasPrefix(end.Reason, "the game failed") {
					t.Fatalf("%s: end %+v, want an error naming %q", u, end, tc.reason)
				}
			}
			if res := e.sink.wait(t); res.Room != bad.Room || res.Status != StatusError || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("result %+v", res)
			}
			e.input(t, good, "carol", "still", "")
			e.d.game(t, "carol", "in", `action seat=0 type="still" payload=""`)
			// And new rooms start.
			again := e.create(t, "echo", "", "alice")
			e.join(t, again.Tickets[0])
			e.d.game(t, "alice", "in", "joined seat=0")
		})
	}
}

func TestZeroDelayTimerLoopEndsTheRoom(t *testing.T) {
	e := newEnv(t, Config{MaxInputsPerInstant: 50})
	c := e.create(t, "echo", "", "alice")
	e.join(t, c.Tickets[0])
	e.input(t, c, "alice", "loop", "")
	end := e.d.ended(t, "alice")
	if end.Status != StatusError || !strings.Contains(end.Reason, "more than 50 inputs at clock") {
		t.Fatalf("end %+v", end)
	}
	if res := e.sink.wait(t); res.Status != StatusError {
		t.Fatalf("result %+v", res)
	}
}

func TestRoomAbandonedWhenPlayersDoNotJoin(t *testing.T) {
	e := newEnv(t, Config{JoinTimeout: 20 * time.Second})
	c := e.create(t, "echo", "", "alice", "bob")
	e.join(t, c.Tickets[0])
	e.d.game(t, "alice", "in", "joined seat=0")
	e.clock.Advance(19 * time.Second)
	e.clock.Advance(time.Second)
	end := e.d.ended(t, "alice")
	if end.Status != StatusAbandoned || !strings.Contains(end.Reason, "not every player joined within 20s") {
		t.Fatalf("end %+v", end)
	}
	if res := e.sink.wait(t); res.Status != StatusAbandoned || res.Room != c.Room {
		t.Fatalf("result %+v", res)
	}
	if _, err := e.m.Join(context.Background(), c.Tickets[1].Ticket, "bob"); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("late join: %v, want ErrNoRoom", err)
	}
}

func TestDisconnectGraceReconnectAndExpiry(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.create(t, "echo", "", "alice", "bob")
	e.join(t, c.Tickets[0])
	e.join(t, c.Tickets[1])
	ctx := context.Background()

	e.m.Disconnected(ctx, "alice")
	e.d.game(t, "bob", "in", "left seat=0 reason=disconnected")
	e.clock.Advance(4 * time.Second)
	if info := e.join(t, c.Tickets[0]); !info.Reconnect {
		t.Fatalf("join within the grace: %+v, want a reconnect", info)
	}
	e.d.game(t, "bob", "in", "reconnected seat=0")
	e.d.game(t, "alice", "in", "reconnected seat=0")

	// A session back on this node takes the seat back by itself; a rejoin
	// without a ticket does too.
	e.m.Disconnected(ctx, "alice")
	e.d.game(t, "bob", "in", "left seat=0 reason=disconnected")
	e.m.Returned(ctx, "alice")
	e.d.game(t, "bob", "in", "reconnected seat=0")
	e.m.Disconnected(ctx, "alice")
	e.d.game(t, "bob", "in", "left seat=0 reason=disconnected")
	if info, err := e.m.Rejoin(ctx, c.Room, "alice"); err != nil || !info.Reconnect {
		t.Fatalf("rejoin: %+v, %v", info, err)
	}
	e.d.game(t, "bob", "in", "reconnected seat=0")

	e.m.Disconnected(ctx, "alice")
	e.d.game(t, "bob", "in", "left seat=0 reason=disconnected")
	e.clock.Advance(5 * time.Second)
	e.d.game(t, "bob", "in", "left seat=0 reason=grace_expired")
	if _, err := e.m.Join(ctx, c.Tickets[0].Ticket, "alice"); !errors.Is(err, ErrLeft) {
		t.Fatalf("join after the grace: %v, want ErrLeft", err)
	}
	if mine := e.m.Mine(context.Background(), "bob"); len(mine) != 1 || mine[0].Room != c.Room {
		t.Fatalf("bob's rooms %+v", mine)
	}
	// The last player leaves: the game does not end the room, the runtime does.
	if err := e.m.Leave(ctx, c.Room, "bob"); err != nil {
		t.Fatal(err)
	}
	if res := e.sink.wait(t); res.Status != StatusAbandoned || res.Reason != "every player left" {
		t.Fatalf("result %+v", res)
	}
	if mine := e.m.Mine(context.Background(), "bob"); len(mine) != 0 {
		t.Fatalf("bob's rooms after the end %+v", mine)
	}
}

func TestInputBeforeJoinIsRejected(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.create(t, "echo", "", "alice")
	e.input(t, c, "alice", "x", "")
	rej := e.d.wait(t, "alice", "a rejection", func(m Message) bool { return m.Kind == KindRejected })
	if rej.Reason != "join the room before sending input" {
		t.Fatalf("rejection %+v", rej)
	}
	if _, err := e.m.Rejoin(context.Background(), c.Room, "alice"); !errors.Is(err, ErrBadTicket) {
		t.Fatalf("rejoin before the first join: %v, want ErrBadTicket", err)
	}
	if err := e.m.Input(c.Room, "mallory", "x", nil); !errors.Is(err, ErrNotPlayer) {
		t.Fatalf("input from a stranger: %v", err)
	}
}

func TestSpectatorsWatchReadOnly(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.create(t, "echo", "", "alice")
	e.join(t, c.Tickets[0])
	tk, err := e.m.SpectatorTicket(c.Room, "sam")
	if err != nil {
		t.Fatal(err)
	}
	info := e.join(t, SeatTicket{User: "sam", Seat: SpectatorSeat, Ticket: tk})
	if !info.Spectating || info.Seat != SpectatorSeat {
		t.Fatalf("spectator join %+v", info)
	}
	e.input(t, c, "alice", "wave", "")
	e.d.game(t, "sam", "in", `action seat=0 type="wave" payload=""`)
	if err := e.m.Input(c.Room, "sam", "cheat", nil); !errors.Is(err, ErrNotPlayer) {
		t.Fatalf("spectator input: %v, want ErrNotPlayer", err)
	}
	if mine := e.m.Mine(context.Background(), "sam"); len(mine) != 1 {
		t.Fatalf("sam's rooms %+v", mine)
	}
	e.m.Disconnected(context.Background(), "sam")
	e.input(t, c, "alice", "end", "done")
	e.d.ended(t, "alice")
	e.sink.wait(t)
	if mine := e.m.Mine(context.Background(), "sam"); len(mine) != 0 {
		t.Fatalf("sam's rooms after the end %+v", mine)
	}

	tt := e.create(t, "ticker", "", "bob")
	if _, err := e.m.SpectatorTicket(tt.Room, "sam"); !errors.Is(err, ErrNoSpectators) {
		t.Fatalf("spectating a game without spectators: %v", err)
	}
}

func TestTicksCatchUpWithABoundedBurst(t *testing.T) {
	e := newEnv(t, Config{MaxCatchUp: 3})
	c := e.create(t, "ticker", "", "alice")
	e.join(t, c.Tickets[0])
	e.clock.Advance(100 * time.Millisecond)
	tick := e.d.wait(t, "alice", "tick 1", func(m Message) bool { return m.Type == "tick" })
	if string(tick.Payload) != "1" || !tick.Ephemeral {
		t.Fatalf("first tick %+v", tick)
	}
	// The node stalls for 10 s: the room catches up 4 ticks (the late one
	// and 3 more) in order, then its clock skips the rest.
	e.clock.Advance(10 * time.Second)
	for _, want := range []string{"2", "3", "4", "5"} {
		if m := e.d.wait(t, "alice", "tick "+want, func(m Message) bool { return m.Type == "tick" }); string(m.Payload) != want {
			t.Fatalf("tick %q, want %q", m.Payload, want)
		}
	}
	e.input(t, c, "alice", "ping", "")
	e.d.game(t, "alice", "in", `action seat=0 type="ping" payload=""`)
	e.clock.Advance(100 * time.Millisecond)
	if m := e.d.wait(t, "alice", "tick 6", func(m Message) bool { return m.Type == "tick" }); string(m.Payload) != "6" {
		t.Fatalf("tick after the skip %q, want 6", m.Payload)
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var late uint64
	var skipped float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "taisen_room_tick_lateness_seconds":
			late = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		case "taisen_room_clock_skipped_seconds_total":
			skipped = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if late < 6 || skipped < 9 {
		t.Fatalf("lateness observations %d (want ≥ 6), skipped %.1fs (want ≥ 9s)", late, skipped)
	}
}

func TestInspectListAndEnd(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.create(t, "echo", "", "alice", "bob")
	other := e.create(t, tictactoe.Name, "", "carol", "dave")
	e.join(t, c.Tickets[0])
	e.input(t, c, "alice", "later", "")
	e.d.game(t, "alice", "in", `joined seat=0`)
	ctx := context.Background()
	var in Inspection
	var err error
	// "later" was applied once the room answers an inspection after it.
	in, err = e.m.Inspect(ctx, c.Room)
	if err != nil {
		t.Fatal(err)
	}
	if string(in.Summary) != "n=2" || in.Seq != 2 || len(in.Timers) != 1 || in.Timers[0].Name != "later" {
		t.Fatalf("inspection %+v", in)
	}
	if in.Seats[0].State != SeatConnected || in.Seats[1].State != SeatWaiting || in.Seats[1].User != "bob" {
		t.Fatalf("seats %+v", in.Seats)
	}
	snap, err := DecodeSnapshot(in.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	var st echoState
	if err := json.Unmarshal(snap.State, &st); err != nil || st.N != 2 || snap.Game != "echo" || in.StateSize != len(snap.State) {
		t.Fatalf("snapshot %+v state %+v err %v", snap, st, err)
	}

	if l := e.m.List(Filter{Game: "echo"}); len(l) != 1 || l[0].Room != c.Room {
		t.Fatalf("list echo %+v", l)
	}
	if l := e.m.List(Filter{Labels: map[string]string{"mode": "test"}}); len(l) != 2 {
		t.Fatalf("list by label %+v", l)
	}
	if l := e.m.List(Filter{Labels: map[string]string{"mode": "ranked"}}); len(l) != 0 {
		t.Fatalf("list by another label %+v", l)
	}

	if err := e.m.End(ctx, c.Room, "maintenance"); err != nil {
		t.Fatal(err)
	}
	if end := e.d.ended(t, "alice"); end.Status != StatusEnded || end.Reason != "maintenance" {
		t.Fatalf("end %+v", end)
	}
	if res := e.sink.wait(t); res.Status != StatusEnded || res.Reason != "maintenance" || res.Inputs != 2 {
		t.Fatalf("result %+v", res)
	}
	if _, err := e.m.Inspect(ctx, c.Room); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("inspect an ended room: %v", err)
	}
	_ = other
}

func TestCloseAbortsRooms(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.create(t, "echo", "", "alice")
	e.join(t, c.Tickets[0])
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if end := e.d.ended(t, "alice"); end.Status != StatusAborted {
		t.Fatalf("end %+v", end)
	}
	if res := e.sink.wait(t); res.Status != StatusAborted {
		t.Fatalf("result %+v", res)
	}
	if _, err := e.m.Create(CreateRequest{Game: "echo", Players: []string{"bob"}}); !errors.Is(err, ErrStopped) {
		t.Fatalf("create after close: %v", err)
	}
}

func TestCreateRefusesBadRequests(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		name string
		req  CreateRequest
		want string
	}{
		{"unknown game", CreateRequest{Game: "chess", Players: []string{"a"}}, "unknown game"},
		{"too many players", CreateRequest{Game: tictactoe.Name, Players: []string{"a", "b", "c"}}, "3 players: game tictactoe seats 2 to 2"},
		{"seated twice", CreateRequest{Game: "echo", Players: []string{"a", "a"}}, `user "a" seated twice`},
		{"bad params", CreateRequest{Game: tictactoe.Name, Params: []byte(`{"turn_seconds":-1}`), Players: []string{"a", "b"}}, "turn_seconds -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.m.Create(tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

var _ = game.Seat(0)
