package natsbus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taisen-dev/taisen/internal/bus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger logs to the test's output at level.
func testLogger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

// startServer starts an embedded server (listen "" = in-process only)
// that shuts down with the test.
func startServer(t testing.TB, listen string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := StartServer(ctx, ServerConfig{
		StoreDir: t.TempDir(),
		Listen:   listen,
		Logger:   testLogger(t, slog.LevelWarn),
	})
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	return s
}

// connect connects to s (in-process when s does not listen) and closes
// the bus with the test.
func connect(t testing.TB, s *Server, name string) *Bus {
	t.Helper()
	level := slog.LevelInfo
	if _, ok := t.(*testing.B); ok {
		level = slog.LevelWarn // keep benchmark output clean
	}
	b, err := Connect(t.Context(), Config{URL: s.ClientURL(), Server: s, Name: name, Logger: testLogger(t, level)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	return b
}

// ctxTimeout returns a context that ends after d or with the test.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// recorder collects the subjects and payloads a handler receives.
type recorder struct {
	mu   sync.Mutex
	msgs []string // "subject=data"
}

func (r *recorder) handle(m *bus.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m.Subject+"="+string(m.Data))
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func TestPubSubWildcards(t *testing.T) {
	s := startServer(t, "")
	b := connect(t, s, "pubsub")
	ctx := ctxTimeout(t, 10*time.Second)

	tests := []struct {
		subject string
		want    []string
	}{
		{"game.1.move", []string{"game.1.move=a"}},
		{"game.*.move", []string{"game.1.move=a", "game.2.move=b"}},
		{"game.*", []string{"game.lobby=d"}},
		{"game.>", []string{"game.1.move=a", "game.2.move=b", "game.1.chat=c", "game.lobby=d"}},
		{">", []string{"game.1.move=a", "game.2.move=b", "game.1.chat=c", "game.lobby=d", "lobby.x.y=e"}},
		{"nobody.*", nil},
	}
	recs := make([]*recorder, len(tests))
	for i, tt := range tests {
		recs[i] = &recorder{}
		sub, err := b.Subscribe(tt.subject, recs[i].handle)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, sub.Unsubscribe()) })
	}
	for _, p := range []string{"game.1.move=a", "game.2.move=b", "game.1.chat=c", "game.lobby=d", "lobby.x.y=e"} {
		subj, data, _ := bytes.Cut([]byte(p), []byte("="))
		require.NoError(t, b.Publish(ctx, string(subj), data))
	}
	require.NoError(t, b.Ping(ctx))
	for i, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			assert.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.Equal(c, tt.want, recs[i].get())
			}, 5*time.Second, 10*time.Millisecond)
		})
	}
}

func TestSubscribeOrderAndUnsubscribe(t *testing.T) {
	s := startServer(t, "")
	b := connect(t, s, "order")
	ctx := ctxTimeout(t, 10*time.Second)

	var running, overlap atomic.Int32
	rec := &recorder{}
	sub, err := b.Subscribe("seq", func(m *bus.Msg) {
		if running.Add(1) > 1 {
			overlap.Add(1)
		}
		time.Sleep(time.Millisecond)
		rec.handle(m)
		running.Add(-1)
	})
	require.NoError(t, err)
	var want []string
	for i := range 50 {
		want = append(want, fmt.Sprintf("seq=%d", i))
		require.NoError(t, b.Publish(ctx, "seq", fmt.Appendf(nil, "%d", i)))
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, want, rec.get())
	}, 5*time.Second, 10*time.Millisecond)
	assert.Zero(t, overlap.Load(), "handlers of one subscription overlapped")

	require.NoError(t, sub.Unsubscribe())
	require.NoError(t, sub.Unsubscribe(), "second Unsubscribe")
	require.NoError(t, b.Publish(ctx, "seq", []byte("late")))
	require.NoError(t, b.Ping(ctx))
	time.Sleep(50 * time.Millisecond)
	assert.Len(t, rec.get(), 50, "message delivered after Unsubscribe")
}

