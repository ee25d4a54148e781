package game

import (
	"errors"
	"fmt"
	"time"
)

// MaxTickRate is the highest tick rate a game may ask for, in Hz.
const MaxTickRate = 60

// MaxSeats is the largest MaxPlayers a game may declare.
const MaxSeats = 1024

// DefaultReconnectGrace is how long a disconnected player keeps a seat when
// Settings.ReconnectGrace is zero.
const DefaultReconnectGrace = 30 * time.Second

// Settings are a game's static room settings, the same for every room of
// the game.
type Settings struct {
	// TickRate is how many Tick inputs a room receives per second, 1 to
	// MaxTickRate; 0 makes the game event-driven: it advances only on
	// players' inputs and its own timers.
	TickRate int
	// MinPlayers and MaxPlayers bound the number of seated players a room
	// is created with. MinPlayers must be at least 1.
	MinPlayers, MaxPlayers int
	// Spectators allows read-only members who receive what the game sends
	// to spectators and send no inputs.
	Spectators bool
	// ReconnectGrace is how long a disconnected player keeps the seat
	// before the game is told the player is gone (LeaveGraceExpired);
	// zero means DefaultReconnectGrace, negative is invalid.
	ReconnectGrace time.Duration
}

// TickInterval returns the time between two ticks, or 0 for an
// event-driven game. Tick n is due at n*time.Second/TickRate, so rates
// that do not divide a second do not drift.
func (s Settings) TickInterval() time.Duration {
	if s.TickRate <= 0 {
		return 0
	}
	return time.Second / time.Duration(s.TickRate)
}

// TickTime returns the room-clock time at which tick n is due (n ≥ 1), or 0
// for an event-driven game.
func (s Settings) TickTime(n uint64) time.Duration {
	if s.TickRate <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second / time.Duration(s.TickRate)
}

// Grace returns ReconnectGrace, or DefaultReconnectGrace when it is zero.
func (s Settings) Grace() time.Duration {
	if s.ReconnectGrace == 0 {
		return DefaultReconnectGrace
	}
	return s.ReconnectGrace
}

// Validate reports every problem with s, joined.
func (s Settings) Validate() error {
	var errs []error
	if s.TickRate < 0 || s.TickRate > MaxTickRate {
		errs = append(errs, fmt.Errorf("tick rate %d Hz: want 0 (event-driven) or 1 to %d", s.TickRate, MaxTickRate))
	}
	if s.MinPlayers < 1 {
		errs = append(errs, fmt.Errorf("min players %d: want at least 1", s.MinPlayers))
	}
	if s.MaxPlayers < s.MinPlayers || s.MaxPlayers > MaxSeats {
		errs = append(errs, fmt.Errorf("max players %d: want %d to %d", s.MaxPlayers, max(s.MinPlayers, 1), MaxSeats))
	}
	if s.ReconnectGrace < 0 {
		errs = append(errs, fmt.Errorf("reconnect grace %v: want zero (default %v) or positive", s.ReconnectGrace, DefaultReconnectGrace))
	}
	return errors.Join(errs...)
}
