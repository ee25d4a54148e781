package room

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taisen-dev/taisen/game"
	"github.com/taisen-dev/taisen/internal/clock"
)

type msgKind uint8

const (
	msgInput msgKind = iota + 1
	msgJoin
	msgLeave
	msgDisconnect
	msgInspect
	msgEnd
	msgRejoin // a join without a ticket: not a first join
	msgReturn // the user's session is back: only a disconnected seat changes
)

type msg struct {
	kind    msgKind
	user    string
	seat    game.Seat
	typ     string
	payload []byte
	reason  string
	reply   chan reply
}

type reply struct {
	err     error
	join    JoinInfo
	inspect Inspection
}

type seatRec struct {
	user  string
	state SeatState
	grace time.Duration // room clock at which a disconnected seat is gone
}

type room struct {
	m        *Manager
	id       string
	game     game.Game
	settings game.Settings
	players  []game.Player        // immutable
	seatOf   map[string]game.Seat // immutable
	labels   map[string]string    // immutable
	created  time.Time
	mailbox  chan msg
	done     chan struct{}

	// Owned by the room's goroutine.
	inst         game.Instance
	epoch        time.Time // room clock 0 (moves forward when the clock skips)
	seq          uint64
	lastAt       time.Duration
	instantAt    time.Duration
	instantN     int
	seats        []seatRec
	spectators   map[string]struct{} // also read by Manager.remove after done
	joinDeadline time.Duration
	waiting      int           // seats not joined yet
	pending      msg           // an input stamped before due timers or ticks; kind 0 when none
	pendingAt    time.Duration // the pending input's stamp
	ended        bool
	wake         chan struct{}
	signalFn     func() // r.signal, allocated once
	timer        clock.Timer
	timerAt      time.Duration
	users        []string // scratch for audiences
}

func newRoom(m *Manager, id string, g game.Game, inst game.Instance, players []game.Player, labels map[string]string) *room {
	now := m.clock.Now()
	r := &room{
		m: m, id: id, game: g, settings: g.Settings(), players: players, labels: labels, created: now,
		seatOf: make(map[string]game.Seat, len(players)), mailbox: make(chan msg, m.cfg.Mailbox), done: make(chan struct{}),
		inst: inst, epoch: now, seats: make([]seatRec, len(players)), spectators: map[string]struct{}{},
		joinDeadline: m.cfg.JoinTimeout, waiting: len(players), wake: make(chan struct{}, 1),
	}
	r.signalFn = r.signal
	for _, p := range players {
		r.seatOf[p.UserID] = p.Seat
		r.seats[p.Seat] = seatRec{user: p.UserID, state: SeatWaiting}
	}
	return r
}

