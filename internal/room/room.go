package room

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/taisen-dev/taisen/game"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/clock"
)

// Errors the Manager returns (wrapped).
var (
	// ErrBusy: the room's mailbox is full; the input was refused.
	ErrBusy = errors.New("room busy")
	// ErrNoRoom: no active room with that id on this node.
	ErrNoRoom = errors.New("no such room")
	// ErrNotPlayer: the user holds no seat in the room.
	ErrNotPlayer = errors.New("not a player of this room")
	// ErrNoSpectators: the game does not allow spectators.
	ErrNoSpectators = errors.New("this game does not allow spectators")
	// ErrUnknownGame: no game registered under that name.
	ErrUnknownGame = errors.New("unknown game")
	// ErrLeft: the user left the room for good.
	ErrLeft = errors.New("left this room")
	// ErrStopped: the manager is stopped.
	ErrStopped = errors.New("room manager stopped")
)

// Config tunes the runtime. Zero values take the defaults.
type Config struct {
	// Mailbox is each room's mailbox capacity (default 256).
	Mailbox int
	// MaxCatchUp is how many late ticks a tick-driven room applies back to
	// back before its clock skips the rest (default 5).
	MaxCatchUp int
	// MaxInputsPerInstant bounds the entries applied at one room clock
	// reading (default 1000).
	MaxInputsPerInstant int
	// JoinTimeout is how long the seated players have to join a new room
	// before it ends as abandoned (default 60s).
	JoinTimeout time.Duration
	// TicketTTL is how long a join ticket is valid (default 10m).
	TicketTTL time.Duration
	// EndTimeout bounds the EndedSink call (default 10s).
	EndTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Mailbox <= 0 {
		c.Mailbox = 256
	}
	if c.MaxCatchUp <= 0 {
		c.MaxCatchUp = 5
	}
	if c.MaxInputsPerInstant <= 0 {
		c.MaxInputsPerInstant = 1000
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = time.Minute
	}
	if c.TicketTTL <= 0 {
		c.TicketTTL = 10 * time.Minute
	}
	if c.EndTimeout <= 0 {
		c.EndTimeout = 10 * time.Second
	}
	return c
}

// MessageKind says what a Message to a room's users is.
type MessageKind uint8

// Message kinds.
const (
	// KindGame is a message the game sent (a Send effect); Type is the
	// game's message type.
	KindGame MessageKind = iota + 1
	// KindRejected tells one player the game refused an input (Reason).
	KindRejected
	// KindEnded tells the room's users it ended (Status, Payload is the
	// result, Reason the message for an error or an operator's end).
	KindEnded
)

// Message is what a Deliverer sends to a room's users.
type Message struct {
	Kind MessageKind
	Room string
	// Type is the game's message type (KindGame) or the rejected input's
	// type (KindRejected).
	Type    string
	Payload []byte
	// Ephemeral: state at tick rate; deliver only to attached sessions,
	// never keep it for a resume.
	Ephemeral bool
	// Reason is a human-readable reason (KindRejected, KindEnded).
	Reason string
	// Status is the room's end status (KindEnded).
	Status Status
}

// Deliverer carries out the sends of rooms. It is called on the room's
// goroutine and must not block for long (queue, do not wait for acks).
// users is not retained by the room after the call returns.
type Deliverer interface {
	Deliver(users []string, m Message)
}

// EndedSink receives every room's end once: it stores the result and
// publishes the room.ended event.
type EndedSink interface {
	RoomEnded(ctx context.Context, r Result) error
}

// Status is how a room ended.
type Status string

// End statuses.
const (
	// StatusFinished: the game ended the room (an End effect).
	StatusFinished Status = "finished"
	// StatusError: the game's logic failed (error or panic).
	StatusError Status = "error"
	// StatusAbandoned: the seated players did not all join in time.
	StatusAbandoned Status = "abandoned"
	// StatusEnded: an operator ended the room.
	StatusEnded Status = "ended"
	// StatusAborted: the node stopped while the room ran.
	StatusAborted Status = "aborted"
)

