package notify

import (
	"slices"
	"sync"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/internal/bus"
)

// index is the node's in-memory index of its sessions, of the topics
// they follow (topic → local sessions; the node listens on a topic's
// subject only while it has a local subscriber) and of the users they
// follow the presence of (followed user → local follower sessions, with
// the last presence seen). One mutex guards it all.
//
// It is built to be small per session, since every session of the node
// is in it: a session is one localSession (its id is the gateway's
// string), found through its user's localUser (a user with one session
// here, the common case, needs no slice); a topic's or followed user's
// members are a slice of session pointers, each session keeping its
// position in it, so that fan-out reads a slice and a session leaves in
// constant time. Nothing decoded from a request or a bus message is kept
// per session.
type index struct {
	s  *Service
	mu sync.Mutex
	// users: user → its sessions on this node and, while some local
	// session follows it, its presence; an entry lives while it has
	// either.
	users map[string]*localUser
	// topics: topic → its local sessions and bus subscription, while it
	// has local sessions.
	topics map[string]*localTopic
	// followed counts the users with local followers.
	followed int
	// presence listens on presenceWildcard while followed > 0.
	presence bus.Subscription
	// seen interns the activity and node of followed users' presence
	// (a few distinct pairs; at most maxInterned); emptied when no one is
	// followed.
	seen map[lastSeen]*lastSeen
	// control is the subscription to subsSubject.
	control bus.Subscription
}

// maxInterned bounds the pairs index.seen keeps.
const maxInterned = 4096

// localUser is a user with sessions on this node or followed by some.
type localUser struct {
	id string
	// sessions is the first of the user's sessions on this node (the
	// others follow through localSession.next).
	sessions *localSession
	// followers are the local sessions following the user's presence;
	// state and seen are the last presence seen while there are any.
	followers []*localSession
	state     apiv1.PresenceState
	seen      *lastSeen
}

// lastSeen is the activity of a followed user and the node of its
// session.
type lastSeen struct{ activity, node string }

// noneSeen is the lastSeen of an offline user without activity.
var noneSeen = &lastSeen{}

// localSession is a session of this node.
type localSession struct {
	id   string
	next *localSession
	// attached: the gateway told of the session (addSession); a session
	// known only from a presence.follow that raced ahead of that event
	// follows users but gets no topics yet (its login job adds them).
	attached bool
	// topics and follows are where the session is in its topics' and
	// followed users' member slices.
	topics  []member[localTopic]
	follows []member[localUser]
}

// member is a session's place in the member slice of a topic or a
// followed user.
type member[T any] struct {
	of  *T
	pos int32
}

// localTopic is a topic some local sessions follow.
type localTopic struct {
	name    string
	members []*localSession
	// sub is the subscription to the topic's subject (nil when it
	// failed).
	sub bus.Subscription
}

func newIndex(s *Service) *index {
	return &index{s: s, users: make(map[string]*localUser), topics: make(map[string]*localTopic), seen: make(map[lastSeen]*lastSeen)}
}

func (x *index) start() error {
	sub, err := x.s.bus.Subscribe(subsSubject, x.s.onSubsChange)
	if err != nil {
		return err
	}
	x.control = sub
	return nil
}

// sessionLocked returns a session of user, creating it (and the user)
// when create; nil when unknown and not create.
func (x *index) sessionLocked(user, session string, create bool) *localSession {
	u := x.users[user]
	if u != nil {
		for ls := u.sessions; ls != nil; ls = ls.next {
			if ls.id == session {
				return ls
			}
		}
	}
	if !create {
		return nil
	}
	if u == nil {
		u = &localUser{id: user}
		x.users[user] = u
	}
	ls := &localSession{id: session, next: u.sessions}
	u.sessions = ls
	return ls
}

// addSession records a live session of a user on this node; false when
// it was known already.
func (x *index) addSession(user, session string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	ls := x.sessionLocked(user, session, true)
	if ls.attached {
		return false
	}
	ls.attached = true
	return true
}

// sessionsOf returns the user's sessions on this node.
func (x *index) sessionsOf(user string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	u := x.users[user]
	if u == nil {
		return nil
	}
	var out []string
	for ls := u.sessions; ls != nil; ls = ls.next {
		if ls.attached {
			out = append(out, ls.id)
		}
	}
	return out
}

