package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/clock"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/taisentest"
)

// pushN sends n pushes "p<from>".."p<from+n-1>" through the
// server-to-server API and checks each was delivered.
func pushN(t *testing.T, n *taisentest.Node, userID string, from, count int) {
	t.Helper()
	for i := from; i < from+count; i++ {
		resp, err := n.Push(context.Background(), userID, "test", []byte(fmt.Sprintf("p%d", i)))
		if err != nil || !resp.Delivered {
			t.Fatalf("push %d: %v %v", i, resp, err)
		}
	}
}

// readPushes reads count pushes and checks their seq continue after last.
func readPushes(t *testing.T, c *tconn, last uint64, count int) uint64 {
	t.Helper()
	for i := 0; i < count; i++ {
		fr := c.mustRecv()
		p := fr.GetPush()
		if p == nil {
			t.Fatalf("got %v, want push", fr)
		}
		if p.Seq != last+1 {
			t.Fatalf("push seq %d after %d: a gap or a duplicate", p.Seq, last)
		}
		if want := fmt.Sprintf("p%d", p.Seq); string(p.Payload) != want {
			t.Fatalf("push %d payload %q, want %q", p.Seq, p.Payload, want)
		}
		last = p.Seq
	}
	return last
}

func TestResume(t *testing.T) {
	url := taisentest.StartNATS(t)
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a})
	tests := []struct {
		name   string
		second *taisentest.Node
	}{
		{"same node", a},
		{"other node", b},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess := login(t, a, fmt.Sprintf("device-resume-%03d", i))
			c, w := open(t, a, sess.Token, "", 0)
			pushN(t, a, sess.UserId, 1, 3)
			last := readPushes(t, c, 0, 1) // the client saw only p1
			c.c.Close()                    // the network drops
			// Pushes keep coming while the client is away.
			waitFor(t, "the server to see the socket gone", func() bool { return a.Gateway().Stats().Sessions == 0 })
			pushN(t, a, sess.UserId, 4, 2)

			c2, w2 := open(t, tt.second, sess.Token, w.SessionId, last)
			if !w2.Resumed || w2.SessionId != w.SessionId || w2.Replayed != 4 {
				t.Fatalf("welcome = %v, want resumed %s with 4 replayed", w2, w.SessionId)
			}
			last = readPushes(t, c2, last, 4)
			// New pushes continue the sequence, via whichever node is asked.
			pushN(t, a, sess.UserId, 6, 1)
			pushN(t, b, sess.UserId, 7, 1)
			last = readPushes(t, c2, last, 2)
			if last != 7 {
				t.Errorf("last seq %d, want 7", last)
			}
			rec, err := a.Session(context.Background(), sess.UserId)
			if err != nil || rec.NodeId != tt.second.NodeID || rec.SessionId != w.SessionId {
				t.Errorf("session record %v %v, want node %s", rec, err, tt.second.NodeID)
			}
		})
	}
}

func TestResumeWhileOldSocketHalfOpen(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-halfopen1")
	old, w := open(t, n, sess.Token, "", 0)
	pushN(t, n, sess.UserId, 1, 2)
	last := readPushes(t, old, 0, 2)
	// The old socket is still open from the server's view (no close sent),
	// as after a silent network change; the client resumes on a new one.
	c2, w2 := open(t, n, sess.Token, w.SessionId, last)
	if !w2.Resumed || w2.Replayed != 0 {
		t.Fatalf("welcome %v", w2)
	}
	code, _ := old.expectClose()
	if code != 0 && code != closeCode(realtimev1.CloseReason_CLOSE_REASON_REPLACED) {
		t.Errorf("old socket closed with %d", code)
	}
	pushN(t, n, sess.UserId, 3, 1)
	readPushes(t, c2, last, 1)
}