func TestQueueGroup(t *testing.T) {
	s := startServer(t, "")
	b1 := connect(t, s, "q1")
	b2 := connect(t, s, "q2")
	ctx := ctxTimeout(t, 10*time.Second)

	const n = 200
	var mu sync.Mutex
	seen := map[string]int{}    // payload -> deliveries within the group
	perMember := make([]int, 4) // deliveries per member
	for i, b := range []*Bus{b1, b1, b2, b2} {
		_, err := b.QueueSubscribe("jobs.>", "workers", func(m *bus.Msg) {
			mu.Lock()
			defer mu.Unlock()
			seen[string(m.Data)]++
			perMember[i]++
		})
		require.NoError(t, err)
	}
	plain := &recorder{}
	_, err := b2.Subscribe("jobs.>", plain.handle)
	require.NoError(t, err)

	for i := range n {
		require.NoError(t, b1.Publish(ctx, "jobs.x", fmt.Appendf(nil, "%d", i)))
	}
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Len(c, plain.get(), n, "plain subscriber gets every message")
		mu.Lock()
		defer mu.Unlock()
		assert.Len(c, seen, n, "group gets every message")
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // let duplicates, if any, arrive
	mu.Lock()
	defer mu.Unlock()
	for payload, count := range seen {
		assert.Equal(t, 1, count, "message %s delivered %d times within the group", payload, count)
	}
	active := 0
	for _, c := range perMember {
		if c > 0 {
			active++
		}
	}
	assert.Greater(t, active, 1, "one member took all messages: %v", perMember)

	_, err = b1.QueueSubscribe("jobs", "", func(*bus.Msg) {})
	assert.Error(t, err, "empty queue name")
}

func TestRequestReply(t *testing.T) {
	s := startServer(t, "")
	b := connect(t, s, "rr")
	ctx := ctxTimeout(t, 10*time.Second)

	var published atomic.Pointer[bus.Msg]
	_, err := b.Subscribe("echo.*", func(m *bus.Msg) {
		if !m.IsRequest() {
			published.Store(m)
			return
		}
		assert.NoError(t, m.Respond(append([]byte(m.Subject+":"), m.Data...)))
	})
	require.NoError(t, err)

	reply, err := b.Request(ctx, "echo.a", []byte("hi"))
	require.NoError(t, err)
	assert.Equal(t, "echo.a:hi", string(reply))

	require.NoError(t, b.Publish(ctx, "echo.b", []byte("no reply")))
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.NotNil(c, published.Load()) }, 5*time.Second, 10*time.Millisecond)
	m := published.Load()
	assert.False(t, m.IsRequest())
	assert.Error(t, m.Respond([]byte("x")))
}

func TestRequestErrors(t *testing.T) {
	s := startServer(t, "")
	b := connect(t, s, "rr-errors")
	_, err := b.Subscribe("silent", func(*bus.Msg) {}) // never replies
	require.NoError(t, err)

	canceled, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	t.Cleanup(cancel)

	tests := []struct {
		name    string
		ctx     context.Context
		subject string
		want    []error // all must match
		maxTime time.Duration
	}{
		{"no responders", ctxTimeout(t, 5*time.Second), "nobody.home", []error{bus.ErrNoResponders}, time.Second},
		{"deadline", ctxTimeout(t, 100*time.Millisecond), "silent", []error{bus.ErrTimeout, context.DeadlineExceeded}, 2 * time.Second},
		{"canceled", canceled, "silent", []error{bus.ErrTimeout, context.Canceled}, 2 * time.Second},
		{"invalid subject", ctxTimeout(t, time.Second), "a.*", nil, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := b.Request(tt.ctx, tt.subject, []byte("x"))
			require.Error(t, err)
			for _, want := range tt.want {
				assert.ErrorIs(t, err, want)
			}
			assert.Less(t, time.Since(start), tt.maxTime)
			t.Log(err)
		})
	}
}

func TestInvalidSubjects(t *testing.T) {
	s := startServer(t, "")
	b := connect(t, s, "subjects")
	ctx := ctxTimeout(t, 5*time.Second)

	for _, subj := range []string{"", "a..b", ".a", "a.", "a b", "a.*", "a.>", ">"} {
		assert.Error(t, b.Publish(ctx, subj, nil), "publish %q", subj)
	}
	for _, subj := range []string{"", "a..b", "a.>.b", "a\tb"} {
		_, err := b.Subscribe(subj, func(*bus.Msg) {})
		assert.Error(t, err, "subscribe %q", subj)
	}
	_, err := b.Subscribe("a", nil)
	assert.Error(t, err, "nil handler")
}