// subscribe adds topics to a session of this node.
func (x *index) subscribe(user, session string, topics []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ls := x.sessionLocked(user, session, false)
	if ls == nil || !ls.attached {
		return // ended meanwhile
	}
next:
	for _, t := range topics {
		for _, m := range ls.topics {
			if m.of.name == t {
				continue next
			}
		}
		lt := x.topics[t]
		if lt == nil {
			lt = &localTopic{name: t}
			x.topics[t] = lt
			sub, err := x.s.bus.Subscribe(topicSubject(t), func(msg *bus.Msg) { x.s.onTopicItem(t, msg) })
			if err != nil {
				x.s.log.Error("listen to topic", "topic", t, "err", err)
			} else {
				lt.sub = sub
			}
		}
		// Clipped: grown to the size class of the next length, not
		// doubled (sessions subscribe one topic at a time).
		ls.topics = append(slices.Clip(ls.topics), member[localTopic]{of: lt, pos: int32(len(lt.members))})
		lt.members = append(lt.members, ls)
	}
}

// unsubscribe removes topics from a session.
func (x *index) unsubscribe(user, session string, topics []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ls := x.sessionLocked(user, session, false)
	if ls == nil {
		return
	}
	for _, t := range topics {
		for i, m := range ls.topics {
			if m.of.name == t {
				x.leaveTopicLocked(ls, i)
				break
			}
		}
	}
}

// leaveTopicLocked takes ls out of its i-th topic.
func (x *index) leaveTopicLocked(ls *localSession, i int) {
	m := ls.topics[i]
	lt := m.of
	lt.members = dropMember(lt.members, m.pos, func(moved *localSession) []member[localTopic] { return moved.topics }, lt)
	ls.topics = dropRef(ls.topics, i)
	if len(lt.members) == 0 {
		delete(x.topics, lt.name)
		if lt.sub != nil {
			_ = lt.sub.Unsubscribe()
			lt.sub = nil
		}
	}
}

// dropMember removes the member at pos from members by moving the last
// one there (refs gives that session's places, of identifies the group
// in them), and gives back the slice's memory when mostly unused.
func dropMember[T any](members []*localSession, pos int32, refs func(*localSession) []member[T], of *T) []*localSession {
	last := int32(len(members) - 1)
	if pos != last {
		moved := members[last]
		members[pos] = moved
		rs := refs(moved)
		for i := range rs {
			if rs[i].of == of {
				rs[i].pos = pos
				break
			}
		}
	}
	members[last] = nil
	members = members[:last]
	return shrink(members)
}

// dropRef removes a session's i-th place, keeping the order.
func dropRef[T any](refs []member[T], i int) []member[T] {
	refs = slices.Delete(refs, i, i+1)
	if len(refs) == 0 {
		return nil
	}
	return refs
}

// shrink gives back a slice's memory when it is mostly unused.
func shrink[E any](s []E) []E {
	if len(s) == 0 {
		return nil
	}
	if cap(s) > 64 && len(s) < cap(s)/4 {
		return slices.Clip(slices.Clone(s))
	}
	return s
}

// remove forgets an ended session: local bookkeeping only.
func (x *index) remove(user, session string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if ls := x.sessionLocked(user, session, false); ls != nil {
		x.removeLocked(x.users[user], ls)
		x.stopLocked()
	}
}

// removeLocked takes a session of u out of the index.
func (x *index) removeLocked(u *localUser, ls *localSession) {
	for p := &u.sessions; *p != nil; p = &(*p).next {
		if *p == ls {
			*p = ls.next
			break
		}
	}
	for i := len(ls.topics) - 1; i >= 0; i-- {
		x.leaveTopicLocked(ls, i)
	}
	for i := len(ls.follows) - 1; i >= 0; i-- {
		x.unfollowLocked(ls, i)
	}
	ls.next = nil
	x.forgetLocked(u)
}

// forgetLocked drops a user with neither sessions here nor followers.
func (x *index) forgetLocked(u *localUser) {
	if u.sessions == nil && len(u.followers) == 0 {
		delete(x.users, u.id)
	}
}

// local returns the sessions of this node following topic.
func (x *index) local(topic string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	lt := x.topics[topic]
	if lt == nil {
		return nil
	}
	out := make([]string, len(lt.members))
	for i, ls := range lt.members {
		out[i] = ls.id
	}
	return out
}

func (x *index) close() {
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
	if x.presence != nil {
		_ = x.presence.Unsubscribe()
		x.presence = nil
	}
}
