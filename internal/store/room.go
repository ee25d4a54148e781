package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RoomResult is an ended room as the store keeps it.
type RoomResult struct {
	// RoomID identifies the room.
	RoomID string
	// Game is the game's registered name.
	Game string
	// Status is how the room ended ("finished", "error", "abandoned",
	// "ended", "aborted").
	Status string
	// Result is the game's result (opaque bytes), empty unless finished.
	Result []byte
	// Reason explains an error, an abandonment or an operator's end.
	Reason string
	// Players are the seated players, in seat order.
	Players []RoomPlayer
	// Labels are the room's labels.
	Labels map[string]string
	// Inputs counts the inputs the room applied.
	Inputs int64
	// CreatedAt and EndedAt bound the room's life.
	CreatedAt time.Time
	EndedAt   time.Time
}

// RoomPlayer is a seat of a RoomResult.
type RoomPlayer struct {
	Seat   int
	UserID string
}

// RoomResults keeps the results of ended rooms.
type RoomResults interface {
	// PutRoomResult stores an ended room once: ErrAlreadyExists when the
	// room id is taken.
	PutRoomResult(ctx context.Context, r RoomResult) error
	// RoomResult returns a room's result, or ErrNotFound.
	RoomResult(ctx context.Context, roomID string) (RoomResult, error)
	// UserRoomResults lists the results of the rooms a user was seated
	// in, the most recently stored first.
	UserRoomResults(ctx context.Context, userID string, p Page) (results []RoomResult, next string, err error)
}

// CheckRoomResult returns the error PutRoomResult gives for a result it
// refuses. The implementations share it.
func CheckRoomResult(r RoomResult) error {
	var errs []error
	if r.RoomID == "" || r.Game == "" || r.Status == "" {
		errs = append(errs, errors.New("room id, game and status are required"))
	}
	if r.CreatedAt.IsZero() || r.EndedAt.IsZero() {
		errs = append(errs, errors.New("created and ended times are required"))
	}
	for i, p := range r.Players {
		if p.UserID == "" {
			errs = append(errs, fmt.Errorf("player %d: empty user id", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("room result %q: %w", r.RoomID, err)
	}
	return nil
}
