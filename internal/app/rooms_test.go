package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/taisen-dev/taisen/client"
	"github.com/taisen-dev/taisen/examples/arena"
	"github.com/taisen-dev/taisen/examples/tictactoe"
	"github.com/taisen-dev/taisen/game"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/app"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/room"
	"github.com/taisen-dev/taisen/taisentest"
)

// roomPlayer is a logged-in client of a room test.
type roomPlayer struct {
	t    *testing.T
	s    *client.Socket
	user string
}

func (p *roomPlayer) rpc(ctx context.Context, op string, req, resp proto.Message) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	out, err := p.s.RPC(ctx, op, b)
	if err != nil {
		return err
	}
	return proto.Unmarshal(out, resp)
}

func (p *roomPlayer) input(room, typ, payload string) {
	p.t.Helper()
	b, _ := proto.Marshal(&apiv1.RoomInput{RoomId: room, Type: typ, Payload: []byte(payload)})
	if err := p.s.Send("room.input", b); err != nil {
		p.t.Fatal(err)
	}
}

// push waits for the next push of kind and decodes it into m.
func (p *roomPlayer) push(kind string, m proto.Message) {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case push := <-p.s.Pushes():
			if push.GetKind() != kind {
				continue
			}
			if push.GetPayloadType() != string(m.ProtoReflect().Descriptor().FullName()) {
				p.t.Fatalf("%s push with payload type %q", kind, push.GetPayloadType())
			}
			if err := proto.Unmarshal(push.GetPayload(), m); err != nil {
				p.t.Fatal(err)
			}
			return
		case <-timeout:
			p.t.Fatalf("%s: no %s push", p.user, kind)
		}
	}
}

// message waits for the game's message of type typ.
func (p *roomPlayer) message(typ string) *apiv1.RoomMessage {
	p.t.Helper()
	for {
		var m apiv1.RoomMessage
		p.push("room.message", &m)
		if m.Type == typ {
			return &m
		}
	}
}

