package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/wire"
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
	// batch, when set, is the part of a DeliverBatch for this worker's
	// users; the items' replies go into the shared batchReply.
	batch *batchPart
}

// batchPart is the share of a DeliverBatch one worker handles.
type batchPart struct {
	reply *batchReply
	idx   []int // positions of the items in the batch
}

// batchReply collects the replies of a DeliverBatch's items, which come
// from several workers (and later for sessions being established), and
// answers once all are in.
type batchReply struct {
	g         *Gateway
	m         *bus.Msg
	items     []*clusterv1.DeliverReply
	mu        sync.Mutex
	remaining int
}

func (b *batchReply) set(i int, r *clusterv1.DeliverReply) {
	b.mu.Lock()
	b.items[i] = r
	b.remaining--
	done := b.remaining == 0
	b.mu.Unlock()
	if done {
		b.g.respond(b.m, &clusterv1.NodeReply{Body: &clusterv1.NodeReply_DeliverBatch{DeliverBatch: &clusterv1.DeliverBatchReply{Items: b.items}}})
	}
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
					g.handleNodeRequest(nm)
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
	case *clusterv1.NodeRequest_DeliverBatch:
		g.metrics.nodeRequests.WithLabelValues("deliver_batch").Inc()
		g.queueBatch(m, body.DeliverBatch.Items)
		return
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
	case q <- nodeMsg{m: m, req: req}:
	case <-g.baseCtx.Done():
	}
}

// queueBatch splits a DeliverBatch among the workers of its users, so
// each user's deliveries keep their order with its other requests.
func (g *Gateway) queueBatch(m *bus.Msg, items []*clusterv1.Deliver) {
	if len(items) == 0 {
		g.respond(m, &clusterv1.NodeReply{Body: &clusterv1.NodeReply_DeliverBatch{DeliverBatch: &clusterv1.DeliverBatchReply{}}})
		return
	}
	br := &batchReply{g: g, m: m, items: make([]*clusterv1.DeliverReply, len(items)), remaining: len(items)}
	parts := make(map[int]*batchPart)
	for i, it := range items {
		w := int(maphash.String(g.seed, it.UserId) % uint64(len(g.nodeq)))
		p := parts[w]
		if p == nil {
			p = &batchPart{reply: br}
			parts[w] = p
		}
		p.idx = append(p.idx, i)
	}
	req := &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_DeliverBatch{DeliverBatch: &clusterv1.DeliverBatch{Items: items}}}
	for w, p := range parts {
		select {
		case g.nodeq[w] <- nodeMsg{m: m, req: req, batch: p}:
		case <-g.baseCtx.Done():
			return
		}
	}
}

func (g *Gateway) handleNodeRequest(nm nodeMsg) {
	m, req := nm.m, nm.req
	if nm.batch != nil {
		items := req.GetDeliverBatch().GetItems()
		for _, i := range nm.batch.idx {
			br := nm.batch.reply
			g.handleDeliver(items[i], func(r *clusterv1.DeliverReply) { br.set(i, r) })
		}
		return
	}
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
	if c, _ := g.endLocked(s, EndMoved); c != nil {
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
	c, start := g.sequenceLocked(s, p, nil)
	s.mu.Unlock()
	g.metrics.pushes.Inc()
	if c != nil {
		c.flushIfStarted(start)
	}
	return p.Seq, true, false
}

// sequenceLocked gives p the session's next seq, keeps it for resume and
// queues its frame on the attached socket, if any; s.mu is held, so pushes
// are queued in seq order, and the caller writes after releasing it
// (flushIfStarted). body, when set, is p marshalled without seq: a binary
// socket's frame is then spliced from it instead of marshalled again.
func (g *Gateway) sequenceLocked(s *Session, p *realtimev1.Push, body []byte) (*conn, bool) {
	s.seq++
	p.Seq = s.seq
	s.keep(p, g.cfg)
	c := s.conn
	if c == nil {
		return nil, false
	}
	var frame []byte
	var err error
	if body != nil && c.format == wire.Binary {
		frame = binaryPushFrame(p.Seq, body)
	} else if frame, err = c.encodePush(p); err != nil {
		g.log.Error("encode push", "kind", p.Kind, "err", err)
		return c, false
	}
	return c, c.queue(frame)
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

// SendMany delivers m to many users, grouping them by node: one bus
// request per node instead of one per user. It returns, per user in
// order, the push's seq (0 for an ephemeral message) and nil, ErrOffline,
// or another error. A user whose session moved meanwhile is retried alone.
func (g *Gateway) SendMany(ctx context.Context, userIDs []string, m Message) ([]uint64, []error) {
	seqs := make([]uint64, len(userIDs))
	errs := make([]error, len(userIDs))
	recs := make([]*clusterv1.SessionRecord, len(userIDs))
	parallel(len(userIDs), 64, func(i int) {
		recs[i], errs[i] = g.Lookup(ctx, userIDs[i])
	})
	byNode := make(map[string][]int)
	for i, rec := range recs {
		if errs[i] == nil {
			byNode[rec.NodeId] = append(byNode[rec.NodeId], i)
		}
	}
	var retry []int
	var mu sync.Mutex
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	parallel(len(nodes), 16, func(k int) {
		idx := byNode[nodes[k]]
		items := make([]*clusterv1.Deliver, len(idx))
		for j, i := range idx {
			items[j] = &clusterv1.Deliver{UserId: userIDs[i], SessionId: recs[i].SessionId, Kind: m.Kind, Payload: m.Payload,
				Id: m.ID, Ephemeral: m.Ephemeral, PayloadType: m.PayloadType}
		}
		reply, err := g.nodeRequest(ctx, nodes[k], &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_DeliverBatch{DeliverBatch: &clusterv1.DeliverBatch{Items: items}}})
		got := reply.GetDeliverBatch().GetItems()
		mu.Lock()
		defer mu.Unlock()
		for j, i := range idx {
			switch {
			case errors.Is(err, bus.ErrNoResponders) || (err == nil && (j >= len(got) || !got[j].GetDelivered())):
				retry = append(retry, i) // the session moved or was replaced meanwhile
			case err != nil:
				errs[i] = err
			default:
				seqs[i] = got[j].Seq
			}
		}
	})
	parallel(len(retry), 64, func(k int) {
		i := retry[k]
		seqs[i], errs[i] = g.Send(ctx, userIDs[i], m)
	})
	return seqs, errs
}

// parallel runs fn(0..n-1) with at most limit at once.
func parallel(n, limit int, fn func(i int)) {
	var g errgroup.Group
	g.SetLimit(limit)
	for i := range n {
		g.Go(func() error { fn(i); return nil })
	}
	_ = g.Wait()
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

// MulticastLocal is Multicast for sessions of this node, without the bus:
// the ephemeral frame is encoded once per wire format and queued on every
// listed session's socket; unknown sessions and sessions without a socket
// miss it. A room uses it for its players on its own node.
func (g *Gateway) MulticastLocal(sessionIDs []string, m Message) {
	g.handleMulticast(&clusterv1.Multicast{SessionIds: sessionIDs, Kind: m.Kind, Payload: m.Payload, PayloadType: m.PayloadType})
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
