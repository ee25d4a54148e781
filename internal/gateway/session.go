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
	"github.com/taisen-dev/taisen/internal/bus"
)

// sessState is where a session is in its life.
type sessState uint8

const (
	// sessEstablishing: registered in the table and claiming (or resuming)
	// its record; not attached to a socket yet. Pushes wait in pending.
	sessEstablishing sessState = iota
	// sessLive: the user's session, attached to a socket or detached within
	// the resume grace.
	sessLive
	// sessEnded: over (logout, replaced, kicked, grace expired, moved to
	// another node). It is no longer in the table.
	sessEnded
)

// Session is a user's logical session. It outlives its socket for the
// resume grace period, keeps its push sequence and recent pushes, and may
// move to another socket or node on resume. A user has at most one live
// Session in the whole cluster: the one named by its record in the
// sessions KV.
//
// Every session of a node is in one table keyed by session id, from the
// moment it starts claiming its record until it ends, so a kick or a push
// addressed to it by id always finds it, whatever state it is in.
type Session struct {
	id       string
	userID   string
	username string
	sinceMs  int64

	// kvMu serialises this session's record writes (refresh, delete) with
	// its end, so a logout's delete cannot be undone by a refresh in
	// flight. Held across bus calls; never while holding mu.
	kvMu sync.Mutex

	mu    sync.Mutex
	state sessState // guarded by mu
	// resumed and clientLast describe how the session was established:
	// attach sends the pushes after clientLast. Guarded by mu.
	resumed bool
	// conn is the attached socket; nil while detached. Guarded by mu.
	conn *conn
	// seq is the last push sequence number assigned. Guarded by mu.
	seq uint64
	// ring holds recent pushes for resume; nil until the first push.
	// Guarded by mu.
	ring *pushRing
	// pending holds pushes that arrived while establishing; they get
	// their seq (and their senders the reply) once the session is live.
	// Guarded by mu.
	pending    []pendingPush
	clientLast uint64 // see resumed
	// detachedAt is when the socket went away (clock.Mono nanos); 0 while
	// attached. Guarded by mu.
	detachedAt int64
	// kvRev is the revision of the session record last written by this
	// node; refreshAt (clock.Mono nanos) is when to refresh it. Guarded by
	// mu.
	kvRev     uint64
	refreshAt int64
	// status is the presence status the client set; nil until it sets
	// one. Guarded by mu.
	status *sessStatus
}

// sessStatus is a session's presence status, written into its record.
type sessStatus struct {
	playing  bool
	activity string
	sinceMs  int64
}

// pendingPush is a push that reached a session still being established;
// done reports its fate to the sender.
type pendingPush struct {
	p    *realtimev1.Push
	done func(seq uint64, ok bool)
}

// newSessionID returns a random, URL-safe session id.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// record encodes the session's record; s.mu is held (or s not shared).
func (s *Session) record(nodeID string) []byte {
	rec := &clusterv1.SessionRecord{SessionId: s.id, NodeId: nodeID, SinceMs: s.sinceMs}
	if st := s.status; st != nil {
		rec.Playing, rec.Activity, rec.StatusSinceMs = st.playing, st.activity, st.sinceMs
	}
	b, _ := proto.Marshal(rec)
	return b
}

// ErrNoSession means the session is not live on this node.
var ErrNoSession = errors.New("gateway: no such live session on this node")

// SetStatus sets the presence status of a session of this node and
// writes it into the session's record at once, so every node reads it.
// It returns the record as written.
func (g *Gateway) SetStatus(ctx context.Context, sessionID string, playing bool, activity string) (*clusterv1.SessionRecord, error) {
	s := g.session(sessionID)
	if s == nil {
		return nil, ErrNoSession
	}
	s.mu.Lock()
	if s.state != sessLive {
		s.mu.Unlock()
		return nil, ErrNoSession
	}
	if st := s.status; st == nil || st.playing != playing || st.activity != activity {
		s.status = &sessStatus{playing: playing, activity: activity, sinceMs: g.clock.Now().UnixMilli()}
	}
	s.mu.Unlock()
	if err := g.refresh(ctx, s); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return decodeRecord(s.record(g.cfg.NodeID))
}

