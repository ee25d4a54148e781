package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/internal/store"
)

var roomTests = []struct {
	name string
	test func(t *testing.T, s store.Store)
}{
	{"RoomResultRoundTrip", testRoomResultRoundTrip},
	{"RoomResultRefused", testRoomResultRefused},
	{"UserRoomResults", testUserRoomResults},
}

func roomResult(id string, users ...string) store.RoomResult {
	r := store.RoomResult{RoomID: id, Game: "tictactoe", Status: "finished", Result: []byte(`{"winner":0}`),
		Labels: map[string]string{"mode": "ranked"}, Inputs: 7,
		CreatedAt: t0.Add(-time.Minute), EndedAt: t0.Add(1500 * time.Microsecond)}
	for i, u := range users {
		r.Players = append(r.Players, store.RoomPlayer{Seat: i, UserID: u})
	}
	return r
}

func testRoomResultRoundTrip(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		name string
		in   store.RoomResult
	}{
		{"finished", roomResult(newID(), "alice", "bob")},
		{"error without result or labels", store.RoomResult{RoomID: newID(), Game: "arena", Status: "error", Reason: "the game failed: boom",
			Players: []store.RoomPlayer{{Seat: 0, UserID: "carol"}}, CreatedAt: t0, EndedAt: t0.Add(time.Second)}},
		{"no players", store.RoomResult{RoomID: newID(), Game: "arena", Status: "abandoned", CreatedAt: t0, EndedAt: t0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutRoomResult(t.Context(), tc.in); err != nil {
				t.Fatalf("PutRoomResult: %v", err)
			}
			got, err := s.RoomResult(t.Context(), tc.in.RoomID)
			if err != nil {
				t.Fatalf("RoomResult: %v", err)
			}
			want := tc.in
			want.CreatedAt, want.EndedAt = store.Timestamp(want.CreatedAt), store.Timestamp(want.EndedAt)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("RoomResult:\n got %+v\nwant %+v", got, want)
			}
			if err := s.PutRoomResult(t.Context(), tc.in); !errors.Is(err, store.ErrAlreadyExists) {
				t.Fatalf("PutRoomResult again: %v, want ErrAlreadyExists", err)
			}
		})
	}
	if _, err := s.RoomResult(t.Context(), newID()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RoomResult of an unknown room: %v, want ErrNotFound", err)
	}
}

func testRoomResultRefused(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		name string
		mod  func(*store.RoomResult)
	}{
		{"no room id", func(r *store.RoomResult) { r.RoomID = "" }},
		{"no game", func(r *store.RoomResult) { r.Game = "" }},
		{"no status", func(r *store.RoomResult) { r.Status = "" }},
		{"no end time", func(r *store.RoomResult) { r.EndedAt = time.Time{} }},
		{"empty user id", func(r *store.RoomResult) { r.Players[1].UserID = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := roomResult(newID(), "alice", "bob")
			tc.mod(&r)
			if err := s.PutRoomResult(t.Context(), r); err == nil || errors.Is(err, store.ErrAlreadyExists) {
				t.Fatalf("PutRoomResult: %v, want a validation error", err)
			}
			if r.RoomID != "" {
				if _, err := s.RoomResult(t.Context(), r.RoomID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("a refused result was stored: %v", err)
				}
			}
		})
	}
	// A duplicate seat is refused whole: neither the result nor its players.
	r := roomResult(newID(), "alice", "bob")
	r.Players[1].Seat = 0
	if err := s.PutRoomResult(t.Context(), r); err == nil {
		t.Fatal("PutRoomResult with a seat twice: nil error")
	}
	if _, err := s.RoomResult(t.Context(), r.RoomID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a half-stored result: %v", err)
	}
}

func testUserRoomResults(t *testing.T, s store.Store) {
	var ids []string
	for i := range 5 {
		users := []string{"dave", fmt.Sprintf("rival-%d", i)}
		if i%2 == 1 {
			users = []string{fmt.Sprintf("rival-%d", i), "erin"}
		}
		id := newID()
		ids = append(ids, id)
		if err := s.PutRoomResult(t.Context(), roomResult(id, users...)); err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{0, 1, 2, 5} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("no end of pages")
				}
				rs, next, err := s.UserRoomResults(t.Context(), "dave", store.Page{Cursor: cursor, Limit: limit})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rs {
					got = append(got, r.RoomID)
					if len(r.Players) != 2 || r.Players[0].UserID != "dave" {
						t.Fatalf("players %+v", r.Players)
					}
				}
				if next == "" {
					break
				}
				cursor = next
			}
			want := []string{ids[4], ids[2], ids[0]} // newest first
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("dave's results %v, want %v", got, want)
			}
		})
	}
	rs, _, err := s.UserRoomResults(t.Context(), "erin", store.Page{})
	if err != nil || len(rs) != 2 || rs[0].RoomID != ids[3] || rs[0].Players[1].UserID != "erin" {
		t.Fatalf("erin's results %+v, %v", rs, err)
	}
	if rs, next, err := s.UserRoomResults(t.Context(), "nobody", store.Page{}); err != nil || len(rs) != 0 || next != "" {
		t.Fatalf("nobody's results %+v %q %v", rs, next, err)
	}
}
