package room

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/taisen-dev/taisen/game"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/gateway"
)

// Push kinds of the messages rooms send to clients.
const (
	KindNameMessage  = "room.message"
	KindNameRejected = "room.rejected"
	KindNameEnded    = "room.ended"
)

// Limits on what clients and operators send.
const (
	maxTypeLen    = 64
	maxPayload    = 64 << 10
	maxParams     = 64 << 10
	maxLabels     = 16
	maxLabelLen   = 128
	maxReasonLen  = 256
	maxPlayersReq = game.MaxSeats
)

// apiError maps the manager's errors to client-facing ones.
func apiError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrBadTicket):
		return apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED, err, errMessage(err))
	case errors.Is(err, ErrNoRoom):
		return apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND, err, "no such room")
	case errors.Is(err, ErrUnknownGame):
		return apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND, err, errMessage(err))
	case errors.Is(err, ErrNotPlayer), errors.Is(err, ErrNoSpectators):
		return apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED, err, errMessage(err))
	case errors.Is(err, ErrLeft):
		return apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_FAILED_PRECONDITION, err, "you left this room")
	case errors.Is(err, ErrBusy):
		return apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_BUSY, err, "room busy")
	case errors.Is(err, ErrStopped):
		return apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE, err, "the server is shutting down")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_TIMEOUT, err, "the room did not answer in time")
	}
	return err
}

func errMessage(err error) string { return err.Error() }