func decodeRecord(b []byte) (*clusterv1.SessionRecord, error) {
	rec := &clusterv1.SessionRecord{}
	if err := proto.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("gateway: decode session record: %w", err)
	}
	return rec, nil
}

// errReplaced means a newer login took the user's record while this
// session was being established.
var errReplaced = errors.New("gateway: replaced by a newer login while being established")

// EndCause says why a session ended.
type EndCause uint8

// The causes of a session's end.
const (
	EndReplaced EndCause = iota // a newer login of the user took over
	EndKicked                   // an operator or the server closed it
	EndMoved                    // resumed on another node: the user is still online
	EndLogout                   // the client logged out
	EndExpired                  // the socket was gone longer than the resume grace
	EndFailed                   // it could not be established
)

var endCauseNames = [...]string{"replaced", "kicked", "moved", "logout", "expired", "failed"}

func (c EndCause) String() string {
	if int(c) < len(endCauseNames) {
		return endCauseNames[c]
	}
	return fmt.Sprintf("EndCause(%d)", c)
}

// register adds s to the session table.
func (g *Gateway) register(s *Session) {
	g.sessMu.Lock()
	g.sessions[s.id] = s
	g.sessMu.Unlock()
}

// unregister removes s from the session table (if it is still there
// under its id).
func (g *Gateway) unregister(s *Session) {
	g.sessMu.Lock()
	g.unregisterLocked(s)
	g.sessMu.Unlock()
}

func (g *Gateway) unregisterLocked(s *Session) {
	if g.sessions[s.id] == s {
		delete(g.sessions, s.id)
	}
}

// session returns the session with that id on this node.
func (g *Gateway) session(id string) *Session {
	g.sessMu.Lock()
	s := g.sessions[id]
	g.sessMu.Unlock()
	return s
}

// end is the one way a session ends on this node: it leaves the table,
// pushes still waiting for it are refused (their senders retry), and the
// socket it had, if any, is returned for the caller to close with the
// reason that fits. It reports false when s had already ended.
func (g *Gateway) end(s *Session, cause EndCause) (*conn, bool) {
	s.mu.Lock()
	return g.endLocked(s, cause)
}

// endLocked is end for a caller that holds s.mu (and has looked at the
// session in the same critical section); it releases s.mu.
func (g *Gateway) endLocked(s *Session, cause EndCause) (*conn, bool) {
	if s.state == sessEnded {
		s.mu.Unlock()
		return nil, false
	}
	wasLive := s.state == sessLive
	s.state = sessEnded
	c := s.conn
	s.conn = nil
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	g.unregister(s)
	for _, pp := range pending {
		pp.done(0, false)
	}
	if cause == EndExpired {
		g.metrics.expired.Inc()
	}
	if wasLive {
		g.emit(SessionEvent{Kind: SessionEnded, UserID: s.userID, SessionID: s.id, Cause: cause})
	}
	g.changed()
	return c, true
}

// establish creates the session of a newly authenticated socket: it
// resumes resumeID when that is still possible, else starts a fresh one.
// The session returned is live and the user's; a newer login may still
// replace it before attach.
func (g *Gateway) establish(ctx context.Context, ident Identity, resumeID string, lastSeq uint64) (*Session, error) {
	if resumeID != "" {
		if local := g.session(resumeID); local != nil && local.userID == ident.UserID {
			if s, ok := g.resumeLocal(ctx, local, lastSeq); ok {
				g.metrics.resumed.Inc()
				return s, nil
			}
			g.metrics.resumeFailed.Inc()
		} else if local == nil {
			s := &Session{id: resumeID, userID: ident.UserID, username: ident.Username}
			ok, err := g.resumeRemote(ctx, s, lastSeq)
			if err != nil {
				return nil, err
			}
			if ok {
				if err := g.activate(s); err != nil {
					return nil, err
				}
				s.mu.Lock()
				moved := s.status != nil
				s.mu.Unlock()
				if moved {
					// The claim wrote the record before the old node handed
					// the presence status over: write it now, not at the
					// next refresh. A failure leaves it to that refresh.
					_ = g.refresh(ctx, s)
				}
				g.metrics.resumed.Inc()
				return s, nil
			}
			g.metrics.resumeFailed.Inc()
			// Start fresh, keeping the pushes that reached s meanwhile.
			g.sessMu.Lock()
			g.unregisterLocked(s)
			s.mu.Lock()
			s.id = newSessionID()
			s.sinceMs = g.clock.Now().UnixMilli()
			s.seq, s.ring, s.resumed, s.clientLast = 0, nil, false, 0
			s.mu.Unlock()
			g.sessions[s.id] = s
			g.sessMu.Unlock()
			return g.fresh(ctx, s)
		} else {
			g.metrics.resumeFailed.Inc()
		}
	}
	s := &Session{id: newSessionID(), userID: ident.UserID, username: ident.Username, sinceMs: g.clock.Now().UnixMilli()}
	g.register(s)
	return g.fresh(ctx, s)
}

