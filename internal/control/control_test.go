package control

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/bus/natsbus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newBus starts an in-process NATS and connects to it for the test.
func newBus(t *testing.T) *natsbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := natsbus.StartServer(ctx, natsbus.ServerConfig{StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	b, err := natsbus.Connect(ctx, natsbus.Config{Server: s, Name: "control-test"})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	return b
}

// fakeClock ticks only when the test says so.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	ticks chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), ticks: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(time.Duration) Ticker { return fakeTicker{c.ticks} }

// tick advances the clock by d and delivers the tick (blocking until the
// heartbeat takes it).
func (c *fakeClock) tick(d time.Duration) time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	c.ticks <- now
	return now
}

type fakeTicker struct{ c chan time.Time }

func (t fakeTicker) C() <-chan time.Time { return t.c }
func (fakeTicker) Stop()                 {}

// loadBox is a LoadSource the test changes.
type loadBox struct {
	mu sync.Mutex
	l  Load
}

func (b *loadBox) Load() Load {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.l
}

func (b *loadBox) set(l Load) {
	b.mu.Lock()
	b.l = l
	b.mu.Unlock()
}

// run runs h until the test ends.
func run(t *testing.T, h *Heartbeat) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.Run(context.Background()) }()
	t.Cleanup(func() {
		h.Stop()
		assert.NoError(t, <-done)
	})
}

// listed returns the listed record of node id, or nil.
func listed(ctx context.Context, c *assert.CollectT, r *Registry, id string) *clusterv1.NodeRecord {
	nodes, err := r.List(ctx)
	assert.NoError(c, err)
	for _, n := range nodes {
		if n.NodeId == id {
			return n
		}
	}
	return nil
}

func TestHeartbeatRecord(t *testing.T) {
	b := newBus(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	clock := newFakeClock()
	start := clock.Now()
	load := &loadBox{l: Load{Sessions: 3, Sockets: 4, DetachedSessions: 1, EpollLoops: 2, Ready: true}}
	h, err := NewHeartbeat(ctx, Config{
		NodeID: "n1", Roles: []string{"gateway"}, Version: "1.2.3",
		ClientAddr: "10.0.0.1:7350", AdminAddr: "10.0.0.1:7351", Interval: time.Second,
	}, Deps{Bus: b, Load: load, Clock: clock})
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, h.TTL())
	reg, err := NewRegistry(ctx, b, 1, nil)
	require.NoError(t, err)

	nodes, err := reg.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, nodes, "nothing before the first heartbeat")

	run(t, h)
	var got *clusterv1.NodeRecord
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got = listed(ctx, c, reg, "n1")
		assert.NotNil(c, got)
	}, 5*time.Second, 10*time.Millisecond, "first record written at once")
	want := &clusterv1.NodeRecord{
		NodeId: "n1", Roles: []string{"gateway"}, Version: "1.2.3", ClientVersions: nil,
		Sessions: 3, Sockets: 4, DetachedSessions: 1, EpollLoops: 2, Ready: true,
		Endpoints: &clusterv1.NodeEndpoints{Client: "10.0.0.1:7350", Admin: "10.0.0.1:7351"},
	}
	assert.True(t, got.StartedAt.AsTime().Equal(start), "started_at %v", got.StartedAt.AsTime())
	assert.True(t, got.UpdatedAt.AsTime().Equal(start), "updated_at %v", got.UpdatedAt.AsTime())
	got.StartedAt, got.UpdatedAt = nil, nil
	assert.True(t, proto.Equal(want, got), "record %v", got)

	// Each tick writes the load of that moment.
	load.set(Load{Sessions: 10, Sockets: 12, Ready: false, Draining: true})
	now := clock.tick(time.Second)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got := listed(ctx, c, reg, "n1")
		if assert.NotNil(c, got) {
			assert.True(c, got.UpdatedAt.AsTime().Equal(now))
			assert.Equal(c, uint32(10), got.Sessions)
			assert.Equal(c, uint32(12), got.Sockets)
			assert.False(c, got.Ready)
			assert.True(c, got.Draining)
			assert.True(c, got.StartedAt.AsTime().Equal(start), "started_at unchanged")
		}
	}, 5*time.Second, 10*time.Millisecond)
}

