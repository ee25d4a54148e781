package game

import (
	"fmt"
	"strings"
	"time"
)

// EffectKind says what an Effect does.
type EffectKind uint8

// The kinds of effect a game returns.
const (
	// EffectSend sends a message (Type, Payload) to an Audience.
	EffectSend EffectKind = iota + 1
	// EffectSchedule sets the timer named Timer to fire After from now,
	// replacing a pending timer of that name.
	EffectSchedule
	// EffectCancel cancels the timer named Timer, if pending.
	EffectCancel
	// EffectEnd ends the room with the result Payload.
	EffectEnd
)

var effectKindNames = [...]string{"", "send", "schedule", "cancel", "end"}

// String returns the kind's lowercase name.
func (k EffectKind) String() string {
	if int(k) < len(effectKindNames) && k != 0 {
		return effectKindNames[k]
	}
	return fmt.Sprintf("EffectKind(%d)", uint8(k))
}

// Delivery is how a sent message travels.
type Delivery uint8

const (
	// Durable messages are numbered and kept for a reconnecting player to
	// receive later: moves, results, anything a client must not miss.
	Durable Delivery = iota
	// Ephemeral messages go only to players connected right now and are
	// never replayed: state sent at tick rate, where the next one
	// supersedes the last.
	Ephemeral
)

// Audience is who receives a send.
type Audience struct {
	// Players sends to every seated player (Seats is then ignored).
	Players bool `json:"players,omitempty"`
	// Seats lists the seats that receive the message when Players is false.
	Seats []Seat `json:"seats,omitempty"`
	// Spectators also sends to every spectator.
	Spectators bool `json:"spectators,omitempty"`
}

// String describes the audience: "players+spectators", "seats [0 2]",
// "spectators", "nobody".
func (a Audience) String() string {
	var parts []string
	switch {
	case a.Players:
		parts = append(parts, "players")
	case len(a.Seats) > 0:
		parts = append(parts, fmt.Sprintf("seats %v", a.Seats))
	}
	if a.Spectators {
		parts = append(parts, "spectators")
	}
	if len(parts) == 0 {
		return "nobody"
	}
	return strings.Join(parts, "+")
}

// Effect is one thing the runtime does for the game after an input.
// Effects are carried out in order; build them with Broadcast, SendSeats,
// SendSpectators, Send, Schedule, Cancel and End.
type Effect struct {
	// Kind is what to do.
	Kind EffectKind `json:"kind"`
	// To is a send's audience.
	To Audience `json:"to,omitzero"`
	// Type is a sent message's type, for the client to switch on.
	Type string `json:"type,omitempty"`
	// Payload is a sent message's body, or the room's result for
	// EffectEnd. The runtime may keep it after Apply returns: never change
	// it afterwards.
	Payload []byte `json:"payload,omitempty"`
	// Delivery is how a sent message travels (Durable by default).
	Delivery Delivery `json:"delivery,omitempty"`
	// Timer names the timer to schedule or cancel.
	Timer string `json:"timer,omitempty"`
	// After is how long after the current input's clock reading a
	// scheduled timer fires; zero or negative fires at the same reading,
	// after the current input.
	After time.Duration `json:"after,omitempty"`
}

// Send returns an effect that sends a message to an audience.
func Send(to Audience, typ string, payload []byte) Effect {
	return Effect{Kind: EffectSend, To: to, Type: typ, Payload: payload}
}

// Broadcast returns an effect that sends a message to every player and
// every spectator.
func Broadcast(typ string, payload []byte) Effect {
	return Send(Audience{Players: true, Spectators: true}, typ, payload)
}

// SendSeats returns an effect that sends a message to the players in the
// given seats only (a hand of cards, a private hint).
func SendSeats(typ string, payload []byte, seats ...Seat) Effect {
	return Send(Audience{Seats: seats}, typ, payload)
}

// SendSpectators returns an effect that sends a message to spectators only.
func SendSpectators(typ string, payload []byte) Effect {
	return Send(Audience{Spectators: true}, typ, payload)
}

// Ephemeral returns a copy of a send effect delivered ephemerally.
func (e Effect) Ephemeral() Effect {
	e.Delivery = Ephemeral
	return e
}

// Schedule returns an effect that makes the timer name fire after d of
// room clock, replacing a pending timer with that name. When it fires the
// game receives TimerFired(name) with Context.Now equal to the due time.
func Schedule(name string, d time.Duration) Effect {
	return Effect{Kind: EffectSchedule, Timer: name, After: d}
}

// Cancel returns an effect that cancels the pending timer name; cancelling
// a timer that is not pending does nothing.
func Cancel(name string) Effect { return Effect{Kind: EffectCancel, Timer: name} }

// End returns an effect that ends the room with a result (the game's own
// encoding, stored and reported by the runtime). Effects before it in the
// same slice are carried out, effects after it are dropped; the room
// receives no further input and its timers are cancelled.
func End(result []byte) Effect { return Effect{Kind: EffectEnd, Payload: result} }

// String describes the effect for logs and test failures.
func (e Effect) String() string {
	switch e.Kind {
	case EffectSend:
		d := ""
		if e.Delivery == Ephemeral {
			d = " ephemeral"
		}
		return fmt.Sprintf("send%s to %v type=%q payload=%q", d, e.To, e.Type, e.Payload)
	case EffectSchedule:
		return fmt.Sprintf("schedule %q after %v", e.Timer, e.After)
	case EffectCancel:
		return fmt.Sprintf("cancel %q", e.Timer)
	case EffectEnd:
		return fmt.Sprintf("end result=%q", e.Payload)
	}
	return e.Kind.String()
}
