package natsbus

import (
	"testing"
	"time"

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
