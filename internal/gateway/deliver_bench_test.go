package gateway_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/taisen-dev/taisen/taisentest"
)

// BenchmarkNodeDeliver measures pushes per second to one node's sessions
// through the bus (Gateway.Deliver: the session record lookup and the
// node request, handled by the node's workers), with many senders at once
// addressing many users. Every session's socket is drained by a reader,
// as a client would, so no socket is closed as slow.
func BenchmarkNodeDeliver(b *testing.B) {
	const users = 256
	n := taisentest.StartNode(b, taisentest.Options{})
	var readers sync.WaitGroup
	b.Cleanup(readers.Wait) // runs after the sockets' cleanups close them
	ids := make([]string, users)
	for i := range ids {
		sess := login(b, n, fmt.Sprintf("device-bench-%05d", i))
		c, _ := open(b, n, sess.Token, "", 0)
		ids[i] = sess.UserId
		readers.Add(1)
		go func() {
			defer readers.Done()
			_, _ = io.Copy(io.Discard, c.r)
		}()
	}
	gw := n.Gateway()
	payload := []byte(`{"text":"hello"}`)
	b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
		var next atomic.Uint64
		b.SetParallelism(32) // 32 senders per CPU
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				u := ids[next.Add(1)%users]
				if _, err := gw.Deliver(ctx, u, "bench", payload); err != nil {
					b.Errorf("deliver to %s: %v", u, err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "delivers/s")
	})
}