// RegisterOps adds the socket operations room.join, room.leave and
// room.list_mine and the client message room.input.
func (m *Manager) RegisterOps(r *gateway.Registry) error {
	for _, err := range []error{
		gateway.RegisterTyped(r, "room.join", m.opJoin),
		gateway.RegisterTyped(r, "room.leave", m.opLeave),
		gateway.RegisterTyped(r, "room.list_mine", m.opListMine),
		r.RegisterMessage("room.input", m.onInput),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) opJoin(ctx context.Context, call gateway.Call, req *apiv1.JoinRoomRequest) (*apiv1.JoinRoomResponse, error) {
	var info JoinInfo
	var err error
	switch {
	case req.Ticket != "":
		info, err = m.Join(ctx, req.Ticket, call.UserID)
	case req.RoomId != "":
		info, err = m.Rejoin(ctx, req.RoomId, call.UserID)
	default:
		return nil, apierr.BadRequest("room.join: give a ticket, or the room_id of a room you joined before")
	}
	if err != nil {
		return nil, apiError(err)
	}
	return m.joinReply(info), nil
}

func (m *Manager) opLeave(ctx context.Context, call gateway.Call, req *apiv1.LeaveRoomRequest) (*apiv1.LeaveRoomResponse, error) {
	if err := m.Leave(ctx, req.RoomId, call.UserID); err != nil {
		return nil, apiError(err)
	}
	return &apiv1.LeaveRoomResponse{}, nil
}

func (m *Manager) opListMine(ctx context.Context, call gateway.Call, _ *apiv1.ListMyRoomsRequest) (*apiv1.ListMyRoomsResponse, error) {
	out := &apiv1.ListMyRoomsResponse{}
	for _, i := range m.Mine(ctx, call.UserID) {
		out.Rooms = append(out.Rooms, roomInfo(i))
	}
	return out, nil
}

// onInput takes a room.input message off the socket: it never blocks.
func (m *Manager) onInput(_ context.Context, call gateway.Call) {
	var in apiv1.RoomInput
	var err error
	if call.JSON {
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(call.Payload, &in)
	} else {
		err = proto.Unmarshal(call.Payload, &in)
	}
	if err != nil || len(in.Type) > maxTypeLen || len(in.Payload) > maxPayload {
		m.refuse(call.UserID, in.RoomId, in.Type, apiv1.RoomRejectCause_ROOM_REJECT_CAUSE_NOT_IN_ROOM, "room.input: payload is not a valid taisen.api.v1.RoomInput")
		return
	}
	m.refuseErr(call.UserID, in.RoomId, in.Type, m.Input(in.RoomId, call.UserID, in.Type, in.Payload))
}

// refuseErr tells a player why an input did not reach its room (nothing
// for a nil error).
func (m *Manager) refuseErr(user, roomID, typ string, err error) {
	switch {
	case err == nil:
	case errors.Is(err, ErrBusy):
		m.refuse(user, roomID, typ, apiv1.RoomRejectCause_ROOM_REJECT_CAUSE_BUSY, "busy")
	default:
		m.refuse(user, roomID, typ, apiv1.RoomRejectCause_ROOM_REJECT_CAUSE_NOT_IN_ROOM, errMessage(err))
	}
}

// refuse tells a player an input was refused before reaching the game.
// It must not block the socket's reading goroutine: the message goes
// through the deliverer's own queue.
func (m *Manager) refuse(user, roomID, typ string, cause apiv1.RoomRejectCause, reason string) {
	if q, ok := m.deliver.(interface {
		Refuse(user string, msg Message, cause apiv1.RoomRejectCause)
	}); ok {
		q.Refuse(user, Message{Kind: KindRejected, Room: roomID, Type: typ, Reason: reason}, cause)
	}
}

func playersOf(ps []game.Player) []*apiv1.RoomPlayer {
	out := make([]*apiv1.RoomPlayer, len(ps))
	for i, p := range ps {
		out[i] = &apiv1.RoomPlayer{Seat: int32(p.Seat), UserId: p.UserID}
	}
	return out
}

func roomInfo(i Info) *apiv1.RoomInfo {
	return &apiv1.RoomInfo{RoomId: i.Room, Game: i.Game, Players: playersOf(i.Players), Labels: i.Labels, CreatedAtMs: i.Created.UnixMilli()}
}

// StatusProto is the API's RoomEndStatus of s.
func StatusProto(s Status) apiv1.RoomEndStatus {
	switch s {
	case StatusFinished:
		return apiv1.RoomEndStatus_ROOM_END_STATUS_FINISHED
	case StatusError:
		return apiv1.RoomEndStatus_ROOM_END_STATUS_ERROR
	case StatusAbandoned:
		return apiv1.RoomEndStatus_ROOM_END_STATUS_ABANDONED
	case StatusEnded:
		return apiv1.RoomEndStatus_ROOM_END_STATUS_ENDED
	case StatusAborted:
		return apiv1.RoomEndStatus_ROOM_END_STATUS_ABORTED
	}
	return apiv1.RoomEndStatus_ROOM_END_STATUS_UNSPECIFIED
}

// Handler returns the admin RoomService; the caller authenticates callers
// (server key).
func (m *Manager) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return adminv1connect.NewRoomServiceHandler(adminHandler{m}, opts...)
}

type adminHandler struct{ m *Manager }

var _ adminv1connect.RoomServiceHandler = adminHandler{}

