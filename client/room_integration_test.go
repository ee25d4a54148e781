package client

import (
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/taisen-dev/taisen/examples/arena"
	"github.com/taisen-dev/taisen/game"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/taisentest"
)

// TestIntegrationArenaRoom: a one-second arena round with a binary and a
// JSON client: both join, move, receive the 20 Hz positions as ephemeral
// room state, a bad move is rejected, and the end arrives with the result.
func TestIntegrationArenaRoom(t *testing.T) {
	var games game.Registry
	require.NoError(t, games.Register(game.MustNew(arena.Def)))
	n := taisentest.StartNode(t, taisentest.Options{Games: &games})
	ctx := testCtx(t)

	var socks []*Socket
	var users []string
	for _, f := range []Format{FormatBinary, FormatJSON} {
		c := newTestClient(t, n, WithFormat(f))
		sess := login(t, c)
		socks = append(socks, dial(t, c, DialOptions{Session: sess}))
		users = append(users, sess.GetUserId())
	}
	rooms := adminv1connect.NewRoomServiceClient(http.DefaultClient, n.AdminURL)
	req := connect.NewRequest(&adminv1.CreateRoomRequest{Game: arena.Name, Params: []byte(`{"duration_seconds":1}`), UserIds: users})
	req.Header().Set("Authorization", "Bearer "+n.ServerKey)
	created, err := rooms.CreateRoom(ctx, req)
	require.NoError(t, err)
	roomID := created.Msg.RoomId

	for i, s := range socks {
		join, err := s.JoinRoom(ctx, created.Msg.Tickets[i].Ticket)
		require.NoError(t, err)
		require.Equal(t, int32(i), join.GetSeat())
		require.Equal(t, uint32(arena.TickRate), join.GetTickRate())
		mine, err := s.MyRooms(ctx)
		require.NoError(t, err)
		require.Len(t, mine, 1)
		require.NoError(t, s.SendRoomInput(roomID, "move", []byte{0x03, 0xe8, 0x00, 0x00}))
	}
	require.NoError(t, socks[1].SendRoomInput(roomID, "move", []byte("teleport")))
	for i, s := range socks {
		select {
		case e := <-s.Ephemerals():
			m, err := s.DecodeRoomState(e)
			require.NoError(t, err)
			require.Equal(t, roomID, m.GetRoomId())
			require.Equal(t, "pos", m.GetType())
			require.Len(t, m.GetPayload(), arena.FrameSize(2))
		case <-time.After(10 * time.Second):
			t.Fatalf("socket %d: no room state", i)
		}
	}
	rej, err := socks[1].DecodeRoomRejected(nextPush(t, socks[1]))
	require.NoError(t, err)
	require.Equal(t, apiv1.RoomRejectCause_ROOM_REJECT_CAUSE_GAME, rej.GetCause())
	require.Contains(t, rej.GetReason(), "bad move")
	for i, s := range socks {
		end, err := s.DecodeRoomEnded(nextPush(t, s))
		require.NoError(t, err, "socket %d", i)
		require.Equal(t, apiv1.RoomEndStatus_ROOM_END_STATUS_FINISHED, end.GetStatus())
		require.Contains(t, string(end.GetResult()), `"distance"`)
	}
}
