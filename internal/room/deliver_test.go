package room

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

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
	resolved  []string        // user ids, Resolve
	remote    []string        // session ids, Multicast
	last      gateway.Message
}

func (f *fakeGW) Resolve(_ context.Context, users []string) ([]gateway.Recipient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resolved = append(f.resolved, users...)
	var out []gateway.Recipient
	for _, u := range users {
		if u != "offline" {
			out = append(out, gateway.Recipient{UserID: u, SessionID: "s-" + u, NodeID: "node-b"})
		}
	}
	return out, nil
}

func (f *fakeGW) Multicast(_ context.Context, to []gateway.Recipient, m gateway.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range to {
		f.remote = append(f.remote, r.SessionID)
	}
	f.last = m
	return nil
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

	// Ephemeral: local sessions without the bus; remote ones by one
	// multicast, their records read once per second.
	now := time.Unix(1000, 0)
	d.Now = func() time.Time { return now }
	gw.pushed, gw.bus = nil, nil
	for range 3 {
		d.Deliver([]string{"alice", "bob", "offline"}, Message{Kind: KindGame, Room: "r1", Type: "pos", Ephemeral: true})
	}
	if !slices.Equal(gw.multicast, []string{"s-alice", "s-alice", "s-alice"}) || !slices.Equal(gw.remote, []string{"s-bob", "s-bob", "s-bob"}) ||
		!slices.Equal(gw.resolved, []string{"bob", "offline"}) || len(gw.pushed) != 0 || len(gw.bus) != 0 || !gw.last.Ephemeral {
		t.Fatalf("ephemeral: local %v, remote %v, resolved %v, pushed %v, bus %v", gw.multicast, gw.remote, gw.resolved, gw.pushed, gw.bus)
	}
	now = now.Add(resolveTTL)
	d.Deliver([]string{"bob"}, Message{Kind: KindGame, Room: "r1", Type: "pos", Ephemeral: true})
	d.Track(gateway.SessionEvent{Kind: gateway.SessionDetached, UserID: "offline"}) // forgets what it knew
	d.Deliver([]string{"offline"}, Message{Kind: KindGame, Room: "r1", Type: "pos", Ephemeral: true})
	if !slices.Equal(gw.resolved, []string{"bob", "offline", "bob", "offline"}) {
		t.Fatalf("resolved %v: want bob again after the TTL and offline again after a session event", gw.resolved)
	}
}