// Result is an ended room.
type Result struct {
	Room    string
	Game    string
	Players []game.Player
	Labels  map[string]string
	Status  Status
	// Result is the game's End result (StatusFinished).
	Result []byte
	// Reason explains an error, an abandonment or an operator's end.
	Reason    string
	Inputs    uint64 // entries applied (the last sequence number)
	CreatedAt time.Time
	EndedAt   time.Time
}

// Deps are the manager's collaborators.
type Deps struct {
	// Games resolves game names. Required.
	Games *game.Registry
	// Deliver sends room messages to users. Required.
	Deliver Deliverer
	// Ended receives ended rooms; nil drops them.
	Ended EndedSink
	// Secret signs join tickets (at least 32 bytes). Required.
	Secret []byte
	// Clock is clock.Real() when nil.
	Clock clock.Clock
	// Metrics registers the runtime's metrics; none when nil.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	// Bus and NodeID let players whose sessions live on other nodes play
	// in this node's rooms, and this node's players in other nodes' rooms
	// (Listen); without a bus the manager serves local players only.
	Bus    bus.Bus
	NodeID string
}

// Manager holds the active rooms of a node.
type Manager struct {
	cfg     Config
	games   *game.Registry
	deliver Deliverer
	ended   EndedSink
	secret  []byte
	clock   clock.Clock
	log     *slog.Logger
	metrics *metrics

	bus    bus.Bus
	nodeID string
	sub    bus.Subscription
	remote remoteIndex

	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.RWMutex
	rooms   map[string]*room            // guarded by mu
	byUser  map[string]map[string]*room // user -> room id -> room; guarded by mu
	stopped bool                        // guarded by mu
}

// NewManager builds a Manager.
func NewManager(cfg Config, deps Deps) (*Manager, error) {
	if deps.Games == nil || deps.Deliver == nil {
		return nil, errors.New("room: Games and Deliver are required")
	}
	if len(deps.Secret) < 32 {
		return nil, fmt.Errorf("room: ticket secret of %d bytes: want at least 32", len(deps.Secret))
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{
		cfg: cfg.withDefaults(), games: deps.Games, deliver: deps.Deliver, ended: deps.Ended,
		secret: slices.Clone(deps.Secret), clock: deps.Clock, log: deps.Logger, metrics: newMetrics(deps.Metrics),
		stop: make(chan struct{}), rooms: map[string]*room{}, byUser: map[string]map[string]*room{},
		bus: deps.Bus, nodeID: deps.NodeID,
	}, nil
}

// CreateRequest asks for a new room.
type CreateRequest struct {
	Game   string
	Params []byte
	// Players are the seated users' ids; the i-th gets seat i.
	Players []string
	Labels  map[string]string
}

// SeatTicket is the join ticket of one seated player.
type SeatTicket struct {
	User   string
	Seat   game.Seat
	Ticket string
}

// Created is a new room.
type Created struct {
	Room    string
	Tickets []SeatTicket
	Expires time.Time
}

// Create starts a room: it runs the game's Init and the room's goroutine,
// and returns one join ticket per player.
func (m *Manager) Create(req CreateRequest) (Created, error) {
	g, ok := m.games.Lookup(req.Game)
	if !ok {
		return Created{}, fmt.Errorf("create room: %q: %w", req.Game, ErrUnknownGame)
	}
	seen := make(map[string]bool, len(req.Players))
	players := make([]game.Player, len(req.Players))
	for i, u := range req.Players {
		if u == "" {
			return Created{}, fmt.Errorf("create room: player %d: empty user id", i)
		}
		if seen[u] {
			return Created{}, fmt.Errorf("create room: user %q seated twice", u)
		}
		seen[u] = true
		players[i] = game.Player{Seat: game.Seat(i), UserID: u}
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	setup := game.Setup{Params: req.Params, Players: players, Seed: binary.LittleEndian.Uint64(seed[:])}
	inst, err := g.Start(setup, nil)
	if err != nil {
		return Created{}, fmt.Errorf("create room: %w", err)
	}
	r := newRoom(m, uuid.NewString(), g, inst, players, maps.Clone(req.Labels))

	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return Created{}, fmt.Errorf("create room: %w", ErrStopped)
	}
	m.rooms[r.id] = r
	for _, p := range players {
		m.indexLocked(p.UserID, r)
	}
	m.wg.Add(1)
	m.mu.Unlock()
	m.metrics.active.Inc()
	go r.run()

	exp := m.clock.Now().Add(m.cfg.TicketTTL)
	out := Created{Room: r.id, Expires: exp}
	for _, p := range players {
		out.Tickets = append(out.Tickets, SeatTicket{User: p.UserID, Seat: p.Seat,
			Ticket: EncodeTicket(m.secret, Ticket{Room: r.id, User: p.UserID, Seat: p.Seat, Expires: exp.Unix(), Node: m.nodeID})})
	}
	return out, nil
}

// SpectatorTicket returns a ticket for user to watch room, when its game
// allows spectators.
func (m *Manager) SpectatorTicket(roomID, user string) (string, error) {
	t, _, err := m.spectatorTicket(roomID, user)
	return t, err
}

func (m *Manager) spectatorTicket(roomID, user string) (string, time.Time, error) {
	r, err := m.room(roomID)
	if err != nil {
		return "", time.Time{}, err
	}
	if !r.settings.Spectators {
		return "", time.Time{}, fmt.Errorf("spectate %s: %w", roomID, ErrNoSpectators)
	}
	if user == "" {
		return "", time.Time{}, fmt.Errorf("spectate %s: empty user id", roomID)
	}
	exp := m.clock.Now().Add(m.cfg.TicketTTL)
	return EncodeTicket(m.secret, Ticket{Room: roomID, User: user, Seat: SpectatorSeat, Expires: exp.Unix(), Node: m.nodeID}), exp, nil
}

func (m *Manager) indexLocked(user string, r *room) {
	rs := m.byUser[user]
	if rs == nil {
		rs = map[string]*room{}
		m.byUser[user] = rs
	}
	rs[r.id] = r
}

func (m *Manager) unindex(user string, r *room) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unindexLocked(user, r)
}

