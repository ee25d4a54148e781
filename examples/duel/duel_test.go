package duel_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/examples/duel"
	"github.com/taisen-dev/taisen/game"
	"github.com/taisen-dev/taisen/game/gametest"
)

const cardsV1 = `[{"id":"strike","damage":3},{"id":"heal","heal":2},{"id":"jab","damage":1,"heal":1}]`

func master(t testing.TB, version, cards string) game.MasterData {
	t.Helper()
	var v gametest.Versions
	if err := v.Push(version, map[string][]byte{duel.CardsDocument: []byte(cards)}); err != nil {
		t.Fatal(err)
	}
	v.Activate(version)
	return v.Active()
}

func battle(t testing.TB, md game.MasterData, params string) *gametest.Room[duel.State] {
	t.Helper()
	cfg := gametest.Config{Players: 2, Master: md, Seed: 11}
	if params != "" {
		cfg.Params = []byte(params)
	}
	r, err := gametest.New(duel.Def, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.JoinAll(); err != nil {
		t.Fatal(err)
	}
	return r
}

func playJSON(id string) []byte { return []byte(`{"card":"` + id + `"}`) }

func TestStartDealsPrivateHands(t *testing.T) {
	md := master(t, "v1", cardsV1)
	r, _ := gametest.New(duel.Def, gametest.Config{Players: 2, Master: md, Seed: 11, Params: []byte(`{"hand":5}`)})
	steps, err := r.JoinAll()
	if err != nil {
		t.Fatal(err)
	}
	st := r.State()
	var hands int
	for _, f := range gametest.Effects(steps) {
		if f.Type != "hand" {
			continue
		}
		hands++
		seat := f.To.Seats[0]
		if f.To.Players || f.To.Spectators || len(f.To.Seats) != 1 {
			t.Fatalf("a hand goes to %v, want one seat", f.To)
		}
		var got []string
		json.Unmarshal(f.Payload, &got)
		if !slices.Equal(got, st.Hands[seat]) || len(got) != 5 {
			t.Fatalf("seat %d told hand %v, state has %v", seat, got, st.Hands[seat])
		}
	}
	if hands != 2 {
		t.Fatalf("%d hands sent, want 2", hands)
	}
	// The state holds ids only: no definitions in a snapshot.
	b, _ := r.EncodedState()
	if strings.Contains(string(b), "damage") {
		t.Fatalf("state carries card definitions: %s", b)
	}
}

func TestPlays(t *testing.T) {
	md := master(t, "v1", cardsV1)
	tests := []struct {
		name   string
		card   string
		hp     [2]int // before: seat 0, seat 1
		wantHP [2]int
		ended  bool
	}{
		{"strike", "strike", [2]int{20, 20}, [2]int{20, 17}, false},
		{"heal capped at max", "heal", [2]int{19, 20}, [2]int{20, 20}, false},
		{"heal", "heal", [2]int{10, 20}, [2]int{12, 20}, false},
		{"jab", "jab", [2]int{10, 10}, [2]int{11, 9}, false},
		{"strike to zero wins", "strike", [2]int{1, 2}, [2]int{1, 0}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := duel.State{
				HP: tt.hp, MaxHP: 20, Started: true, Joined: [2]bool{true, true},
				Hands: [2][]string{{"strike", "heal", "jab"}, {"jab"}},
			}
			r, err := gametest.NewFrom(duel.Def, gametest.Config{Players: 2, Master: md}, st)
			if err != nil {
				t.Fatal(err)
			}
			step, err := r.Act(0, "play", playJSON(tt.card))
			if err != nil {
				t.Fatal(err)
			}
			after := r.State()
			if after.HP != tt.wantHP || after.Turn != 1 || after.Played != 1 {
				t.Fatalf("after %s: HP %v turn %d, want HP %v", tt.card, after.HP, after.Turn, tt.wantHP)
			}
			// The card left the hand and one was drawn from the catalog.
			i := slices.Index(st.Hands[0], tt.card)
			kept := slices.Delete(slices.Clone(st.Hands[0]), i, i+1)
			hand := after.Hands[0]
			if len(hand) != 3 || !slices.Equal(hand[:2], kept) || !slices.Contains([]string{"strike", "heal", "jab"}, hand[2]) {
				t.Fatalf("hand after playing %s: %v, want %v and a drawn card", tt.card, hand, kept)
			}
			if st.Hands[0][0] != "strike" || len(st.Hands[0]) != 3 {
				t.Fatalf("the given state's hand changed: %v", st.Hands[0])
			}
			if got := gametest.Sent([]gametest.Step{step}, "played"); len(got) != 1 || !strings.Contains(string(got[0]), `"card":"`+tt.card+`"`) {
				t.Fatalf("played %q", got)
			}
			if _, ended := r.Ended(); ended != tt.ended {
				t.Fatalf("ended %v, want %v", ended, tt.ended)
			}
		})
	}
}

