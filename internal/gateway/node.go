package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"

	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/bus"
)

// NodeSubject is the bus subject on which a node answers requests about
// its sessions (clusterv1.NodeRequest).
func NodeSubject(nodeID string) string { return "taisen.node." + nodeID + ".session" }

// nodeWorkers is how many goroutines handle node requests. Requests about
// one user always go to the same worker, so they are handled in the order
// they arrived; requests about different users run in parallel.
const nodeWorkers = 16

// nodeQueue bounds the requests waiting for one worker; when full, the
// bus subscription waits (NATS buffers behind it).
const nodeQueue = 1024

type nodeMsg struct {
	m   *bus.Msg
	req *clusterv1.NodeRequest
}

// startNodeWorkers starts the workers that handle node requests.
func (g *Gateway) startNodeWorkers() {
	g.nodeq = make([]chan nodeMsg, nodeWorkers)
	for i := range g.nodeq {
		q := make(chan nodeMsg, nodeQueue)
		g.nodeq[i] = q
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				select {
				case <-g.baseCtx.Done():
					return
				case nm := <-q:
					g.handleNodeRequest(nm.m, nm.req)
				}
			}
		}()
	}
}

// nodeRequest sends a request to a node's session subject.
func (g *Gateway) nodeRequest(ctx context.Context, nodeID string, req *clusterv1.NodeRequest) (*clusterv1.NodeReply, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("gateway: encode node request: %w", err)
	}
	out, err := g.deps.Bus.Request(ctx, NodeSubject(nodeID), b)
	if err != nil {
		return nil, fmt.Errorf("gateway: node %s: %w", nodeID, err)
	}
	reply := &clusterv1.NodeReply{}
	if err := proto.Unmarshal(out, reply); err != nil {
		return nil, fmt.Errorf("gateway: decode node reply: %w", err)
	}
	if reply.Error != "" {
		return nil, fmt.Errorf("gateway: node %s: %s", nodeID, reply.Error)
	}
	return reply, nil
}

// onNodeRequest receives another node's (or this node's) request about
// local sessions and hands it to the worker of its user.
func (g *Gateway) onNodeRequest(m *bus.Msg) {
	req := &clusterv1.NodeRequest{}
	if err := proto.Unmarshal(m.Data, req); err != nil {
		g.respond(m, &clusterv1.NodeReply{Error: "undecodable request: " + err.Error()})
		return
	}
	var user string
	switch body := req.Body.(type) {
	case *clusterv1.NodeRequest_Kick:
		user = body.Kick.UserId
	case *clusterv1.NodeRequest_TakeOver:
		user = body.TakeOver.UserId
	case *clusterv1.NodeRequest_Deliver:
		user = body.Deliver.UserId
	default:
		g.respond(m, &clusterv1.NodeReply{Error: "unknown request"})
		return
	}
	q := g.nodeq[maphash.String(g.seed, user)%uint64(len(g.nodeq))]
	select {
	case q <- nodeMsg{m, req}:
	case <-g.baseCtx.Done():
	}
}

func (g *Gateway) handleNodeRequest(m *bus.Msg, req *clusterv1.NodeRequest) {
	switch body := req.Body.(type) {
	case *clusterv1.NodeRequest_Kick:
		g.metrics.nodeRequests.WithLabelValues("kick").Inc()
		g.respond(m, &clusterv1.NodeReply{Body: &clusterv1.NodeReply_Kick{Kick: g.handleKick(body.Kick)}})
	case *clusterv1.NodeRequest_TakeOver:
		g.metrics.nodeRequests.WithLabelValues("take_over").Inc()
		g.respond(m, &clusterv1.NodeReply{Body: &clusterv1.NodeReply_TakeOver{TakeOver: g.handleTakeOver(body.TakeOver)}})
	case *clusterv1.NodeRequest_Deliver:
		g.metrics.nodeRequests.WithLabelValues("deliver").Inc()
		g.handleDeliver(body.Deliver, func(r *clusterv1.DeliverReply) {
			g.respond(m, &clusterv1.NodeReply{Body: &clusterv1.NodeReply_Deliver{Deliver: r}})
		})
	}
}

func (g *Gateway) respond(m *bus.Msg, reply *clusterv1.NodeReply) {
	if !m.IsRequest() {
		return
	}
	out, _ := proto.Marshal(reply)
	if err := m.Respond(out); err != nil {
		g.log.Debug("respond to node request", "err", err)
	}
}

func (g *Gateway) handleKick(k *clusterv1.Kick) *clusterv1.KickReply {
	var targets []*Session
	if k.SessionId != "" {
		if s := g.session(k.SessionId); s != nil && s.userID == k.UserId {
			targets = append(targets, s)
		}
	} else {
		g.sessMu.Lock()
		for _, s := range g.sessions {
			if s.userID == k.UserId {
				targets = append(targets, s)
			}
		}
		g.sessMu.Unlock()
	}
	found := false
	for _, s := range targets {
		cause := endKicked
		if k.Reason == realtimev1.CloseReason_CLOSE_REASON_REPLACED {
			cause = endReplaced
		}
		c, ended := g.end(s, cause)
		found = found || ended
		if c != nil {
			c.closeWith(k.Reason, k.Message, withNotice)
		}
	}
	return &clusterv1.KickReply{Found: found}
}