func (m *Manager) unindexLocked(user string, r *room) {
	if rs := m.byUser[user]; rs != nil && rs[r.id] == r {
		delete(rs, r.id)
		if len(rs) == 0 {
			delete(m.byUser, user)
		}
	}
}

func (m *Manager) remove(r *room) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rooms[r.id] == r {
		delete(m.rooms, r.id)
	}
	for _, p := range r.players {
		m.unindexLocked(p.UserID, r)
	}
	for u := range r.spectators {
		m.unindexLocked(u, r)
	}
}

func (m *Manager) room(id string) (*room, error) {
	m.mu.RLock()
	r := m.rooms[id]
	m.mu.RUnlock()
	if r == nil {
		return nil, fmt.Errorf("room %s: %w", id, ErrNoRoom)
	}
	return r, nil
}

// Input hands a player's action to its room without blocking: ErrBusy
// (itself, not wrapped) when the room's mailbox is full. A rejection by the game reaches the
// player as a KindRejected message.
func (m *Manager) Input(roomID, user, typ string, payload []byte) error {
	if m.isRemote(roomID) {
		if node, ok := m.remote.node(user, roomID); ok {
			b, err := proto.Marshal(&clusterv1.RoomRequest{Op: clusterv1.RoomOp_ROOM_OP_INPUT, UserId: user, RoomId: roomID, Type: typ, Payload: payload})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
			defer cancel()
			return m.bus.Publish(ctx, NodeSubject(node), b)
		}
	}
	return m.localInput(roomID, user, typ, payload)
}