// fresh claims the user's record for s (registered, establishing),
// replaces whatever session the record named, and makes s live.
func (g *Gateway) fresh(ctx context.Context, s *Session) (*Session, error) {
	prev, err := g.claim(ctx, s)
	if err != nil {
		g.end(s, EndFailed)
		return nil, err
	}
	if prev != nil && prev.SessionId != s.id {
		// Single login: close the session this one replaces, wherever it
		// is. It is in its node's table from before it claimed the record,
		// so the kick finds it even if it is still being established.
		g.kickSession(ctx, s.userID, prev, realtimev1.CloseReason_CLOSE_REASON_REPLACED, "signed in on another device")
	}
	if err := g.activate(s); err != nil {
		return nil, err
	}
	g.metrics.opened.Inc()
	return s, nil
}

// kickSession asks the node named in rec to end that session.
func (g *Gateway) kickSession(ctx context.Context, userID string, rec *clusterv1.SessionRecord, reason realtimev1.CloseReason, msg string) {
	kctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := g.nodeRequest(kctx, rec.NodeId, &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_Kick{Kick: &clusterv1.Kick{
		UserId: userID, SessionId: rec.SessionId, Reason: reason, Message: msg}}})
	if err != nil && !errors.Is(err, bus.ErrNoResponders) {
		// The replaced node will see that the record names another
		// session at its next refresh and end its copy then.
		g.log.Warn("kick replaced session", "user", userID, "node", rec.NodeId, "err", err)
	}
}

// activate makes an establishing session live and releases the pushes
// that arrived meanwhile, in order. It fails when a newer login replaced
// the session first.
func (g *Gateway) activate(s *Session) error {
	s.mu.Lock()
	if s.state != sessEstablishing {
		s.mu.Unlock()
		return errReplaced
	}
	s.state = sessLive
	pending := s.pending
	s.pending = nil
	seqs := make([]uint64, len(pending))
	for i, pp := range pending {
		s.seq++
		pp.p.Seq = s.seq
		s.keep(pp.p, g.cfg)
		seqs[i] = s.seq
	}
	s.mu.Unlock()
	for i, pp := range pending {
		g.metrics.pushes.Inc()
		pp.done(seqs[i], true)
	}
	return nil
}

// claim writes s as the user's session record (compare-and-set) and
// returns the record it replaced, if any.
func (g *Gateway) claim(ctx context.Context, s *Session) (*clusterv1.SessionRecord, error) {
	val := s.record(g.cfg.NodeID)
	for attempt := 0; attempt < 10; attempt++ {
		var e bus.Entry
		var err error
		if attempt == 0 {
			// Most logins find no record: try to create it first, which
			// saves a round trip; a record that exists sends the loop to
			// read and replace it.
			err = bus.ErrKeyNotFound
		} else {
			e, err = g.kv.Get(ctx, s.userID)
		}
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
		s.refreshAt = g.mono.Now() + int64(g.cfg.SessionTTL/3)
		s.mu.Unlock()
		return prev, nil
	}
	return nil, errors.New("gateway: write session record: too much contention")
}