func (h adminHandler) CreateRoom(_ context.Context, req *connect.Request[adminv1.CreateRoomRequest]) (*connect.Response[adminv1.CreateRoomResponse], error) {
	q := req.Msg
	switch {
	case q.Game == "":
		return nil, apierr.ToConnect(apierr.BadRequest("game is empty"))
	case len(q.Params) > maxParams:
		return nil, apierr.ToConnect(apierr.BadRequest("params of %d bytes: at most %d", len(q.Params), maxParams))
	case len(q.UserIds) == 0 || len(q.UserIds) > maxPlayersReq:
		return nil, apierr.ToConnect(apierr.BadRequest("%d user ids: want 1 to %d", len(q.UserIds), maxPlayersReq))
	case len(q.Labels) > maxLabels:
		return nil, apierr.ToConnect(apierr.BadRequest("%d labels: at most %d", len(q.Labels), maxLabels))
	}
	for k, v := range q.Labels {
		if k == "" || len(k) > maxLabelLen || len(v) > maxLabelLen {
			return nil, apierr.ToConnect(apierr.BadRequest("label %.20q: keys 1 to %d bytes, values at most %d", k, maxLabelLen, maxLabelLen))
		}
	}
	c, err := h.m.Create(CreateRequest{Game: q.Game, Params: q.Params, Players: q.UserIds, Labels: q.Labels})
	if err != nil {
		if !errors.Is(err, ErrUnknownGame) && !errors.Is(err, ErrStopped) {
			// The game refused the setup (player count, params).
			return nil, apierr.ToConnect(apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST, err, errMessage(err)))
		}
		return nil, apierr.ToConnect(apiError(err))
	}
	out := &adminv1.CreateRoomResponse{RoomId: c.Room, ExpiresAtMs: c.Expires.UnixMilli()}
	for _, t := range c.Tickets {
		out.Tickets = append(out.Tickets, &adminv1.SeatTicket{UserId: t.User, Seat: int32(t.Seat), Ticket: t.Ticket})
	}
	return connect.NewResponse(out), nil
}

func (h adminHandler) ListRooms(_ context.Context, req *connect.Request[adminv1.ListRoomsRequest]) (*connect.Response[adminv1.ListRoomsResponse], error) {
	out := &adminv1.ListRoomsResponse{}
	for _, i := range h.m.List(Filter{Game: req.Msg.Game, Labels: req.Msg.Labels}) {
		out.Rooms = append(out.Rooms, roomInfo(i))
	}
	return connect.NewResponse(out), nil
}

func (h adminHandler) InspectRoom(ctx context.Context, req *connect.Request[adminv1.InspectRoomRequest]) (*connect.Response[adminv1.InspectRoomResponse], error) {
	in, err := h.m.Inspect(ctx, req.Msg.RoomId)
	if err != nil {
		return nil, h.fail("inspect", err)
	}
	out := &adminv1.InspectRoomResponse{Room: roomInfo(in.Info), Summary: in.Summary, Spectators: uint32(in.Spectators),
		Seq: in.Seq, ClockMs: in.Clock.Milliseconds(), StateBytes: uint32(in.StateSize), SnapshotBytes: uint32(len(in.Snapshot)), Snapshot: in.Snapshot}
	for _, s := range in.Seats {
		out.Seats = append(out.Seats, &adminv1.SeatState{Seat: int32(s.Seat), UserId: s.User, State: string(s.State)})
	}
	return connect.NewResponse(out), nil
}

func (h adminHandler) EndRoom(ctx context.Context, req *connect.Request[adminv1.EndRoomRequest]) (*connect.Response[adminv1.EndRoomResponse], error) {
	if len(req.Msg.Reason) > maxReasonLen {
		return nil, apierr.ToConnect(apierr.BadRequest("reason of %d bytes: at most %d", len(req.Msg.Reason), maxReasonLen))
	}
	if err := h.m.End(ctx, req.Msg.RoomId, req.Msg.Reason); err != nil {
		return nil, h.fail("end", err)
	}
	return connect.NewResponse(&adminv1.EndRoomResponse{}), nil
}

func (h adminHandler) SpectateRoom(_ context.Context, req *connect.Request[adminv1.SpectateRoomRequest]) (*connect.Response[adminv1.SpectateRoomResponse], error) {
	if req.Msg.UserId == "" {
		return nil, apierr.ToConnect(apierr.BadRequest("user_id is empty"))
	}
	t, exp, err := h.m.spectatorTicket(req.Msg.RoomId, req.Msg.UserId)
	if err != nil {
		return nil, h.fail("spectate", err)
	}
	return connect.NewResponse(&adminv1.SpectateRoomResponse{Ticket: t, ExpiresAtMs: exp.UnixMilli()}), nil
}

