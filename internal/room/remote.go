package room

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/taisen-dev/taisen/game"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
)

// A room lives on the node that created it; a player's session may live on
// another node of the cluster. That node forwards the player's joins,
// leaves, inputs and disconnects to the room's node over the bus (the
// ticket names the node), and remembers which of its users play where.
// The room's effects reach remote players through the Deliverer, which
// routes by the players' session records.

// NodeSubject is the bus subject of a node's room requests.
func NodeSubject(nodeID string) string { return "taisen.room.node." + nodeID }

// remoteIndex is which rooms of other nodes this node's users joined
// through it: user -> room id -> node id.
type remoteIndex struct {
	mu    sync.Mutex
	rooms map[string]map[string]string // guarded by mu
}

func (x *remoteIndex) add(user, roomID, node string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rooms == nil {
		x.rooms = map[string]map[string]string{}
	}
	if x.rooms[user] == nil {
		x.rooms[user] = map[string]string{}
	}
	x.rooms[user][roomID] = node
}

func (x *remoteIndex) remove(user, roomID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.rooms[user], roomID)
	if len(x.rooms[user]) == 0 {
		delete(x.rooms, user)
	}
}

func (x *remoteIndex) node(user, roomID string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n, ok := x.rooms[user][roomID]
	return n, ok
}

// nodes returns the nodes of user's remote rooms.
func (x *remoteIndex) nodes(user string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, n := range x.rooms[user] {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Listen starts answering other nodes' requests about this node's rooms.
// Without a bus (Deps.Bus nil) the manager serves local players only.
func (m *Manager) Listen() error {
	if m.bus == nil {
		return nil
	}
	sub, err := m.bus.Subscribe(NodeSubject(m.nodeID), m.onRemote)
	if err != nil {
		return fmt.Errorf("room: subscribe: %w", err)
	}
	m.sub = sub
	return nil
}

// remoteCall sends a request to another node and decodes its reply; a
// failure the room's node reported comes back as its client error.
func (m *Manager) remoteCall(ctx context.Context, node string, req *clusterv1.RoomRequest) (*clusterv1.RoomReply, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	out, err := m.bus.Request(ctx, NodeSubject(node), b)
	if errors.Is(err, bus.ErrNoResponders) {
		return nil, fmt.Errorf("room's node %s: %w", node, ErrNoRoom)
	}
	if err != nil {
		return nil, fmt.Errorf("room's node %s: %w", node, err)
	}
	rep := &clusterv1.RoomReply{}
	if err := proto.Unmarshal(out, rep); err != nil {
		return nil, fmt.Errorf("room's node %s: reply: %w", node, err)
	}
	if rep.ErrorCode != 0 {
		code := realtimev1.ErrorCode(rep.ErrorCode)
		e := apierr.New(code, "%s", rep.ErrorMessage)
		if code == realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND {
			return nil, fmt.Errorf("%w: %w", e, ErrNoRoom)
		}
		return nil, e
	}
	return rep, nil
}

func joinInfoOf(r *apiv1.JoinRoomResponse) JoinInfo {
	info := JoinInfo{Room: r.GetRoom().GetRoomId(), Game: r.GetRoom().GetGame(), Seat: game.Seat(r.GetSeat()),
		TickRate: int(r.GetTickRate()), Reconnect: r.GetReconnected(), Spectating: r.GetSpectator(),
		Labels: r.GetRoom().GetLabels(), Created: time.UnixMilli(r.GetRoom().GetCreatedAtMs())}
	for _, p := range r.GetRoom().GetPlayers() {
		info.Players = append(info.Players, game.Player{Seat: game.Seat(p.GetSeat()), UserID: p.GetUserId()})
	}
	return info
}

func (m *Manager) joinReply(info JoinInfo) *apiv1.JoinRoomResponse {
	ri := roomInfo(Info{Room: info.Room, Game: info.Game, Players: info.Players, Labels: info.Labels, Created: info.Created})
	return &apiv1.JoinRoomResponse{Room: ri, Seat: int32(info.Seat), Spectator: info.Spectating,
		Reconnected: info.Reconnect, TickRate: uint32(info.TickRate)}
}

// onRemote answers another node's request about a room of this node.
func (m *Manager) onRemote(msg *bus.Msg) {
	req := &clusterv1.RoomRequest{}
	if err := proto.Unmarshal(msg.Data, req); err != nil {
		m.log.Warn("room: undecodable request from another node", "err", err)
		return
	}
	if req.Op == clusterv1.RoomOp_ROOM_OP_INPUT {
		// Published, no reply: like a local input, never wait.
		m.refuseErr(req.UserId, req.RoomId, req.Type, m.localInput(req.RoomId, req.UserId, req.Type, req.Payload))
		return
	}
	// Joins and leaves wait for the room: not on the bus's goroutine.
	m.mu.RLock()
	stopped := m.stopped
	if !stopped {
		m.wg.Add(1)
	}
	m.mu.RUnlock()
	if stopped {
		return // no reply: the asking node sees a timeout, as from a node gone
	}
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
		defer cancel()
		rep := &clusterv1.RoomReply{}
		var err error
		switch req.Op {
		case clusterv1.RoomOp_ROOM_OP_JOIN:
			var info JoinInfo
			if info, err = m.localJoin(ctx, req.Ticket, req.UserId); err == nil {
				rep.Join = m.joinReply(info)
			}
		case clusterv1.RoomOp_ROOM_OP_REJOIN:
			var info JoinInfo
			if info, err = m.localRejoin(ctx, req.RoomId, req.UserId); err == nil {
				rep.Join = m.joinReply(info)
			}
		case clusterv1.RoomOp_ROOM_OP_LEAVE:
			err = m.localLeave(ctx, req.RoomId, req.UserId)
		case clusterv1.RoomOp_ROOM_OP_DISCONNECTED:
			m.localDisconnected(ctx, req.UserId)
		case clusterv1.RoomOp_ROOM_OP_RETURNED:
			m.localReturned(ctx, req.UserId)
		case clusterv1.RoomOp_ROOM_OP_MINE:
			for _, i := range m.localMine(req.UserId) {
				rep.Rooms = append(rep.Rooms, roomInfo(i))
			}
		default:
			err = apierr.BadRequest("unknown room op %v", req.Op)
		}
		if err != nil {
			e, internal := apierr.From(apiError(err))
			if internal {
				m.log.Error("room: request from another node", "op", req.Op.String(), "err", err)
			}
			rep.ErrorCode, rep.ErrorMessage = int32(e.Code), e.Message
		}
		b, err := proto.Marshal(rep)
		if err != nil {
			return
		}
		if err := msg.Respond(b); err != nil {
			m.log.Warn("room: reply to another node", "err", err)
		}
	}()
}