func TestRejections(t *testing.T) {
	md := master(t, "v1", `[{"id":"strike","damage":3}]`)
	tests := []struct {
		name    string
		seat    game.Seat
		typ     string
		payload string
		want    string
	}{
		{"not your turn", 1, "play", `{"card":"strike"}`, "not your turn"},
		{"not in hand", 0, "play", `{"card":"meteor"}`, `card "meteor" is not in your hand`},
		{"bad id", 0, "play", `{"card":"Strike!"}`, "is not a-z"},
		{"not json", 0, "play", `strike`, "bad play"},
		{"missing", 0, "play", `{}`, "card is missing"},
		{"unknown action", 0, "draw", `{}`, `unknown action "draw"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := battle(t, md, "")
			_, err := r.Act(tt.seat, tt.typ, []byte(tt.payload))
			if reason, ok := game.IsRejection(err); !ok || !strings.Contains(reason, tt.want) {
				t.Fatalf("err %v, want a rejection saying %q", err, tt.want)
			}
		})
	}
}

func TestBattleToTheEnd(t *testing.T) {
	md := master(t, "v1", `[{"id":"strike","damage":3}]`)
	r := battle(t, md, `{"hp":7}`)
	for i := range 5 {
		if _, err := r.Act(game.Seat(i%2), "play", playJSON("strike")); err != nil {
			t.Fatalf("play %d: %v", i, err)
		}
	}
	// Seat 1 took 3 strikes (9 > 7) on plays 0, 2, 4.
	b, ended := r.Ended()
	var res duel.Result
	if !ended || json.Unmarshal(b, &res) != nil || res != (duel.Result{Winner: 0, Reason: "hp", Played: 5}) {
		t.Fatalf("ended %v result %s", ended, b)
	}
	if r.State().HP != [2]int{1, 0} {
		t.Fatalf("HP %v", r.State().HP)
	}
	if got := string(r.Instance().Summary()); got != `{"hp":[1,0],"turn":1,"played":5}` {
		t.Fatalf("summary %s", got)
	}
}

func TestQuitLoses(t *testing.T) {
	r := battle(t, master(t, "v1", cardsV1), "")
	r.Apply(game.Left(0, game.LeaveDisconnected))
	if _, ended := r.Ended(); ended {
		t.Fatal("a disconnect ended the battle")
	}
	r.Apply(game.Left(0, game.LeaveGraceExpired))
	b, _ := r.Ended()
	if !strings.Contains(string(b), `"winner":1`) {
		t.Fatalf("result %s", b)
	}
}

func TestMissingCatalogFailsStart(t *testing.T) {
	_, err := gametest.New(duel.Def, gametest.Config{Players: 2})
	if !errors.Is(err, game.ErrNoDocument) {
		t.Fatalf("no master data: %v", err)
	}
	var v gametest.Versions
	v.Push("bad", map[string][]byte{duel.CardsDocument: []byte(`[{"id":"a"},{"id":"a"}]`)})
	v.Activate("bad")
	if _, err := gametest.New(duel.Def, gametest.Config{Players: 2, Master: v.Active()}); err == nil || !strings.Contains(err.Error(), `card "a" defined twice`) {
		t.Fatalf("duplicate card: %v", err)
	}
}

// A new master data version is activated mid-season: the running battle
// keeps the version it pinned, a new battle gets the new one.
func TestMasterDataSwapMidSeason(t *testing.T) {
	var versions gametest.Versions
	versions.Push("2026-11", map[string][]byte{duel.CardsDocument: []byte(`[{"id":"strike","damage":3}]`)})
	versions.Push("2026-12", map[string][]byte{duel.CardsDocument: []byte(`[{"id":"strike","damage":5}]`)})
	versions.Activate("2026-11")

	running := battle(t, versions.Active(), "")
	if _, err := running.Act(0, "play", playJSON("strike")); err != nil {
		t.Fatal(err)
	}

	if err := versions.Activate("2026-12"); err != nil {
		t.Fatal(err)
	}
	fresh := battle(t, versions.Active(), "")

	if _, err := running.Act(1, "play", playJSON("strike")); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Act(0, "play", playJSON("strike")); err != nil {
		t.Fatal(err)
	}
	if hp := running.State().HP; hp != [2]int{17, 17} {
		t.Fatalf("running battle HP %v after the swap, want 3 damage each (v 2026-11)", hp)
	}
	if hp := fresh.State().HP; hp != [2]int{20, 15} {
		t.Fatalf("new battle HP %v, want 5 damage (v 2026-12)", hp)
	}
	// The running battle's snapshot names its version and restores only
	// with it.
	snap, _ := running.Instance().Snapshot()
	if snap.MasterVersion != "2026-11" {
		t.Fatalf("snapshot pinned %q", snap.MasterVersion)
	}
	if _, err := game.MustNew(duel.Def).Restore(running.Setup(), versions.Active(), snap); err == nil {
		t.Fatal("restored a 2026-11 battle on 2026-12")
	}
	old, _ := versions.Get("2026-11")
	if _, err := game.MustNew(duel.Def).Restore(running.Setup(), old, snap); err != nil {
		t.Fatal(err)
	}
}

func randomScript(r *rand.Rand) []gametest.Move {
	ids := []string{"strike", "strike", "strike", "jab", "heal", "meteor"}
	moves := []gametest.Move{{Input: game.Joined(0)}, {Input: game.Joined(1)}}
	for i := range r.IntN(50) {
		seat := game.Seat(i % 2) // mostly alternating, so battles reach an end
		if r.IntN(5) == 0 {
			seat = 1 - seat
		}
		var in game.Input
		switch n := r.IntN(90); {
		case n < 84:
			in = game.Action(seat, "play", playJSON(ids[r.IntN(len(ids))]))
		case n < 86:
			in = game.Action(seat, "play", []byte(`{"card":`))
		case n < 87:
			in = game.Left(seat, game.LeaveDisconnected)
		case n < 89:
			in = game.Reconnected(seat)
		default:
			in = game.Left(seat, game.LeaveQuit)
		}
		moves = append(moves, gametest.Move{Wait: time.Duration(r.IntN(3)) * time.Second, Input: in})
	}
	return moves
}

func TestReplayProperty(t *testing.T) {
	cfg := gametest.Config{Players: 2, Master: master(t, "v1", cardsV1), Params: []byte(`{"hp":6}`)}
	if err := gametest.CheckReplay(duel.Def, cfg, randomScript, 300, 5); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodePlay(f *testing.F) {
	for _, s := range []string{`{"card":"strike"}`, `{"card":""}`, `{"card":"a","x":1}`, `{"card":null}`, `{"card":"\u00e9"}`, `{"card":"ok"} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := duel.DecodePlay(b)
		if err != nil {
			return
		}
		if id == "" || len(id) > 32 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
			t.Fatalf("accepted card id %q from %q", id, b)
		}
		if again, err := duel.DecodePlay(playJSON(id)); err != nil || again != id {
			t.Fatalf("%q does not round-trip: %q, %v", id, again, err)
		}
	})
}