func (h adminHandler) fail(op string, err error) error {
	err = apiError(err)
	if _, internal := apierr.From(err); internal {
		h.m.log.Error("room admin "+op, "err", err)
	}
	return apierr.ToConnect(err)
}

// Sender is the part of the gateway GatewayDeliverer uses.
type Sender interface {
	SendMany(ctx context.Context, userIDs []string, m gateway.Message) ([]uint64, []error)
	PushLocal(sessionIDs []string, m gateway.Message) int
	MulticastLocal(sessionIDs []string, m gateway.Message)
	Resolve(ctx context.Context, userIDs []string) ([]gateway.Recipient, error)
	Multicast(ctx context.Context, to []gateway.Recipient, m gateway.Message) error
}

// resolveTTL is how long GatewayDeliverer trusts where a remote player's
// session lives for ephemeral messages (a session that moved meanwhile
// misses at most this much room state).
const resolveTTL = time.Second

// GatewayDeliverer delivers room messages to users' sessions through the
// gateway: game messages as pushes (or ephemeral frames) of kind
// room.message with payload type taisen.api.v1.RoomMessage, rejections as
// room.rejected, ends as room.ended. A user whose session it has seen on
// this node (Track) gets a local send; any other user, and a local send
// that found no live session, goes over the bus to the node named by the
// user's session record: durable messages with SendMany, ephemeral ones
// with one Multicast per node (records cached for resolveTTL).
type GatewayDeliverer struct {
	GW      Sender
	Log     *slog.Logger
	Timeout time.Duration // per delivery over the bus; 5s when zero

	// Now reads the time for the resolve cache; time.Now when nil.
	Now func() time.Time

	mu       sync.Mutex
	local    map[string]string         // user -> session id on this node; guarded by mu
	resolved map[string]resolvedRemote // user -> where a remote session lives; guarded by mu
}

type resolvedRemote struct {
	to gateway.Recipient
	ok bool // false: offline when resolved
	at time.Time
}

// Track follows this node's sessions (the gateway's lifecycle hook).
func (d *GatewayDeliverer) Track(ev gateway.SessionEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.resolved, ev.UserID)
	switch ev.Kind {
	case gateway.SessionAttached, gateway.SessionResumed:
		if d.local == nil {
			d.local = map[string]string{}
		}
		d.local[ev.UserID] = ev.SessionID
	case gateway.SessionEnded:
		if d.local[ev.UserID] == ev.SessionID {
			delete(d.local, ev.UserID)
		}
	}
}

// Deliver implements Deliverer.
func (d *GatewayDeliverer) Deliver(users []string, msg Message) {
	d.send(users, msg, apiv1.RoomRejectCause_ROOM_REJECT_CAUSE_GAME)
}

// Refuse tells a player an input was refused before reaching its room. It
// runs on the socket's reading goroutine, so it hands the delivery to a
// goroutine of its own.
func (d *GatewayDeliverer) Refuse(user string, msg Message, cause apiv1.RoomRejectCause) {
	go d.send([]string{user}, msg, cause)
}

