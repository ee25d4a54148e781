package natsbus

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taisen-dev/taisen/internal/bus"
)

// openKV opens a bucket on a fresh in-process server.
func openKV(t *testing.T, cfg bus.KVConfig) bus.Bucket {
	t.Helper()
	s := startServer(t, "")
	b := connect(t, s, "kv")
	kv, err := b.KeyValue(ctxTimeout(t, 10*time.Second), cfg)
	require.NoError(t, err)
	return kv
}

func TestKVOperations(t *testing.T) {
	for _, memory := range []bool{false, true} {
		t.Run(fmt.Sprintf("memory=%v", memory), func(t *testing.T) {
			kv := openKV(t, bus.KVConfig{Bucket: "ops", Memory: memory})
			ctx := ctxTimeout(t, 10*time.Second)

			_, err := kv.Get(ctx, "k")
			require.ErrorIs(t, err, bus.ErrKeyNotFound, "missing key")

			rev1, err := kv.Put(ctx, "k", []byte("v1"), 0)
			require.NoError(t, err)
			e, err := kv.Get(ctx, "k")
			require.NoError(t, err)
			assert.Equal(t, bus.Entry{Key: "k", Value: []byte("v1"), Revision: rev1}, e)

			_, err = kv.Create(ctx, "k", []byte("x"), 0)
			require.ErrorIs(t, err, bus.ErrKeyExists)
			assert.NotErrorIs(t, err, bus.ErrWrongRevision)

			_, err = kv.Update(ctx, "k", []byte("x"), rev1+100, 0)
			require.ErrorIs(t, err, bus.ErrWrongRevision)
			assert.NotErrorIs(t, err, bus.ErrKeyExists)
			_, err = kv.Update(ctx, "k", []byte("x"), rev1+100, time.Second)
			require.ErrorIs(t, err, bus.ErrWrongRevision, "with ttl")

			rev2, err := kv.Update(ctx, "k", []byte("v2"), rev1, 0)
			require.NoError(t, err)
			assert.Greater(t, rev2, rev1)
			rev3, err := kv.Update(ctx, "k", []byte("v3"), rev2, time.Minute)
			require.NoError(t, err)
			e, err = kv.Get(ctx, "k")
			require.NoError(t, err)
			assert.Equal(t, bus.Entry{Key: "k", Value: []byte("v3"), Revision: rev3}, e)

			require.ErrorIs(t, kv.Delete(ctx, "k", rev2), bus.ErrWrongRevision)
			require.NoError(t, kv.Delete(ctx, "k", rev3))
			_, err = kv.Get(ctx, "k")
			require.ErrorIs(t, err, bus.ErrKeyNotFound, "deleted key")
			require.NoError(t, kv.Delete(ctx, "k", 0), "delete deleted key")
			require.NoError(t, kv.Delete(ctx, "never-written", 0), "delete missing key")

			rev4, err := kv.Create(ctx, "k", []byte("v4"), 0)
			require.NoError(t, err, "create after delete")
			e, err = kv.Get(ctx, "k")
			require.NoError(t, err)
			assert.Equal(t, bus.Entry{Key: "k", Value: []byte("v4"), Revision: rev4}, e)

			rev5, err := kv.Create(ctx, "fresh", []byte("f"), 0)
			require.NoError(t, err)
			require.NoError(t, kv.Delete(ctx, "fresh", 0))
			_, err = kv.Update(ctx, "fresh", []byte("x"), rev5, 0)
			require.ErrorIs(t, err, bus.ErrWrongRevision, "update of a deleted key")

			// Keys use "=", "/", "-" and "_" freely.
			_, err = kv.Put(ctx, "user/42=a-b_c", []byte("odd"), 0)
			require.NoError(t, err)
			e, err = kv.Get(ctx, "user/42=a-b_c")
			require.NoError(t, err)
			assert.Equal(t, "odd", string(e.Value))
		})
	}
}

