package room

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/taisen-dev/taisen/game"
)

// SpectatorSeat is the seat of a spectator's ticket.
const SpectatorSeat game.Seat = -1

// maxTicketLen bounds what DecodeTicket reads.
const maxTicketLen = 1024

// ErrBadTicket is returned (wrapped) for a ticket that is malformed, not
// signed by this node's secret, or expired.
var ErrBadTicket = errors.New("invalid join ticket")

// Ticket lets one user join one room in one seat until it expires.
type Ticket struct {
	// Room is the room id.
	Room string `json:"r"`
	// User is the user id the ticket is for.
	User string `json:"u"`
	// Seat is the user's seat, or SpectatorSeat.
	Seat game.Seat `json:"s"`
	// Expires is the expiry, Unix seconds.
	Expires int64 `json:"e"`
	// Node is the id of the node that runs the room ("" on a node
	// without a cluster id).
	Node string `json:"n,omitempty"`
}

// EncodeTicket signs t with secret (HMAC-SHA256) and returns the token:
// base64url(JSON) "." base64url(MAC).
func EncodeTicket(secret []byte, t Ticket) string {
	body, _ := json.Marshal(t) // a struct of strings and integers always encodes
	b := base64.RawURLEncoding.EncodeToString(body)
	return b + "." + base64.RawURLEncoding.EncodeToString(ticketMAC(secret, b))
}

func ticketMAC(secret []byte, body string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("taisen.room.ticket.v1\x00"))
	h.Write([]byte(body))
	return h.Sum(nil)
}

// DecodeTicket verifies token against secret (constant-time) and its
// expiry against now, and returns the ticket.
func DecodeTicket(secret []byte, token string, now time.Time) (Ticket, error) {
	if len(token) > maxTicketLen {
		return Ticket{}, fmt.Errorf("%w: longer than %d bytes", ErrBadTicket, maxTicketLen)
	}
	body, sig, ok := strings.Cut(token, ".")
	if !ok {
		return Ticket{}, fmt.Errorf("%w: not body.signature", ErrBadTicket)
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: signature: %w", ErrBadTicket, err)
	}
	if !hmac.Equal(mac, ticketMAC(secret, body)) {
		return Ticket{}, fmt.Errorf("%w: bad signature", ErrBadTicket)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: body: %w", ErrBadTicket, err)
	}
	var t Ticket
	if err := json.Unmarshal(raw, &t); err != nil {
		return Ticket{}, fmt.Errorf("%w: body: %w", ErrBadTicket, err)
	}
	if t.Room == "" || t.User == "" || t.Seat < SpectatorSeat || t.Seat >= game.MaxSeats {
		return Ticket{}, fmt.Errorf("%w: incomplete", ErrBadTicket)
	}
	if now.Unix() >= t.Expires {
		return Ticket{}, fmt.Errorf("%w: expired at %s", ErrBadTicket, time.Unix(t.Expires, 0).UTC().Format(time.RFC3339))
	}
	return t, nil
}