// TestTwoNodes connects two buses over TCP to one server, as two taisen
// nodes sharing one NATS do.
func TestTwoNodes(t *testing.T) {
	s := startServer(t, "127.0.0.1:0")
	require.NotEmpty(t, s.ClientURL())
	a := connect(t, s, "node-a")
	b := connect(t, s, "node-b")
	ctx := ctxTimeout(t, 10*time.Second)

	recA, recB := &recorder{}, &recorder{}
	_, err := a.Subscribe("room.>", recA.handle)
	require.NoError(t, err)
	_, err = b.Subscribe("room.>", recB.handle)
	require.NoError(t, err)
	_, err = b.Subscribe("node-b.rpc", func(m *bus.Msg) { _ = m.Respond([]byte("b says " + string(m.Data))) })
	require.NoError(t, err)

	require.NoError(t, a.Publish(ctx, "room.1", []byte("from a")))
	require.NoError(t, b.Publish(ctx, "room.2", []byte("from b")))
	want := []string{"room.1=from a", "room.2=from b"}
	for name, rec := range map[string]*recorder{"a": recA, "b": recB} {
		assert.EventuallyWithT(t, func(c *assert.CollectT) {
			got := rec.get()
			slices.Sort(got)
			assert.Equal(c, want, got)
		}, 5*time.Second, 10*time.Millisecond, "node %s", name)
	}

	reply, err := a.Request(ctx, "node-b.rpc", []byte("hi"))
	require.NoError(t, err)
	assert.Equal(t, "b says hi", string(reply))

	kvA, err := a.KeyValue(ctx, bus.KVConfig{Bucket: "shared"})
	require.NoError(t, err)
	kvB, err := b.KeyValue(ctx, bus.KVConfig{Bucket: "shared"})
	require.NoError(t, err)
	rev, err := kvA.Put(ctx, "k", []byte("v1"), 0)
	require.NoError(t, err)
	e, err := kvB.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, bus.Entry{Key: "k", Value: []byte("v1"), Revision: rev}, e)
	rev, err = kvB.Update(ctx, "k", []byte("v2"), rev, 0)
	require.NoError(t, err)
	e, err = kvA.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, bus.Entry{Key: "k", Value: []byte("v2"), Revision: rev}, e)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestReconnect(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxTimeout(t, 30*time.Second)
	s1, err := StartServer(ctx, ServerConfig{StoreDir: dir, Listen: "127.0.0.1:0", Logger: testLogger(t, slog.LevelWarn)})
	require.NoError(t, err)
	url := s1.ClientURL()

	var logs syncBuffer
	b, err := Connect(ctx, Config{URL: url, Name: "reconnect", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	rec := &recorder{}
	_, err = b.Subscribe("after", rec.handle)
	require.NoError(t, err)

	s1.Shutdown()
	_, addr, _ := strings.Cut(url, "://")
	s2, err := StartServer(ctx, ServerConfig{StoreDir: dir, Listen: addr, Logger: testLogger(t, slog.LevelWarn)})
	require.NoError(t, err)
	t.Cleanup(s2.Shutdown)

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, b.nc.IsConnected())
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, b.Ping(ctx))
	require.NoError(t, b.Publish(ctx, "after", []byte("x")), "subscription replayed on reconnect")
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, []string{"after=x"}, rec.get())
	}, 5*time.Second, 10*time.Millisecond)
	out := logs.String()
	assert.Contains(t, out, "level=WARN msg=\"nats disconnected\"")
	assert.Contains(t, out, "level=INFO msg=\"nats reconnected\"")
}

func TestPing(t *testing.T) {
	s := startServer(t, "")
	b := connect(t, s, "ping")
	require.NoError(t, b.Ping(ctxTimeout(t, 5*time.Second)))
	require.NoError(t, b.Ping(t.Context()), "ctx without deadline")
}

