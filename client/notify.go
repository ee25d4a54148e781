package client

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

// Push kinds of the notification and presence services.
const (
	// PushKindNotification is the Push.kind of a notification; its payload
	// is a taisen.api.v1.Notification (DecodeNotification). A stored one
	// has Push.id set to the notification id and stays in the inbox until
	// acknowledged.
	PushKindNotification = "notify"
	// PushKindPresence is the Push.kind of a followed user's presence
	// change; its payload is a taisen.api.v1.Presence (DecodePresence).
	PushKindPresence = "presence"
)

// Socket operations of the notification and presence services.
const (
	opListInbox    = "notify.inbox.list"
	opDeleteInbox  = "notify.inbox.delete"
	opSubscribe    = "notify.topics.subscribe"
	opUnsubscribe  = "notify.topics.unsubscribe"
	opMyTopics     = "notify.topics.list"
	opSetStatus    = "presence.status.set"
	opFollow       = "presence.follow"
	opUnfollow     = "presence.unfollow"
	maxInboxLimit  = 100 // notify.inbox.list page size
	maxDeleteIDs   = 100 // ids of one notify.inbox.delete
	maxFollowUsers = 100 // users of one presence.follow or unfollow
	maxAckIDs      = 64  // ids of one Ack frame
	maxIDLen       = 128 // bytes of a notification id
	maxActivityLen = 128 // bytes of a status activity (as the server counts)
)

// DefaultDedupSize is the number of notification ids a Deduper made with
// size 0 remembers. It exceeds what one login delivers (at most 1000 inbox
// items plus the retained items of the user's topics).
const DefaultDedupSize = 4096

// AckDelay is how long AckNotifications (and auto-acknowledgement) waits
// to gather ids into one Ack frame. A batch of 64 ids goes out at once.
const AckDelay = 50 * time.Millisecond

// NotificationOptions turns on the typed notification stream of a socket
// (DialOptions.Notifications).
type NotificationOptions struct {
	// Dedup remembers the notifications already handed to the
	// application; NewDeduper(DefaultDedupSize) when nil. Give the sockets
	// that one user opens one after the other (a new Login after a socket
	// ended, a socket on another node) the same Deduper so that a
	// notification is not delivered again by the next one.
	Dedup *Deduper
	// AutoAck acknowledges a stored notification as soon as the
	// application received it from Notifications. Off by default: the
	// application then acknowledges with AckNotifications once it has
	// processed the notification, and an application that stops in
	// between gets it again at its next login. With AutoAck, a
	// notification received but not yet processed when the application
	// stops is lost.
	AutoAck bool
}

// Deduper remembers the ids of the most recent notifications delivered to
// the application, and which of them it acknowledged, so that a
// notification delivered again (at the next login, after a reconnection
// that could not resume, on another node) is dropped. It holds at most
// size ids and forgets the least recently seen first; a notification older
// than that may be delivered again. A notification is identified by its
// topic and id (a topic item and a notification sent to the user may
// share an id). It is safe for concurrent use.
type Deduper struct {
	mu    sync.Mutex
	size  int
	items map[string]*list.Element // guarded by mu; values are *dedupEntry
	order *list.List               // guarded by mu; most recent first
}

type dedupEntry struct {
	key   string
	acked bool
}

// NewDeduper returns a Deduper remembering up to size ids
// (DefaultDedupSize when size <= 0).
func NewDeduper(size int) *Deduper {
	if size <= 0 {
		size = DefaultDedupSize
	}
	return &Deduper{size: size, items: make(map[string]*list.Element), order: list.New()}
}

// Len returns the number of ids remembered.
func (d *Deduper) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.order.Len()
}

// dedupKey identifies a notification: its topic and id.
func dedupKey(topic, id string) string { return topic + "\x00" + id }

// claim records key as delivered. It reports fresh when key was not known
// and, when it was, whether it was acknowledged.
func (d *Deduper) claim(key string) (fresh, acked bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.items[key]; ok {
		d.order.MoveToFront(el)
		return false, el.Value.(*dedupEntry).acked
	}
	d.addLocked(key, false)
	return true, false
}

// release forgets a key claimed for a notification that was not handed
// to the application after all.
func (d *Deduper) release(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.items[key]; ok && !el.Value.(*dedupEntry).acked {
		d.order.Remove(el)
		delete(d.items, key)
	}
}

// acked records that the application acknowledged (or deleted) key; a
// later copy of it is dropped and acknowledged again.
func (d *Deduper) acked(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.items[key]; ok {
		el.Value.(*dedupEntry).acked = true
		d.order.MoveToFront(el)
		return
	}
	d.addLocked(key, true)
}

