package natsbus

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taisen-dev/taisen/internal/bus"
)

// recvEvent returns the next event of a watch, failing after d.
func recvEvent(t *testing.T, ch <-chan bus.KVEvent, d time.Duration) bus.KVEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		require.True(t, ok, "watch channel closed")
		return ev
	case <-time.After(d):
		t.Fatalf("no watch event within %v", d)
		return bus.KVEvent{}
	}
}

func TestKVKeys(t *testing.T) {
	t.Parallel()
	kv := openKV(t, bus.KVConfig{Bucket: "keys"})
	ctx := ctxTimeout(t, 30*time.Second)

	keys, err := kv.Keys(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{}, keys, "empty bucket")

	for _, k := range []string{"b", "a", "user/7=x", "gone"} {
		_, err := kv.Put(ctx, k, []byte("v"), 0)
		require.NoError(t, err)
	}
	_, err = kv.Put(ctx, "a", []byte("again"), 0) // two writes, one key
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, "gone", 0))
	_, err = kv.Put(ctx, "short", []byte("s"), time.Second)
	require.NoError(t, err)

	keys, err = kv.Keys(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "short", "user/7=x"}, keys)

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		keys, err := kv.Keys(ctx)
		assert.NoError(c, err)
		assert.Equal(c, []string{"a", "b", "user/7=x"}, keys)
	}, 5*time.Second, 50*time.Millisecond, "expired key still listed")
}

func TestKVWatch(t *testing.T) {
	t.Parallel()
	kv := openKV(t, bus.KVConfig{Bucket: "watch"})
	ctx := ctxTimeout(t, 30*time.Second)
	const wait = 5 * time.Second

	revX, err := kv.Put(ctx, "x", []byte("x1"), 0)
	require.NoError(t, err)
	_, err = kv.Put(ctx, "y", []byte("y1"), 0)
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, "y", 0))

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ch, err := kv.Watch(wctx, ">")
	require.NoError(t, err)

	// Initial values: the live key only, then the marker.
	assert.Equal(t, bus.KVEvent{Op: bus.KVPut, Entry: bus.Entry{Key: "x", Value: []byte("x1"), Revision: revX}}, recvEvent(t, ch, wait))
	assert.Equal(t, bus.KVEvent{Op: bus.KVSynced}, recvEvent(t, ch, wait))

	revZ, err := kv.Create(ctx, "z", []byte("z1"), 0)
	require.NoError(t, err)
	assert.Equal(t, bus.KVEvent{Op: bus.KVPut, Entry: bus.Entry{Key: "z", Value: []byte("z1"), Revision: revZ}}, recvEvent(t, ch, wait))

	revX2, err := kv.Update(ctx, "x", []byte("x2"), revX, 0)
	require.NoError(t, err)
	assert.Equal(t, bus.KVEvent{Op: bus.KVPut, Entry: bus.Entry{Key: "x", Value: []byte("x2"), Revision: revX2}}, recvEvent(t, ch, wait))

	require.NoError(t, kv.Delete(ctx, "x", revX2))
	ev := recvEvent(t, ch, wait)
	assert.Equal(t, bus.KVDelete, ev.Op, "%+v", ev)
	assert.Equal(t, "x", ev.Entry.Key)
	assert.Greater(t, ev.Entry.Revision, revX2)
	assert.Empty(t, ev.Entry.Value)

	revT, err := kv.Put(ctx, "t", []byte("t1"), time.Second)
	require.NoError(t, err)
	putAt := time.Now()
	assert.Equal(t, bus.KVEvent{Op: bus.KVPut, Entry: bus.Entry{Key: "t", Value: []byte("t1"), Revision: revT}}, recvEvent(t, ch, wait))
	ev = recvEvent(t, ch, wait)
	assert.Equal(t, bus.KVExpire, ev.Op, "%+v", ev)
	assert.Equal(t, "t", ev.Entry.Key)
	assert.GreaterOrEqual(t, time.Since(putAt), 900*time.Millisecond, "expired early")

	stop()
	for range ch { // drain until the watch closes it
	}
}

