package gateway_test

import (
	"fmt"
	"testing"

	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/taisentest"
)

// BenchmarkEchoRoundTrip measures a no-op socket request (taisen.echo)
// through a real node over loopback, with 1 and 100 other sessions idle.
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, idle := range []int{1, 100} {
		b.Run(fmt.Sprintf("idle=%d", idle), func(b *testing.B) {
			// The default rate limit (20/s) would close a benchmark loop.
			n := taisentest.StartNode(b, taisentest.Options{Configure: func(c *config.Config) {
				c.Gateway.RateLimit, c.Gateway.RateBurst = 1e6, 1e6
			}})
			for i := 0; i < idle; i++ {
				s := login(b, n, fmt.Sprintf("device-bench-idle-%05d", i))
				open(b, n, s.Token, "", 0)
			}
			s := login(b, n, "device-bench-echo-1")
			c, _ := open(b, n, s.Token, "", 0)
			b.ReportAllocs()
			for b.Loop() {
				cid := c.request(echo("x"))
				if fr := c.mustRecv(); fr.Cid != cid {
					b.Fatalf("got %v", fr)
				}
			}
		})
	}
}
