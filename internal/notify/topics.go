package notify

import (
	"context"
	"encoding/base64"
	"errors"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/store"
)

// topicSubject is the bus subject of a topic's live items: one message
// per publish, received by the nodes with local subscribers only.
func topicSubject(topic string) string {
	return "taisen.topic." + base64.RawURLEncoding.EncodeToString([]byte(topic))
}

// subsSubject carries subscription changes made through the API to every
// node, which applies them to its local sessions.
const subsSubject = "taisen.notify.subs"

// onTopicItem fans a published item out to the local subscribers: the
// bus message's data is the Notification, pushed unchanged.
func (s *Service) onTopicItem(topic string, msg *bus.Msg) {
	sessions := s.idx.local(topic)
	if len(sessions) == 0 {
		return
	}
	n := s.gw.PushLocal(sessions, gateway.Message{Kind: PushKind, Payload: msg.Data, PayloadType: notificationType})
	s.metrics.topicDeliveries.Add(float64(n))
}

// onSubsChange applies a subscription change made on some node to this
// node's sessions of those users, and gives new subscribers the topic's
// retained items.
func (s *Service) onSubsChange(msg *bus.Msg) {
	ch := &clusterv1.TopicSubscriptionChange{}
	if err := proto.Unmarshal(msg.Data, ch); err != nil {
		s.log.Warn("undecodable subscription change", "err", err)
		return
	}
	var sessions []string
	for _, u := range ch.UserIds {
		ids := s.idx.sessionsOf(u)
		for _, id := range ids {
			if ch.Subscribe {
				s.idx.subscribe(u, id, []string{ch.Topic})
			} else {
				s.idx.unsubscribe(u, id, []string{ch.Topic})
			}
		}
		sessions = append(sessions, ids...)
	}
	if len(sessions) == 0 || !ch.Subscribe {
		return
	}
	if err := s.pushRetained(s.ctx, sessions, []string{ch.Topic}, s.clock.Now()); err != nil {
		s.log.Warn("retained items on subscribe", "topic", ch.Topic, "err", err)
	}
}

// announce tells every node about a subscription change.
func (s *Service) announce(ctx context.Context, topic string, users []string, subscribe bool) {
	b, _ := proto.Marshal(&clusterv1.TopicSubscriptionChange{Topic: topic, UserIds: users, Subscribe: subscribe})
	if err := s.bus.Publish(ctx, subsSubject, b); err != nil {
		s.log.Warn("announce subscription change", "topic", topic, "err", err)
	}
}

func validTopic(name string) error {
	if !topicPattern.MatchString(name) {
		return apierr.BadRequest("topic: 1 to 128 characters of [a-zA-Z0-9_.-]")
	}
	return nil
}

// CreateTopic creates a topic or updates its options.
func (s *Service) CreateTopic(ctx context.Context, req *adminv1.CreateTopicRequest) (*adminv1.Topic, error) {
	if err := validTopic(req.Name); err != nil {
		return nil, err
	}
	if req.Retain > 100 {
		return nil, apierr.BadRequest("retain: 0 to 100")
	}
	t, err := s.st.PutTopic(ctx, store.Topic{Name: req.Name, Retain: int(req.Retain), ClientsMaySubscribe: req.ClientsMaySubscribe, MaxSubscribers: int(req.MaxSubscribers)})
	if err != nil {
		return nil, err
	}
	return topicProto(t), nil
}

func topicProto(t store.Topic) *adminv1.Topic {
	return &adminv1.Topic{Name: t.Name, Retain: uint32(t.Retain), ClientsMaySubscribe: t.ClientsMaySubscribe,
		MaxSubscribers: uint32(t.MaxSubscribers), Subscribers: uint32(t.Subscribers), CreatedAtMs: t.CreatedAt.UnixMilli()}
}