func TestClose(t *testing.T) {
	s := startServer(t, "")
	b, err := Connect(t.Context(), Config{Server: s, Name: "close"})
	require.NoError(t, err)
	ctx := ctxTimeout(t, 10*time.Second)
	kv, err := b.KeyValue(ctx, bus.KVConfig{Bucket: "closing"})
	require.NoError(t, err)
	sub, err := b.Subscribe("slow", func(*bus.Msg) {})
	require.NoError(t, err)

	// A handler in progress finishes before Close returns (drain).
	release := make(chan struct{})
	started := make(chan struct{})
	var finished atomic.Bool
	_, err = b.Subscribe("block", func(*bus.Msg) {
		close(started)
		<-release
		finished.Store(true)
	})
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, "block", nil))
	<-started
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a handler was running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-closed)
	assert.True(t, finished.Load())

	calls := map[string]func() error{
		"Publish": func() error { return b.Publish(ctx, "x", nil) },
		"Request": func() error { _, err := b.Request(ctx, "x", nil); return err },
		"Subscribe": func() error {
			_, err := b.Subscribe("x", func(*bus.Msg) {})
			return err
		},
		"QueueSubscribe": func() error {
			_, err := b.QueueSubscribe("x", "q", func(*bus.Msg) {})
			return err
		},
		"KeyValue": func() error { _, err := b.KeyValue(ctx, bus.KVConfig{Bucket: "closing"}); return err },
		"Ping":     func() error { return b.Ping(ctx) },
		"KV.Get":   func() error { _, err := kv.Get(ctx, "k"); return err },
		"KV.Put":   func() error { _, err := kv.Put(ctx, "k", nil, 0); return err },
		"KV.PutTTL": func() error {
			_, err := kv.Put(ctx, "k", nil, time.Second)
			return err
		},
		"KV.Create": func() error { _, err := kv.Create(ctx, "k", nil, 0); return err },
		"KV.Update": func() error { _, err := kv.Update(ctx, "k", nil, 1, 0); return err },
		"KV.Delete": func() error { return kv.Delete(ctx, "k", 0) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			assert.ErrorIs(t, call(), bus.ErrClosed)
		})
	}
	assert.NoError(t, sub.Unsubscribe(), "Unsubscribe after Close")
	assert.NoError(t, b.Close(), "second Close")
}

func TestConnectErrors(t *testing.T) {
	_, err := Connect(t.Context(), Config{})
	assert.Error(t, err, "neither URL nor Server")

	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	start := time.Now()
	_, err = Connect(ctxTimeout(t, 5*time.Second), Config{URL: "nats://" + addr})
	assert.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = Connect(ctx, Config{URL: "nats://" + addr})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestStartServerErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ServerConfig
	}{
		{"no store dir", ServerConfig{}},
		{"bad listen", ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1"}},
		{"bad port", ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := StartServer(t.Context(), tt.cfg)
			assert.Error(t, err)
			assert.Nil(t, s)
		})
	}

	t.Run("port in use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		s, err := StartServer(ctxTimeout(t, 10*time.Second), ServerConfig{StoreDir: t.TempDir(), Listen: l.Addr().String()})
		if s != nil {
			s.Shutdown()
		}
		assert.Error(t, err)
		t.Log(err)
	})

	t.Run("in-process has no URL", func(t *testing.T) {
		s := startServer(t, "")
		assert.Empty(t, s.ClientURL())
	})
}

func TestMapErr(t *testing.T) {
	err := mapErr(context.DeadlineExceeded)
	assert.ErrorIs(t, err, bus.ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NotErrorIs(t, err, context.Canceled)
	other := errors.New("other")
	assert.Equal(t, other, mapErr(other))
}

func TestReconnectDelay(t *testing.T) {
	prev := time.Duration(0)
	for attempts := 1; attempts < 100; attempts++ {
		d := reconnectDelay(attempts)
		assert.GreaterOrEqual(t, d, reconnectMin)
		assert.LessOrEqual(t, d, reconnectMax+reconnectMax/5)
		if attempts < 5 {
			assert.Greater(t, d, prev/2, "backoff grows")
		}
		prev = d
	}
}
