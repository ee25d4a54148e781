package notify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/store"
)

// Note is a notification to send.
type Note struct {
	// ID is the producer's id; generated when empty. The same id sent to
	// a user twice is delivered once.
	ID          string
	Subject     string
	Content     []byte
	ContentType string
	Sender      string
	// TTL bounds how long it may be delivered; 0 for no expiry.
	TTL  time.Duration
	Mode apiv1.NotifyMode
}

// PushKind is the Push.kind of a notification; its payload is an
// apiv1.Notification.
const PushKind = "notify"

var notificationType = gateway.TypeName(&apiv1.Notification{})

func (n Note) validate() error {
	switch {
	case n.ID != "" && !idPattern.MatchString(n.ID):
		return apierr.BadRequest("id: 1 to 128 printable ASCII characters without spaces")
	case len(n.Subject) > maxSubjectLen:
		return apierr.BadRequest("subject: at most %d characters", maxSubjectLen)
	case len(n.Sender) > maxSenderLen:
		return apierr.BadRequest("sender: at most %d characters", maxSenderLen)
	case len(n.Content) > maxContentBytes:
		return apierr.BadRequest("content: at most %d bytes", maxContentBytes)
	case n.TTL < 0:
		return apierr.BadRequest("ttl_ms: not negative")
	}
	return nil
}

func validateUsers(ids []string) error {
	if len(ids) == 0 || len(ids) > maxUsersPerCall {
		return apierr.BadRequest("user_ids: 1 to %d users", maxUsersPerCall)
	}
	for _, id := range ids {
		if id == "" || len(id) > 128 {
			return apierr.BadRequest("user_ids: each 1 to 128 characters")
		}
	}
	return nil
}

// notification builds what clients receive.
func (s *Service) notification(n Note, now time.Time) *apiv1.Notification {
	out := &apiv1.Notification{Id: n.ID, Subject: n.Subject, Content: n.Content, ContentType: n.ContentType,
		Sender: n.Sender, CreatedAtMs: now.UnixMilli(), Mode: n.Mode}
	if n.TTL > 0 {
		out.ExpiresAtMs = now.Add(n.TTL).UnixMilli()
	}
	return out
}

// Send sends n to users and reports, per user in order, what happened. A
// STORED notification is durable before Send returns.
func (s *Service) Send(ctx context.Context, userIDs []string, n Note) (string, []adminv1.SendOutcome, error) {
	if err := validateUsers(userIDs); err != nil {
		return "", nil, err
	}
	if err := n.validate(); err != nil {
		return "", nil, err
	}
	if n.Mode < apiv1.NotifyMode_NOTIFY_MODE_PLAYING || n.Mode > apiv1.NotifyMode_NOTIFY_MODE_STORED {
		return "", nil, apierr.BadRequest("mode: PLAYING, CONNECTED or STORED")
	}
	producerID := n.ID != ""
	if !producerID {
		n.ID = uuid.NewString()
	}
	now := s.clock.Now()
	note := s.notification(n, now)
	payload, err := proto.Marshal(note)
	if err != nil {
		return "", nil, fmt.Errorf("notify: encode: %w", err)
	}
	out := make([]adminv1.SendOutcome, len(userIDs))
	if n.Mode == apiv1.NotifyMode_NOTIFY_MODE_STORED {
		items := make([]store.InboxItem, len(userIDs))
		for i, u := range userIDs {
			items[i] = store.InboxItem{UserID: u, ID: n.ID, Subject: n.Subject, Content: n.Content, ContentType: n.ContentType,
				Sender: n.Sender, CreatedAt: now, ExpiresAt: expiry(note)}
		}
		inserted, err := s.st.PutInbox(ctx, items)
		if err != nil {
			return "", nil, fmt.Errorf("notify: keep in the inbox: %w", err)
		}
		var live []int
		for i := range userIDs {
			if !inserted[i] {
				out[i] = adminv1.SendOutcome_SEND_OUTCOME_DUPLICATE
				continue
			}
			out[i] = adminv1.SendOutcome_SEND_OUTCOME_STORED
			live = append(live, i)
		}
		for j, ok := range s.deliverMany(ctx, pick(userIDs, live), payload, n.ID) {
			if ok {
				out[live[j]] = adminv1.SendOutcome_SEND_OUTCOME_DELIVERED
			}
		}
		return n.ID, out, nil
	}
	// Not kept: filter (playing), de-duplicate producer ids, deliver.
	var send []int
	keys := make([]string, len(userIDs))
	revs := make([]uint64, len(userIDs))
	s.each(userIDs, func(i int, u string) {
		if n.Mode == apiv1.NotifyMode_NOTIFY_MODE_PLAYING {
			rec, err := s.gw.Lookup(ctx, u)
			if err != nil {
				out[i] = adminv1.SendOutcome_SEND_OUTCOME_OFFLINE
				return
			}
			if !rec.Playing {
				out[i] = adminv1.SendOutcome_SEND_OUTCOME_NOT_PLAYING
				return
			}
		}
		if producerID {
			keys[i] = dedupKey(u, n.ID)
			r, err := s.dedup.Create(ctx, keys[i], nil, 0)
			if errors.Is(err, bus.ErrKeyExists) {
				out[i] = adminv1.SendOutcome_SEND_OUTCOME_DUPLICATE
				return
			}
			if err != nil {
				s.log.Warn("notification de-duplication unavailable; delivering anyway", "err", err)
			}
			revs[i] = r
		}
	})
	for i := range userIDs {
		if out[i] == adminv1.SendOutcome_SEND_OUTCOME_UNSPECIFIED {
			send = append(send, i)
		}
	}
	for j, ok := range s.deliverMany(ctx, pick(userIDs, send), payload, "") {
		i := send[j]
		if ok {
			out[i] = adminv1.SendOutcome_SEND_OUTCOME_DELIVERED
			continue
		}
		out[i] = adminv1.SendOutcome_SEND_OUTCOME_OFFLINE
		if revs[i] != 0 {
			// Not delivered: the id may be sent again.
			_ = s.dedup.Delete(ctx, keys[i], revs[i])
		}
	}
	return n.ID, out, nil
}

func pick(all []string, idx []int) []string {
	out := make([]string, len(idx))
	for j, i := range idx {
		out[j] = all[i]
	}
	return out
}

// deliverMany pushes a notification to users' sessions, one bus request
// per node; ackID is set for stored items, which the client acknowledges.
func (s *Service) deliverMany(ctx context.Context, users []string, payload []byte, ackID string) []bool {
	ok := make([]bool, len(users))
	if len(users) == 0 {
		return ok
	}
	_, errs := s.gw.SendMany(ctx, users, gateway.Message{Kind: PushKind, Payload: payload, PayloadType: notificationType, ID: ackID})
	for i, err := range errs {
		ok[i] = err == nil
		if err != nil && !errors.Is(err, gateway.ErrOffline) {
			s.log.Warn("deliver notification", "user", users[i], "err", err)
		}
	}
	return ok
}

// each runs fn for every user with bounded concurrency.
func (s *Service) each(users []string, fn func(i int, user string)) {
	var g errgroup.Group
	g.SetLimit(64)
	for i, u := range users {
		g.Go(func() error { fn(i, u); return nil })
	}
	_ = g.Wait()
}

func expiry(n *apiv1.Notification) time.Time {
	if n.ExpiresAtMs == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n.ExpiresAtMs)
}

// dedupKey is a KV key for (user, id): ids may hold characters keys may
// not.
func dedupKey(user, id string) string {
	h := sha256.Sum256([]byte(user + "\x00" + id))
	return base64.RawURLEncoding.EncodeToString(h[:18])
}
