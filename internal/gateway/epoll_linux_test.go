package gateway

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

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

// inq returns the bytes waiting in a socket's receive queue.
func inq(t *testing.T, c *conn) int {
	t.Helper()
	var n int
	var ierr error
	if err := c.rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || ierr != nil {
		t.Fatalf("SIOCINQ: %v %v", err, ierr)
	}
	return n
}

// TestReadBudgetPerWake checks that one turn of a socket loop reads at
// most about readBudget bytes of a socket with more waiting, so a client
// that keeps sending cannot hold the loop from its other sockets: the
// read reports the socket has more, and the loop's later turns read the
// rest although epoll (edge-triggered) reports no new event.
func TestReadBudgetPerWake(t *testing.T) {
	g := idleGateway(t, Config{Engine: "epoll"})
	e := &epollEngine{g: g}
	l, err := newEpollLoop(e)
	if err != nil {
		t.Fatal(err)
	}
	e.loops = []*epollLoop{l} // not running: the test plays the loop
	t.Cleanup(e.close)
	server, client := tcpPair(t)
	if err := server.(*net.TCPConn).SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	c := g.newConn(server, wire.Binary)
	g.conns.add(c)
	if err := e.serve(c, nil); err != nil {
		t.Fatal(err)
	}

	// Pong frames cost the server nothing but reading them. Masked with
	// a zero key, their payload goes as it is.
	pong := append([]byte{0x80 | opPong, 0x80 | 125, 0, 0, 0, 0}, make([]byte, 125)...)
	var stream []byte
	for len(stream) < 3*readBudget {
		stream = append(stream, pong...)
	}
	if _, err := client.Write(stream); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for inq(t, c) < len(stream) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d bytes arrived", inq(t, c), len(stream))
		}
		time.Sleep(time.Millisecond)
	}
	events := make([]unix.EpollEvent, 4)
	if n, err := unix.EpollWait(l.epfd, events, 0); err != nil || n != 1 || getID(&events[0]) != c.id {
		t.Fatalf("the bytes sent are not reported: %d events, %v", n, err)
	}

	buf := make([]byte, 16<<10)
	more := l.read(c, buf) // one turn
	left := inq(t, c)
	if left == 0 || !more {
		t.Fatalf("one turn read all %d bytes waiting (more = %v): a client that keeps sending holds its loop", len(stream), more)
	}
	if read := len(stream) - left; read > readBudget+len(buf) {
		t.Fatalf("one turn read %d bytes, want at most %d", read, readBudget+len(buf))
	}
	for i := 0; more; i++ {
		if i == 10 {
			t.Fatalf("%d bytes still unread after %d turns", inq(t, c), i)
		}
		more = l.read(c, buf)
	}
	if left := inq(t, c); left != 0 {
		t.Fatalf("the read reported the socket drained with %d bytes left", left)
	}
	// Nothing new arrived: edge-triggered epoll reports nothing.
	if n, err := unix.EpollWait(l.epfd, events, 0); err != nil || n != 0 {
		t.Fatalf("after draining: %d events, %v; want none", n, err)
	}
	// New bytes are reported without re-arming.
	if _, err := client.Write(pong); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.EpollWait(l.epfd, events, 1000); err != nil || n != 1 || getID(&events[0]) != c.id {
		t.Fatalf("new bytes after draining are not reported: %d events, %v", n, err)
	}
	if more := l.read(c, buf); more || inq(t, c) != 0 {
		t.Fatalf("a short read left bytes (more = %v, %d left)", more, inq(t, c))
	}
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st >= stateClosing {
		t.Fatalf("socket closing (state %d) after reading valid frames", st)
	}
	c.readFailed()
}