func (d *Deduper) addLocked(key string, acked bool) {
	d.items[key] = d.order.PushFront(&dedupEntry{key: key, acked: acked})
	for d.order.Len() > d.size {
		old := d.order.Back()
		d.order.Remove(old)
		delete(d.items, old.Value.(*dedupEntry).key)
	}
}

// Notifications returns the channel of notifications when
// DialOptions.Notifications is set: the pushes of kind notify, decoded,
// in order, each notification id once (see Deduper), including the
// retained items of topics and the stored items pushed at each login. It
// has the size and the flow control of Pushes (the socket's reader waits
// while it is full), and pushes of kind notify no longer appear on Pushes
// (unless their payload does not decode). Without
// DialOptions.Notifications nothing arrives on it. The channel is closed
// when the socket ends.
//
// Delivery is at least once: a stored notification (Mode STORED) comes
// again at every login until it is acknowledged (AckNotifications, or
// NotificationOptions.AutoAck) or deleted, and the Deduper drops the
// copies it remembers; one that it forgot, or one delivered to another
// process, arrives again. Process it idempotently.
func (s *Socket) Notifications() <-chan *apiv1.Notification { return s.notes }

// DecodeNotification decodes the payload of a push of kind notify in the
// socket's format.
func (s *Socket) DecodeNotification(p *realtimev1.Push) (*apiv1.Notification, error) {
	n := &apiv1.Notification{}
	if err := s.decodePush(p, PushKindNotification, n); err != nil {
		return nil, err
	}
	return n, nil
}

// DecodePresence decodes the payload of a push of kind presence (a
// followed user's presence changed) in the socket's format.
func (s *Socket) DecodePresence(p *realtimev1.Push) (*apiv1.Presence, error) {
	m := &apiv1.Presence{}
	if err := s.decodePush(p, PushKindPresence, m); err != nil {
		return nil, err
	}
	return m, nil
}

func (s *Socket) decodePush(p *realtimev1.Push, kind string, m proto.Message) error {
	if p.GetKind() != kind {
		return fmt.Errorf("client: push of kind %q, not %q", p.GetKind(), kind)
	}
	want := string(m.ProtoReflect().Descriptor().FullName())
	if t := p.GetPayloadType(); t != "" && t != want {
		return fmt.Errorf("client: push payload is a %s, not a %s", t, want)
	}
	if err := s.unmarshal(p.GetPayload(), m); err != nil {
		return fmt.Errorf("client: push payload: %w", err)
	}
	return nil
}

// marshal encodes a typed operation's payload in the socket's format.
func (s *Socket) marshal(m proto.Message) ([]byte, error) {
	if s.opts.Format == FormatJSON {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}

// unmarshal decodes a typed payload in the socket's format.
func (s *Socket) unmarshal(b []byte, m proto.Message) error {
	if s.opts.Format == FormatJSON {
		return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, m)
	}
	return proto.Unmarshal(b, m)
}

// call runs a typed socket operation.
func (s *Socket) call(ctx context.Context, name string, req, resp proto.Message) error {
	b, err := s.marshal(req)
	if err != nil {
		return fmt.Errorf("client: rpc %s: %w", name, err)
	}
	out, err := s.RPC(ctx, name, b)
	if err != nil {
		return err
	}
	if err := s.unmarshal(out, resp); err != nil {
		return fmt.Errorf("client: rpc %s: reply: %w", name, err)
	}
	return nil
}

// ListInbox returns a page of the user's kept (stored, not yet
// acknowledged, not expired) notifications, oldest first, and the cursor
// of the next page ("" on the last). cursor "" starts at the beginning;
// limit is 1 to 100, 0 meaning 100.
func (s *Socket) ListInbox(ctx context.Context, cursor string, limit int) ([]*apiv1.Notification, string, error) {
	if limit < 0 || limit > maxInboxLimit {
		return nil, "", fmt.Errorf("client: list inbox: limit %d: want 0 to %d", limit, maxInboxLimit)
	}
	resp := &apiv1.ListInboxResponse{}
	if err := s.call(ctx, opListInbox, &apiv1.ListInboxRequest{Cursor: cursor, Limit: uint32(limit)}, resp); err != nil {
		return nil, "", err
	}
	return resp.GetItems(), resp.GetNextCursor(), nil
}

