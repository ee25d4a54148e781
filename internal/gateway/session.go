package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
)

// Session is a user's logical session. It outlives its socket for the
// resume grace period, keeps its push sequence and recent pushes, and may
// move to another socket or node on resume. A user has at most one Session
// in the whole cluster: the one named by its record in the sessions KV.
type Session struct {
	id       string
	userID   string
	username string
	sinceMs  int64

	mu sync.Mutex
	// conn is the attached socket; nil while detached. Guarded by mu.
	conn *conn
	// seq is the last push sequence number assigned. Guarded by mu.
	seq uint64
	// ring holds recent pushes for resume; nil until the first push.
	// Guarded by mu.
	ring *pushRing
	// resuming is set while a takeover is in progress; pushes then wait in
	// pending and get their seq once the takeover is done. Guarded by mu.
	resuming bool
	pending  []*realtimev1.Push
	// resumed and clientLast describe how the session was established:
	// attach sends the pushes after clientLast. Guarded by mu.
	resumed    bool
	clientLast uint64
	// ended is set once the session is over (logout, replaced, kicked,
	// grace expired, moved away). Guarded by mu.
	ended bool
	// detachedAt is when the socket went away (unix nanos); 0 while
	// attached. Guarded by mu.
	detachedAt int64
	// kvRev is the revision of the session record last written by this
	// node; refreshAt (unix nanos) is when to refresh it. Guarded by mu.
	kvRev     uint64
	refreshAt int64
}

// newSessionID returns a random, URL-safe session id.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Session) record(nodeID string) []byte {
	b, _ := proto.Marshal(&clusterv1.SessionRecord{SessionId: s.id, NodeId: nodeID, SinceMs: s.sinceMs})
	return b
}

func decodeRecord(b []byte) (*clusterv1.SessionRecord, error) {
	rec := &clusterv1.SessionRecord{}
	if err := proto.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("gateway: decode session record: %w", err)
	}
	return rec, nil
}

// push assigns the next seq to a push, keeps it for resume and queues it on
// the socket if one is attached. It returns false when the session ended.
func (g *Gateway) push(s *Session, kind string, payload []byte) (uint64, bool) {
	p := &realtimev1.Push{Kind: kind, Payload: payload, SentAtMs: g.now().UnixMilli()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return 0, false
	}
	if s.resuming {
		s.pending = append(s.pending, p)
		return 0, true
	}
	s.seq++
	p.Seq = s.seq
	s.keep(p, g.cfg)
	g.metrics.pushes.Inc()
	if c := s.conn; c != nil {
		frame, err := c.encode(&realtimev1.ServerFrame{Body: &realtimev1.ServerFrame_Push{Push: p}})
		if err == nil {
			c.enqueue(frame, false)
		}
	}
	return p.Seq, true
}

// establish creates the session of a newly authenticated socket: it
// resumes resumeID when that is still possible, else starts a fresh one.
func (g *Gateway) establish(ctx context.Context, ident Identity, resumeID string, lastSeq uint64) (*Session, error) {
	s := &Session{id: resumeID, userID: ident.UserID, username: ident.Username, resuming: true, clientLast: lastSeq}
	g.sessMu.Lock()
	g.resuming[ident.UserID] = s
	g.sessMu.Unlock()
	defer func() {
		g.sessMu.Lock()
		if g.resuming[ident.UserID] == s {
			delete(g.resuming, ident.UserID)
		}
		g.sessMu.Unlock()
	}()

	if resumeID != "" {
		ok, err := g.takeOver(ctx, s, lastSeq)
		if err != nil {
			return nil, err
		}
		if ok {
			g.metrics.resumed.Inc()
			g.activate(s)
			return s, nil
		}
		g.metrics.resumeFailed.Inc()
	}
	// Fresh session.
	s.mu.Lock()
	s.id = newSessionID()
	s.sinceMs = g.now().UnixMilli()
	s.resumed = false
	s.clientLast = 0
	s.seq = 0
	s.ring = nil
	s.mu.Unlock()
	prev, err := g.claim(ctx, s)
	if err != nil {
		return nil, err
	}
	g.activate(s)
	g.metrics.opened.Inc()
	if prev != nil && prev.SessionId != s.id {
		// Single login: close the session this one replaces, wherever it is.
		kctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := g.nodeRequest(kctx, prev.NodeId, &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_Kick{Kick: &clusterv1.Kick{
			UserId: s.userID, SessionId: prev.SessionId, Reason: realtimev1.CloseReason_CLOSE_REASON_REPLACED,
			Message: "signed in on another device"}}})
		cancel()
		if err != nil && !errors.Is(err, bus.ErrNoResponders) {
			g.log.Warn("kick replaced session", "user", s.userID, "node", prev.NodeId, "err", err)
		}
	}
	return s, nil
}

