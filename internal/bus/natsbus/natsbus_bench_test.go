package natsbus

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/taisen-dev/taisen/internal/bus"
)

// The benchmarks run on an in-process embedded server.

func BenchmarkPublish(b *testing.B) {
	s := startServer(b, "")
	nb := connect(b, s, "bench-pub")
	ctx := b.Context()
	done := make(chan struct{})
	n := 0
	_, err := nb.Subscribe("bench.pub", func(*bus.Msg) {
		n++
		if n == b.N {
			close(done)
		}
	})
	require.NoError(b, err)
	data := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := nb.Publish(ctx, "bench.pub", data); err != nil {
			b.Fatal(err)
		}
	}
	<-done // count delivery, not just buffering
}

func BenchmarkRequest(b *testing.B) {
	s := startServer(b, "")
	nb := connect(b, s, "bench-req")
	_, err := nb.Subscribe("bench.req", func(m *bus.Msg) { _ = m.Respond(m.Data) })
	require.NoError(b, err)
	data := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := nb.Request(b.Context(), "bench.req", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKVUpdate(b *testing.B) {
	s := startServer(b, "")
	nb := connect(b, s, "bench-kv")
	ctx := b.Context()
	kv, err := nb.KeyValue(ctx, bus.KVConfig{Bucket: "bench"})
	require.NoError(b, err)
	rev, err := kv.Put(ctx, "k", []byte("start"), 0)
	require.NoError(b, err)
	data := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if rev, err = kv.Update(ctx, "k", data, rev, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKVRecordMemory reports the heap one key costs a bucket in the
// embedded server (heap-B/key): b.N keys shaped like the gateway's session
// records (a 36-byte user id, a 35-byte value, the bucket's TTL and no
// per-key TTL), each created and then updated once by compare-and-set as a
// login and its first refresh do. "put" writes without compare-and-set:
// the difference is the Nats-Expected-Last-Subject-Sequence header the
// server stores with each compare-and-set write. The file store's figure
// includes its cache of the block being written.
func BenchmarkKVRecordMemory(b *testing.B) {
	for _, bc := range []struct {
		name   string
		memory bool
		cas    bool
	}{
		{"memory/cas", true, true},
		{"memory/put", true, false},
		{"file/cas", false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := startServer(b, "")
			nb := connect(b, s, "bench-kv-mem")
			ctx := b.Context()
			kv, err := nb.KeyValue(ctx, bus.KVConfig{Bucket: "sessions", TTL: time.Minute, Memory: bc.memory})
			require.NoError(b, err)
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = uuid.NewString() // random, as user ids are
			}
			value := make([]byte, 35)
			heap := func() uint64 {
				var ms runtime.MemStats
				runtime.GC() // twice: the first may leave finalized objects
				runtime.GC()
				runtime.ReadMemStats(&ms)
				return ms.HeapAlloc
			}
			before := heap()
			b.ResetTimer()
			for _, k := range keys {
				if !bc.cas {
					if _, err := kv.Put(ctx, k, value, 0); err != nil {
						b.Fatal(err)
					}
					continue
				}
				rev, err := kv.Create(ctx, k, value, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := kv.Update(ctx, k, value, rev, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((float64(heap())-float64(before))/float64(b.N), "heap-B/key")
			runtime.KeepAlive(keys)
		})
	}
}

// BenchmarkStreamPublishConsume measures a work queue end to end: one
// producer publishing and waiting for each store acknowledgement, one
// consumer acking each message (and waiting for the ack to be recorded),
// on a file-backed stream. It reports messages per second through both.
func BenchmarkStreamPublishConsume(b *testing.B) {
	s := startServer(b, "")
	nb := connect(b, s, "bench-stream")
	ctx := b.Context()
	st, err := nb.Stream(ctx, bus.StreamConfig{Name: "bench", Subjects: []string{"bench.>"}, Retention: bus.RetentionWorkQueue})
	require.NoError(b, err)
	c, err := st.Consumer(ctx, bus.ConsumerConfig{Durable: "bench", MaxAckPending: 1000})
	require.NoError(b, err)
	var handled atomic.Int64
	done := make(chan struct{})
	cctx, stop := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() {
		consumed <- c.Consume(cctx, func(m *bus.StreamMsg) {
			if err := m.Ack(ctx); err != nil {
				b.Error(err)
			}
			if handled.Add(1) == int64(b.N) {
				close(done)
			}
		})
	}()
	data := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := st.Publish(ctx, "bench.x", data); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.StopTimer()
	stop()
	require.NoError(b, <-consumed)
}