func TestKVInvalid(t *testing.T) {
	s := startServer(t, "")
	b := connect(t, s, "kv-invalid")
	ctx := ctxTimeout(t, 10*time.Second)

	for _, cfg := range []bus.KVConfig{
		{Bucket: ""},
		{Bucket: "a.b"},
		{Bucket: "a b"},
		{Bucket: "a*"},
		{Bucket: "ok", TTL: -time.Second},
		{Bucket: "ok", Replicas: -1},
	} {
		_, err := b.KeyValue(ctx, cfg)
		assert.Error(t, err, "%+v", cfg)
	}
	_, err := b.KeyValue(ctx, bus.KVConfig{Bucket: "a.b"})
	assert.ErrorIs(t, err, ErrInvalidBucket)

	kv, err := b.KeyValue(ctx, bus.KVConfig{Bucket: "ok"})
	require.NoError(t, err)
	ops := map[string]func(key string, ttl time.Duration) error{
		"Get":    func(k string, _ time.Duration) error { _, err := kv.Get(ctx, k); return err },
		"Put":    func(k string, ttl time.Duration) error { _, err := kv.Put(ctx, k, nil, ttl); return err },
		"Create": func(k string, ttl time.Duration) error { _, err := kv.Create(ctx, k, nil, ttl); return err },
		"Update": func(k string, ttl time.Duration) error { _, err := kv.Update(ctx, k, nil, 1, ttl); return err },
		"Delete": func(k string, _ time.Duration) error { return kv.Delete(ctx, k, 0) },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			for _, key := range []string{"", "a.b", ".a", "a b", "*", ">", "a*", "ü"} {
				assert.ErrorIs(t, op(key, 0), ErrInvalidKey, "key %q", key)
			}
			if name != "Get" && name != "Delete" {
				assert.Error(t, op("k", -time.Second), "negative ttl")
			}
		})
	}
}

func TestKVCASRace(t *testing.T) {
	kv := openKV(t, bus.KVConfig{Bucket: "race"})
	ctx := ctxTimeout(t, 10*time.Second)

	tests := []struct {
		name string
		op   func(rev uint64, i int) error
	}{
		{"Update", func(rev uint64, i int) error {
			_, err := kv.Update(ctx, "k", fmt.Appendf(nil, "%d", i), rev, 0)
			return err
		}},
		{"UpdateTTL", func(rev uint64, i int) error {
			_, err := kv.Update(ctx, "k", fmt.Appendf(nil, "%d", i), rev, time.Minute)
			return err
		}},
		{"Delete", func(rev uint64, _ int) error { return kv.Delete(ctx, "k", rev) }},
		{"Create", func(_ uint64, i int) error {
			_, err := kv.Create(ctx, "created", fmt.Appendf(nil, "%d", i), 0)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, err := kv.Put(ctx, "k", []byte("start"), 0)
			require.NoError(t, err)
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					errs[i] = tt.op(rev, i)
				})
			}
			close(start)
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case tt.name == "Create":
					assert.ErrorIs(t, err, bus.ErrKeyExists)
				default:
					assert.ErrorIs(t, err, bus.ErrWrongRevision)
				}
			}
			assert.Equal(t, 1, wins, "errors: %v", errs)
		})
	}
}

// TestKVTTL checks per-key TTL on the server: the server keeps TTLs in
// whole seconds, minimum one.
func TestKVTTL(t *testing.T) {
	t.Parallel()
	kv := openKV(t, bus.KVConfig{Bucket: "ttl"})
	ctx := ctxTimeout(t, 30*time.Second)

	start := time.Now()
	_, err := kv.Put(ctx, "short", []byte("s"), time.Second)
	require.NoError(t, err)
	_, err = kv.Create(ctx, "created", []byte("c"), 500*time.Millisecond) // rounded up to 1 s
	require.NoError(t, err)
	_, err = kv.Put(ctx, "forever", []byte("f"), 0)
	require.NoError(t, err)
	_, err = kv.Get(ctx, "short")
	require.NoError(t, err, "alive before its TTL")

	for _, key := range []string{"short", "created"} {
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			_, err := kv.Get(ctx, key)
			assert.ErrorIs(c, err, bus.ErrKeyNotFound)
		}, 3*time.Second, 20*time.Millisecond, "key %q outlived its 1 s TTL", key)
		t.Logf("%s gone %v after put", key, time.Since(start).Round(time.Millisecond))
	}
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "expired early")
	e, err := kv.Get(ctx, "forever")
	require.NoError(t, err, "key without TTL expired")
	assert.Equal(t, "f", string(e.Value))

	rev, err := kv.Create(ctx, "short", []byte("again"), 0)
	require.NoError(t, err, "create after expiry")
	e, err = kv.Get(ctx, "short")
	require.NoError(t, err)
	assert.Equal(t, bus.Entry{Key: "short", Value: []byte("again"), Revision: rev}, e)
}

