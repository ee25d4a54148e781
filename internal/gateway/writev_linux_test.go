package gateway

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/taisen-dev/taisen/internal/wire"
)

// TestWriteNowStaysWithinIOVMax queues far more small frames than one
// writev accepts (IOV_MAX, 1024 on Linux) on a real socket: the
// non-blocking write must not fail with EINVAL and close the socket, and
// the client must receive every frame, in order.
func TestWriteNowStaysWithinIOVMax(t *testing.T) {
	g := idleGateway(t, Config{Engine: "epoll"})
	const count = 3000
	frames := make([][]byte, count)
	for i := range frames {
		p := fmt.Sprintf("%05d", i)
		frames[i] = append(appendFrameHeader(nil, opBinary, len(p)), p...)
	}
	readFrames := func(t *testing.T, client net.Conn, n int) {
		t.Helper()
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(client)
		for i := 0; i < n; i++ {
			f, err := ws.ReadFrame(br)
			if err != nil {
				t.Fatalf("frame %d of %d: %v", i, n, err)
			}
			if want := fmt.Sprintf("%05d", i); string(f.Payload) != want {
				t.Fatalf("frame %d is %q: out of order", i, f.Payload)
			}
		}
	}

	t.Run("one call", func(t *testing.T) {
		server, client := tcpPair(t)
		c := g.newConn(server, wire.Binary)
		if c.rc == nil {
			t.Fatal("no raw socket: the epoll write path is not tested")
		}
		n, ok, err := c.writeNow(frames[:1500])
		if !ok || err != nil || n == 0 {
			t.Fatalf("writeNow of 1500 buffers: %d bytes, ok %v, err %v", n, ok, err)
		}
		if n%len(frames[0]) != 0 {
			t.Fatalf("wrote %d bytes: not whole frames of %d (the socket had room)", n, len(frames[0]))
		}
		readFrames(t, client, n/len(frames[0]))
		c.readFailed()
	})

	t.Run("queue and flush", func(t *testing.T) {
		server, client := tcpPair(t)
		c := g.newConn(server, wire.Binary)
		c.flushIfStarted(c.queue(frames...))
		readFrames(t, client, count)
		c.readFailed()
	})
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		server.Close()
		client.Close()
	})
	return server, client
}