// handleTakeOver hands a session to the node resuming it: the snapshot of
// its pushes and its end are one critical section, so no push is assigned
// a seq here after the snapshot.
func (g *Gateway) handleTakeOver(t *clusterv1.TakeOver) *clusterv1.TakeOverReply {
	s := g.session(t.SessionId)
	if s == nil || s.userID != t.UserId {
		return &clusterv1.TakeOverReply{}
	}
	s.mu.Lock()
	if s.state != sessLive {
		s.mu.Unlock()
		return &clusterv1.TakeOverReply{}
	}
	pushes, complete := s.after(t.LastSeq)
	reply := &clusterv1.TakeOverReply{Found: true, Complete: complete, Pushes: pushes, LastSeq: s.seq, SinceMs: s.sinceMs}
	s.state = sessEnded
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	g.sessMu.Lock()
	if g.sessions[s.id] == s {
		delete(g.sessions, s.id)
	}
	g.sessMu.Unlock()
	g.changed()
	if c != nil {
		c.closeMoved()
	}
	return reply
}

// handleDeliver pushes to the session named in d. A session still being
// established keeps the push and answers once it is live (or failed), so
// the sender learns the push's real fate.
func (g *Gateway) handleDeliver(d *clusterv1.Deliver, reply func(*clusterv1.DeliverReply)) {
	s := g.session(d.SessionId)
	if s == nil || s.userID != d.UserId {
		reply(&clusterv1.DeliverReply{})
		return
	}
	seq, ok, later := g.push(s, d.Kind, d.Payload, func(seq uint64, ok bool) {
		reply(&clusterv1.DeliverReply{Delivered: ok, Seq: seq})
	})
	if !later {
		reply(&clusterv1.DeliverReply{Delivered: ok, Seq: seq})
	}
}

// push assigns the next seq to a push, keeps it for resume and queues it on
// the socket if one is attached. It returns false when the session ended.
// While the session is being established the push waits: push returns
// later = true and calls done once the push has its seq or was refused.
func (g *Gateway) push(s *Session, kind string, payload []byte, done func(seq uint64, ok bool)) (seq uint64, ok, later bool) {
	p := &realtimev1.Push{Kind: kind, Payload: payload, SentAtMs: g.clock.Now().UnixMilli()}
	s.mu.Lock()
	switch s.state {
	case sessEnded:
		s.mu.Unlock()
		return 0, false, false
	case sessEstablishing:
		s.pending = append(s.pending, pendingPush{p: p, done: done})
		s.mu.Unlock()
		return 0, false, true
	}
	s.seq++
	p.Seq = s.seq
	s.keep(p, g.cfg)
	c := s.conn
	start := false
	if c != nil {
		if frame, err := c.encode(&realtimev1.ServerFrame{Body: &realtimev1.ServerFrame_Push{Push: p}}); err == nil {
			start = c.queue(frame)
		}
	}
	s.mu.Unlock()
	g.metrics.pushes.Inc()
	if c != nil {
		c.flushIfStarted(start)
	}
	return p.Seq, true, false
}

// ErrOffline means the user has no live or resumable session.
var ErrOffline = errors.New("gateway: user is offline")

// Deliver pushes a message to a user's session wherever it lives in the
// cluster. It returns the push's seq, or ErrOffline.
func (g *Gateway) Deliver(ctx context.Context, userID, kind string, payload []byte) (uint64, error) {
	// A session may move or be replaced between reading its record and
	// delivering; one retry follows it.
	for attempt := 0; attempt < 2; attempt++ {
		rec, err := g.Lookup(ctx, userID)
		if err != nil {
			return 0, err
		}
		req := &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_Deliver{Deliver: &clusterv1.Deliver{
			UserId: userID, SessionId: rec.SessionId, Kind: kind, Payload: payload}}}
		reply, err := g.nodeRequest(ctx, rec.NodeId, req)
		if errors.Is(err, bus.ErrNoResponders) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if d := reply.GetDeliver(); d.GetDelivered() {
			return d.Seq, nil
		}
	}
	return 0, ErrOffline
}

// Lookup returns the session record of a user, or ErrOffline.
func (g *Gateway) Lookup(ctx context.Context, userID string) (*clusterv1.SessionRecord, error) {
	e, err := g.kv.Get(ctx, userID)
	if errors.Is(err, bus.ErrKeyNotFound) {
		return nil, ErrOffline
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: read session record: %w", err)
	}
	return decodeRecord(e.Value)
}

// Kick closes a user's session wherever it is, with the given reason.
func (g *Gateway) Kick(ctx context.Context, userID string, reason realtimev1.CloseReason, msg string) (bool, error) {
	rec, err := g.Lookup(ctx, userID)
	if errors.Is(err, ErrOffline) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	reply, err := g.nodeRequest(ctx, rec.NodeId, &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_Kick{Kick: &clusterv1.Kick{
		UserId: userID, SessionId: rec.SessionId, Reason: reason, Message: msg}}})
	if errors.Is(err, bus.ErrNoResponders) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return reply.GetKick().GetFound(), nil
}