// DeleteTopic deletes a topic; local indexes forget it as sessions end
// (no more items are published to it).
func (s *Service) DeleteTopic(ctx context.Context, name string) (bool, error) {
	if err := validTopic(name); err != nil {
		return false, err
	}
	err := s.st.DeleteTopic(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// ListTopics lists topics by name.
func (s *Service) ListTopics(ctx context.Context, cursor string, limit int) ([]*adminv1.Topic, string, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	ts, next, err := s.st.ListTopics(ctx, store.Page{Cursor: cursor, Limit: limit})
	if errors.Is(err, store.ErrBadCursor) {
		return nil, "", apierr.BadRequest("cursor: not one this listing returned")
	}
	if err != nil {
		return nil, "", err
	}
	out := make([]*adminv1.Topic, len(ts))
	for i, t := range ts {
		out[i] = topicProto(t)
	}
	return out, next, nil
}

// Subscribe subscribes users (server side, any topic).
func (s *Service) Subscribe(ctx context.Context, topic string, users []string) (int, error) {
	if err := validTopic(topic); err != nil {
		return 0, err
	}
	if err := validateUsers(users); err != nil {
		return 0, err
	}
	n, err := s.st.Subscribe(ctx, topic, users)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return 0, apierr.New(apiNotFound, "no topic %q", topic)
	case errors.Is(err, store.ErrLimit):
		return 0, apierr.New(apiFailedPrecondition, "topic %q would exceed its max_subscribers", topic)
	case err != nil:
		return 0, err
	}
	if n > 0 {
		s.announce(ctx, topic, users, true)
	}
	return n, nil
}

// Unsubscribe removes users from a topic.
func (s *Service) Unsubscribe(ctx context.Context, topic string, users []string) (int, error) {
	if err := validTopic(topic); err != nil {
		return 0, err
	}
	if err := validateUsers(users); err != nil {
		return 0, err
	}
	n, err := s.st.Unsubscribe(ctx, topic, users)
	if errors.Is(err, store.ErrNotFound) {
		return 0, apierr.New(apiNotFound, "no topic %q", topic)
	}
	if err != nil {
		return 0, err
	}
	if n > 0 {
		s.announce(ctx, topic, users, false)
	}
	return n, nil
}

// Publish sends an item to a topic's connected subscribers, once per node
// that has any; with retain it is kept first (durable before Publish
// returns) and delivered on subscribe and at every login.
func (s *Service) Publish(ctx context.Context, topic string, n Note, retain bool) (id string, retained, duplicate bool, err error) {
	if err := validTopic(topic); err != nil {
		return "", false, false, err
	}
	if err := n.validate(); err != nil {
		return "", false, false, err
	}
	if n.ID == "" {
		n.ID = uuid.NewString()
	}
	t, err := s.st.Topic(ctx, topic)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, false, apierr.New(apiNotFound, "no topic %q", topic)
	}
	if err != nil {
		return "", false, false, err
	}
	now := s.clock.Now()
	n.Mode = apiv1.NotifyMode_NOTIFY_MODE_CONNECTED
	note := s.notification(n, now)
	note.Topic = topic
	if retain && t.Retain > 0 {
		_, inserted, err := s.st.PutTopicItem(ctx, store.TopicItem{Topic: topic, ID: n.ID, Subject: n.Subject, Content: n.Content,
			ContentType: n.ContentType, Sender: n.Sender, CreatedAt: now, ExpiresAt: expiry(note)})
		if err != nil {
			return "", false, false, err
		}
		if !inserted {
			return n.ID, false, true, nil
		}
		retained = true
	}
	b, err := proto.Marshal(note)
	if err != nil {
		return "", false, false, err
	}
	if err := s.bus.Publish(ctx, topicSubject(topic), b); err != nil {
		return "", retained, false, err
	}
	s.metrics.published.Inc()
	return n.ID, retained, false, nil
}

// SubscribeSelf is the socket operation notify.topics.subscribe.
func (s *Service) SubscribeSelf(ctx context.Context, call gateway.Call, req *apiv1.TopicSubscriptionRequest) (*apiv1.TopicSubscriptionResponse, error) {
	if err := validTopic(req.Topic); err != nil {
		return nil, err
	}
	t, err := s.st.Topic(ctx, req.Topic)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.New(apiNotFound, "no topic %q", req.Topic)
	}
	if err != nil {
		return nil, err
	}
	if !t.ClientsMaySubscribe {
		return nil, apierr.New(apiPermissionDenied, "topic %q is subscribed by the server only", req.Topic)
	}
	n, err := s.Subscribe(ctx, req.Topic, []string{call.UserID})
	if err != nil {
		return nil, err
	}
	return &apiv1.TopicSubscriptionResponse{Changed: n > 0}, nil
}

// UnsubscribeSelf is the socket operation notify.topics.unsubscribe.
func (s *Service) UnsubscribeSelf(ctx context.Context, call gateway.Call, req *apiv1.TopicSubscriptionRequest) (*apiv1.TopicSubscriptionResponse, error) {
	n, err := s.Unsubscribe(ctx, req.Topic, []string{call.UserID})
	if err != nil {
		return nil, err
	}
	return &apiv1.TopicSubscriptionResponse{Changed: n > 0}, nil
}

// ListMyTopics is the socket operation notify.topics.list.
func (s *Service) ListMyTopics(ctx context.Context, call gateway.Call, _ *apiv1.ListMyTopicsRequest) (*apiv1.ListMyTopicsResponse, error) {
	ts, err := s.st.UserTopics(ctx, call.UserID)
	if err != nil {
		return nil, err
	}
	return &apiv1.ListMyTopicsResponse{Topics: ts}, nil
}