func TestKVWatchOneKey(t *testing.T) {
	t.Parallel()
	kv := openKV(t, bus.KVConfig{Bucket: "watch-one"})
	ctx := ctxTimeout(t, 30*time.Second)
	const wait = 5 * time.Second

	ch, err := kv.Watch(ctx, "mine")
	require.NoError(t, err)
	assert.Equal(t, bus.KVEvent{Op: bus.KVSynced}, recvEvent(t, ch, wait), "nothing to start with")

	_, err = kv.Put(ctx, "other", []byte("o"), 0)
	require.NoError(t, err)
	rev, err := kv.Put(ctx, "mine", []byte("m"), 0)
	require.NoError(t, err)
	assert.Equal(t, bus.KVEvent{Op: bus.KVPut, Entry: bus.Entry{Key: "mine", Value: []byte("m"), Revision: rev}}, recvEvent(t, ch, wait))

	_, err = kv.Watch(ctx, "a.b")
	assert.ErrorIs(t, err, ErrInvalidKey)
}

// TestKVWatchEndsWithBus checks that a watch's channel closes when the
// bus closes, without the watcher's ctx ending.
func TestKVWatchEndsWithBus(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	b, err := Connect(t.Context(), Config{Server: s, Name: "watch-close"})
	require.NoError(t, err)
	ctx := ctxTimeout(t, 20*time.Second)
	kv, err := b.KeyValue(ctx, bus.KVConfig{Bucket: "closing"})
	require.NoError(t, err)
	ch, err := kv.Watch(ctx, ">")
	require.NoError(t, err)
	assert.Equal(t, bus.KVSynced, recvEvent(t, ch, 5*time.Second).Op)

	require.NoError(t, b.Close())
	select {
	case _, ok := <-ch:
		assert.False(t, ok, "event after close")
	case <-ctx.Done():
		t.Fatal("watch channel not closed after the bus closed")
	}
}

// TestKVWatchAcrossRestart checks that a watch keeps reporting after the
// server restarts (its consumer is recreated after the last event seen).
func TestKVWatchAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxTimeout(t, 60*time.Second)
	s1, err := StartServer(ctx, ServerConfig{StoreDir: dir, Listen: "127.0.0.1:0", Logger: testLogger(t, slog.LevelWarn)})
	require.NoError(t, err)
	url := s1.ClientURL()
	b, err := Connect(ctx, Config{URL: url, Name: "watch-restart", Logger: testLogger(t, slog.LevelWarn)})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	kv, err := b.KeyValue(ctx, bus.KVConfig{Bucket: "restart"})
	require.NoError(t, err)
	_, err = kv.Put(ctx, "before", []byte("1"), 0)
	require.NoError(t, err)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ch, err := kv.Watch(wctx, ">")
	require.NoError(t, err)
	assert.Equal(t, "before", recvEvent(t, ch, 5*time.Second).Entry.Key)
	assert.Equal(t, bus.KVSynced, recvEvent(t, ch, 5*time.Second).Op)

	s1.Shutdown()
	_, addr, _ := strings.Cut(url, "://")
	s2, err := StartServer(ctx, ServerConfig{StoreDir: dir, Listen: addr, Logger: testLogger(t, slog.LevelWarn)})
	require.NoError(t, err)
	t.Cleanup(s2.Shutdown)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := kv.Put(ctx, "after", []byte("2"), 0)
		assert.NoError(c, err)
	}, 10*time.Second, 50*time.Millisecond)
	ev := recvEvent(t, ch, 20*time.Second)
	assert.Equal(t, bus.KVPut, ev.Op, "%+v", ev)
	assert.Equal(t, "after", ev.Entry.Key, "resumed after the last event seen, nothing replayed")
	assert.Equal(t, "2", string(ev.Entry.Value))
	stop()
	for range ch { // drain until the watch closes it
	}
}
