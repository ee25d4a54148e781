package room

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTickets(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	good := Ticket{Room: "r1", User: "alice", Seat: 1, Expires: now.Add(time.Minute).Unix()}
	tok := EncodeTicket(testSecret, good)
	body, sig, _ := strings.Cut(tok, ".")
	other := EncodeTicket(testSecret, Ticket{Room: "r1", User: "bob", Seat: 1, Expires: good.Expires})
	otherBody, _, _ := strings.Cut(other, ".")
	for _, tc := range []struct {
		name   string
		secret []byte
		token  string
		now    time.Time
		want   string // "" for valid
	}{
		{"valid", testSecret, tok, now, ""},
		{"other secret", []byte("another secret of thirty-two byt"), tok, now, "bad signature"},
		{"body swapped", testSecret, otherBody + "." + sig, now, "bad signature"},
		{"signature cut", testSecret, body + "." + sig[:10], now, "bad signature"},
		{"no signature", testSecret, body, now, "not body.signature"},
		{"expired", testSecret, tok, now.Add(time.Minute), "expired"},
		{"huge", testSecret, strings.Repeat("a", 2000), now, "longer than"},
		{"unsigned junk", testSecret, "e30." + sig, now, "bad signature"},
		{"empty fields", testSecret, EncodeTicket(testSecret, Ticket{Expires: good.Expires}), now, "incomplete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeTicket(tc.secret, tc.token, tc.now)
			if tc.want == "" {
				if err != nil || got != good {
					t.Fatalf("got %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, ErrBadTicket) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrBadTicket with %q", err, tc.want)
			}
		})
	}
}

func TestJoinChecksTheTicketsUser(t *testing.T) {
	e := newEnv(t, Config{})
	c := e.create(t, "echo", "", "alice", "bob")
	if _, err := e.m.Join(context.Background(), c.Tickets[0].Ticket, "bob"); !errors.Is(err, ErrBadTicket) {
		t.Fatalf("bob with alice's ticket: %v", err)
	}
	e.clock.Advance(11 * time.Minute) // past the ticket TTL (and the join timeout ends the room)
	if _, err := e.m.Join(context.Background(), c.Tickets[1].Ticket, "bob"); !errors.Is(err, ErrBadTicket) {
		t.Fatalf("expired ticket: %v", err)
	}
	e.sink.wait(t)
}

func FuzzDecodeTicket(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(EncodeTicket(testSecret, Ticket{Room: "r", User: "u", Seat: 0, Expires: now.Unix() + 60}))
	f.Add(EncodeTicket(testSecret, Ticket{Room: "r", User: "u", Seat: -1, Expires: now.Unix() + 60}))
	f.Add("e30.AAAA")
	f.Add(".")
	f.Fuzz(func(t *testing.T, token string) {
		tk, err := DecodeTicket(testSecret, token, now)
		if err != nil {
			if !errors.Is(err, ErrBadTicket) {
				t.Fatalf("error %v does not wrap ErrBadTicket", err)
			}
			return
		}
		// Whatever is accepted was signed by us and decodes again the same.
		again, err := DecodeTicket(testSecret, EncodeTicket(testSecret, tk), now)
		if err != nil || again != tk {
			t.Fatalf("accepted %+v, re-encoded: %+v, %v", tk, again, err)
		}
		if tk.Room == "" || tk.User == "" || tk.Expires <= now.Unix() {
			t.Fatalf("accepted an incomplete or expired ticket %+v", tk)
		}
	})
}