func TestTicTacToeRoomOverTheSocket(t *testing.T) {
	var games game.Registry
	if err := games.Register(game.MustNew(tictactoe.Def)); err != nil {
		t.Fatal(err)
	}
	n := taisentest.StartNode(t, taisentest.Options{Games: &games})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ended := make(chan *clusterv1.RoomEndedEvent, 1)
	sub, err := n.Bus().Subscribe(app.RoomEndedSubject, func(m *bus.Msg) {
		ev := &clusterv1.RoomEndedEvent{}
		if proto.Unmarshal(m.Data, ev) == nil {
			ended <- ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	c, err := client.New(n.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var players []*roomPlayer
	for _, dev := range []string{"device-room-alice", "device-room-bob"} {
		s, err := c.Login(ctx, client.DeviceCredential(dev, true), client.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		players = append(players, &roomPlayer{t: t, s: s, user: s.Session().GetUserId()})
	}
	alice, bob := players[0], players[1]

	rooms := adminv1connect.NewRoomServiceClient(http.DefaultClient, n.AdminURL)
	req := connect.NewRequest(&adminv1.CreateRoomRequest{Game: tictactoe.Name, Params: []byte(`{"turn_seconds":30}`),
		UserIds: []string{alice.user, bob.user}, Labels: map[string]string{"queue": "casual"}})
	req.Header().Set("Authorization", "Bearer "+n.ServerKey)
	created, err := rooms.CreateRoom(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.Msg.RoomId
	if len(created.Msg.Tickets) != 2 {
		t.Fatalf("tickets %v", created.Msg.Tickets)
	}

	// A ticket is for its user only.
	var join apiv1.JoinRoomResponse
	if err := bob.rpc(ctx, "room.join", &apiv1.JoinRoomRequest{Ticket: created.Msg.Tickets[0].Ticket}, &join); client.CodeOf(err) != realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED {
		t.Fatalf("bob joining with alice's ticket: %v, want PERMISSION_DENIED", err)
	}
	for i, p := range players {
		join.Reset()
		if err := p.rpc(ctx, "room.join", &apiv1.JoinRoomRequest{Ticket: created.Msg.Tickets[i].Ticket}, &join); err != nil {
			t.Fatalf("%s joins: %v", p.user, err)
		}
		if join.Seat != int32(i) || join.Room.GetRoomId() != roomID || join.Room.GetGame() != tictactoe.Name || join.Room.GetLabels()["queue"] != "casual" {
			t.Fatalf("join reply %v", &join)
		}
	}
	var mine apiv1.ListMyRoomsResponse
	if err := alice.rpc(ctx, "room.list_mine", &apiv1.ListMyRoomsRequest{}, &mine); err != nil || len(mine.Rooms) != 1 || mine.Rooms[0].RoomId != roomID {
		t.Fatalf("alice's rooms %v, %v", &mine, err)
	}

	// Carol watches: a spectator ticket from the admin API, read-only.
	cs, err := c.Login(ctx, client.DeviceCredential("device-room-carol", true), client.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	carol := &roomPlayer{t: t, s: cs, user: cs.Session().GetUserId()}
	sreq := connect.NewRequest(&adminv1.SpectateRoomRequest{RoomId: roomID, UserId: carol.user})
	sreq.Header().Set("Authorization", "Bearer "+n.ServerKey)
	spec, err := rooms.SpectateRoom(ctx, sreq)
	if err != nil {
		t.Fatal(err)
	}
	join.Reset()
	if err := carol.rpc(ctx, "room.join", &apiv1.JoinRoomRequest{Ticket: spec.Msg.Ticket}, &join); err != nil || !join.Spectator || join.Seat != -1 {
		t.Fatalf("carol spectates: %v, %v", &join, err)
	}
	carol.input(roomID, "move", `{"cell":8}`)
	var refused apiv1.RoomRejected
	carol.push("room.rejected", &refused)
	if refused.Cause != apiv1.RoomRejectCause_ROOM_REJECT_CAUSE_NOT_IN_ROOM {
		t.Fatalf("a spectator's input: %v", &refused)
	}
	for _, p := range players {
		if m := p.message("start"); string(m.Payload) != `{"turn":0,"turn_ms":30000}` || m.RoomId != roomID {
			t.Fatalf("%s: start %v", p.user, m)
		}
	}

	// A move out of turn comes back to its sender only.
	bob.input(roomID, "move", `{"cell":4}`)
	var rej apiv1.RoomRejected
	bob.push("room.rejected", &rej)
	if rej.Reason != "not your turn" || rej.Cause != apiv1.RoomRejectCause_ROOM_REJECT_CAUSE_GAME {
		t.Fatalf("rejection %v", &rej)
	}
	for i, cell := range []string{"0", "3", "1", "4", "2"} {
		players[i%2].input(roomID, "move", `{"cell":`+cell+`}`)
		for _, p := range players {
			if m := p.message("moved"); !proto.Equal(m, &apiv1.RoomMessage{RoomId: roomID, Type: "moved", Payload: m.Payload}) {
				t.Fatalf("%s: moved %v", p.user, m)
			}
		}
	}
	for range 5 {
		carol.message("moved")
	}
	for _, p := range append(players, carol) {
		if m := p.message("over"); string(m.Payload) != `{"winner":0,"reason":"line"}` {
			t.Fatalf("%s: over %s", p.user, m.Payload)
		}
		var end apiv1.RoomEnded
		p.push("room.ended", &end)
		if end.Status != apiv1.RoomEndStatus_ROOM_END_STATUS_FINISHED || string(end.Result) != `{"winner":0,"reason":"line"}` {
			t.Fatalf("%s: end %v", p.user, &end)
		}
	}

	select {
	case ev := <-ended:
		if ev.RoomId != roomID || !ev.Stored || ev.Status != apiv1.RoomEndStatus_ROOM_END_STATUS_FINISHED || len(ev.Players) != 2 || ev.NodeId != n.NodeID {
			t.Fatalf("room.ended event %v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no room.ended event on the bus")
	}
	res, err := n.Store().RoomResult(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "finished" || string(res.Result) != `{"winner":0,"reason":"line"}` || res.Labels["queue"] != "casual" ||
		len(res.Players) != 2 || res.Players[0].UserID != alice.user || res.Players[1].UserID != bob.user {
		t.Fatalf("stored result %+v", res)
	}

	// The room is gone: an input now is answered with NOT_IN_ROOM.
	alice.input(roomID, "move", `{"cell":8}`)
	alice.push("room.rejected", &rej)
	if rej.Cause != apiv1.RoomRejectCause_ROOM_REJECT_CAUSE_NOT_IN_ROOM {
		t.Fatalf("input to an ended room: %v", &rej)
	}
	lreq := connect.NewRequest(&adminv1.ListRoomsRequest{Game: tictactoe.Name})
	lreq.Header().Set("Authorization", "Bearer "+n.ServerKey)
	if list, err := rooms.ListRooms(ctx, lreq); err != nil || len(list.Msg.Rooms) != 0 {
		t.Fatalf("rooms after the end: %v, %v", list, err)
	}
}

func TestRoomAdminAPI(t *testing.T) {
	var games game.Registry
	if err := games.Register(game.MustNew(tictactoe.Def)); err != nil {
		t.Fatal(err)
	}
	n := taisentest.StartNode(t, taisentest.Options{Games: &games})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ended := make(chan *clusterv1.RoomEndedEvent, 1)
	sub, err := n.Bus().Subscribe(app.RoomEndedSubject, func(m *bus.Msg) {
		ev := &clusterv1.RoomEndedEvent{}
		if proto.Unmarshal(m.Data, ev) == nil {
			ended <- ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	rooms := adminv1connect.NewRoomServiceClient(http.DefaultClient, n.AdminURL)
	authed := func(r interface{ Header() http.Header }) { r.Header().Set("Authorization", "Bearer "+n.ServerKey) }

	bad := connect.NewRequest(&adminv1.CreateRoomRequest{Game: "chess", UserIds: []string{"a", "b"}})
	authed(bad)
	if _, err := rooms.CreateRoom(ctx, bad); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown game: %v, want NotFound", err)
	}
	bad = connect.NewRequest(&adminv1.CreateRoomRequest{Game: tictactoe.Name, UserIds: []string{"a"}})
	authed(bad)
	if _, err := rooms.CreateRoom(ctx, bad); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("one player for tictactoe: %v, want InvalidArgument", err)
	}

	req := connect.NewRequest(&adminv1.CreateRoomRequest{Game: tictactoe.Name, UserIds: []string{"u-1", "u-2"}, Labels: map[string]string{"region": "eu"}})
	authed(req)
	created, err := rooms.CreateRoom(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	ins := connect.NewRequest(&adminv1.InspectRoomRequest{RoomId: created.Msg.RoomId})
	authed(ins)
	got, err := rooms.InspectRoom(ctx, ins)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Msg.Summary) != ".../.../... turn 0" || len(got.Msg.Seats) != 2 || got.Msg.Seats[1].State != "waiting" || got.Msg.StateBytes == 0 || got.Msg.SnapshotBytes == 0 {
		t.Fatalf("inspect %v", got.Msg)
	}
	snap, err := room.DecodeSnapshot(got.Msg.Snapshot)
	if err != nil || snap.Game != tictactoe.Name || len(snap.State) != int(got.Msg.StateBytes) {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}
	list := connect.NewRequest(&adminv1.ListRoomsRequest{Labels: map[string]string{"region": "eu"}})
	authed(list)
	if l, err := rooms.ListRooms(ctx, list); err != nil || len(l.Msg.Rooms) != 1 {
		t.Fatalf("list %v %v", l, err)
	}
	end := connect.NewRequest(&adminv1.EndRoomRequest{RoomId: created.Msg.RoomId, Reason: "maintenance"})
	authed(end)
	if _, err := rooms.EndRoom(ctx, end); err != nil {
		t.Fatal(err)
	}
	if _, err := rooms.EndRoom(ctx, end); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("ending an ended room: %v, want NotFound", err)
	}
	// room.ended is published once the result is stored.
	select {
	case ev := <-ended:
		if ev.RoomId != created.Msg.RoomId || !ev.Stored {
			t.Fatalf("room.ended %v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no room.ended event")
	}
	res, err := n.Store().RoomResult(ctx, created.Msg.RoomId)
	if err != nil || res.Status != "ended" || res.Reason != "maintenance" || res.Labels["region"] != "eu" {
		t.Fatalf("stored %+v, %v", res, err)
	}
}

// TestRoomWithAPlayerOnAnotherNode: the room lives on node A; bob's
// session lives on node B, which forwards his join, inputs, disconnect and
// return to A over the bus; the room's messages reach him through B.
func TestRoomWithAPlayerOnAnotherNode(t *testing.T) {
	var games game.Registry
	for _, g := range []game.Game{game.MustNew(tictactoe.Def), game.MustNew(arena.Def)} {
		if err := games.Register(g); err != nil {
			t.Fatal(err)
		}
	}
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Games: &games})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a, Games: &games})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	login := func(n *taisentest.Node, device string) *roomPlayer {
		c, err := client.New(n.ClientURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		s, err := c.Login(ctx, client.DeviceCredential(device, true), client.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return &roomPlayer{t: t, s: s, user: s.Session().GetUserId()}
	}
	alice, bob := login(a, "device-2n-alice"), login(b, "device-2n-bob")

	rooms := adminv1connect.NewRoomServiceClient(http.DefaultClient, a.AdminURL)
	req := connect.NewRequest(&adminv1.CreateRoomRequest{Game: tictactoe.Name, UserIds: []string{alice.user, bob.user}})
	req.Header().Set("Authorization", "Bearer "+a.ServerKey)
	created, err := rooms.CreateRoom(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.Msg.RoomId
	var join apiv1.JoinRoomResponse
	if err := alice.rpc(ctx, "room.join", &apiv1.JoinRoomRequest{Ticket: created.Msg.Tickets[0].Ticket}, &join); err != nil {
		t.Fatal(err)
	}
	if err := bob.rpc(ctx, "room.join", &apiv1.JoinRoomRequest{Ticket: created.Msg.Tickets[1].Ticket}, &join); err != nil {
		t.Fatalf("bob joins through node B: %v", err)
	}
	if join.Seat != 1 || join.Room.GetRoomId() != roomID || len(join.Room.GetPlayers()) != 2 {
		t.Fatalf("bob's join %v", &join)
	}
	var mine apiv1.ListMyRoomsResponse
	if err := bob.rpc(ctx, "room.list_mine", &apiv1.ListMyRoomsRequest{}, &mine); err != nil || len(mine.Rooms) != 1 || mine.Rooms[0].RoomId != roomID {
		t.Fatalf("bob's rooms seen from node B: %v, %v", &mine, err)
	}
	alice.message("start")
	bob.message("start")

	alice.input(roomID, "move", `{"cell":0}`)
	bob.message("moved")
	bob.input(roomID, "move", `{"cell":3}`) // from node B to the room on A
	alice.message("moved")
	bob.message("moved")

	// Bob's socket on B drops: A's room holds his seat...
	_ = bob.s.Close()
	inspect := func() string {
		req := connect.NewRequest(&adminv1.InspectRoomRequest{RoomId: roomID})
		req.Header().Set("Authorization", "Bearer "+a.ServerKey)
		resp, err := rooms.InspectRoom(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.Seats[1].State
	}
	deadline := time.Now().Add(10 * time.Second)
	for inspect() != "disconnected" {
		if time.Now().After(deadline) {
			t.Fatalf("bob's seat is %q after his socket closed, want disconnected", inspect())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// ...and gives it back when he logs in again on B: the game sends him
	// the board.
	bob = login(b, "device-2n-bob")
	if m := bob.message("board"); m.RoomId != roomID {
		t.Fatalf("board %v", m)
	}
	for _, cell := range []string{"1", "4", "2"} {
		if cell == "4" {
			bob.input(roomID, "move", `{"cell":4}`)
		} else {
			alice.input(roomID, "move", `{"cell":`+cell+`}`)
		}
		bob.message("moved")
	}
	for _, p := range []*roomPlayer{alice, bob} {
		var end apiv1.RoomEnded
		p.push("room.ended", &end)
		if end.Status != apiv1.RoomEndStatus_ROOM_END_STATUS_FINISHED || string(end.Result) != `{"winner":0,"reason":"line"}` {
			t.Fatalf("%s: end %v", p.user, &end)
		}
	}

	// Room state at tick rate reaches both: alice's locally, bob's as one
	// multicast to node B.
	req = connect.NewRequest(&adminv1.CreateRoomRequest{Game: arena.Name, UserIds: []string{alice.user, bob.user}})
	req.Header().Set("Authorization", "Bearer "+a.ServerKey)
	if created, err = rooms.CreateRoom(ctx, req); err != nil {
		t.Fatal(err)
	}
	for i, p := range []*roomPlayer{alice, bob} {
		if err := p.rpc(ctx, "room.join", &apiv1.JoinRoomRequest{Ticket: created.Msg.Tickets[i].Ticket}, &join); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*roomPlayer{alice, bob} {
		select {
		case e := <-p.s.Ephemerals():
			var m apiv1.RoomMessage
			if e.GetKind() != "room.message" || proto.Unmarshal(e.GetPayload(), &m) != nil || m.Type != "pos" || m.RoomId != created.Msg.RoomId {
				t.Fatalf("%s: ephemeral %v", p.user, e)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no room state", p.user)
		}
	}
}