// DeleteNotifications removes kept notifications from the inbox and
// returns how many were removed (unknown ids are ignored). More than 100
// ids take several requests.
func (s *Socket) DeleteNotifications(ctx context.Context, ids ...string) (int, error) {
	if err := checkIDs(ids); err != nil {
		return 0, fmt.Errorf("client: delete notifications: %w", err)
	}
	deleted := 0
	for len(ids) > 0 {
		n := min(len(ids), maxDeleteIDs)
		resp := &apiv1.DeleteInboxResponse{}
		if err := s.call(ctx, opDeleteInbox, &apiv1.DeleteInboxRequest{Ids: ids[:n]}, resp); err != nil {
			return deleted, err
		}
		s.markAcked(ids[:n])
		deleted += int(resp.GetDeleted())
		ids = ids[n:]
	}
	return deleted, nil
}

// AckNotifications acknowledges stored notifications by id: the server
// removes them from the inbox and does not deliver them again. The ids are
// queued and sent in Ack frames of up to 64 ids within AckDelay, so that
// acknowledging many notifications one by one stays within the server's
// budget for fire-and-forget messages. Like Ack, nothing confirms them:
// ids queued while the socket is reconnecting go out on the next
// connection, ids still queued when the socket ends are lost (the
// notifications are then delivered again at the next login, and dropped
// by a shared Deduper, which acknowledges them again). It fails with
// ErrClosed after the socket ended.
func (s *Socket) AckNotifications(ids ...string) error {
	if err := checkIDs(ids); err != nil {
		return fmt.Errorf("client: ack notifications: %w", err)
	}
	s.markAcked(ids)
	return s.queueAcks(ids)
}

// checkIDs validates notification ids as the server does.
func checkIDs(ids []string) error {
	for _, id := range ids {
		if id == "" || len(id) > maxIDLen {
			return fmt.Errorf("id %q: want 1 to %d bytes", id, maxIDLen)
		}
	}
	return nil
}

// markAcked records acknowledged inbox ids in the Deduper.
func (s *Socket) markAcked(ids []string) {
	if d := s.dedup(); d != nil {
		for _, id := range ids {
			d.acked(dedupKey("", id))
		}
	}
}

func (s *Socket) dedup() *Deduper {
	if s.opts.Notifications == nil {
		return nil
	}
	return s.opts.Notifications.Dedup
}

// SubscribeTopic subscribes the user to a topic that clients may subscribe
// to (others answer PERMISSION_DENIED, unknown ones NOT_FOUND). The
// subscription lasts across logins; the topic's retained items follow as
// notifications. changed is false when the user was subscribed already.
func (s *Socket) SubscribeTopic(ctx context.Context, topic string) (changed bool, err error) {
	resp := &apiv1.TopicSubscriptionResponse{}
	if err := s.call(ctx, opSubscribe, &apiv1.TopicSubscriptionRequest{Topic: topic}, resp); err != nil {
		return false, err
	}
	return resp.GetChanged(), nil
}

// UnsubscribeTopic ends the user's subscription to a topic. changed is
// false when the user was not subscribed.
func (s *Socket) UnsubscribeTopic(ctx context.Context, topic string) (changed bool, err error) {
	resp := &apiv1.TopicSubscriptionResponse{}
	if err := s.call(ctx, opUnsubscribe, &apiv1.TopicSubscriptionRequest{Topic: topic}, resp); err != nil {
		return false, err
	}
	return resp.GetChanged(), nil
}

// MyTopics returns the topics the user subscribes to, whoever subscribed
// it (the client or the server).
func (s *Socket) MyTopics(ctx context.Context) ([]string, error) {
	resp := &apiv1.ListMyTopicsResponse{}
	if err := s.call(ctx, opMyTopics, &apiv1.ListMyTopicsRequest{}, resp); err != nil {
		return nil, err
	}
	return resp.GetTopics(), nil
}

// SetStatus sets the session's presence status: playing (with an activity
// text of at most 128 bytes, such as "in a ranked match") or online and
// idle. Followers of the user are pushed the change. It returns the
// user's presence as others now see it.
func (s *Socket) SetStatus(ctx context.Context, playing bool, activity string) (*apiv1.Presence, error) {
	if len(activity) > maxActivityLen {
		return nil, fmt.Errorf("client: set status: activity of %d bytes: at most %d", len(activity), maxActivityLen)
	}
	resp := &apiv1.SetStatusResponse{}
	if err := s.call(ctx, opSetStatus, &apiv1.SetStatusRequest{Playing: playing, Activity: activity}, resp); err != nil {
		return nil, err
	}
	return resp.GetPresence(), nil
}

