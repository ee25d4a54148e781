package game

import (
	"errors"
	"fmt"
)

// Rejection is the error Apply returns to refuse a player's input: the
// state and effects of that Apply are dropped, the room goes on, and the
// player who sent the input receives Reason. Return it with Reject or
// Rejectf; it may be wrapped (errors.As finds it).
type Rejection struct {
	// Reason is shown to the player: say what was wrong ("not your turn"),
	// keep internals out.
	Reason string
}

// Error implements error.
func (r *Rejection) Error() string { return "input rejected: " + r.Reason }

// Reject returns a *Rejection with the reason the player sees.
func Reject(reason string) error { return &Rejection{Reason: reason} }

// Rejectf is Reject with a reason formatted like fmt.Sprintf.
func Rejectf(format string, args ...any) error {
	return &Rejection{Reason: fmt.Sprintf(format, args...)}
}

// IsRejection reports whether err is (or wraps) a *Rejection, and its
// reason.
func IsRejection(err error) (reason string, ok bool) {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Reason, true
	}
	return "", false
}

// PanicError is the error an Instance returns when the game's Init or
// Apply panicked. Like any error that is not a Rejection, it ends the room
// with an error result.
type PanicError struct {
	// Value is what the game panicked with.
	Value any
	// Stack is the panicking goroutine's stack, for the log.
	Stack []byte
}

// Error implements error.
func (p *PanicError) Error() string { return fmt.Sprintf("game panicked: %v", p.Value) }

// Unwrap returns the panic value when it is an error.
func (p *PanicError) Unwrap() error {
	if err, ok := p.Value.(error); ok {
		return err
	}
	return nil
}

// ErrEnded is returned (wrapped) by Instance.Apply after the room ended,
// by an End effect or by an error.
var ErrEnded = errors.New("room has ended")

// ErrBadEntry is returned (wrapped) by Instance.Apply for an entry the
// runtime should never produce: a sequence number that does not increase,
// a clock that goes back, a timer that is not pending, an unknown seat or
// input kind. The state is unchanged.
var ErrBadEntry = errors.New("bad log entry")