// isRemote reports whether roomID is not a room of this node.
func (m *Manager) isRemote(roomID string) bool {
	if m.bus == nil {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.rooms[roomID] == nil
}

// remoteTimeout bounds a request to another node's rooms.
const remoteTimeout = 5 * time.Second

func (m *Manager) localInput(roomID, user, typ string, payload []byte) error {
	r, err := m.room(roomID)
	if err != nil {
		return err
	}
	seat, ok := r.seatOf[user]
	if !ok {
		return fmt.Errorf("input to room %s: %w", roomID, ErrNotPlayer)
	}
	select {
	case r.mailbox <- msg{kind: msgInput, user: user, seat: seat, typ: typ, payload: payload}:
		return nil
	default:
		m.metrics.busy.Inc()
		return ErrBusy // not wrapped: the refusal costs no allocation
	}
}

// JoinInfo is what a player or spectator learns on joining.
type JoinInfo struct {
	Room       string
	Game       string
	Seat       game.Seat // SpectatorSeat for a spectator
	Players    []game.Player
	TickRate   int
	Reconnect  bool // the player came back within the grace
	Spectating bool
	Labels     map[string]string
	Created    time.Time
}

// Join admits the holder of a ticket: user must be the ticket's user. A
// seated player's first join is game.Joined, a join after a disconnect
// within the grace is game.Reconnected, a join while connected changes
// nothing. A spectator's ticket adds a read-only member.
func (m *Manager) Join(ctx context.Context, token, user string) (JoinInfo, error) {
	t, err := DecodeTicket(m.secret, token, m.clock.Now())
	if err != nil {
		return JoinInfo{}, err
	}
	if t.User != user {
		return JoinInfo{}, fmt.Errorf("%w: issued to another user", ErrBadTicket)
	}
	if t.Node != "" && t.Node != m.nodeID && m.bus != nil {
		rep, err := m.remoteCall(ctx, t.Node, &clusterv1.RoomRequest{Op: clusterv1.RoomOp_ROOM_OP_JOIN, UserId: user, Ticket: token})
		if err != nil {
			return JoinInfo{}, fmt.Errorf("join %s: %w", t.Room, err)
		}
		m.remote.add(user, t.Room, t.Node)
		return joinInfoOf(rep.Join), nil
	}
	return m.localJoin(ctx, token, user)
}

func (m *Manager) localJoin(ctx context.Context, token, user string) (JoinInfo, error) {
	t, err := DecodeTicket(m.secret, token, m.clock.Now())
	if err != nil {
		return JoinInfo{}, err
	}
	if t.User != user {
		return JoinInfo{}, fmt.Errorf("%w: issued to another user", ErrBadTicket)
	}
	r, err := m.room(t.Room)
	if err != nil {
		return JoinInfo{}, err
	}
	if t.Seat == SpectatorSeat {
		if !r.settings.Spectators {
			return JoinInfo{}, fmt.Errorf("join %s: %w", r.id, ErrNoSpectators)
		}
		m.mu.Lock()
		m.indexLocked(user, r)
		m.mu.Unlock()
	} else if s, ok := r.seatOf[user]; !ok || s != t.Seat {
		return JoinInfo{}, fmt.Errorf("%w: seat %d is not this user's", ErrBadTicket, t.Seat)
	}
	rep, err := r.call(ctx, msg{kind: msgJoin, user: user, seat: t.Seat})
	if err != nil {
		if t.Seat == SpectatorSeat {
			m.unindex(user, r)
		}
		return JoinInfo{}, fmt.Errorf("join %s: %w", r.id, err)
	}
	return rep.join, nil
}

// Rejoin is Join without a ticket for a player who joined roomID before:
// it takes the seat back after a disconnect.
func (m *Manager) Rejoin(ctx context.Context, roomID, user string) (JoinInfo, error) {
	if m.isRemote(roomID) {
		if node, ok := m.remote.node(user, roomID); ok {
			rep, err := m.remoteCall(ctx, node, &clusterv1.RoomRequest{Op: clusterv1.RoomOp_ROOM_OP_REJOIN, UserId: user, RoomId: roomID})
			if err != nil {
				return JoinInfo{}, fmt.Errorf("rejoin %s: %w", roomID, err)
			}
			return joinInfoOf(rep.Join), nil
		}
	}
	return m.localRejoin(ctx, roomID, user)
}

func (m *Manager) localRejoin(ctx context.Context, roomID, user string) (JoinInfo, error) {
	r, err := m.room(roomID)
	if err != nil {
		return JoinInfo{}, err
	}
	seat, ok := r.seatOf[user]
	if !ok {
		return JoinInfo{}, fmt.Errorf("rejoin %s: %w", roomID, ErrNotPlayer)
	}
	rep, err := r.call(ctx, msg{kind: msgRejoin, user: user, seat: seat})
	if err != nil {
		return JoinInfo{}, fmt.Errorf("rejoin %s: %w", roomID, err)
	}
	return rep.join, nil
}

// Returned tells every room of user that the user has a session again on
// this node: a seat held within its grace is taken back.
func (m *Manager) Returned(ctx context.Context, user string) {
	m.forwardAll(ctx, user, clusterv1.RoomOp_ROOM_OP_RETURNED)
	m.localReturned(ctx, user)
}

// forwardAll tells the nodes of user's remote rooms about the user.
func (m *Manager) forwardAll(ctx context.Context, user string, op clusterv1.RoomOp) {
	for _, node := range m.remote.nodes(user) {
		if _, err := m.remoteCall(ctx, node, &clusterv1.RoomRequest{Op: op, UserId: user}); err != nil {
			m.log.Warn("room: not delivered to the room's node", "node", node, "op", op.String(), "user", user, "err", err)
		}
	}
}

func (m *Manager) localReturned(ctx context.Context, user string) {
	for _, r := range m.roomsOf(user) {
		seat, ok := r.seatOf[user]
		if !ok {
			continue
		}
		if _, err := r.call(ctx, msg{kind: msgReturn, user: user, seat: seat}); err != nil && !errors.Is(err, ErrNoRoom) {
			m.log.Warn("room: return not delivered", "room", r.id, "user", user, "err", err)
		}
	}
}

// Leave takes user out of a room for good: game.Left(LeaveQuit) for a
// player, removal for a spectator.
func (m *Manager) Leave(ctx context.Context, roomID, user string) error {
	if m.isRemote(roomID) {
		if node, ok := m.remote.node(user, roomID); ok {
			_, err := m.remoteCall(ctx, node, &clusterv1.RoomRequest{Op: clusterv1.RoomOp_ROOM_OP_LEAVE, UserId: user, RoomId: roomID})
			if err == nil || errors.Is(err, ErrNoRoom) {
				m.remote.remove(user, roomID)
			}
			if err != nil {
				return fmt.Errorf("leave %s: %w", roomID, err)
			}
			return nil
		}
	}
	return m.localLeave(ctx, roomID, user)
}

func (m *Manager) localLeave(ctx context.Context, roomID, user string) error {
	r, err := m.room(roomID)
	if err != nil {
		return err
	}
	if _, err := r.call(ctx, msg{kind: msgLeave, user: user}); err != nil {
		return fmt.Errorf("leave %s: %w", roomID, err)
	}
	return nil
}

// Disconnected tells every room of user that the user's session went
// away: players keep their seat for the game's reconnect grace,
// spectators are removed.
func (m *Manager) Disconnected(ctx context.Context, user string) {
	m.forwardAll(ctx, user, clusterv1.RoomOp_ROOM_OP_DISCONNECTED)
	m.localDisconnected(ctx, user)
}

func (m *Manager) localDisconnected(ctx context.Context, user string) {
	for _, r := range m.roomsOf(user) {
		if _, err := r.call(ctx, msg{kind: msgDisconnect, user: user}); err != nil && !errors.Is(err, ErrNoRoom) {
			m.log.Warn("room: disconnect not delivered", "room", r.id, "user", user, "err", err)
		}
	}
}

func (m *Manager) roomsOf(user string) []*room {
	m.mu.RLock()
	defer m.mu.RUnlock()
	rs := make([]*room, 0, len(m.byUser[user]))
	for _, r := range m.byUser[user] {
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b *room) int { return a.created.Compare(b.created) })
	return rs
}