// TestKVTTLRefresh checks that writing a key again with a TTL keeps it
// alive beyond its first TTL.
func TestKVTTLRefresh(t *testing.T) {
	t.Parallel()
	kv := openKV(t, bus.KVConfig{Bucket: "refresh"})
	ctx := ctxTimeout(t, 30*time.Second)
	const ttl = 2 * time.Second

	start := time.Now()
	rev, err := kv.Create(ctx, "k", []byte("v0"), ttl) // expires at 2 s
	require.NoError(t, err)
	sleepUntil(start.Add(1200 * time.Millisecond))
	rev, err = kv.Update(ctx, "k", []byte("v1"), rev, ttl) // expires at 3.2 s
	require.NoError(t, err)
	sleepUntil(start.Add(2500 * time.Millisecond))
	e, err := kv.Get(ctx, "k")
	require.NoError(t, err, "update did not refresh the TTL")
	assert.Equal(t, bus.Entry{Key: "k", Value: []byte("v1"), Revision: rev}, e)
	_, err = kv.Put(ctx, "k", []byte("v2"), ttl) // expires at 4.5 s
	require.NoError(t, err)
	sleepUntil(start.Add(3700 * time.Millisecond))
	e, err = kv.Get(ctx, "k")
	require.NoError(t, err, "put did not refresh the TTL")
	assert.Equal(t, "v2", string(e.Value))

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, err := kv.Get(ctx, "k")
		assert.ErrorIs(c, err, bus.ErrKeyNotFound)
	}, 3*time.Second, 20*time.Millisecond, "key outlived its refreshed TTL")
	t.Logf("gone %v after first write (last write at 2.5 s, ttl %v)", time.Since(start).Round(time.Millisecond), ttl)
}

// TestKVBucketTTL checks the bucket's default TTL, and that a key's own
// TTL cannot extend it.
func TestKVBucketTTL(t *testing.T) {
	t.Parallel()
	kv := openKV(t, bus.KVConfig{Bucket: "bucket-ttl", TTL: time.Second, Memory: true})
	ctx := ctxTimeout(t, 30*time.Second)

	_, err := kv.Put(ctx, "default", []byte("d"), 0)
	require.NoError(t, err)
	_, err = kv.Put(ctx, "longer", []byte("l"), time.Hour)
	require.NoError(t, err)
	for _, key := range []string{"default", "longer"} {
		assert.EventuallyWithT(t, func(c *assert.CollectT) {
			_, err := kv.Get(ctx, key)
			assert.ErrorIs(c, err, bus.ErrKeyNotFound)
		}, 4*time.Second, 20*time.Millisecond, "key %q outlived the bucket TTL", key)
	}
}

func TestRoundTTL(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{time.Nanosecond, time.Second},
		{500 * time.Millisecond, time.Second},
		{time.Second, time.Second},
		{1001 * time.Millisecond, 2 * time.Second},
		{90 * time.Second, 90 * time.Second},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, roundTTL(tt.in), "roundTTL(%v)", tt.in)
	}
}

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

func TestValidKeyMatchesPattern(t *testing.T) {
	for _, k := range []string{"", "a", "user-1", "a/b=c_d", "a.b", "a b", "é", "A9-/_=", "*", ">", "a\x00"} {
		if got, want := validKey(k), keyRe.MatchString(k); got != want {
			t.Errorf("validKey(%q) = %v, the pattern says %v", k, got, want)
		}
	}
}