// FollowPresence follows the presence of 1 to 100 users for the life of
// the session and returns their current presence. Each change of a
// followed user's presence then arrives on Pushes as a push of kind
// presence (DecodePresence). A session that could not be resumed after a
// reconnection (EventReset) follows no one: follow again.
func (s *Socket) FollowPresence(ctx context.Context, userIDs ...string) ([]*apiv1.Presence, error) {
	if len(userIDs) == 0 || len(userIDs) > maxFollowUsers {
		return nil, fmt.Errorf("client: follow presence: %d users: want 1 to %d", len(userIDs), maxFollowUsers)
	}
	resp := &apiv1.FollowResponse{}
	if err := s.call(ctx, opFollow, &apiv1.FollowRequest{UserIds: userIDs}, resp); err != nil {
		return nil, err
	}
	return resp.GetPresences(), nil
}

// UnfollowPresence stops following the presence of 1 to 100 users.
func (s *Socket) UnfollowPresence(ctx context.Context, userIDs ...string) error {
	if len(userIDs) == 0 || len(userIDs) > maxFollowUsers {
		return fmt.Errorf("client: unfollow presence: %d users: want 1 to %d", len(userIDs), maxFollowUsers)
	}
	return s.call(ctx, opUnfollow, &apiv1.FollowRequest{UserIds: userIDs}, &apiv1.FollowResponse{})
}

// notification hands a push of kind notify to Notifications, unless its
// notification was delivered already. It reports false when the socket
// was closed while waiting, like push; routed is false when the push is
// not a notification this socket routes (it then goes to Pushes).
func (s *Socket) notification(c *wsConn, p *realtimev1.Push, seq, last uint64) (routed, ok bool) {
	n, err := s.DecodeNotification(p)
	if err != nil {
		s.log.Warn("client: undecodable notification; handing it to Pushes", "seq", p.GetSeq(), "err", err)
		return false, true
	}
	d := s.opts.Notifications.Dedup
	key := dedupKey(n.GetTopic(), n.GetId())
	if n.GetId() != "" {
		fresh, acked := d.claim(key)
		if !fresh {
			s.log.Debug("client: duplicate notification dropped", "id", n.GetId(), "topic", n.GetTopic(), "acked", acked)
			if acked && p.GetId() != "" {
				// Its earlier ack was lost (or not yet recorded): repeat it.
				_ = s.queueAcks([]string{p.GetId()})
			}
			return true, true
		}
	}
	if !handOver(s, c, s.notes, n, seq, last) {
		if n.GetId() != "" {
			d.release(key)
		}
		return true, false
	}
	if s.opts.Notifications.AutoAck && p.GetId() != "" {
		d.acked(dedupKey("", p.GetId()))
		_ = s.queueAcks([]string{p.GetId()})
	}
	return true, true
}

// queueAcks queues ids for the next Ack frame (see AckNotifications).
func (s *Socket) queueAcks(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	s.ackMu.Lock()
	if s.ackEnded {
		s.ackMu.Unlock()
		return ErrClosed
	}
	s.ackIDs = append(s.ackIDs, ids...)
	full := len(s.ackIDs) >= maxAckIDs
	if !full && s.ackTimer == nil {
		s.ackTimer = time.AfterFunc(AckDelay, func() { s.flushAcks() })
	}
	s.ackMu.Unlock()
	if full {
		s.flushAcks()
	}
	return nil
}

// flushAcks sends the queued ids in Ack frames of up to 64. Ids that
// cannot be sent because the socket is reconnecting stay queued for the
// next connection.
func (s *Socket) flushAcks() {
	s.ackMu.Lock()
	if s.ackTimer != nil {
		s.ackTimer.Stop()
		s.ackTimer = nil
	}
	ids := s.ackIDs
	s.ackIDs = nil
	s.ackMu.Unlock()
	for len(ids) > 0 {
		n := min(len(ids), maxAckIDs)
		err := s.Ack(ids[:n]...)
		switch {
		case err == nil:
		case errors.Is(err, ErrClosed):
			return
		case errors.Is(err, ErrDisconnected):
			// welcomed flushes them on the next connection.
			s.ackMu.Lock()
			if !s.ackEnded {
				s.ackIDs = append(ids, s.ackIDs...)
			}
			s.ackMu.Unlock()
			return
		default:
			s.log.Warn("client: acknowledgements not sent", "ids", n, "err", err)
		}
		ids = ids[n:]
	}
}

// endAcks drops the queued ids when the socket ends.
func (s *Socket) endAcks() {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.ackEnded = true
	s.ackIDs = nil
	if s.ackTimer != nil {
		s.ackTimer.Stop()
		s.ackTimer = nil
	}
}
