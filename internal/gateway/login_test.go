package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/taisentest"
)

// TestConcurrentLoginsLeaveOne logs one user in N times at once, on one
// node and spread over two nodes, and checks what the players see: exactly
// one login keeps its socket and receives pushes, every other one is told
// replaced.
func TestConcurrentLoginsLeaveOne(t *testing.T) {
	t.Run("one node", func(t *testing.T) {
		n := taisentest.StartNode(t, taisentest.Options{})
		concurrentLogins(t, []*taisentest.Node{n}, "device-race-0001", 8)
	})
	t.Run("two nodes", func(t *testing.T) {
		url := taisentest.StartNATS(t)
		a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
		b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
		concurrentLogins(t, []*taisentest.Node{a, b}, "device-race-0002", 8)
	})
}

func concurrentLogins(t *testing.T, nodes []*taisentest.Node, device string, n int) {
	sess := login(t, nodes[0], device)
	for round := 0; round < 3; round++ {
		conns := make([]*tconn, n)
		for i := range conns {
			conns[i] = dial(t, nodes[i%len(nodes)], "")
		}
		// Every Hello goes out at once, as raw frames (no helper that
		// fails the test from another goroutine).
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func(c *tconn) {
				defer wg.Done()
				b, _ := protoMarshal(withCid(tokenHello(sess.Token, "", 0), 1))
				_ = c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.c.Write(maskedClientFrame(ws.OpBinary, b))
			}(c)
		}
		wg.Wait()
		// Each Hello gets exactly one reply: Welcome, or an error when a
		// newer login replaced it first. Once all replied, every login has
		// claimed the record, so the record names the survivor.
		welcomes := make(map[string]*tconn)
		for i, c := range conns {
			fr := c.mustRecv()
			switch {
			case fr.Cid != 1:
				t.Fatalf("round %d login %d: first frame %v, want the hello's reply", round, i, fr)
			case fr.GetWelcome() != nil:
				welcomes[fr.GetWelcome().SessionId] = c
			case errCode(fr) != realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE:
				t.Fatalf("round %d login %d: hello reply %v", round, i, fr)
			}
		}
		rec, err := nodes[0].Session(context.Background(), sess.UserId)
		if err != nil || !rec.Online {
			t.Fatalf("round %d: session record %v %v", round, rec, err)
		}
		winner := welcomes[rec.SessionId]
		if winner == nil {
			t.Fatalf("round %d: the record names session %s, which no login was welcomed to", round, rec.SessionId)
		}
		for _, c := range conns {
			if c == winner {
				continue
			}
			code, d := c.expectClose()
			if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_REPLACED) || d.GetReason() != realtimev1.CloseReason_CLOSE_REASON_REPLACED {
				t.Errorf("round %d: a losing login closed with %d %v, want replaced", round, code, d)
			}
		}
		// The survivor gets pushes, from whichever node sends them.
		for i, node := range nodes {
			kind := fmt.Sprintf("after-race-%d-%d", round, i)
			resp, err := node.Push(context.Background(), sess.UserId, kind, []byte("hi"))
			if err != nil || resp.Seq == 0 {
				t.Fatalf("round %d: push from node %d: %v %v (the user must not read as offline)", round, i, resp, err)
			}
			fr := winner.mustRecv()
			if fr.GetPush().GetKind() != kind {
				t.Fatalf("round %d: survivor got %v, want push %s", round, fr, kind)
			}
		}
		winner.c.Close()
	}
}