func TestResumeAfterGraceStartsFresh(t *testing.T) {
	clk := clock.NewFake(time.Now())
	n := taisentest.StartNode(t, taisentest.Options{Clock: clk, Configure: func(c *config.Config) {
		c.Gateway.ResumeGrace = 10 * time.Second
	}})
	sess := login(t, n, "device-grace-001")
	c, w := open(t, n, sess.Token, "", 0)
	pushN(t, n, sess.UserId, 1, 1)
	readPushes(t, c, 0, 1)
	c.c.Close()
	waitFor(t, "the server to see the socket gone", func() bool { return n.Gateway().Stats().Sessions == 0 })
	clk.Advance(10*time.Second + time.Millisecond)
	c2, w2 := open(t, n, sess.Token, w.SessionId, 1)
	if w2.Resumed || w2.SessionId == w.SessionId {
		t.Fatalf("welcome %v, want a fresh session", w2)
	}
	pushN(t, n, sess.UserId, 1, 1) // a fresh session numbers from 1
	readPushes(t, c2, 0, 1)
}

func TestResumeRejectsGap(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.Gateway.ResumeBufferPushes = 2
	}})
	sess := login(t, n, "device-gap-00001")
	c, w := open(t, n, sess.Token, "", 0)
	c.c.Close()
	pushN(t, n, sess.UserId, 1, 5) // only p4 and p5 are kept
	_, w2 := open(t, n, sess.Token, w.SessionId, 0)
	if w2.Resumed {
		t.Fatalf("resumed although pushes 1-3 were evicted: %v", w2)
	}
}

func TestLogoutEndsSession(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-logout-01")
	c, w := open(t, n, sess.Token, "", 0)
	cid := c.request(&realtimev1.ClientFrame{Body: &realtimev1.ClientFrame_Logout{Logout: &realtimev1.Logout{}}})
	if fr := c.mustRecv(); fr.Cid != cid || fr.GetLogout() == nil {
		t.Fatalf("got %v", fr)
	}
	code, d := c.expectClose()
	if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_NORMAL) || d.GetReconnect() {
		t.Errorf("close %d %v", code, d)
	}
	rec, err := n.Session(context.Background(), sess.UserId)
	if err != nil || rec.Online {
		t.Errorf("after logout: %v %v, want offline", rec, err)
	}
	resp, err := n.Push(context.Background(), sess.UserId, "test", []byte("x"))
	if err != nil || resp.Delivered {
		t.Errorf("push after logout: %v %v, want not delivered", resp, err)
	}
	_, w2 := open(t, n, sess.Token, w.SessionId, 0)
	if w2.Resumed {
		t.Error("a logged-out session must not resume")
	}
}

func TestKick(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	sess := login(t, n, "device-kick-0001")
	c, _ := open(t, n, sess.Token, "", 0)
	ok, err := n.Disconnect(context.Background(), sess.UserId)
	if err != nil || !ok {
		t.Fatalf("disconnect: %v %v", ok, err)
	}
	code, d := c.expectClose()
	if code != closeCode(realtimev1.CloseReason_CLOSE_REASON_KICKED) || d.GetReconnect() {
		t.Errorf("close %d %v", code, d)
	}
	if ok, err := n.Disconnect(context.Background(), "no-such-user"); err != nil || ok {
		t.Errorf("disconnect unknown user: %v %v", ok, err)
	}
}

func TestRecordExpiresWhenNodeDies(t *testing.T) {
	url := taisentest.StartNATS(t)
	short := func(c *config.Config) {
		c.Gateway.SessionTTL = 3 * time.Second
		c.Gateway.ResumeGrace = 2 * time.Second
		c.DrainTimeout = 100 * time.Millisecond
	}
	a := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Configure: short})
	b := taisentest.StartNode(t, taisentest.Options{NATSURL: url, Peer: a, Configure: short})
	sess := login(t, a, "device-expire-01")
	open(t, a, sess.Token, "", 0)
	a.Stop() // the drain gives up at once; nothing deletes the record
	rec, err := b.Session(context.Background(), sess.UserId)
	if err != nil || !rec.Online {
		t.Fatalf("right after the node stopped: %v %v, want still online until the TTL", rec, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rec, err = b.Session(context.Background(), sess.UserId)
		if err == nil && !rec.Online {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("record still there 10 s after its node died: %v %v", rec, err)
}
