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
	case *clusterv1.NodeRequest_Multicast:
		// Ephemeral and for several users: no per-user order to keep, and
		// handled on the spot (one encode, non-blocking queues).
		g.metrics.nodeRequests.WithLabelValues("multicast").Inc()
		g.handleMulticast(body.Multicast)
		return
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
		cause := EndKicked
		if k.Reason == realtimev1.CloseReason_CLOSE_REASON_REPLACED {
			cause = EndReplaced
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
	if st := s.status; st != nil {
		reply.Playing, reply.Activity, reply.StatusSinceMs = st.playing, st.activity, st.sinceMs
	}
	s.state = sessEnded
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	g.sessMu.Lock()
	if g.sessions[s.id] == s {
		delete(g.sessions, s.id)
	}
	g.sessMu.Unlock()
	g.emit(SessionEvent{Kind: SessionEnded, UserID: s.userID, SessionID: s.id, Cause: EndMoved})
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
	if d.Ephemeral {
		reply(&clusterv1.DeliverReply{Delivered: g.ephemeral(s, &realtimev1.Ephemeral{Kind: d.Kind, Payload: d.Payload, PayloadType: d.PayloadType})})
		return
	}
	seq, ok, later := g.push(s, &realtimev1.Push{Kind: d.Kind, Payload: d.Payload, Id: d.Id, PayloadType: d.PayloadType}, func(seq uint64, ok bool) {
		reply(&clusterv1.DeliverReply{Delivered: ok, Seq: seq})
	})
	if !later {
		reply(&clusterv1.DeliverReply{Delivered: ok, Seq: seq})
	}
}

// ephemeral sends an ephemeral message to s's socket, if one is attached.
func (g *Gateway) ephemeral(s *Session, e *realtimev1.Ephemeral) bool {
	s.mu.Lock()
	c := s.conn
	live := s.state == sessLive
	s.mu.Unlock()
	if !live || c == nil {
		return false
	}
	e.SentAtMs = g.clock.Now().UnixMilli()
	frame, err := c.encodeEphemeral(e)
	if err != nil {
		g.log.Error("encode ephemeral message", "err", err)
		return false
	}
	g.metrics.events.Inc()
	return c.enqueue(frame, flushBackground)
}

// handleMulticast queues one ephemeral event on the sockets of several
// local sessions, encoding the frame once per wire format.
func (g *Gateway) handleMulticast(m *clusterv1.Multicast) {
	ev := &realtimev1.Ephemeral{Kind: m.Kind, Payload: m.Payload, PayloadType: m.PayloadType, SentAtMs: g.clock.Now().UnixMilli()}
	var frames [2][]byte // by wire.Format
	for _, id := range m.SessionIds {
		s := g.session(id)
		if s == nil {
			continue
		}
		s.mu.Lock()
		c := s.conn
		live := s.state == sessLive
		s.mu.Unlock()
		if !live || c == nil {
			continue
		}
		f := &frames[c.format&1]
		if *f == nil {
			b, err := c.encodeEphemeral(ev)
			if err != nil {
				g.log.Error("encode multicast message", "err", err)
				return
			}
			*f = b
		}
		// The encoded bytes are shared: queues only read them.
		if c.enqueue(*f, flushBackground) {
			g.metrics.events.Inc()
		}
	}
}

// push assigns the next seq to a push, keeps it for resume and queues it on
// the socket if one is attached. It returns false when the session ended.
// While the session is being established the push waits: push returns
// later = true and calls done once the push has its seq or was refused.
func (g *Gateway) push(s *Session, p *realtimev1.Push, done func(seq uint64, ok bool)) (seq uint64, ok, later bool) {
	p.SentAtMs = g.clock.Now().UnixMilli()
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
		if frame, err := c.encodePush(p); err == nil {
			start = c.queue(frame)
		} else {
			g.log.Error("encode push", "kind", p.Kind, "err", err)
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

// Message is what Send delivers to a user.
type Message struct {
	// Kind says what the message is ("chat.message"); Payload is its
	// content.
	Kind    string
	Payload []byte
	// ID is the producer's id of a durable push (Push.id), which the
	// client acknowledges with Ack; empty for none.
	ID string
	// Ephemeral sends an Ephemeral message instead of a Push: not numbered, not kept
	// for resume, delivered only to an attached socket (room state at
	// 20 Hz must not evict the pushes a resume needs).
	Ephemeral bool
	// PayloadType names the protobuf message in Payload (TypeName), so
	// JSON sockets receive its protojson encoding; empty for opaque bytes.
	PayloadType string
}

// Deliver sends a durable push to a user's session wherever it lives in
// the cluster. It returns the push's seq, or ErrOffline.
func (g *Gateway) Deliver(ctx context.Context, userID, kind string, payload []byte) (uint64, error) {
	return g.Send(ctx, userID, Message{Kind: kind, Payload: payload})
}

// Send delivers m to a user's session wherever it lives in the cluster. A
// durable push returns its seq; an ephemeral one returns 0. ErrOffline
// means no session took it: the user has none (or, for an ephemeral
// message, no attached socket).
func (g *Gateway) Send(ctx context.Context, userID string, m Message) (uint64, error) {
	// A session may move or be replaced between reading its record and
	// delivering; one retry follows it.
	for attempt := 0; attempt < 2; attempt++ {
		rec, err := g.Lookup(ctx, userID)
		if err != nil {
			return 0, err
		}
		req := &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_Deliver{Deliver: &clusterv1.Deliver{
			UserId: userID, SessionId: rec.SessionId, Kind: m.Kind, Payload: m.Payload, Id: m.ID, Ephemeral: m.Ephemeral, PayloadType: m.PayloadType}}}
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

// Recipient is where a user's session lives, as read from its record.
type Recipient struct {
	UserID    string
	SessionID string
	NodeID    string
}

// Resolve reads the records of users and returns where their sessions
// live; offline users are left out. Callers that send often (a room at
// 20 Hz) resolve once and again only when their players reconnect.
func (g *Gateway) Resolve(ctx context.Context, userIDs []string) ([]Recipient, error) {
	out := make([]Recipient, 0, len(userIDs))
	for _, u := range userIDs {
		rec, err := g.Lookup(ctx, u)
		if errors.Is(err, ErrOffline) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, Recipient{UserID: u, SessionID: rec.SessionId, NodeID: rec.NodeId})
	}
	return out, nil
}

// Multicast sends m as one ephemeral message to many sessions (whatever
// m.Ephemeral says): one bus message per node, where the frame is encoded
// once per wire format and queued on every local socket. It returns once
// the messages are published; sessions without an attached socket miss it.
func (g *Gateway) Multicast(ctx context.Context, to []Recipient, m Message) error {
	byNode := make(map[string][]string)
	for _, r := range to {
		byNode[r.NodeID] = append(byNode[r.NodeID], r.SessionID)
	}
	var errs []error
	for node, ids := range byNode {
		b, err := proto.Marshal(&clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_Multicast{Multicast: &clusterv1.Multicast{
			SessionIds: ids, Kind: m.Kind, Payload: m.Payload, PayloadType: m.PayloadType}}})
		if err != nil {
			return fmt.Errorf("gateway: encode multicast: %w", err)
		}
		if err := g.deps.Bus.Publish(ctx, NodeSubject(node), b); err != nil {
			errs = append(errs, fmt.Errorf("gateway: multicast to node %s: %w", node, err))
		}
	}
	return errors.Join(errs...)
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
