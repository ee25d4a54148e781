package taisen

import (
	"context"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/internal/notify"
)

// Notification is a notification to send: ID (generated when empty; the
// same ID reaches a user once), Subject, Content with its ContentType,
// Sender, TTL (0: no expiry) and Mode.
type Notification = notify.Note

// NotifyMode says who receives a notification and whether it is kept.
type NotifyMode = apiv1.NotifyMode

// The delivery modes.
const (
	// NotifyPlaying: only users playing right now; never kept.
	NotifyPlaying = apiv1.NotifyMode_NOTIFY_MODE_PLAYING
	// NotifyConnected: any connected session now; never kept.
	NotifyConnected = apiv1.NotifyMode_NOTIFY_MODE_CONNECTED
	// NotifyStored: live when connected, otherwise kept and delivered at
	// the next login, until acknowledged or expired.
	NotifyStored = apiv1.NotifyMode_NOTIFY_MODE_STORED
)

// SendOutcome is what happened to a notification for one user.
type SendOutcome = adminv1.SendOutcome

// The outcomes.
const (
	SendDelivered  = adminv1.SendOutcome_SEND_OUTCOME_DELIVERED
	SendStored     = adminv1.SendOutcome_SEND_OUTCOME_STORED
	SendOffline    = adminv1.SendOutcome_SEND_OUTCOME_OFFLINE
	SendNotPlaying = adminv1.SendOutcome_SEND_OUTCOME_NOT_PLAYING
	SendDuplicate  = adminv1.SendOutcome_SEND_OUTCOME_DUPLICATE
)

// SendNotification sends n to up to 1 000 users and returns its id and,
// per user in order, what happened. A stored notification is durable
// when it returns. ErrNotStarted before Start.
func (s *Server) SendNotification(ctx context.Context, userIDs []string, n Notification) (string, []SendOutcome, error) {
	a := s.started()
	if a == nil || a.Notify() == nil {
		return "", nil, ErrNotStarted
	}
	return a.Notify().Send(ctx, userIDs, n)
}

// Publish sends n to the connected subscribers of a topic; with retain it
// is also kept (up to the topic's retain count) and delivered on subscribe
// and at every login. It returns the item's id. Topics are created with
// the admin NotifyService (CreateTopic).
func (s *Server) Publish(ctx context.Context, topic string, n Notification, retain bool) (string, error) {
	a := s.started()
	if a == nil || a.Notify() == nil {
		return "", ErrNotStarted
	}
	id, _, _, err := a.Notify().Publish(ctx, topic, n, retain)
	return id, err
}
