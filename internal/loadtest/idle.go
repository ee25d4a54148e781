package loadtest

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"

	"github.com/taisen-dev/taisen/client"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
)

// idleState is the bookkeeping of the idle scenario's topics and
// presence follows (Config.TopicsPerSession, Config.Follows).
type idleState struct {
	// topics are the topic names of the run, created before connecting.
	topics []string
	adm    adminv1connect.NotifyServiceClient
	ahc    *http.Client

	created    atomic.Int64 // topics created
	subscribed atomic.Int64 // successful notify.topics.subscribe
	statuses   atomic.Int64 // successful presence.status.set
	follows    atomic.Int64 // users followed (presence.follow)
	notes      atomic.Int64 // pushes of kind notify received
	presences  atomic.Int64 // pushes of kind presence received
	others     atomic.Int64 // pushes of any other kind received

	readers sync.WaitGroup // the push readers, which end with their sockets
}

func newIdleState(cfg Config) *idleState {
	st := &idleState{}
	if cfg.TopicsPerSession > 0 {
		var b [4]byte
		_, _ = crand.Read(b[:])
		prefix := "lt-" + hex.EncodeToString(b[:]) + "-idle-"
		st.topics = make([]string, cfg.Topics)
		for g := range st.topics {
			st.topics[g] = fmt.Sprintf("%s%d", prefix, g)
		}
		st.adm, st.ahc = newAdmin(cfg)
	}
	return st
}

// createTopics creates the run's topics, which clients may subscribe to.
// On failure it deletes those it created.
func (r *runner) createTopics(ctx context.Context) error {
	st := r.idle
	if len(st.topics) == 0 {
		return nil
	}
	r.phase.Store("topics")
	for g, name := range st.topics {
		_, err := st.adm.CreateTopic(ctx, connect.NewRequest(&adminv1.CreateTopicRequest{Name: name, ClientsMaySubscribe: true}))
		if err != nil {
			r.deleteTopics(ctx, st.adm, st.topics[:g])
			return setupError("create topic", err)
		}
		st.created.Add(1)
	}
	return nil
}

// idleSession sets session i up after its Welcome: it reads and counts
// the pushes, sets the presence status (with Follows) and subscribes to
// the session's topics. Failures are counted, the session stays held.
func (r *runner) idleSession(ctx context.Context, i int, sock *client.Socket) {
	cfg, st := r.cfg, r.idle
	st.readers.Add(1)
	go func() {
		defer st.readers.Done()
		for p := range sock.Pushes() {
			switch p.GetKind() {
			case client.PushKindNotification:
				st.notes.Add(1)
			case client.PushKindPresence:
				st.presences.Add(1)
			default:
				st.others.Add(1)
			}
		}
	}()
	if cfg.Follows > 0 {
		if _, err := sock.SetStatus(ctx, true, IdleActivity); err != nil {
			r.fail("status", errorKind(err), err, 1)
		} else {
			st.statuses.Add(1)
		}
	}
	for j := range cfg.TopicsPerSession {
		topic := st.topics[(i+j)%len(st.topics)]
		if _, err := sock.SubscribeTopic(ctx, topic); err != nil {
			r.fail("subscribe", errorKind(err), fmt.Errorf("topic %s: %w", topic, err), 1)
			continue
		}
		st.subscribed.Add(1)
	}
}

// followAll makes every held session follow the presence of the Follows
// held sessions after it (by session index, wrapping around), with at
// most Concurrency requests in flight, within ConnectTimeout.
func (r *runner) followAll(ctx context.Context) {
	cfg, st := r.cfg, r.idle
	held := r.heldSessions()
	n := len(held)
	if n < 2 {
		return
	}
	r.phase.Store("follow")
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for p, h := range held {
		users := make([]string, 0, min(cfg.Follows, n-1))
		for k := 1; k <= cfg.Follows && k < n; k++ {
			users = append(users, held[(p+k)%n].user)
		}
		select {
		case <-ctx.Done():
			r.fail("follow", "not_started", fmt.Errorf("%d sessions did not follow: %w", n-p, ctx.Err()), n-p)
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() {
				<-sem
				wg.Done()
			}()
			if _, err := h.sock.FollowPresence(ctx, users...); err != nil {
				r.fail("follow", errorKind(err), err, 1)
				return
			}
			st.follows.Add(int64(len(users)))
		}()
	}
}

// idleEnd runs once the sessions are closed: it waits for the push
// readers, deletes the run's topics and fills the report.
func (r *runner) idleEnd(ctx context.Context, rep *Report) {
	st := r.idle
	st.readers.Wait()
	if len(st.topics) > 0 {
		r.deleteTopics(ctx, st.adm, st.topics[:st.created.Load()])
		st.ahc.CloseIdleConnections()
	}
	rep.TopicsCreated = ptr(st.created.Load())
	rep.TopicSubscriptions = ptr(st.subscribed.Load())
	rep.StatusesSet = ptr(st.statuses.Load())
	rep.Follows = ptr(st.follows.Load())
	rep.PushesReceived = map[string]int64{
		client.PushKindNotification: st.notes.Load(),
		client.PushKindPresence:     st.presences.Load(),
	}
	if n := st.others.Load(); n > 0 {
		rep.PushesReceived["other"] = n
	}
}
