package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/taisen-dev/taisen/game"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/room"
	"github.com/taisen-dev/taisen/internal/store"
)

// RoomEndedSubject is the bus subject of the room.ended event
// (clusterv1.RoomEndedEvent).
const RoomEndedSubject = "taisen.room.ended"

// roomRole runs the node's rooms: the admin RoomService, the socket
// operations room.* and the room.input message. Games come from
// Options.Games; with none registered the role still answers (every
// create is an unknown game).
type roomRole struct{ a *App }

func (roomRole) Name() string { return "rooms" }

func (r roomRole) Start(context.Context) error {
	a := r.a
	games := a.opts.Games
	if games == nil {
		games = &game.Registry{}
	}
	log := a.log.With("component", "room")
	deliver := &room.GatewayDeliverer{GW: a.gw, Log: log}
	if a.opts.Clock != nil {
		deliver.Now = a.opts.Clock.Now
	}
	m, err := room.NewManager(room.Config{}, room.Deps{
		Games:   games,
		Deliver: deliver,
		Ended:   roomSink{st: a.store, bus: a.bus, node: a.cfg.NodeID},
		Secret:  ticketSecret(a.tokenSecret),
		Clock:   a.opts.Clock,
		Metrics: a.reg,
		Logger:  log,
		Bus:     a.bus,
		NodeID:  a.cfg.NodeID,
	})
	if err != nil {
		return err
	}
	if err := m.Listen(); err != nil {
		_ = m.Close(context.Background())
		return err
	}
	if err := m.RegisterOps(a.rpc); err != nil {
		_ = m.Close(context.Background())
		return err
	}
	a.rooms.Store(m)
	return nil
}

// Stop ends the rooms still running (status aborted, results stored).
func (r roomRole) Stop(ctx context.Context) error {
	if m := r.a.rooms.Swap(nil); m != nil {
		return m.Close(ctx)
	}
	return nil
}

// ticketSecret derives the join tickets' signing key from the token
// secret, which every node of a cluster shares.
func ticketSecret(tokenSecret string) []byte {
	h := hmac.New(sha256.New, []byte(tokenSecret))
	h.Write([]byte("taisen room tickets v1"))
	return h.Sum(nil)
}

// roomSink stores an ended room's result and publishes room.ended.
type roomSink struct {
	st   store.RoomResults
	bus  bus.Bus
	node string
}

func (s roomSink) RoomEnded(ctx context.Context, r room.Result) error {
	rec := store.RoomResult{RoomID: r.Room, Game: r.Game, Status: string(r.Status), Result: r.Result, Reason: r.Reason,
		Labels: r.Labels, Inputs: int64(r.Inputs), CreatedAt: r.CreatedAt, EndedAt: r.EndedAt}
	ev := &clusterv1.RoomEndedEvent{RoomId: r.Room, Game: r.Game, Status: room.StatusProto(r.Status), Result: r.Result,
		Reason: r.Reason, Labels: r.Labels, Inputs: r.Inputs, CreatedAtMs: r.CreatedAt.UnixMilli(), EndedAtMs: r.EndedAt.UnixMilli(), NodeId: s.node}
	for _, p := range r.Players {
		rec.Players = append(rec.Players, store.RoomPlayer{Seat: int(p.Seat), UserID: p.UserID})
		ev.Players = append(ev.Players, &apiv1.RoomPlayer{Seat: int32(p.Seat), UserId: p.UserID})
	}
	errStore := s.st.PutRoomResult(ctx, rec)
	ev.Stored = errStore == nil
	b, err := proto.Marshal(ev)
	if err != nil {
		return errors.Join(errStore, fmt.Errorf("encode room.ended: %w", err))
	}
	if err := s.bus.Publish(ctx, RoomEndedSubject, b); err != nil {
		return errors.Join(errStore, fmt.Errorf("publish room.ended: %w", err))
	}
	return errStore
}