// resumeLocal resumes a session this node holds on a new socket. It works
// while the session is live, within its grace, still named by the record
// and its ring covers the client's gap; otherwise the session ends (the
// client starts fresh).
func (g *Gateway) resumeLocal(ctx context.Context, s *Session, lastSeq uint64) (*Session, bool) {
	s.mu.Lock()
	ok := s.state == sessLive && !(s.conn == nil && s.detachedAt != 0 && g.mono.Now()-s.detachedAt > int64(g.cfg.ResumeGrace))
	if ok {
		_, ok = s.after(lastSeq)
	}
	s.mu.Unlock()
	if ok {
		// The record must still name s: a newer login elsewhere whose kick
		// was lost would otherwise be shadowed.
		ok = g.refresh(ctx, s) == nil
	}
	s.mu.Lock()
	ok = ok && s.state == sessLive
	if ok {
		s.resumed = true
		s.clientLast = lastSeq
	}
	s.mu.Unlock()
	if !ok {
		if c, ended := g.end(s, EndMoved); ended && c != nil {
			c.closeMoved()
		}
		return nil, false
	}
	return s, true
}

// resumeRemote tries to resume s.id from another node. s is registered
// first, so pushes and kicks addressed to it by id find it while the
// takeover runs. It claims the record for this node, then asks the node
// that held the session for the missed pushes. It returns false (and no
// error) when the session cannot be resumed: the record then names this
// node under s.kvRev, so the caller's fresh claim overwrites it, and the
// previous node was told to end its copy.
func (g *Gateway) resumeRemote(ctx context.Context, s *Session, lastSeq uint64) (bool, error) {
	e, err := g.kv.Get(ctx, s.userID)
	if errors.Is(err, bus.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("gateway: read session record: %w", err)
	}
	rec, err := decodeRecord(e.Value)
	if err != nil || rec.SessionId != s.id || rec.NodeId == g.cfg.NodeID {
		// Not resumable: another session now, or it was ours and ended.
		return false, nil
	}
	s.sinceMs = rec.SinceMs
	g.register(s)
	rev, err := g.kv.Update(ctx, s.userID, s.record(g.cfg.NodeID), e.Revision, bucketTTL)
	if errors.Is(err, bus.ErrWrongRevision) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("gateway: claim session record: %w", err)
	}
	s.mu.Lock()
	s.kvRev = rev
	s.refreshAt = g.mono.Now() + int64(g.cfg.SessionTTL/3)
	s.mu.Unlock()
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	reply, err := g.nodeRequest(tctx, rec.NodeId, &clusterv1.NodeRequest{Body: &clusterv1.NodeRequest_TakeOver{TakeOver: &clusterv1.TakeOver{
		UserId: s.userID, SessionId: s.id, LastSeq: lastSeq, NewNodeId: g.cfg.NodeID}}})
	if err != nil {
		g.log.Info("resume: previous node did not hand over", "user", s.userID, "node", rec.NodeId, "err", err)
		if !errors.Is(err, bus.ErrNoResponders) {
			// It may be alive but slow: make sure its copy ends rather
			// than live on beside the fresh session.
			g.kickSession(ctx, s.userID, rec, realtimev1.CloseReason_CLOSE_REASON_REPLACED, "signed in on another device")
		}
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
	if to.StatusSinceMs != 0 {
		// The status moves with the session; the next refresh writes it.
		s.status = &sessStatus{playing: to.Playing, activity: to.Activity, sinceMs: to.StatusSinceMs}
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
	if s.state != sessLive {
		// A newer login replaced this session before it went live: the
		// Hello still gets its one reply.
		s.mu.Unlock()
		c.replyReplaced(cid)
		return
	}
	c.mu.Lock()
	gone := c.state >= stateClosing
	c.mu.Unlock()
	if gone {
		// The socket closed between open and attach: its finish found the
		// session not yet attached, so the session detaches here.
		if s.conn == nil && s.detachedAt == 0 {
			s.detachedAt = g.mono.Now()
		}
		s.mu.Unlock()
		return
	}
	old := s.conn
	s.conn = c
	s.detachedAt = 0
	replay, _ := s.after(s.clientLast)
	welcome.Replayed = uint32(len(replay))
	frames := make([][]byte, 0, 1+len(replay))
	if frame, err := c.encode(&realtimev1.ServerFrame{Cid: cid, Body: &realtimev1.ServerFrame_Welcome{Welcome: welcome}}); err == nil {
		frames = append(frames, frame)
	}
	for _, p := range replay {
		if frame, err := c.encodePush(p); err == nil {
			frames = append(frames, frame)
		}
	}
	start := c.queue(frames...)
	kind := SessionAttached
	if s.resumed {
		kind = SessionResumed
	}
	s.mu.Unlock()
	c.flushIfStarted(start)
	if old != nil && old != c {
		old.closeMoved()
	}
	g.emit(SessionEvent{Kind: kind, UserID: s.userID, SessionID: s.id})
}

// detach marks s as without socket (resumable for the grace period) if c
// is still its socket.
func (g *Gateway) detach(s *Session, c *conn) {
	s.mu.Lock()
	if s.conn != c {
		s.mu.Unlock()
		return
	}
	s.conn = nil
	live := s.state == sessLive
	if live {
		s.detachedAt = g.mono.Now()
	}
	s.mu.Unlock()
	if live {
		g.emit(SessionEvent{Kind: SessionDetached, UserID: s.userID, SessionID: s.id})
	}
	g.changed()
}

// logout ends s for good and removes its record (when still ours), so the
// user reads as offline at once.
func (g *Gateway) logout(ctx context.Context, s *Session) {
	s.kvMu.Lock()
	defer s.kvMu.Unlock()
	g.end(s, EndLogout)
	s.mu.Lock()
	rev := s.kvRev
	s.mu.Unlock()
	if err := g.kv.Delete(ctx, s.userID, rev); err != nil && !errors.Is(err, bus.ErrWrongRevision) {
		g.log.Warn("delete session record", "user", s.userID, "err", err)
	}
}

// errLost means the record names another session or node.
var errLost = errors.New("gateway: session record names another session")

// refresh rewrites s's session record so its TTL does not run out. A
// record that now names another session or node means s was replaced or
// resumed elsewhere while this node missed the message: s ends (errLost).
func (g *Gateway) refresh(ctx context.Context, s *Session) error {
	s.kvMu.Lock()
	defer s.kvMu.Unlock()
	s.mu.Lock()
	if s.state != sessLive {
		s.mu.Unlock()
		return errLost
	}
	rev, val := s.kvRev, s.record(g.cfg.NodeID)
	s.mu.Unlock()
	newRev, err := g.kv.Update(ctx, s.userID, val, rev, bucketTTL)
	if errors.Is(err, bus.ErrWrongRevision) || errors.Is(err, bus.ErrKeyNotFound) {
		e, gerr := g.kv.Get(ctx, s.userID)
		switch {
		case errors.Is(gerr, bus.ErrKeyNotFound):
			// Expired (the bus was unreachable longer than the TTL): the
			// session is still live, so its record comes back.
			newRev, err = g.kv.Create(ctx, s.userID, val, bucketTTL)
		case gerr != nil:
			err = gerr
		default:
			rec, derr := decodeRecord(e.Value)
			if derr == nil && rec.SessionId == s.id && rec.NodeId == g.cfg.NodeID {
				newRev, err = g.kv.Update(ctx, s.userID, val, e.Revision, bucketTTL)
			} else {
				g.lost(s, derr == nil && rec.SessionId == s.id)
				return errLost
			}
		}
	}
	if err != nil {
		g.metrics.refreshFails.Inc()
		g.log.Warn("refresh session record", "user", s.userID, "err", err)
		s.mu.Lock()
		s.refreshAt = g.mono.Now() + int64(g.cfg.SweepInterval)
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	s.kvRev = newRev
	s.refreshAt = g.mono.Now() + int64(g.cfg.SessionTTL/3)
	s.mu.Unlock()
	return nil
}

// lost ends a session whose record now belongs elsewhere: moved (resumed
// on another node) or replaced by a newer login.
func (g *Gateway) lost(s *Session, moved bool) {
	cause := EndReplaced
	if moved {
		cause = EndMoved
	}
	c, _ := g.end(s, cause)
	if c == nil {
		return
	}
	if moved {
		c.closeMoved()
		return
	}
	c.closeWith(realtimev1.CloseReason_CLOSE_REASON_REPLACED, "signed in on another device", withNotice)
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
