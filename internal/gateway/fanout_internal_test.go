package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/wire"
)

// TestBinaryPushFrame: the spliced frame decodes to the same push as a
// plain marshal, for seqs of every varint size.
func TestBinaryPushFrame(t *testing.T) {
	tmpl := &realtimev1.Push{Kind: "notify", Payload: make([]byte, 300), SentAtMs: 1795314394113, Id: "n-1", PayloadType: "taisen.api.v1.Notification"}
	body, _ := proto.Marshal(tmpl)
	for _, seq := range []uint64{1, 127, 128, 16383, 16384, 1 << 40} {
		frame := binaryPushFrame(seq, body)
		f, n, err := parseServerFrameForTest(frame)
		if err != nil || n != len(frame) {
			t.Fatalf("seq %d: frame does not parse: %v (%d of %d bytes)", seq, err, n, len(frame))
		}
		fr, err := wire.DecodeServerFrame(wire.Binary, f)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		want := proto.Clone(tmpl).(*realtimev1.Push)
		want.Seq = seq
		if !proto.Equal(fr.GetPush(), want) {
			t.Fatalf("seq %d: got %v, want %v", seq, fr.GetPush(), want)
		}
	}
}

// parseServerFrameForTest reads one unmasked server frame.
func parseServerFrameForTest(b []byte) ([]byte, int, error) {
	hdr := 2
	n := int(b[1] & 0x7f)
	switch n {
	case 126:
		n = int(b[2])<<8 | int(b[3])
		hdr = 4
	case 127:
		n = 0
		for i := 2; i < 10; i++ {
			n = n<<8 | int(b[i])
		}
		hdr = 10
	}
	return b[hdr : hdr+n], hdr + n, nil
}

func BenchmarkBinaryPushFrame(b *testing.B) {
	body, _ := proto.Marshal(&realtimev1.Push{Kind: "notify", Payload: make([]byte, 200), SentAtMs: 1795314394113, Id: "n-1"})
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		seq++
		_ = binaryPushFrame(seq, body)
	}
}

// BenchmarkPushLocal measures the node-local fan-out of one durable push
// to n sessions (the topic path): per op, one push to every session,
// written to sockets that accept everything, counted until every frame
// is written. Reported per delivery.
func BenchmarkPushLocal(b *testing.B) {
	for _, n := range []int{1, 100, 15000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			g, err := New(Config{NodeID: "bench", Engine: "goroutine", ResumeBufferPushes: 16}, Deps{Bus: nilBus{}, Auth: refuseAuth{}})
			if err != nil {
				b.Fatal(err)
			}
			g.baseCtx, g.cancel = context.WithCancel(context.Background())
			defer func() { g.cancel(); g.wg.Wait() }()
			ids := make([]string, n)
			conns := make([]*conn, n)
			for i := range ids {
				c := g.newConn(discardConn{}, wire.Binary)
				conns[i] = c
				c.state = stateOpen
				s := &Session{id: fmt.Sprintf("s%d", i), userID: fmt.Sprintf("u%d", i), state: sessLive, conn: c}
				c.sess = s
				g.register(s)
				ids[i] = s.id
			}
			payload := make([]byte, 200)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if got := g.PushLocal(ids, Message{Kind: "notify", Payload: payload, PayloadType: "taisen.api.v1.Notification"}); got != n {
					b.Fatalf("delivered %d of %d", got, n)
				}
				waitWritten(conns) // every frame written, by whichever goroutine
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// TestPushLocalLargeFanOut: a fan-out large enough to be written by
// writer goroutines, sent several times back to back, reaches every
// socket whole and in seq order (frames of later items may join a write
// still pending for an earlier one).
func TestPushLocalLargeFanOut(t *testing.T) {
	const sessions, items = fanInline*3 + 5, 8
	g := startGateway(t, "node-1", connectBus(t, startNATS(t), "node-1"))
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	clients := make([]*wsClient, sessions)
	ids := make([]string, sessions)
	for i := range clients {
		clients[i] = dialGateway(t, srv, fmt.Sprintf("token=user-%d", i))
		ids[i] = clients[i].welcome(5 * time.Second).GetSessionId()
	}
	for k := range items {
		if got := g.PushLocal(ids, Message{Kind: "notify", Payload: []byte{byte(k)}}); got != sessions {
			t.Fatalf("item %d: pushed to %d of %d sessions", k, got, sessions)
		}
	}
	for i, c := range clients {
		for k := range items {
			p := c.push()
			if p.GetSeq() != uint64(k+1) || !bytes.Equal(p.GetPayload(), []byte{byte(k)}) {
				t.Fatalf("session %d: push %d is seq %d payload %v, want seq %d payload [%d]", i, k, p.GetSeq(), p.GetPayload(), k+1, k)
			}
		}
	}
}

// waitWritten waits until no socket has frames queued or being written.
// (The gateway's WaitGroup cannot tell: idle workers stay in it.)
func waitWritten(conns []*conn) {
	for _, c := range conns {
		for {
			c.mu.Lock()
			busy := c.flushing || len(c.outq) > 0
			c.mu.Unlock()
			if !busy {
				break
			}
			runtime.Gosched()
		}
	}
}
