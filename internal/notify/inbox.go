package notify

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/store"
)

// loginJob loads what a fresh login must receive.
type loginJob struct {
	user, session string
	// fresh is a login (push the inbox and retained items); otherwise a
	// session resumed from another node only joins its topics.
	fresh bool
}

// ackJob records acknowledged inbox items.
type ackJob struct {
	user string
	ids  []string
}

// maxLoginItems bounds the inbox items pushed at one login; the client
// lists the rest with notify.inbox.list.
const maxLoginItems = 1000

// maxLoginBatch bounds the logins a worker takes from the queue at once,
// whose users one store read checks for anything to load.
const maxLoginBatch = 64

func (s *Service) loginWorker() {
	defer s.wg.Done()
	batch := make([]loginJob, 0, maxLoginBatch)
	users := make([]string, 0, maxLoginBatch)
	for {
		select {
		case <-s.ctx.Done():
			return
		case job := <-s.logins:
			batch = append(batch[:0], job)
		}
		// In a login storm the queue holds more: take them too.
	fill:
		for len(batch) < maxLoginBatch {
			select {
			case job := <-s.logins:
				batch = append(batch, job)
			default:
				break fill
			}
		}
		users = users[:0]
		for _, job := range batch {
			users = append(users, job.user)
		}
		now := s.clock.Now()
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		pending, err := s.st.UsersPending(ctx, users, now)
		cancel()
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				s.log.Warn("deliver inbox at login", "users", len(users), "err", err)
			}
			continue
		}
		for i, job := range batch {
			if pending[i] == (store.Pending{}) {
				continue // most users: nothing to push, no topic to join
			}
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			if err := s.login(ctx, job, pending[i], now); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Warn("deliver inbox at login", "user", job.user, "err", err)
			}
			cancel()
		}
		clear(batch) // keep no session ids while waiting
	}
}

// login pushes a fresh session its pending inbox items, in order, then the
// retained items of its topics, and puts it in the topic index. pending
// says what the user had at now; the session was in the topic index
// before it was read, so a subscription made later reaches it through the
// bus, as one made after UserTopics does.
func (s *Service) login(ctx context.Context, job loginJob, pending store.Pending, now time.Time) error {
	page := store.Page{Limit: 100}
	sent := 0
	for pending.Inbox && job.fresh && sent < maxLoginItems {
		items, next, err := s.st.Inbox(ctx, job.user, now, page)
		if err != nil {
			return err
		}
		for _, it := range items {
			b, err := proto.Marshal(inboxNotification(it))
			if err != nil {
				return err
			}
			if s.gw.PushLocal([]string{job.session}, gateway.Message{Kind: PushKind, Payload: b, PayloadType: notificationType, ID: it.ID}) == 0 {
				return nil // the session ended meanwhile: the items stay kept
			}
			s.metrics.loginItems.Inc()
			sent++
		}
		if next == "" {
			break
		}
		page.Cursor = next
	}
	if !pending.Topics {
		return nil
	}
	topics, err := s.st.UserTopics(ctx, job.user)
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		return nil
	}
	s.idx.subscribe(job.user, job.session, topics)
	if !job.fresh {
		return nil
	}
	return s.pushRetained(ctx, []string{job.session}, topics, now)
}

// pushRetained pushes the retained items of topics to sessions.
func (s *Service) pushRetained(ctx context.Context, sessions, topics []string, now time.Time) error {
	items, err := s.st.RetainedItems(ctx, topics, now)
	if err != nil {
		return err
	}
	for _, it := range items {
		n := topicNotification(it)
		n.Retained = true
		b, err := proto.Marshal(n)
		if err != nil {
			return err
		}
		s.gw.PushLocal(sessions, gateway.Message{Kind: PushKind, Payload: b, PayloadType: notificationType})
		s.metrics.retainedItems.Add(float64(len(sessions)))
	}
	return nil
}

func inboxNotification(it store.InboxItem) *apiv1.Notification {
	n := &apiv1.Notification{Id: it.ID, Subject: it.Subject, Content: it.Content, ContentType: it.ContentType, Sender: it.Sender,
		CreatedAtMs: it.CreatedAt.UnixMilli(), Mode: apiv1.NotifyMode_NOTIFY_MODE_STORED}
	if !it.ExpiresAt.IsZero() {
		n.ExpiresAtMs = it.ExpiresAt.UnixMilli()
	}
	return n
}

func topicNotification(it store.TopicItem) *apiv1.Notification {
	n := &apiv1.Notification{Id: it.ID, Subject: it.Subject, Content: it.Content, ContentType: it.ContentType, Sender: it.Sender,
		CreatedAtMs: it.CreatedAt.UnixMilli(), Topic: it.Topic, Mode: apiv1.NotifyMode_NOTIFY_MODE_CONNECTED}
	if !it.ExpiresAt.IsZero() {
		n.ExpiresAtMs = it.ExpiresAt.UnixMilli()
	}
	return n
}

// onAck is the gateway's ack handler: it must not block, so the ids go to
// the ack workers. When they are saturated the ack is dropped and the
// items arrive again at the next login (delivery is at least once).
func (s *Service) onAck(_ context.Context, call gateway.Call, ids []string) {
	select {
	case s.acks <- ackJob{user: call.UserID, ids: ids}:
	default:
		s.metrics.acksDropped.Inc()
	}
}

func (s *Service) ackWorker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case job := <-s.acks:
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			if _, err := s.st.AckInbox(ctx, job.user, job.ids, s.clock.Now()); err != nil {
				s.log.Warn("acknowledge inbox items", "user", job.user, "err", err)
			}
			cancel()
		}
	}
}

// janitor prunes expired items and old tombstones.
func (s *Service) janitor() {
	defer s.wg.Done()
	t := s.clock.NewTicker(s.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C():
			for {
				ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
				n, err := s.st.PruneInbox(ctx, s.clock.Now(), s.cfg.DedupWindow, 1000)
				cancel()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						s.log.Warn("prune inbox", "err", err)
					}
					break
				}
				if n < 1000 {
					break
				}
			}
		}
	}
}

// ListInbox is the socket operation notify.inbox.list.
func (s *Service) ListInbox(ctx context.Context, call gateway.Call, req *apiv1.ListInboxRequest) (*apiv1.ListInboxResponse, error) {
	limit := int(req.Limit)
	if limit == 0 || limit > 100 {
		limit = 100
	}
	items, next, err := s.st.Inbox(ctx, call.UserID, s.clock.Now(), store.Page{Cursor: req.Cursor, Limit: limit})
	if errors.Is(err, store.ErrBadCursor) {
		return nil, apierr.BadRequest("cursor: not one this listing returned")
	}
	if err != nil {
		return nil, err
	}
	out := &apiv1.ListInboxResponse{NextCursor: next}
	for _, it := range items {
		out.Items = append(out.Items, inboxNotification(it))
	}
	return out, nil
}

// DeleteInbox is the socket operation notify.inbox.delete.
func (s *Service) DeleteInbox(ctx context.Context, call gateway.Call, req *apiv1.DeleteInboxRequest) (*apiv1.DeleteInboxResponse, error) {
	if len(req.Ids) == 0 || len(req.Ids) > 100 {
		return nil, apierr.BadRequest("ids: 1 to 100")
	}
	n, err := s.st.DeleteInbox(ctx, call.UserID, req.Ids, s.clock.Now())
	if err != nil {
		return nil, err
	}
	return &apiv1.DeleteInboxResponse{Deleted: uint32(n)}, nil
}