// activate registers s as the user's session on this node and releases
// the pushes that arrived while it was being established.
func (g *Gateway) activate(s *Session) {
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	if ended { // replaced while being established; attach closes the socket
		return
	}
	g.sessMu.Lock()
	g.sessions[s.id] = s
	g.byUser[s.userID] = s
	g.sessMu.Unlock()
	s.mu.Lock()
	s.resuming = false
	for _, p := range s.pending {
		s.seq++
		p.Seq = s.seq
		s.keep(p, g.cfg)
	}
	s.pending = nil
	s.mu.Unlock()
}

// claim writes s as the user's session record (compare-and-set) and
// returns the record it replaced, if any.
func (g *Gateway) claim(ctx context.Context, s *Session) (*clusterv1.SessionRecord, error) {
	val := s.record(g.cfg.NodeID)
	for attempt := 0; attempt < 10; attempt++ {
		e, err := g.kv.Get(ctx, s.userID)
		var prev *clusterv1.SessionRecord
		var rev uint64
		switch {
		case errors.Is(err, bus.ErrKeyNotFound):
			rev, err = g.kv.Create(ctx, s.userID, val, bucketTTL)
			if errors.Is(err, bus.ErrKeyExists) {
				continue
			}
		case err != nil:
			return nil, fmt.Errorf("gateway: read session record: %w", err)
		default:
			if prev, err = decodeRecord(e.Value); err != nil {
				g.log.Warn("overwriting undecodable session record", "user", s.userID, "err", err)
				prev = nil
			}
			rev, err = g.kv.Update(ctx, s.userID, val, e.Revision, bucketTTL)
			if errors.Is(err, bus.ErrWrongRevision) {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("gateway: write session record: %w", err)
		}
		s.mu.Lock()
		s.kvRev = rev
		s.refreshAt = g.now().Add(g.cfg.SessionTTL / 3).UnixNano()
		s.mu.Unlock()
		return prev, nil
	}
	return nil, errors.New("gateway: write session record: too much contention")
}

// takeOver tries to resume s.id: it claims the session record for this
// node and asks the node that held the session for the missed pushes.
// It returns false (and no error) when the session cannot be resumed; the
// record then still names this node, under s.kvRev, so the caller's claim
// of a fresh session overwrites it.
func (g *Gateway) takeOver(ctx context.Context, s *Session, lastSeq uint64) (bool, error) {
	e, err := g.kv.Get(ctx, s.userID)
	if errors.Is(err, bus.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("gateway: read session record: %w", err)
	}
	rec, err := decodeRecord(e.Value)
	if err != nil || rec.SessionId != s.id {
		return false, nil
	}
	s.sinceMs = rec.SinceMs
	rev, err := g.kv.Update(ctx, s.userID, s.record(g.cfg.NodeID), e.Revision, bucketTTL)
	if errors.Is(err, bus.ErrWrongRevision) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("gateway: claim session record: %w", err)
	}
	s.mu.Lock()
	s.kvRev = rev
	s.refreshAt = g.now().Add(g.cfg.SessionTTL / 3).UnixNano()
	s.mu.Unlock()
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	reply, err := g.nodeRequest(tctx, rec.NodeId, &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_TakeOver{TakeOver: &clusterv1.TakeOver{
		UserId: s.userID, SessionId: s.id, LastSeq: lastSeq, NewNodeId: g.cfg.NodeID}}})
	if err != nil {
		g.log.Info("resume: previous node did not hand over", "user", s.userID, "node", rec.NodeId, "err", err)
		return false, nil
	}
	to := reply.GetTakeOver()
	if !to.GetFound() || !to.GetComplete() {
		return false, nil
	}
	s.mu.Lock()
	s.seq = to.LastSeq
	for _, p := range to.Pushes {
		s.keep(p, g.cfg)
	}
	s.resumed = true
	s.clientLast = lastSeq
	s.mu.Unlock()
	return true, nil
}

// attach binds an open socket to s and sends Welcome and the pushes the
// client has not seen, all before any later push.
func (g *Gateway) attach(s *Session, c *conn, welcome *realtimev1.Welcome, cid uint32) {
	s.mu.Lock()
	if s.ended {
		// A newer login replaced this session before it went live: the
		// Hello still gets its one reply.
		s.mu.Unlock()
		if cid != 0 {
			c.replyError(cid, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE, "a newer login of this account replaced the session"))
		}
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_REPLACED, "signed in on another device", true)
		return
	}
	c.mu.Lock()
	gone := c.state >= stateClosing
	c.mu.Unlock()
	if gone {
		// The socket closed between open and attach: its finish found the
		// session not yet attached, so the session detaches here.
		if s.conn == nil && s.detachedAt == 0 {
			s.detachedAt = g.now().UnixNano()
		}
		s.mu.Unlock()
		return
	}
	old := s.conn
	s.conn = c
	s.detachedAt = 0
	replay, _ := s.after(s.clientLast)
	welcome.Replayed = uint32(len(replay))
	frame, err := c.encode(&realtimev1.ServerFrame{Cid: cid, Body: &realtimev1.ServerFrame_Welcome{Welcome: welcome}})
	if err == nil {
		c.enqueue(frame, false)
	}
	for _, p := range replay {
		if frame, err := c.encode(&realtimev1.ServerFrame{Body: &realtimev1.ServerFrame_Push{Push: p}}); err == nil {
			c.enqueue(frame, false)
		}
	}
	s.mu.Unlock()
	if old != nil && old != c {
		old.mu.Lock()
		old.closeLabel = labelMoved
		old.mu.Unlock()
		old.closeWith(realtimev1.CloseReason_CLOSE_REASON_REPLACED, "", false)
	}
}

