package gateway_test

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"

	"github.com/taisen-dev/taisen/taisentest"
)

// TestBurstLongerThanOneTurn: a client that sends far more than one read
// turn takes (64 KiB) in one write still has its last request answered:
// the socket loop comes back to the bytes left although no new bytes
// arrive to wake it.
func TestBurstLongerThanOneTurn(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	c := dial(t, n, "")
	cid := c.request(hello(deviceAuth("device-burst-0001")))
	if fr := c.mustRecv(); fr.Cid != cid || fr.GetWelcome() == nil {
		t.Fatalf("hello: got %v, want welcome", fr)
	}
	// Unsolicited pongs cost the server nothing but reading them.
	var burst bytes.Buffer
	pong := maskedClientFrame(ws.OpPong, make([]byte, 125))
	for burst.Len() < 4*64<<10 {
		burst.Write(pong)
	}
	fr := withCid(echo("after the burst"), 7)
	b, err := protoMarshal(fr)
	if err != nil {
		t.Fatal(err)
	}
	burst.Write(maskedClientFrame(ws.OpBinary, b))
	if _, err := c.c.Write(burst.Bytes()); err != nil {
		t.Fatal(err)
	}
	got := c.mustRecv()
	if got.Cid != 7 || string(got.GetRpc().GetPayload()) != "after the burst" {
		t.Fatalf("after a %d-byte burst: got %v, want the echo", burst.Len(), got)
	}
}
