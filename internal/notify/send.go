package notify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
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
		s.each(userIDs, func(i int, u string) {
			if !inserted[i] {
				out[i] = adminv1.SendOutcome_SEND_OUTCOME_DUPLICATE
				return
			}
			out[i] = adminv1.SendOutcome_SEND_OUTCOME_STORED
			if s.deliver(ctx, u, payload, n.ID) {
				out[i] = adminv1.SendOutcome_SEND_OUTCOME_DELIVERED
			}
		})
		return n.ID, out, nil
	}
	s.each(userIDs, func(i int, u string) {
		out[i] = s.sendNow(ctx, u, n, payload, producerID)
	})
	return n.ID, out, nil
}

// sendNow delivers a notification that is never kept.
func (s *Service) sendNow(ctx context.Context, user string, n Note, payload []byte, producerID bool) adminv1.SendOutcome {
	if n.Mode == apiv1.NotifyMode_NOTIFY_MODE_PLAYING {
		rec, err := s.gw.Lookup(ctx, user)
		if err != nil {
			return adminv1.SendOutcome_SEND_OUTCOME_OFFLINE
		}
		if !rec.Playing {
			return adminv1.SendOutcome_SEND_OUTCOME_NOT_PLAYING
		}
	}
	var key string
	var rev uint64
	if producerID {
		key = dedupKey(user, n.ID)
		r, err := s.dedup.Create(ctx, key, nil, 0)
		if errors.Is(err, bus.ErrKeyExists) {
			return adminv1.SendOutcome_SEND_OUTCOME_DUPLICATE
		}
		if err != nil {
			s.log.Warn("notification de-duplication unavailable; delivering anyway", "err", err)
		}
		rev = r
	}
	if s.deliver(ctx, user, payload, "") {
		return adminv1.SendOutcome_SEND_OUTCOME_DELIVERED
	}
	if rev != 0 {
		// Not delivered: the id may be sent again.
		_ = s.dedup.Delete(ctx, key, rev)
	}
	return adminv1.SendOutcome_SEND_OUTCOME_OFFLINE
}

// deliver pushes a notification to the user's session; ackID is set for
// stored items, which the client acknowledges.
func (s *Service) deliver(ctx context.Context, user string, payload []byte, ackID string) bool {
	_, err := s.gw.Send(ctx, user, gateway.Message{Kind: PushKind, Payload: payload, PayloadType: notificationType, ID: ackID})
	if err != nil && !errors.Is(err, gateway.ErrOffline) {
		s.log.Warn("deliver notification", "user", user, "err", err)
	}
	return err == nil
}

// each runs fn for every user with bounded concurrency.
func (s *Service) each(users []string, fn func(i int, user string)) {
	if len(users) == 1 {
		fn(0, users[0])
		return
	}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, u := range users {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i, u)
		}()
	}
	wg.Wait()
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
