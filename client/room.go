package client

import (
	"context"
	"fmt"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

// Push (and ephemeral) kinds of rooms.
const (
	// PushKindRoomMessage is a message from a room's game
	// (apiv1.RoomMessage); state at tick rate arrives as an ephemeral
	// message of the same kind.
	PushKindRoomMessage = "room.message"
	// PushKindRoomRejected is a refused input (apiv1.RoomRejected).
	PushKindRoomRejected = "room.rejected"
	// PushKindRoomEnded is the end of a room (apiv1.RoomEnded).
	PushKindRoomEnded = "room.ended"
)

// JoinRoom joins the room of a ticket the game's backend handed out. It
// is also how a player takes the seat back after a disconnect.
func (s *Socket) JoinRoom(ctx context.Context, ticket string) (*apiv1.JoinRoomResponse, error) {
	resp := &apiv1.JoinRoomResponse{}
	if err := s.call(ctx, "room.join", &apiv1.JoinRoomRequest{Ticket: ticket}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// RejoinRoom takes the seat back in a room the user joined before, without
// a ticket (after a reconnect to another node, or once the ticket expired).
func (s *Socket) RejoinRoom(ctx context.Context, roomID string) (*apiv1.JoinRoomResponse, error) {
	resp := &apiv1.JoinRoomResponse{}
	if err := s.call(ctx, "room.join", &apiv1.JoinRoomRequest{RoomId: roomID}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// LeaveRoom leaves a room for good.
func (s *Socket) LeaveRoom(ctx context.Context, roomID string) error {
	return s.call(ctx, "room.leave", &apiv1.LeaveRoomRequest{RoomId: roomID}, &apiv1.LeaveRoomResponse{})
}

// MyRooms lists the active rooms the user plays in or watches.
func (s *Socket) MyRooms(ctx context.Context) ([]*apiv1.RoomInfo, error) {
	resp := &apiv1.ListMyRoomsResponse{}
	if err := s.call(ctx, "room.list_mine", &apiv1.ListMyRoomsRequest{}, resp); err != nil {
		return nil, err
	}
	return resp.GetRooms(), nil
}

// SendRoomInput sends a player's action to a room (fire-and-forget): what
// it changes comes back as room messages, a refusal as a room.rejected
// push.
func (s *Socket) SendRoomInput(roomID, typ string, payload []byte) error {
	b, err := s.marshal(&apiv1.RoomInput{RoomId: roomID, Type: typ, Payload: payload})
	if err != nil {
		return fmt.Errorf("client: room input: %w", err)
	}
	return s.Send("room.input", b)
}

// DecodeRoomMessage decodes a push of kind room.message.
func (s *Socket) DecodeRoomMessage(p *realtimev1.Push) (*apiv1.RoomMessage, error) {
	m := &apiv1.RoomMessage{}
	if err := s.decodePush(p, PushKindRoomMessage, m); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeRoomState decodes an ephemeral message of kind room.message (state
// at tick rate).
func (s *Socket) DecodeRoomState(e *realtimev1.Ephemeral) (*apiv1.RoomMessage, error) {
	return s.DecodeRoomMessage(&realtimev1.Push{Kind: e.GetKind(), Payload: e.GetPayload(), PayloadType: e.GetPayloadType()})
}

// DecodeRoomRejected decodes a push of kind room.rejected.
func (s *Socket) DecodeRoomRejected(p *realtimev1.Push) (*apiv1.RoomRejected, error) {
	m := &apiv1.RoomRejected{}
	if err := s.decodePush(p, PushKindRoomRejected, m); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeRoomEnded decodes a push of kind room.ended.
func (s *Socket) DecodeRoomEnded(p *realtimev1.Push) (*apiv1.RoomEnded, error) {
	m := &apiv1.RoomEnded{}
	if err := s.decodePush(p, PushKindRoomEnded, m); err != nil {
		return nil, err
	}
	return m, nil
}
