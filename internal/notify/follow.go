package notify

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
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

// presencePrefix starts the subject where the node holding a user's
// session announces the user's presence changes (presenceSubject).
const presencePrefix = "taisen.presence."

// presenceSubject is where the node holding a user's session announces
// the user's presence changes. Nobody listening costs nothing: NATS routes
// by interest, so only nodes with local followers (of anyone: see
// index.follow) receive them.
func presenceSubject(user string) string {
	return presencePrefix + base64.RawURLEncoding.EncodeToString([]byte(user))
}

// presenceWildcard is what a node with local followers listens on: every
// user's presence subject.
const presenceWildcard = presencePrefix + "*"

// follow adds follows of a session of user to users, with their current
// presence (nodes: the node of each online one). The session may not be
// indexed yet: the gateway tells of it after its Welcome, and a follow
// may come first.
//
// While any local session follows anyone, the node listens on every
// presence subject with one subscription (a subscription per followed
// user cost about 4 KiB of the node's memory each: a goroutine, the
// client's and the embedded server's records) and keeps the
// announcements of the users followed here.
func (x *index) follow(user, session string, current []*apiv1.Presence, nodes []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.presence == nil && len(current) > 0 {
		sub, err := x.s.bus.Subscribe(presenceWildcard, x.s.onPresence)
		if err != nil {
			x.s.log.Error("listen to presence", "err", err)
		} else {
			x.presence = sub
		}
	}
	ls := x.sessionLocked(user, session, true)
	if ls.follows == nil {
		ls.follows = make([]member[localUser], 0, len(current))
	}
next:
	for i, p := range current {
		for _, m := range ls.follows {
			if m.of.id == p.UserId {
				continue next
			}
		}
		fu := x.users[p.UserId]
		if fu == nil {
			fu = &localUser{id: p.UserId}
			x.users[fu.id] = fu
		}
		if len(fu.followers) == 0 {
			fu.state, fu.seen = p.State, x.seenLocked(p.Activity, nodes[i])
			x.followed++
		}
		ls.follows = append(ls.follows, member[localUser]{of: fu, pos: int32(len(fu.followers))})
		if len(fu.followers) < 16 {
			// Most users have few followers here: grown to the size class
			// of the next length, not doubled.
			fu.followers = slices.Clip(fu.followers)
		}
		fu.followers = append(fu.followers, ls)
	}
	if len(ls.follows) == 0 {
		ls.follows = nil
		if !ls.attached {
			x.removeLocked(x.users[user], ls)
		}
	}
	x.stopLocked()
}

// seenLocked returns the interned lastSeen of an activity and a node.
func (x *index) seenLocked(activity, node string) *lastSeen {
	if activity == "" && node == "" {
		return noneSeen
	}
	k := lastSeen{activity, node}
	if have, ok := x.seen[k]; ok {
		return have
	}
	ls := &k
	if len(x.seen) < maxInterned {
		x.seen[k] = ls
	}
	return ls
}

// unfollow removes follows of a session.
func (x *index) unfollow(user, session string, users []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ls := x.sessionLocked(user, session, false)
	if ls == nil {
		return
	}
	for _, u := range users {
		for i, m := range ls.follows {
			if m.of.id == u {
				x.unfollowLocked(ls, i)
				break
			}
		}
	}
	if len(ls.follows) == 0 && !ls.attached {
		x.removeLocked(x.users[user], ls)
	}
	x.stopLocked()
}

// unfollowLocked takes ls out of the followers of its i-th followed user.
func (x *index) unfollowLocked(ls *localSession, i int) {
	m := ls.follows[i]
	fu := m.of
	fu.followers = dropMember(fu.followers, m.pos, func(moved *localSession) []member[localUser] { return moved.follows }, fu)
	ls.follows = dropRef(ls.follows, i)
	if len(fu.followers) == 0 {
		x.followed--
		fu.seen = nil
		x.forgetLocked(fu)
	}
}

// stopLocked stops listening once no one is followed.
func (x *index) stopLocked() {
	if x.followed > 0 {
		return
	}
	if x.presence != nil {
		_ = x.presence.Unsubscribe()
		x.presence = nil
	}
	clear(x.seen)
}

// update records a presence and returns the follower sessions to tell,
// or nil when nothing changed.
func (x *index) update(p *apiv1.Presence, node string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	fu := x.users[p.UserId]
	if fu == nil || len(fu.followers) == 0 {
		return nil
	}
	if fu.state == p.State && fu.seen.activity == p.Activity {
		// The same state heard twice (the login announcement racing the
		// follow's own read): followers care about changes only.
		return nil
	}
	fu.state, fu.seen = p.State, x.seenLocked(p.Activity, node)
	out := make([]string, len(fu.followers))
	for i, ls := range fu.followers {
		out[i] = ls.id
	}
	return out
}

// onlineNodes returns the nodes of the followed users believed online,
// each once.
func (x *index) onlineNodes() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	if x.followed == 0 {
		return nil
	}
	for _, fu := range x.users {
		if len(fu.followers) > 0 && fu.state != apiv1.PresenceState_PRESENCE_STATE_OFFLINE && !slices.Contains(out, fu.seen.node) {
			out = append(out, fu.seen.node)
		}
	}
	return out
}

// onlineOn returns the followed users believed online on one of nodes.
func (x *index) onlineOn(nodes []string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for u, fu := range x.users {
		if len(fu.followers) > 0 && fu.state != apiv1.PresenceState_PRESENCE_STATE_OFFLINE && slices.Contains(nodes, fu.seen.node) {
			out = append(out, u)
		}
	}
	return out
}

// onPresence tells local followers about a presence change announced by
// the user's node (on the user's subject: changes of users nobody here
// follows are dropped by index.update).
func (s *Service) onPresence(msg *bus.Msg) {
	enc, _ := strings.CutPrefix(msg.Subject, presencePrefix)
	b, err := base64.RawURLEncoding.DecodeString(enc)
	user := string(b)
	ch := &clusterv1.PresenceChange{}
	p := &apiv1.Presence{}
	if err != nil || proto.Unmarshal(msg.Data, ch) != nil || proto.Unmarshal(ch.Presence, p) != nil || p.UserId != user {
		s.log.Warn("undecodable presence change", "user", user)
		return
	}
	s.tellFollowers(p, ch.NodeId, ch.Presence)
}

func (s *Service) tellFollowers(p *apiv1.Presence, node string, payload []byte) {
	sessions := s.idx.update(p, node)
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
		nodes := s.idx.onlineNodes()
		if len(nodes) == 0 {
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
		dead := slices.DeleteFunc(nodes, func(n string) bool { return live[n] })
		if len(dead) == 0 {
			continue
		}
		for _, u := range s.idx.onlineOn(dead) {
			s.tellFollowers(&apiv1.Presence{UserId: u, State: apiv1.PresenceState_PRESENCE_STATE_OFFLINE, SinceMs: s.clock.Now().UnixMilli()}, "", nil)
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
	s.idx.follow(call.UserID, call.SessionID, ps, nodes)
	return &apiv1.FollowResponse{Presences: ps}, nil
}

// Unfollow is the socket operation presence.unfollow.
func (s *Service) Unfollow(_ context.Context, call gateway.Call, req *apiv1.FollowRequest) (*apiv1.FollowResponse, error) {
	if len(req.UserIds) == 0 || len(req.UserIds) > 100 {
		return nil, apierr.BadRequest("user_ids: 1 to 100")
	}
	s.idx.unfollow(call.UserID, call.SessionID, req.UserIds)
	return &apiv1.FollowResponse{}, nil
}