func (d *GatewayDeliverer) send(users []string, msg Message, cause apiv1.RoomRejectCause) {
	var gm gateway.Message
	var body proto.Message
	switch msg.Kind {
	case KindGame:
		body = &apiv1.RoomMessage{RoomId: msg.Room, Type: msg.Type, Payload: msg.Payload}
		gm.Kind, gm.Ephemeral = KindNameMessage, msg.Ephemeral
	case KindRejected:
		body = &apiv1.RoomRejected{RoomId: msg.Room, Type: msg.Type, Reason: msg.Reason, Cause: cause}
		gm.Kind = KindNameRejected
		gm.Ephemeral = cause == apiv1.RoomRejectCause_ROOM_REJECT_CAUSE_BUSY
	case KindEnded:
		body = &apiv1.RoomEnded{RoomId: msg.Room, Status: StatusProto(msg.Status), Result: msg.Payload, Reason: msg.Reason}
		gm.Kind = KindNameEnded
	default:
		return
	}
	b, err := proto.Marshal(body)
	if err != nil {
		return
	}
	gm.Payload, gm.PayloadType = b, gateway.TypeName(body)

	var remote, localUsers, localSessions []string
	d.mu.Lock()
	for _, u := range users {
		if sid, ok := d.local[u]; ok {
			localUsers, localSessions = append(localUsers, u), append(localSessions, sid)
		} else {
			remote = append(remote, u)
		}
	}
	d.mu.Unlock()
	if gm.Ephemeral {
		if len(localSessions) > 0 {
			d.GW.MulticastLocal(localSessions, gm)
		}
		if len(remote) > 0 {
			d.multicastRemote(remote, gm, msg.Room)
		}
		return
	}
	for i := range localSessions {
		if d.GW.PushLocal(localSessions[i:i+1], gm) == 0 {
			remote = append(remote, localUsers[i]) // the session ended meanwhile: ask the cluster
		}
	}
	if len(remote) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout())
	defer cancel()
	_, errs := d.GW.SendMany(ctx, remote, gm)
	for i, err := range errs {
		if err != nil && !errors.Is(err, gateway.ErrOffline) && d.Log != nil {
			d.Log.Warn("room: delivery failed", "room", msg.Room, "user", remote[i], "kind", gm.Kind, "err", err)
		}
	}
}

// multicastRemote sends an ephemeral message to players on other nodes:
// one bus message per node, no reply awaited, where their sessions live
// read from their records at most once per resolveTTL.
func (d *GatewayDeliverer) multicastRemote(users []string, gm gateway.Message, roomID string) {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	t := now()
	var to []gateway.Recipient
	var stale []string
	d.mu.Lock()
	for _, u := range users {
		if r, ok := d.resolved[u]; ok && t.Sub(r.at) < resolveTTL {
			if r.ok {
				to = append(to, r.to)
			}
			continue
		}
		stale = append(stale, u)
	}
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout())
	defer cancel()
	if len(stale) > 0 {
		found, err := d.GW.Resolve(ctx, stale)
		if err != nil {
			if d.Log != nil {
				d.Log.Warn("room: resolving players' sessions", "room", roomID, "err", err)
			}
			return
		}
		d.mu.Lock()
		if d.resolved == nil {
			d.resolved = map[string]resolvedRemote{}
		}
		for _, u := range stale {
			d.resolved[u] = resolvedRemote{at: t}
		}
		for _, r := range found {
			d.resolved[r.UserID] = resolvedRemote{to: r, ok: true, at: t}
			to = append(to, r)
		}
		d.mu.Unlock()
	}
	if len(to) == 0 {
		return
	}
	if err := d.GW.Multicast(ctx, to, gm); err != nil && d.Log != nil {
		d.Log.Warn("room: multicast failed", "room", roomID, "err", err)
	}
}

func (d *GatewayDeliverer) timeout() time.Duration {
	if d.Timeout <= 0 {
		return 5 * time.Second
	}
	return d.Timeout
}

// OnSession follows the node's sessions: a player whose socket went away
// is disconnected (the seat is held for the game's grace), and one whose
// session is back (resumed, or a new login) takes the seat back.
func (m *Manager) OnSession(ev gateway.SessionEvent) {
	if t, ok := m.deliver.(interface{ Track(gateway.SessionEvent) }); ok {
		t.Track(ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch ev.Kind {
	case gateway.SessionDetached:
		m.Disconnected(ctx, ev.UserID)
	case gateway.SessionEnded:
		// Moved and replaced: the user's session lives on elsewhere.
		if ev.Cause != gateway.EndMoved && ev.Cause != gateway.EndReplaced {
			m.Disconnected(ctx, ev.UserID)
		}
	case gateway.SessionResumed, gateway.SessionAttached:
		m.Returned(ctx, ev.UserID)
	}
}
