package notify

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"sync"

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

// topicIndex is the node's in-memory index of who follows which topic:
// topic → local sessions, kept while sessions live. The node listens on a
// topic's subject only while it has a local subscriber.
type topicIndex struct {
	s  *Service
	mu sync.Mutex
	// topics: topic → its local sessions and bus subscription, while it
	// has local sessions; guarded by mu.
	topics map[string]*localTopic
	// sessions: session id → its topics (the names held by topics, so
	// that each name is kept once); users: user → its sessions on this
	// node. Guarded by mu.
	sessions map[string][]string
	users    map[string][]string
	// control is the subscription to subsSubject.
	control bus.Subscription
}

// localTopic is a topic some local sessions follow.
type localTopic struct {
	name     string
	sessions map[string]struct{}
	// sub is the subscription to the topic's subject (nil when it
	// failed).
	sub bus.Subscription
}

func newTopicIndex(s *Service) *topicIndex {
	return &topicIndex{s: s, topics: make(map[string]*localTopic), sessions: make(map[string][]string), users: make(map[string][]string)}
}

func (x *topicIndex) start() error {
	sub, err := x.s.bus.Subscribe(subsSubject, x.s.onSubsChange)
	if err != nil {
		return err
	}
	x.control = sub
	return nil
}

// addSession records a live session of a user on this node; false when
// it was known already.
func (x *topicIndex) addSession(user, session string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.sessions[session]; ok {
		return false
	}
	x.users[user] = append(x.users[user], session)
	x.sessions[session] = nil
	return true
}

// sessionsOf returns the user's sessions on this node.
func (x *topicIndex) sessionsOf(user string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.users[user])
}

// subscribe adds topics to a session of this node.
func (x *topicIndex) subscribe(session string, topics []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.sessions[session]; !ok {
		return // ended meanwhile
	}
	for _, t := range topics {
		lt := x.topics[t]
		if lt == nil {
			lt = &localTopic{name: t, sessions: make(map[string]struct{})}
			x.topics[t] = lt
			sub, err := x.s.bus.Subscribe(topicSubject(t), func(msg *bus.Msg) { x.s.onTopicItem(t, msg) })
			if err != nil {
				x.s.log.Error("listen to topic", "topic", t, "err", err)
			} else {
				lt.sub = sub
			}
		}
		if _, dup := lt.sessions[session]; !dup {
			lt.sessions[session] = struct{}{}
			x.sessions[session] = append(x.sessions[session], lt.name)
		}
	}
}

// unsubscribe removes topics from a session.
func (x *topicIndex) unsubscribe(session string, topics []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, t := range topics {
		x.dropLocked(session, t)
		ts := x.sessions[session]
		for i, have := range ts {
			if have == t {
				x.sessions[session] = append(ts[:i], ts[i+1:]...)
				break
			}
		}
	}
}

// remove forgets an ended session: local bookkeeping only.
func (x *topicIndex) remove(user, session string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, t := range x.sessions[session] {
		x.dropLocked(session, t)
	}
	delete(x.sessions, session)
	if ids := slices.DeleteFunc(x.users[user], func(id string) bool { return id == session }); len(ids) == 0 {
		delete(x.users, user)
	} else {
		x.users[user] = ids
	}
}

func (x *topicIndex) dropLocked(session, topic string) {
	lt := x.topics[topic]
	if lt == nil {
		return
	}
	delete(lt.sessions, session)
	if len(lt.sessions) == 0 {
		delete(x.topics, topic)
		if lt.sub != nil {
			_ = lt.sub.Unsubscribe()
		}
	}
}

// local returns the sessions of this node following topic.
func (x *topicIndex) local(topic string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	lt := x.topics[topic]
	if lt == nil {
		return nil
	}
	out := make([]string, 0, len(lt.sessions))
	for id := range lt.sessions {
		out = append(out, id)
	}
	return out
}

func (x *topicIndex) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, lt := range x.topics {
		if lt.sub != nil {
			_ = lt.sub.Unsubscribe()
			lt.sub = nil
		}
	}
	if x.control != nil {
		_ = x.control.Unsubscribe()
	}
}

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
		sessions = append(sessions, s.idx.sessionsOf(u)...)
	}
	if len(sessions) == 0 {
		return
	}
	if !ch.Subscribe {
		for _, id := range sessions {
			s.idx.unsubscribe(id, []string{ch.Topic})
		}
		return
	}
	for _, id := range sessions {
		s.idx.subscribe(id, []string{ch.Topic})
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
