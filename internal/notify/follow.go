package notify

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
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

// presencePrefix starts the subject where the node holding a user's
// session announces the user's presence changes (presenceSubject).
const presencePrefix = "taisen.presence."

// presenceSubject is where the node holding a user's session announces
// the user's presence changes. Nobody listening costs nothing: NATS routes
// by interest, so only nodes with local followers (of anyone: see
// followIndex) receive them.
func presenceSubject(user string) string {
	return presencePrefix + base64.RawURLEncoding.EncodeToString([]byte(user))
}

// presenceWildcard is what a node with local followers listens on: every
// user's presence subject.
const presenceWildcard = presencePrefix + "*"

// followIndex is the node's index of presence follows: followed user →
// local follower sessions, with the last presence seen. While any local
// session follows anyone, the node listens on every presence subject with
// one subscription (a subscription per followed user cost about 4 KiB of
// the node's memory each: a goroutine, the client's and the embedded
// server's records) and keeps the announcements of the users followed
// here.
type followIndex struct {
	s  *Service
	mu sync.Mutex
	// users: followed user → its followers here and its last presence.
	users map[string]*followed
	// follows: follower session → followed users (the keys of users).
	follows map[string][]string
	// sub listens on presenceWildcard while users is not empty.
	sub bus.Subscription
	// nodeIDs interns the node ids of followed users (a few distinct
	// values); emptied when no one is followed.
	nodeIDs map[string]string
}

// nodeLocked returns the interned copy of a node id.
func (f *followIndex) nodeLocked(node string) string {
	if id, ok := f.nodeIDs[node]; ok {
		return id
	}
	f.nodeIDs[node] = node
	return node
}

// followed is a followed user: the local sessions that follow it and the
// last presence seen (state, activity, node).
type followed struct {
	user string
	// sessions are the follower sessions while they are few; many holds
	// them instead once there are more than maxFollowerSlice.
	sessions []string
	many     map[string]struct{}
	state    apiv1.PresenceState
	activity string
	node     string
}

// maxFollowerSlice is the most follower sessions of one user kept in a
// slice; a user followed by more sessions of the node gets a map.
const maxFollowerSlice = 16

// add adds a follower session; false when it followed already.
func (f *followed) add(session string) bool {
	if f.many != nil {
		if _, ok := f.many[session]; ok {
			return false
		}
		f.many[session] = struct{}{}
		return true
	}
	if slices.Contains(f.sessions, session) {
		return false
	}
	if len(f.sessions) < maxFollowerSlice {
		f.sessions = append(f.sessions, session)
		return true
	}
	f.many = make(map[string]struct{}, 2*maxFollowerSlice)
	for _, id := range f.sessions {
		f.many[id] = struct{}{}
	}
	f.sessions = nil
	f.many[session] = struct{}{}
	return true
}

// drop removes a follower session and reports whether none is left.
func (f *followed) drop(session string) bool {
	if f.many != nil {
		delete(f.many, session)
		return len(f.many) == 0
	}
	if i := slices.Index(f.sessions, session); i >= 0 {
		last := len(f.sessions) - 1
		f.sessions[i] = f.sessions[last]
		f.sessions[last] = ""
		f.sessions = f.sessions[:last]
	}
	return len(f.sessions) == 0
}

// followers returns the follower sessions.
func (f *followed) followers() []string {
	if f.many == nil {
		return slices.Clone(f.sessions)
	}
	out := make([]string, 0, len(f.many))
	for id := range f.many {
		out = append(out, id)
	}
	return out
}

func newFollowIndex(s *Service) *followIndex {
	return &followIndex{s: s, users: make(map[string]*followed), follows: make(map[string][]string), nodeIDs: make(map[string]string)}
}

// follow adds follows of session to users, with their current presence.
func (f *followIndex) follow(session string, current []*apiv1.Presence, nodes []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sub == nil && len(current) > 0 {
		sub, err := f.s.bus.Subscribe(presenceWildcard, f.s.onPresence)
		if err != nil {
			f.s.log.Error("listen to presence", "err", err)
		} else {
			f.sub = sub
		}
	}
	for i, p := range current {
		fu := f.users[p.UserId]
		if fu == nil {
			fu = &followed{user: p.UserId, state: p.State, activity: p.Activity, node: f.nodeLocked(nodes[i])}
			f.users[fu.user] = fu
		}
		if fu.add(session) {
			fs := f.follows[session]
			if fs == nil {
				fs = make([]string, 0, len(current))
			}
			f.follows[session] = append(fs, fu.user)
		}
	}
	f.stopLocked()
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
	if len(f.follows[session]) == 0 {
		delete(f.follows, session)
	}
	f.stopLocked()
}

// remove forgets an ended session's follows.
func (f *followIndex) remove(session string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs, ok := f.follows[session]
	if !ok {
		return
	}
	for _, u := range fs {
		f.dropLocked(session, u)
	}
	delete(f.follows, session)
	f.stopLocked()
}

func (f *followIndex) dropLocked(session, user string) {
	fu := f.users[user]
	if fu != nil && fu.drop(session) {
		delete(f.users, user)
	}
}

// stopLocked stops listening once no one is followed.
func (f *followIndex) stopLocked() {
	if len(f.users) == 0 && f.sub != nil {
		_ = f.sub.Unsubscribe()
		f.sub = nil
	}
	if len(f.users) == 0 {
		clear(f.nodeIDs)
	}
}

// update records a presence and returns the follower sessions to tell,
// or nil when nothing changed.
func (f *followIndex) update(p *apiv1.Presence, node string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	fu := f.users[p.UserId]
	if fu == nil {
		return nil
	}
	if fu.state == p.State && fu.activity == p.Activity {
		// The same state heard twice (the login announcement racing the
		// follow's own read): followers care about changes only.
		return nil
	}
	fu.state, fu.activity, fu.node = p.State, p.Activity, f.nodeLocked(node)
	return fu.followers()
}

// onlineNodes returns the nodes of the followed users believed online,
// each once.
func (f *followIndex) onlineNodes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, fu := range f.users {
		if fu.state != apiv1.PresenceState_PRESENCE_STATE_OFFLINE && !slices.Contains(out, fu.node) {
			out = append(out, fu.node)
		}
	}
	return out
}

// onlineOn returns the followed users believed online on one of nodes.
func (f *followIndex) onlineOn(nodes []string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for u, fu := range f.users {
		if fu.state != apiv1.PresenceState_PRESENCE_STATE_OFFLINE && slices.Contains(nodes, fu.node) {
			out = append(out, u)
		}
	}
	return out
}

func (f *followIndex) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sub != nil {
		_ = f.sub.Unsubscribe()
		f.sub = nil
	}
}

// onPresence tells local followers about a presence change announced by
// the user's node (on the user's subject: changes of users nobody here
// follows are dropped by followIndex.update).
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
		nodes := s.follows.onlineNodes()
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
		for _, u := range s.follows.onlineOn(dead) {
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
