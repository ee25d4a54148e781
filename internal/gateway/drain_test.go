package gateway_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/taisentest"
)

func TestSlowClientIsClosedAndOthersAreNot(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.Gateway.MaxFrameBytes = 16 << 10
		c.Gateway.OutboundQueueBytes = 64 << 10
		c.Gateway.WriteTimeout = 2 * time.Second
	}})
	slowSess := login(t, n, "device-slow-0001")
	slow, _ := open(t, n, slowSess.Token, "", 0)
	if tc, ok := slow.c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	fastSess := login(t, n, "device-fast-0001")
	fast, _ := open(t, n, fastSess.Token, "", 0)

	// The slow client never reads. Flood it with pushes until the server
	// gives up on it.
	payload := []byte(strings.Repeat("x", 8<<10))
	gw := n.Gateway()
	ctx := context.Background()
	delivered := 0
	for i := 0; i < 4000; i++ {
		if _, err := gw.Deliver(ctx, slowSess.UserId, "flood", payload); err != nil {
			break
		}
		delivered++
		if i%200 == 0 {
			// Meanwhile the other session is served at once.
			start := time.Now()
			cid := fast.request(echo("still here"))
			if fr := fast.mustRecv(); fr.Cid != cid {
				t.Fatalf("fast client got %v", fr)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("fast client waited %v while another client was slow", d)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var closed bool
	for time.Now().Before(deadline) && !closed {
		body := metrics(t, n)
		closed = strings.Contains(body, `taisen_session_closes_total{reason="slow"} 1`)
		time.Sleep(50 * time.Millisecond)
	}
	if !closed {
		t.Fatalf("slow client not closed as slow after %d pushes", delivered)
	}
}

func metrics(t *testing.T, n *taisentest.Node) string {
	t.Helper()
	resp, err := http.Get(n.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return b.String()
}

func TestDrainSingleNode(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-drain-001")
	c, _ := open(t, n, sess.Token, "", 0)
	stopped := make(chan struct{})
	start := time.Now()
	go func() { n.Stop(); close(stopped) }()
	code, d := c.expectClose()
	if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_DRAINING) || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_DRAINING || !d.GetReconnect() {
		t.Errorf("close %d %v, want draining with reconnect", code, d)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("node did not stop")
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("single-node drain took %v; nothing can resume elsewhere, so it should not wait", took)
	}
}

func TestDrainHandsSessionsToAnotherNode(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Configure: func(c *config.Config) { c.DrainTimeout = 20 * time.Second }})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	sess := login(t, a, "device-handoff-1")
	c, w := open(t, a, sess.Token, "", 0)
	pushN(t, a, sess.UserId, 1, 1)
	last := readPushes(t, c, 0, 1)

	stopped := make(chan struct{})
	go func() { a.Stop(); close(stopped) }()
	if code, _ := c.expectClose(); code != closeCode(realtimev1.CloseReason_CLOSE_REASON_DRAINING) {
		t.Fatalf("close code %d, want draining", code)
	}
	// While A waits for its sessions to move, it is not ready.
	resp, err := http.Get(a.AdminURL + "/readyz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("draining node reports ready")
		}
	}
	select {
	case <-stopped:
		t.Fatal("A stopped before its session moved")
	default:
	}
	pushN(t, b, sess.UserId, 2, 1) // lands in A's resume buffer
	start := time.Now()
	c2, w2 := open(t, b, sess.Token, w.SessionId, last)
	if !w2.Resumed || w2.Replayed != 1 {
		t.Fatalf("welcome on B: %v", w2)
	}
	readPushes(t, c2, last, 1)
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("A still draining after its last session moved")
	}
	t.Logf("A stopped %v after the session moved", time.Since(start))
}
