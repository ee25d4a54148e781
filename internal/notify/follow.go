package notify

import (
	"context"
	"encoding/base64"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/gateway"
)

// PresenceKind is the Push.kind of a followed user's presence change; its
// payload is an apiv1.Presence.
const PresenceKind = "presence"

var presenceType = gateway.TypeName(&apiv1.Presence{})

// presenceSubject is where the node holding a user's session announces
// the user's presence changes. Nobody listening costs nothing: NATS routes
// by interest, so only nodes with local followers receive them.
func presenceSubject(user string) string {
	return "taisen.presence." + base64.RawURLEncoding.EncodeToString([]byte(user))
}

// followIndex is the node's index of presence follows: followed user →
// local follower sessions, with the last presence seen. The node listens
// on a user's presence subject while a local session follows the user.
type followIndex struct {
	s  *Service
	mu sync.Mutex
	// followers: followed user → follower session → struct{}.
	followers map[string]map[string]struct{}
	// follows: follower session → followed users.
	follows map[string][]string
	// last: followed user → the last presence seen and its node.
	last map[string]lastPresence
	subs map[string]bus.Subscription
}

type lastPresence struct {
	p    *apiv1.Presence
	node string
}

func newFollowIndex(s *Service) *followIndex {
	return &followIndex{s: s, followers: make(map[string]map[string]struct{}), follows: make(map[string][]string),
		last: make(map[string]lastPresence), subs: make(map[string]bus.Subscription)}
}

// follow adds follows of session to users, with their current presence.
func (f *followIndex) follow(session string, current []*apiv1.Presence, nodes []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range current {
		u := p.UserId
		m := f.followers[u]
		if m == nil {
			m = make(map[string]struct{})
			f.followers[u] = m
			sub, err := f.s.bus.Subscribe(presenceSubject(u), func(msg *bus.Msg) { f.s.onPresence(u, msg) })
			if err != nil {
				f.s.log.Error("listen to presence", "user", u, "err", err)
			} else {
				f.subs[u] = sub
			}
			f.last[u] = lastPresence{p: p, node: nodes[i]}
		}
		if _, dup := m[session]; !dup {
			m[session] = struct{}{}
			f.follows[session] = append(f.follows[session], u)
		}
	}
}

// unfollow removes follows of session.
func (f *followIndex) unfollow(session string, users []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range users {
		f.dropLocked(session, u)
		fs := f.follows[session]
		for i, have := range fs {
			if have == u {
				f.follows[session] = append(fs[:i], fs[i+1:]...)
				break
			}
		}
	}
}

// remove forgets an ended session's follows.
func (f *followIndex) remove(session string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.follows[session] {
		f.dropLocked(session, u)
	}
	delete(f.follows, session)
}

func (f *followIndex) dropLocked(session, user string) {
	m := f.followers[user]
	if m == nil {
		return
	}
	delete(m, session)
	if len(m) == 0 {
		delete(f.followers, user)
		delete(f.last, user)
		if sub := f.subs[user]; sub != nil {
			_ = sub.Unsubscribe()
			delete(f.subs, user)
		}
	}
}

// update records a presence and returns the follower sessions to tell,
// or nil when nothing changed.
func (f *followIndex) update(p *apiv1.Presence, node string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.followers[p.UserId]
	if m == nil {
		return nil
	}
	if old, ok := f.last[p.UserId]; ok && old.p.State == p.State && old.p.Activity == p.Activity {
		// The same state heard twice (the login announcement racing the
		// follow's own read): followers care about changes only.
		return nil
	}
	f.last[p.UserId] = lastPresence{p: p, node: node}
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	return out
}

// onlineOn returns the followed users believed online, with their nodes.
func (f *followIndex) onlineOn() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string)
	for u, lp := range f.last {
		if lp.p.State != apiv1.PresenceState_PRESENCE_STATE_OFFLINE {
			out[u] = lp.node
		}
	}
	return out
}

func (f *followIndex) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for u, sub := range f.subs {
		_ = sub.Unsubscribe()
		delete(f.subs, u)
	}
}

// onPresence tells local followers about a presence change announced by
// the user's node.
func (s *Service) onPresence(user string, msg *bus.Msg) {
	ch := &clusterv1.PresenceChange{}
	p := &apiv1.Presence{}
	if err := proto.Unmarshal(msg.Data, ch); err != nil || proto.Unmarshal(ch.Presence, p) != nil || p.UserId != user {
		s.log.Warn("undecodable presence change", "user", user)
		return
	}
	s.tellFollowers(p, ch.NodeId, ch.Presence)
}

func (s *Service) tellFollowers(p *apiv1.Presence, node string, payload []byte) {
	sessions := s.follows.update(p, node)
	if len(sessions) == 0 {
		return
	}
	if payload == nil {
		payload, _ = proto.Marshal(p)
	}
	s.gw.PushLocal(sessions, gateway.Message{Kind: PresenceKind, Payload: payload, PayloadType: presenceType})
	s.metrics.presencePushes.Add(float64(len(sessions)))
}

// announce publishes a user's presence from the node holding its session:
// at login, on a status change, and when the session ends for good. A
// core publish nobody listens to costs the bus nothing.
func (s *Service) announcePresence(ctx context.Context, p *apiv1.Presence, node string) {
	b, _ := proto.Marshal(p)
	msg, _ := proto.Marshal(&clusterv1.PresenceChange{Presence: b, NodeId: node})
	if err := s.bus.Publish(ctx, presenceSubject(p.UserId), msg); err != nil {
		s.log.Debug("announce presence", "user", p.UserId, "err", err)
	}
}

// watchNodes ends the presence of followed users whose node stopped
// without a word (a crash): their records would only expire with their
// TTL, and nobody would announce it.
func (s *Service) watchNodes() {
	defer s.wg.Done()
	if s.liveNodes == nil {
		return
	}
	t := s.clock.NewTicker(s.cfg.NodeCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C():
		}
		online := s.follows.onlineOn()
		if len(online) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		live, err := s.liveNodes(ctx)
		cancel()
		if err != nil {
			s.log.Warn("read live nodes", "err", err)
			continue
		}
		if live == nil {
			continue
		}
		for u, node := range online {
			if !live[node] {
				s.tellFollowers(&apiv1.Presence{UserId: u, State: apiv1.PresenceState_PRESENCE_STATE_OFFLINE, SinceMs: s.clock.Now().UnixMilli()}, "", nil)
			}
		}
	}
}

// Follow is the socket operation presence.follow.
func (s *Service) Follow(ctx context.Context, call gateway.Call, req *apiv1.FollowRequest) (*apiv1.FollowResponse, error) {
	if len(req.UserIds) == 0 || len(req.UserIds) > 100 {
		return nil, apierr.BadRequest("user_ids: 1 to 100")
	}
	ps, nodes, err := s.presences(ctx, req.UserIds)
	if err != nil {
		return nil, err
	}
	s.follows.follow(call.SessionID, ps, nodes)
	return &apiv1.FollowResponse{Presences: ps}, nil
}

// Unfollow is the socket operation presence.unfollow.
func (s *Service) Unfollow(_ context.Context, call gateway.Call, req *apiv1.FollowRequest) (*apiv1.FollowResponse, error) {
	if len(req.UserIds) == 0 || len(req.UserIds) > 100 {
		return nil, apierr.BadRequest("user_ids: 1 to 100")
	}
	s.follows.unfollow(call.SessionID, req.UserIds)
	return &apiv1.FollowResponse{}, nil
}