// TestHeartbeatExpires checks that two nodes see each other and that a
// stopped node stays listed until its TTL, then disappears.
func TestHeartbeatExpires(t *testing.T) {
	b := newBus(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const interval = 200 * time.Millisecond // TTL 600 ms, 1 s on the bus
	beats := map[string]*Heartbeat{}
	for _, id := range []string{"n1", "n2"} {
		h, err := NewHeartbeat(ctx, Config{NodeID: id, Interval: interval},
			Deps{Bus: b, Load: LoadFunc(func() Load { return Load{Ready: true} })})
		require.NoError(t, err)
		beats[id] = h
		run(t, h)
	}
	reg, err := NewRegistry(ctx, b, 1, nil)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NotNil(c, listed(ctx, c, reg, "n1"))
		assert.NotNil(c, listed(ctx, c, reg, "n2"))
	}, 5*time.Second, 10*time.Millisecond)

	beats["n1"].Stop()
	stopped := time.Now()
	nodes, err := reg.List(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 2, "a stopped node stays listed until its TTL")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Nil(c, listed(ctx, c, reg, "n1"))
	}, 5*time.Second, 20*time.Millisecond, "stopped node still listed")
	t.Logf("n1 gone %v after its last heartbeat", time.Since(stopped).Round(time.Millisecond))
	nodes, err = reg.List(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	assert.Equal(t, "n2", nodes[0].NodeId, "the running node stays")
}

func TestHeartbeatStopBeforeRun(t *testing.T) {
	b := newBus(t)
	h, err := NewHeartbeat(t.Context(), Config{NodeID: "n"}, Deps{Bus: b, Load: LoadFunc(func() Load { return Load{} })})
	require.NoError(t, err)
	h.Stop()
	h.Stop()
	assert.Error(t, h.Run(t.Context()), "Run after Stop")
}

func TestNewHeartbeatErrors(t *testing.T) {
	b := newBus(t)
	load := LoadFunc(func() Load { return Load{} })
	for name, tt := range map[string]struct {
		cfg  Config
		deps Deps
	}{
		"no node id":        {Config{}, Deps{Bus: b, Load: load}},
		"no bus":            {Config{NodeID: "n"}, Deps{Load: load}},
		"no load":           {Config{NodeID: "n"}, Deps{Bus: b}},
		"negative interval": {Config{NodeID: "n", Interval: -time.Second}, Deps{Bus: b, Load: load}},
	} {
		_, err := NewHeartbeat(t.Context(), tt.cfg, tt.deps)
		assert.Error(t, err, name)
	}
}

// TestNodeServiceHandler serves ListNodes over HTTP and leaves out a record
// that does not decode.
func TestNodeServiceHandler(t *testing.T) {
	b := newBus(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	kv, err := b.KeyValue(ctx, bus.KVConfig{Bucket: Bucket, Memory: true})
	require.NoError(t, err)
	for _, rec := range []*clusterv1.NodeRecord{{NodeId: "b", Sessions: 2}, {NodeId: "a", Draining: true}} {
		data, err := proto.Marshal(rec)
		require.NoError(t, err)
		_, err = kv.Put(ctx, rec.NodeId, data, time.Minute)
		require.NoError(t, err)
	}
	_, err = kv.Put(ctx, "garbage", []byte{0xff, 0xff, 0xff}, time.Minute)
	require.NoError(t, err)

	var logs syncBuffer
	reg, err := NewRegistry(ctx, b, 1, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(reg.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := adminv1connect.NewNodeServiceClient(srv.Client(), srv.URL)
	resp, err := client.ListNodes(ctx, connect.NewRequest(&adminv1.ListNodesRequest{}))
	require.NoError(t, err)
	var ids []string
	for _, n := range resp.Msg.Nodes {
		ids = append(ids, n.NodeId)
	}
	assert.Equal(t, []string{"a", "b"}, ids, "sorted, garbage left out")
	assert.True(t, resp.Msg.Nodes[0].Draining)
	assert.Equal(t, uint32(2), resp.Msg.Nodes[1].Sessions)
	assert.Contains(t, logs.String(), "undecodable node record")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