// call sends a control message and waits for the room's reply.
func (r *room) call(ctx context.Context, mm msg) (reply, error) {
	mm.reply = make(chan reply, 1)
	select {
	case r.mailbox <- mm:
	case <-r.done:
		return reply{}, ErrNoRoom
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
	select {
	case rep := <-mm.reply:
		return rep, rep.err
	case <-r.done:
		// The room ended while the message waited: it was answered or
		// dropped; prefer the answer.
		select {
		case rep := <-mm.reply:
			return rep, rep.err
		default:
			return reply{}, ErrNoRoom
		}
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

func (r *room) now() time.Duration {
	d := r.m.clock.Now().Sub(r.epoch)
	if d < r.lastAt {
		return r.lastAt
	}
	return d
}

func (r *room) run() {
	defer r.m.wg.Done()
	var res Result
	for !r.ended {
		res = r.step()
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	r.m.remove(r)
	close(r.done)
	// Answer control messages left in the mailbox.
	for {
		select {
		case mm := <-r.mailbox:
			if mm.reply != nil {
				mm.reply <- reply{err: ErrNoRoom}
			}
			continue
		default:
		}
		break
	}
	r.m.metrics.active.Dec()
	r.m.metrics.ended.WithLabelValues(string(res.Status)).Inc()
	if r.m.ended != nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.m.cfg.EndTimeout)
		if err := r.m.ended.RoomEnded(ctx, res); err != nil {
			r.m.log.Error("room: storing the result failed", "room", r.id, "err", err)
		}
		cancel()
	}
}

// step runs one turn of the room's loop; it returns the room's result
// once it has ended.
func (r *room) step() Result {
	now := r.now()
	if res, done := r.runDue(now); done {
		return res
	}
	if r.ended {
		return Result{}
	}
	if r.pending.kind != 0 {
		if at, _, ok := r.inst.Next(); ok && at <= r.pendingAt {
			return r.yield() // still catching up to the input's stamp
		}
		mm := r.pending
		r.pending = msg{}
		return r.handle(mm, r.pendingAt)
	}
	if at, _, ok := r.inst.Next(); ok && at <= now {
		return r.yield() // burst spent; more is due
	}
	r.arm(now)
	select {
	case mm := <-r.mailbox:
		at := r.now()
		if next, _, ok := r.inst.Next(); ok && next <= at {
			r.pending, r.pendingAt = mm, at
			return Result{}
		}
		return r.handle(mm, at)
	case <-r.wake:
		// The timer is spent (or this is a stale wake of an earlier one):
		// the next turn arms it again from the room clock, which may have
		// moved (a clock skip moves the room's epoch).
		if r.timer != nil {
			r.timer.Stop()
			r.timer = nil
		}
		return Result{}
	case <-r.m.stop:
		return r.finish(StatusAborted, nil, "the server is shutting down")
	}
}

func (r *room) yield() Result {
	select {
	case <-r.m.stop:
		return r.finish(StatusAborted, nil, "the server is shutting down")
	default:
		return Result{}
	}
}

// arm makes the wake channel fire at the room's next deadline.
func (r *room) arm(now time.Duration) {
	next, ok := time.Duration(0), false
	if at, _, has := r.inst.Next(); has {
		next, ok = at, true
	}
	consider := func(at time.Duration) {
		if !ok || at < next {
			next, ok = at, true
		}
	}
	if r.waiting > 0 {
		consider(r.joinDeadline)
	}
	for _, s := range r.seats {
		if s.state == SeatDisconnected {
			consider(s.grace)
		}
	}
	if r.timer != nil && (!ok || r.timerAt != next) {
		r.timer.Stop()
		r.timer = nil
	}
	if !ok || r.timer != nil {
		return
	}
	for {
		if next <= now {
			r.signal()
			return
		}
		t := r.m.clock.AfterFunc(next-now, r.signalFn)
		// Registering the timer takes a moment: if the clock moved
		// meanwhile (a fake clock advanced by a test), measure again.
		if again := r.now(); again-now < armSlack {
			r.timer, r.timerAt = t, next
			return
		} else {
			t.Stop()
			now = again
		}
	}
}

// armSlack is how far the clock may move while arming a timer before the
// timer is armed again.
const armSlack = 50 * time.Microsecond

func (r *room) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// runDue applies what is due at now: up to a burst of timers and ticks in
// order, then the join deadline and expired graces.
func (r *room) runDue(now time.Duration) (Result, bool) {
	s := r.settings
	var skipped time.Duration
	if s.TickRate > 0 {
		if at, _, ok := r.inst.Next(); ok {
			maxLag := time.Duration(r.m.cfg.MaxCatchUp) * s.TickInterval()
			if lag := now - at; lag > maxLag {
				skip := lag - maxLag
				r.epoch = r.epoch.Add(skip)
				now -= skip
				if r.pending.kind != 0 {
					r.pendingAt = max(r.pendingAt-skip, r.lastAt)
				}
				skipped = skip
				r.m.metrics.skipped.Add(skip.Seconds())
				r.m.log.Warn("room: clock skipped ticks", "room", r.id, "skipped", skip)
			}
		}
	}
	limit := now
	if r.pending.kind != 0 {
		limit = r.pendingAt
	}
	burst := r.m.cfg.MaxCatchUp + 1
	for n := 0; n < burst || s.TickRate == 0; n++ {
		at, in, ok := r.inst.Next()
		if !ok || at > limit {
			break
		}
		if in.Kind == game.InputTick {
			r.m.metrics.tickLate.Observe((now + skipped - at).Seconds())
		}
		if res, done := r.apply(at, in, ""); done {
			return res, true
		}
	}
	if r.pending.kind != 0 {
		return Result{}, false
	}
	if at, _, ok := r.inst.Next(); ok && at <= now {
		return Result{}, false // the rest of the burst comes first
	}
	if r.waiting > 0 && now >= r.joinDeadline {
		return r.finish(StatusAbandoned, nil, fmt.Sprintf("not every player joined within %v", r.m.cfg.JoinTimeout)), true
	}
	for seat := range r.seats {
		sr := &r.seats[seat]
		if sr.state == SeatDisconnected && now >= sr.grace {
			sr.state = SeatGone
			if res, done := r.apply(now, game.Left(game.Seat(seat), game.LeaveGraceExpired), ""); done {
				return res, true
			}
		}
	}
	return Result{}, false
}

// apply applies one entry at room clock at. It returns the result when the
// room ended. user is the player to tell about a rejection.
func (r *room) apply(at time.Duration, in game.Input, user string) (res Result, done bool) {
	at = max(at, r.lastAt)
	if at == r.instantAt && r.seq > 0 {
		r.instantN++
	} else {
		r.instantAt, r.instantN = at, 1
	}
	if r.instantN > r.m.cfg.MaxInputsPerInstant {
		return r.finish(StatusError, nil, fmt.Sprintf("game error: more than %d inputs at clock %v (a timer that reschedules itself with no delay?)",
			r.m.cfg.MaxInputsPerInstant, at)), true
	}
	r.seq++
	r.lastAt = at
	fx, err := r.inst.Apply(game.Entry{Seq: r.seq, At: at, Input: in})
	if err != nil {
		if reason, ok := game.IsRejection(err); ok {
			r.m.metrics.rejected.Inc()
			if user != "" {
				r.m.deliver.Deliver([]string{user}, Message{Kind: KindRejected, Room: r.id, Type: in.Type, Reason: reason})
			}
			return Result{}, false
		}
		var pe *game.PanicError
		if errors.As(err, &pe) {
			r.m.log.Error("room: game panicked", "room", r.id, "game", r.game.Name(), "input", in.String(), "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
		} else {
			r.m.log.Error("room: game failed", "room", r.id, "game", r.game.Name(), "input", in.String(), "err", err)
		}
		return r.finish(StatusError, nil, fmt.Sprintf("the game failed: %v", err)), true
	}
	r.m.metrics.applied.Inc()
	if in.Kind == game.InputLeft && in.Reason.Gone() && r.allGone() {
		defer func() {
			if !r.ended {
				res, done = r.finish(StatusAbandoned, nil, "every player left"), true
			}
		}()
	}
	for _, f := range fx {
		switch f.Kind {
		case game.EffectSend:
			users := r.audience(f.To, f.Delivery == game.Ephemeral)
			if len(users) > 0 {
				r.m.deliver.Deliver(users, Message{Kind: KindGame, Room: r.id, Type: f.Type, Payload: f.Payload, Ephemeral: f.Delivery == game.Ephemeral})
			}
		case game.EffectEnd:
			return r.finish(StatusFinished, f.Payload, ""), true
		}
	}
	return Result{}, false
}

func (r *room) allGone() bool {
	for _, s := range r.seats {
		if s.state != SeatGone {
			return false
		}
	}
	return true
}

// audience resolves an effect's audience to user ids: seats that joined
// and did not leave for good (for an ephemeral message, only connected
// ones), and the spectators.
func (r *room) audience(a game.Audience, ephemeral bool) []string {
	us := r.users[:0]
	add := func(seat game.Seat) {
		if seat < 0 || int(seat) >= len(r.seats) {
			return
		}
		s := r.seats[seat]
		if s.state == SeatConnected || s.state == SeatDisconnected && !ephemeral {
			us = append(us, s.user)
		}
	}
	if a.Players {
		for seat := range r.seats {
			add(game.Seat(seat))
		}
	} else {
		for _, seat := range a.Seats {
			add(seat)
		}
	}
	if a.Spectators {
		for u := range r.spectators {
			us = append(us, u)
		}
	}
	r.users = us
	return us
}

func (r *room) handle(mm msg, at time.Duration) Result {
	var rep reply
	var res Result
	var done bool
	switch mm.kind {
	case msgInput:
		sr := r.seats[mm.seat]
		if sr.state != SeatConnected {
			r.m.metrics.rejected.Inc()
			r.m.deliver.Deliver([]string{mm.user}, Message{Kind: KindRejected, Room: r.id, Type: mm.typ, Reason: "join the room before sending input"})
			break
		}
		res, done = r.apply(at, game.Action(mm.seat, mm.typ, mm.payload), mm.user)
	case msgJoin:
		rep.join, res, done, rep.err = r.join(mm, at)
	case msgRejoin:
		if r.seats[mm.seat].state == SeatWaiting {
			rep.err = fmt.Errorf("%w: join with your ticket first", ErrBadTicket)
			break
		}
		rep.join, res, done, rep.err = r.join(mm, at)
	case msgReturn:
		if r.seats[mm.seat].state == SeatDisconnected {
			rep.join, res, done, rep.err = r.join(mm, at)
		}
	case msgLeave:
		if _, ok := r.spectators[mm.user]; ok {
			delete(r.spectators, mm.user)
			r.m.unindex(mm.user, r)
			break
		}
		seat, ok := r.seatOf[mm.user]
		if !ok {
			rep.err = ErrNotPlayer
			break
		}
		sr := &r.seats[seat]
		if sr.state == SeatGone {
			break
		}
		if sr.state == SeatWaiting {
			r.waiting--
		}
		sr.state = SeatGone
		res, done = r.apply(at, game.Left(seat, game.LeaveQuit), "")
	case msgDisconnect:
		if _, ok := r.spectators[mm.user]; ok {
			delete(r.spectators, mm.user)
			r.m.unindex(mm.user, r)
			break
		}
		seat, ok := r.seatOf[mm.user]
		if !ok || r.seats[seat].state != SeatConnected {
			break
		}
		r.seats[seat].state = SeatDisconnected
		r.seats[seat].grace = at + r.settings.Grace()
		res, done = r.apply(at, game.Left(seat, game.LeaveDisconnected), "")
	case msgInspect:
		rep.inspect, rep.err = r.inspect()
	case msgEnd:
		reason := mm.reason
		if reason == "" {
			reason = "ended by an operator"
		}
		res, done = r.finish(StatusEnded, nil, reason), true
	}
	if mm.reply != nil {
		mm.reply <- rep
	}
	if done {
		return res
	}
	return Result{}
}

func (r *room) join(mm msg, at time.Duration) (JoinInfo, Result, bool, error) {
	info := JoinInfo{Room: r.id, Game: r.game.Name(), Seat: mm.seat, Players: r.players, TickRate: r.settings.TickRate,
		Labels: r.labels, Created: r.created}
	if mm.seat == SpectatorSeat {
		r.spectators[mm.user] = struct{}{}
		info.Spectating = true
		return info, Result{}, false, nil
	}
	sr := &r.seats[mm.seat]
	var in game.Input
	switch sr.state {
	case SeatConnected:
		return info, Result{}, false, nil
	case SeatGone:
		return JoinInfo{}, Result{}, false, ErrLeft
	case SeatWaiting:
		r.waiting--
		in = game.Joined(mm.seat)
	case SeatDisconnected:
		info.Reconnect = true
		in = game.Reconnected(mm.seat)
	}
	sr.state = SeatConnected
	res, done := r.apply(at, in, "")
	return info, res, done, nil
}

func (r *room) inspect() (Inspection, error) {
	snap, err := r.inst.Snapshot()
	if err != nil {
		return Inspection{}, err
	}
	z, err := EncodeSnapshot(snap)
	if err != nil {
		return Inspection{}, err
	}
	out := Inspection{Info: r.info(), Summary: r.inst.Summary(), Spectators: len(r.spectators), Seq: r.seq, Clock: r.lastAt,
		StateSize: len(snap.State), Timers: snap.Timers, Snapshot: z}
	for seat, s := range r.seats {
		out.Seats = append(out.Seats, SeatInfo{Seat: game.Seat(seat), User: s.user, State: s.state})
	}
	return out, nil
}

// finish ends the room: it tells the users and returns the result.
func (r *room) finish(st Status, result []byte, reason string) Result {
	r.ended = true
	end := Message{Kind: KindEnded, Room: r.id, Status: st, Payload: result, Reason: reason}
	if users := r.audience(game.Audience{Players: true, Spectators: true}, false); len(users) > 0 {
		r.m.deliver.Deliver(users, end)
	}
	return Result{Room: r.id, Game: r.game.Name(), Players: r.players, Labels: r.labels, Status: st, Result: result,
		Reason: reason, Inputs: r.seq, CreatedAt: r.created, EndedAt: r.m.clock.Now()}
}
