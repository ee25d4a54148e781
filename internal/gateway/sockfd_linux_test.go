//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestDetachSocketKeepsTheConnection(t *testing.T) {
	server, client := tcpPair(t)
	nc, rc, err := detachSocket(server)
	require.NoError(t, err)
	defer nc.Close()

	_, err = server.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed, "the original net.Conn is closed")
	require.Equal(t, client.LocalAddr().String(), nc.RemoteAddr().String())

	_, err = client.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 16)
	var n int
	require.Eventually(t, func() bool {
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true
		})
		return err == nil && rerr == nil
	}, 5*time.Second, time.Millisecond)
	require.Equal(t, "ping", string(buf[:n]))

	_, err = nc.Write([]byte("pong"))
	require.NoError(t, err)
	got := make([]byte, 4)
	_, err = io.ReadFull(client, got)
	require.NoError(t, err)
	require.Equal(t, "pong", string(got))
}

func TestSockFDCloseWaitsForTheCallInProgress(t *testing.T) {
	server, client := tcpPair(t)
	nc, rc, err := detachSocket(server)
	require.NoError(t, err)

	var werr error
	require.NoError(t, rc.Control(func(fd uintptr) {
		require.NoError(t, nc.Close())
		// The descriptor is still this socket until the call returns.
		_, werr = unix.Write(int(fd), []byte("last"))
	}))
	require.NoError(t, werr)

	got, err := io.ReadAll(client) // the bytes, then EOF: closed after the call
	require.NoError(t, err)
	require.Equal(t, "last", string(got))

	require.ErrorIs(t, rc.Control(func(uintptr) { t.Error("ran on a closed socket") }), net.ErrClosed)
	_, err = nc.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, nc.Close(), net.ErrClosed)
}

func TestSockConnWriteStopsAtTheDeadline(t *testing.T) {
	server, _ := tcpPair(t) // the client never reads
	nc, _, err := detachSocket(server)
	require.NoError(t, err)
	defer nc.Close()

	require.NoError(t, nc.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
	big := make([]byte, 64<<20) // more than both socket buffers hold
	n, err := nc.Write(big)
	require.True(t, errors.Is(err, os.ErrDeadlineExceeded), "err = %v", err)
	require.Less(t, n, len(big))
}

func TestSockConnRemoteAddrOfAnIPv4PeerOnADualStackListener(t *testing.T) {
	ln, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Skipf("no IPv6 listener: %v", err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)))
	require.NoError(t, err)
	defer client.Close()
	server := <-accepted
	require.NotNil(t, server)
	want := server.RemoteAddr().String()
	nc, _, err := detachSocket(server)
	require.NoError(t, err)
	defer nc.Close()
	require.Equal(t, want, nc.RemoteAddr().String())
	require.Equal(t, "127.0.0.1", remoteIP(nc.RemoteAddr().String()))
}
