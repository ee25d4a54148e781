package room

import (
	"context"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/internal/gateway"
)

// fakeGW records which way each delivery went.
type fakeGW struct {
	mu        sync.Mutex
	live      map[string]bool // local sessions that take pushes
	pushed    []string        // session ids, PushLocal
	multicast []string        // session ids, MulticastLocal
	bus       []string        // user ids, SendMany
	last      gateway.Message
}

func (f *fakeGW) SendMany(_ context.Context, users []string, m gateway.Message) ([]uint64, []error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bus, f.last = append(f.bus, users...), m
	return make([]uint64, len(users)), make([]error, len(users))
}

func (f *fakeGW) PushLocal(ids []string, m gateway.Message) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = m
	n := 0
	for _, id := range ids {
		if f.live[id] {
			f.pushed = append(f.pushed, id)
			n++
		}
	}
	return n
}

func (f *fakeGW) MulticastLocal(ids []string, m gateway.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.multicast, f.last = append(f.multicast, ids...), m
}

func TestGatewayDelivererSendsLocallyWhenItCan(t *testing.T) {
	gw := &fakeGW{live: map[string]bool{"s-alice": true}}
	d := &GatewayDeliverer{GW: gw}
	d.Track(gateway.SessionEvent{Kind: gateway.SessionAttached, UserID: "alice", SessionID: "s-alice"})
	d.Track(gateway.SessionEvent{Kind: gateway.SessionAttached, UserID: "carol", SessionID: "s-carol-old"}) // ended meanwhile
	d.Track(gateway.SessionEvent{Kind: gateway.SessionAttached, UserID: "dave", SessionID: "s-dave"})
	d.Track(gateway.SessionEvent{Kind: gateway.SessionEnded, UserID: "dave", SessionID: "s-dave", Cause: gateway.EndMoved})

	d.Deliver([]string{"alice", "bob", "carol", "dave"}, Message{Kind: KindGame, Room: "r1", Type: "moved", Payload: []byte("x")})
	if !slices.Equal(gw.pushed, []string{"s-alice"}) || !slices.Equal(gw.bus, []string{"bob", "dave", "carol"}) {
		t.Fatalf("durable: local %v, bus %v; want alice local, bob, dave (moved away) and carol (session gone) over the bus", gw.pushed, gw.bus)
	}
	var rm apiv1.RoomMessage
	if gw.last.Kind != KindNameMessage || gw.last.PayloadType != "taisen.api.v1.RoomMessage" || proto.Unmarshal(gw.last.Payload, &rm) != nil ||
		rm.RoomId != "r1" || rm.Type != "moved" || string(rm.Payload) != "x" {
		t.Fatalf("message %+v (%v)", gw.last, &rm)
	}

	gw.pushed, gw.bus = nil, nil
	d.Deliver([]string{"alice", "bob"}, Message{Kind: KindGame, Room: "r1", Type: "pos", Ephemeral: true})
	if !slices.Equal(gw.multicast, []string{"s-alice"}) || !slices.Equal(gw.bus, []string{"bob"}) || len(gw.pushed) != 0 || !gw.last.Ephemeral {
		t.Fatalf("ephemeral: multicast %v, bus %v, pushed %v", gw.multicast, gw.bus, gw.pushed)
	}
}
