package notify

import (
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"

	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/gateway"
)

// benchBus accepts subscriptions and nothing else.
type benchBus struct{ bus.Bus }

type benchSub struct{}

func (benchSub) Unsubscribe() error { return nil }

func (benchBus) Subscribe(string, bus.Handler) (bus.Subscription, error) { return benchSub{}, nil }

// countingGateway takes fan-outs and counts their sessions.
type countingGateway struct {
	Gateway
	pushed *int
}

func (g countingGateway) PushLocal(ids []string, _ gateway.Message) int {
	*g.pushed += len(ids)
	return len(ids)
}

// BenchmarkTopicFanOut measures the node's side of a topic item's
// fan-out to n local subscribers (each following two more topics, as in
// the idle load test): reading the topic's sessions from the index and
// handing them to the gateway's PushLocal (here a counter). Reported per
// delivery.
func BenchmarkTopicFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 15000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			pushed := 0
			s := &Service{gw: countingGateway{pushed: &pushed}, bus: benchBus{}, log: slog.New(slog.DiscardHandler), metrics: newMetrics(nil)}
			s.idx = newIndex(s)
			for i := range n {
				user, session := fmt.Sprintf("u%d", i), fmt.Sprintf("s%d", i)
				s.idx.addSession(user, session)
				benchSubscribe(s, user, session, []string{"t0", "t1", "t2"})
			}
			msg := &bus.Msg{Subject: topicSubject("t1"), Data: make([]byte, 200)}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.onTopicItem("t1", msg)
			}
			if pushed != b.N*n {
				b.Fatalf("pushed %d, want %d", pushed, b.N*n)
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

func benchSubscribe(s *Service, user, session string, topics []string) {
	s.idx.subscribe(user, session, topics)
}

// recordingGateway records the sessions of the last fan-out.
type recordingGateway struct {
	Gateway
	last *[]string
}

func (g recordingGateway) PushLocal(ids []string, _ gateway.Message) int {
	*g.last = append((*g.last)[:0], ids...)
	return len(ids)
}

// TestIndexFanOutFollowsChurn: after any mix of sessions joining and
// leaving topics, ending, and following and unfollowing users, a topic
// item reaches exactly the sessions that follow the topic, and a
// presence change exactly the sessions that follow the user.
func TestIndexFanOutFollowsChurn(t *testing.T) {
	var last []string
	s := &Service{gw: recordingGateway{last: &last}, bus: benchBus{}, log: slog.New(slog.DiscardHandler), metrics: newMetrics(nil)}
	s.idx = newIndex(s)
	topics := []string{"a", "b", "c"}
	type sess struct{ user, id string }
	// Users u0..u29 with one or two sessions each.
	var all []sess
	for i := range 30 {
		u := fmt.Sprintf("u%d", i)
		all = append(all, sess{u, u + "/1"})
		if i%3 == 0 {
			all = append(all, sess{u, u + "/2"})
		}
	}
	live := map[sess]bool{}
	subs := map[string]map[string]bool{}    // topic → session ids
	follows := map[string]map[string]bool{} // followed user → session ids
	for _, tp := range topics {
		subs[tp] = map[string]bool{}
	}
	r := rand.New(rand.NewPCG(1, 2))
	presence := func(u string, state apiv1.PresenceState) *apiv1.Presence {
		return &apiv1.Presence{UserId: u, State: state}
	}
	check := func(step int) {
		t.Helper()
		for _, tp := range topics {
			last = last[:0]
			s.onTopicItem(tp, &bus.Msg{})
			if got, want := setOf(last), subs[tp]; !maps.Equal(got, want) {
				t.Fatalf("step %d: topic %s reached %v, want %v", step, tp, got, want)
			}
		}
		for i := range 30 {
			u := fmt.Sprintf("u%d", i)
			last = last[:0]
			// Two changes, so that the second always differs from the last
			// state kept.
			s.tellFollowers(presence(u, apiv1.PresenceState_PRESENCE_STATE_PLAYING), "n1", []byte{1})
			s.tellFollowers(presence(u, apiv1.PresenceState_PRESENCE_STATE_ONLINE), "n1", []byte{1})
			want := follows[u]
			if want == nil {
				want = map[string]bool{}
			}
			if got := setOf(last); !maps.Equal(got, want) {
				t.Fatalf("step %d: presence of %s reached %v, want %v", step, u, got, want)
			}
		}
	}
	for step := range 3000 {
		x := all[r.IntN(len(all))]
		switch op := r.IntN(6); {
		case op == 0: // attach or end
			if live[x] {
				s.idx.remove(x.user, x.id)
				delete(live, x)
				for _, m := range subs {
					delete(m, x.id)
				}
				for _, m := range follows {
					delete(m, x.id)
				}
			} else {
				if !s.idx.addSession(x.user, x.id) {
					t.Fatalf("step %d: %v known before it attached", step, x)
				}
				live[x] = true
			}
		case op <= 2: // subscribe or unsubscribe
			tp := topics[r.IntN(len(topics))]
			if op == 1 {
				s.idx.subscribe(x.user, x.id, []string{tp})
				if live[x] {
					subs[tp][x.id] = true
				}
			} else {
				s.idx.unsubscribe(x.user, x.id, []string{tp})
				delete(subs[tp], x.id)
			}
		default: // follow or unfollow
			if !live[x] {
				continue // a follow before the attach is in TestIndexFollowBeforeAttach
			}
			u := fmt.Sprintf("u%d", r.IntN(30))
			if op <= 4 {
				s.idx.follow(x.user, x.id, []*apiv1.Presence{presence(u, apiv1.PresenceState_PRESENCE_STATE_ONLINE)}, []string{"n1"})
				if follows[u] == nil {
					follows[u] = map[string]bool{}
				}
				follows[u][x.id] = true
			} else {
				s.idx.unfollow(x.user, x.id, []string{u})
				delete(follows[u], x.id)
			}
		}
		if step%100 == 0 {
			check(step)
		}
	}
	check(3000)
	for x := range live {
		s.idx.remove(x.user, x.id)
	}
	if len(s.idx.users) != 0 || len(s.idx.topics) != 0 || s.idx.followed != 0 || s.idx.presence != nil {
		t.Fatalf("after every session ended: %d users, %d topics, %d followed, listening %v", len(s.idx.users), len(s.idx.topics), s.idx.followed, s.idx.presence != nil)
	}
}

// TestIndexFollowBeforeAttach: a follow that reaches the index before
// the gateway's event of the session's attach counts, and the attach
// still reads as new (so the session's topics are loaded).
func TestIndexFollowBeforeAttach(t *testing.T) {
	var last []string
	s := &Service{gw: recordingGateway{last: &last}, bus: benchBus{}, log: slog.New(slog.DiscardHandler), metrics: newMetrics(nil)}
	s.idx = newIndex(s)
	s.idx.follow("alice", "a1", []*apiv1.Presence{{UserId: "bob", State: apiv1.PresenceState_PRESENCE_STATE_OFFLINE}}, []string{""})
	if !s.idx.addSession("alice", "a1") {
		t.Fatal("attach after an early follow read as known")
	}
	s.idx.subscribe("alice", "a1", []string{"news"})
	s.tellFollowers(&apiv1.Presence{UserId: "bob", State: apiv1.PresenceState_PRESENCE_STATE_ONLINE}, "n1", []byte{1})
	if !slices.Equal(last, []string{"a1"}) {
		t.Fatalf("presence of bob reached %v, want [a1]", last)
	}
	s.onTopicItem("news", &bus.Msg{})
	if !slices.Equal(last, []string{"a1"}) {
		t.Fatalf("topic item reached %v, want [a1]", last)
	}
	s.idx.remove("alice", "a1")
	if len(s.idx.users) != 0 || s.idx.presence != nil {
		t.Fatalf("after the end: %d users, listening %v", len(s.idx.users), s.idx.presence != nil)
	}
}

func setOf(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}