// Info describes an active room.
type Info struct {
	Room    string
	Game    string
	Players []game.Player
	Labels  map[string]string
	Created time.Time
}

func (r *room) info() Info {
	return Info{Room: r.id, Game: r.game.Name(), Players: r.players, Labels: r.labels, Created: r.created}
}

// Filter selects rooms in List; empty fields match everything.
type Filter struct {
	Game   string
	Labels map[string]string
}

// List returns the active rooms matching f, oldest first.
func (m *Manager) List(f Filter) []Info {
	m.mu.RLock()
	var out []Info
	for _, r := range m.rooms {
		if f.Game != "" && r.game.Name() != f.Game {
			continue
		}
		match := true
		for k, v := range f.Labels {
			if got, ok := r.labels[k]; !ok || got != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, r.info())
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b Info) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return compareStrings(a.Room, b.Room)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Mine returns the active rooms user plays in or watches, oldest first.
func (m *Manager) Mine(ctx context.Context, user string) []Info {
	out := m.localMine(user)
	for _, node := range m.remote.nodes(user) {
		rep, err := m.remoteCall(ctx, node, &clusterv1.RoomRequest{Op: clusterv1.RoomOp_ROOM_OP_MINE, UserId: user})
		if err != nil {
			m.log.Warn("room: listing a user's rooms on another node", "node", node, "err", err)
			continue
		}
		listed := map[string]bool{}
		for _, ri := range rep.Rooms {
			listed[ri.RoomId] = true
			i := Info{Room: ri.RoomId, Game: ri.Game, Labels: ri.Labels, Created: time.UnixMilli(ri.CreatedAtMs)}
			for _, p := range ri.Players {
				i.Players = append(i.Players, game.Player{Seat: game.Seat(p.Seat), UserID: p.UserId})
			}
			out = append(out, i)
		}
		// Forget the rooms that ended there.
		m.remote.mu.Lock()
		for id, n := range m.remote.rooms[user] {
			if n == node && !listed[id] {
				delete(m.remote.rooms[user], id)
			}
		}
		if len(m.remote.rooms[user]) == 0 {
			delete(m.remote.rooms, user)
		}
		m.remote.mu.Unlock()
	}
	return out
}

func (m *Manager) localMine(user string) []Info {
	rs := m.roomsOf(user)
	out := make([]Info, len(rs))
	for i, r := range rs {
		out[i] = r.info()
	}
	return out
}

// SeatState is where a seat's player is.
type SeatState string

// Seat states.
const (
	SeatWaiting      SeatState = "waiting"      // not joined yet
	SeatConnected    SeatState = "connected"    // joined
	SeatDisconnected SeatState = "disconnected" // within the reconnect grace
	SeatGone         SeatState = "gone"         // left for good
)

// SeatInfo is one seat in an Inspection.
type SeatInfo struct {
	Seat  game.Seat
	User  string
	State SeatState
}

// Inspection is an active room seen by an operator.
type Inspection struct {
	Info
	Summary    []byte
	Seats      []SeatInfo
	Spectators int
	Seq        uint64
	Clock      time.Duration
	StateSize  int
	Timers     []game.Timer
	// Snapshot is the instance's game.Snapshot, compressed (see
	// DecodeSnapshot).
	Snapshot []byte
}

// Inspect returns a room's summary, seats and compressed snapshot.
func (m *Manager) Inspect(ctx context.Context, roomID string) (Inspection, error) {
	r, err := m.room(roomID)
	if err != nil {
		return Inspection{}, err
	}
	rep, err := r.call(ctx, msg{kind: msgInspect})
	if err != nil {
		return Inspection{}, fmt.Errorf("inspect %s: %w", roomID, err)
	}
	return rep.inspect, rep.err
}

// End ends a room by an operator's decision (StatusEnded) with reason.
func (m *Manager) End(ctx context.Context, roomID, reason string) error {
	r, err := m.room(roomID)
	if err != nil {
		return err
	}
	if _, err := r.call(ctx, msg{kind: msgEnd, reason: reason}); err != nil {
		return fmt.Errorf("end %s: %w", roomID, err)
	}
	return nil
}

// Close ends every room as StatusAborted and waits for their goroutines
// (and their EndedSink calls) until ctx is done.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.stopped {
		m.stopped = true
		close(m.stop)
		if m.sub != nil {
			_ = m.sub.Unsubscribe()
		}
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("room: close: %w", ctx.Err())
	}
}