// detach marks s as without socket (resumable for the grace period) if c
// is still its socket; c == nil detaches unconditionally.
func (g *Gateway) detach(s *Session, c *conn) {
	s.mu.Lock()
	if c != nil && s.conn != c {
		s.mu.Unlock()
		return
	}
	s.conn = nil
	if !s.ended {
		s.detachedAt = g.now().UnixNano()
	}
	s.mu.Unlock()
}

// forget ends s on this node and returns the socket it had, if any.
func (g *Gateway) forget(s *Session) *conn {
	s.mu.Lock()
	s.ended = true
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	g.sessMu.Lock()
	if g.sessions[s.id] == s {
		delete(g.sessions, s.id)
	}
	if g.byUser[s.userID] == s {
		delete(g.byUser, s.userID)
	}
	g.sessMu.Unlock()
	return c
}

// endSession ends s for good; with deleteRecord its session record is
// removed too (when still ours), so the user reads as offline at once.
func (g *Gateway) endSession(ctx context.Context, s *Session, deleteRecord bool) {
	g.forget(s)
	if !deleteRecord {
		return
	}
	s.mu.Lock()
	rev := s.kvRev
	s.mu.Unlock()
	if err := g.kv.Delete(ctx, s.userID, rev); err != nil && !errors.Is(err, bus.ErrWrongRevision) {
		g.log.Warn("delete session record", "user", s.userID, "err", err)
	}
}

// refresh rewrites s's session record so its TTL does not run out. A
// record that now names another session or node means s was replaced or
// resumed elsewhere while this node missed the message: s ends.
func (g *Gateway) refresh(ctx context.Context, s *Session) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	rev, val := s.kvRev, s.record(g.cfg.NodeID)
	s.mu.Unlock()
	newRev, err := g.kv.Update(ctx, s.userID, val, rev, bucketTTL)
	if errors.Is(err, bus.ErrWrongRevision) || errors.Is(err, bus.ErrKeyNotFound) {
		e, gerr := g.kv.Get(ctx, s.userID)
		switch {
		case errors.Is(gerr, bus.ErrKeyNotFound):
			newRev, err = g.kv.Create(ctx, s.userID, val, bucketTTL)
		case gerr != nil:
			err = gerr
		default:
			rec, derr := decodeRecord(e.Value)
			if derr == nil && rec.SessionId == s.id && rec.NodeId == g.cfg.NodeID {
				newRev, err = g.kv.Update(ctx, s.userID, val, e.Revision, bucketTTL)
			} else {
				g.lost(s, derr == nil && rec.SessionId == s.id)
				return
			}
		}
	}
	if err != nil {
		g.metrics.refreshFails.Inc()
		g.log.Warn("refresh session record", "user", s.userID, "err", err)
		s.mu.Lock()
		s.refreshAt = g.now().Add(g.cfg.SweepInterval).UnixNano()
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	s.kvRev = newRev
	s.mu.Unlock()
}

// lost ends a session whose record now belongs elsewhere: moved (resumed
// on another node) or replaced by a newer login.
func (g *Gateway) lost(s *Session, moved bool) {
	c := g.forget(s)
	if c == nil {
		return
	}
	if moved {
		c.mu.Lock()
		c.closeLabel = labelMoved
		c.mu.Unlock()
		c.closeWith(realtimev1.CloseReason_CLOSE_REASON_REPLACED, "", false)
		return
	}
	c.closeWith(realtimev1.CloseReason_CLOSE_REASON_REPLACED, "signed in on another device", true)
}

// bucketTTL writes session records with the sessions bucket's own TTL
// (Config.SessionTTL): no per-key TTL header, so each stored record is
// smaller and the server keeps no per-key timer.
const bucketTTL = 0

// keep adds p to the resume ring; s.mu is held.
func (s *Session) keep(p *realtimev1.Push, cfg Config) {
	if s.ring == nil {
		s.ring = &pushRing{}
	}
	s.ring.add(p, cfg.ResumeBufferPushes, cfg.ResumeBufferBytes)
}

// after returns the kept pushes after last and whether they are all
// there; s.mu is held.
func (s *Session) after(last uint64) ([]*realtimev1.Push, bool) {
	if s.ring == nil {
		return (&pushRing{}).after(last, s.seq)
	}
	return s.ring.after(last, s.seq)
}
