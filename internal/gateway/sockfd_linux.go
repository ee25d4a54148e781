//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sockFD is an accepted socket held as a bare file descriptor, for the
// epoll engine. Behind a net.Conn every socket keeps a runtime netpoll
// descriptor (512 bytes outside the Go heap, cached and never freed), a
// netFD with a finalizer and two addresses: about 1.2 KiB of resident
// memory per idle socket, for polling the engine already does itself.
//
// sockFD is a syscall.RawConn for the engine and a net.Conn for the rest.
// Each call holds a reference, so the number is not closed, and reused by
// the next accepted socket, while a call is using it; Close closes it when
// the last call returns. Read and Write of the RawConn run their function
// once: the engine's functions do not wait for readiness (they return
// true). The net.Conn Write, used only by a flusher whose socket would
// block, retries with short sleeps until the write deadline: it parks a
// goroutine, never a thread.
type sockFD struct {
	fd    int
	state atomic.Uint32 // sockClosed | users*sockUser
	raddr netip.AddrPort
	wdl   atomic.Int64 // write deadline (unix nanos); 0: none
}

const (
	sockClosed uint32 = 1
	sockUser   uint32 = 2
)

// errSockClosed is the error of a call on a closed sockFD.
var errSockClosed = fmt.Errorf("gateway: socket: %w", net.ErrClosed)

var (
	_ syscall.RawConn = (*sockFD)(nil)
	_ net.Conn        = sockConn{}
)

// detachSocket returns nc's socket as a sockFD, in its net.Conn and its
// RawConn face, and closes nc (the socket stays open under the new
// descriptor). nc must not be in use elsewhere.
func detachSocket(nc net.Conn) (net.Conn, syscall.RawConn, error) {
	s, err := newSockFD(nc)
	if err != nil {
		return nil, nil, err
	}
	return sockConn{s}, s, nil
}

func newSockFD(nc net.Conn) (*sockFD, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("gateway: socket %T has no file descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("gateway: socket: %w", err)
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		// The duplicate shares the open socket and its O_NONBLOCK.
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("gateway: socket: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("gateway: duplicate socket descriptor: %w", derr)
	}
	s := &sockFD{fd: nfd}
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		// Unmapped, so an IPv4 peer of a dual-stack listener reads as
		// "1.2.3.4" (as net.TCPAddr prints it), not "::ffff:1.2.3.4".
		ap := ta.AddrPort()
		s.raddr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	// Close takes nc's descriptor out of the runtime's poller and returns
	// its netpoll descriptor to the runtime's cache for the next socket.
	_ = nc.Close()
	return s, nil
}

// acquire takes a reference; false once the socket is closed.
func (s *sockFD) acquire() bool {
	for {
		v := s.state.Load()
		if v&sockClosed != 0 {
			return false
		}
		if s.state.CompareAndSwap(v, v+sockUser) {
			return true
		}
	}
}

// release drops a reference and closes the descriptor when it was the
// last one of a closed socket.
func (s *sockFD) release() {
	if s.state.Add(^(sockUser - 1)) == sockClosed {
		_ = unix.Close(s.fd)
	}
}

// Close closes the socket once no call uses it. It is safe to call more
// than once; later calls return net.ErrClosed.
func (s *sockFD) Close() error {
	for {
		v := s.state.Load()
		if v&sockClosed != 0 {
			return errSockClosed
		}
		if s.state.CompareAndSwap(v, v|sockClosed) {
			if v == 0 {
				return unix.Close(s.fd)
			}
			return nil // the last user closes it
		}
	}
}

// Control runs f with the descriptor.
func (s *sockFD) Control(f func(fd uintptr)) error {
	if !s.acquire() {
		return errSockClosed
	}
	defer s.release()
	f(uintptr(s.fd))
	return nil
}

// Read runs f once with the descriptor; f must not wait for readiness.
func (s *sockFD) Read(f func(fd uintptr) bool) error {
	return s.Control(func(fd uintptr) { f(fd) })
}

// Write runs f once with the descriptor; f must not wait for readiness.
func (s *sockFD) Write(f func(fd uintptr) bool) error {
	return s.Control(func(fd uintptr) { f(fd) })
}

// sockConn is the net.Conn face of a sockFD.
type sockConn struct{ *sockFD }

// Write writes all of b, waiting while the socket is full until the write
// deadline (os.ErrDeadlineExceeded).
func (c sockConn) Write(b []byte) (int, error) {
	written := 0
	wait := time.Millisecond
	for written < len(b) {
		var n int
		var werr error
		if err := c.Control(func(fd uintptr) { n, werr = unix.Write(int(fd), b[written:]) }); err != nil {
			return written, err
		}
		switch {
		case werr == nil:
			written += n
			wait = time.Millisecond
		case errors.Is(werr, unix.EINTR):
		case errors.Is(werr, unix.EAGAIN):
			if dl := c.wdl.Load(); dl != 0 {
				left := time.Until(time.Unix(0, dl))
				if left <= 0 {
					return written, os.ErrDeadlineExceeded
				}
				wait = min(wait, left)
			}
			time.Sleep(wait)
			wait = min(2*wait, 32*time.Millisecond)
		default:
			return written, fmt.Errorf("gateway: socket write: %w", werr)
		}
	}
	return written, nil
}

// Read reads what the socket has without waiting (EAGAIN when empty).
func (c sockConn) Read(b []byte) (int, error) {
	var n int
	var rerr error
	if err := c.Control(func(fd uintptr) { n, rerr = unix.Read(int(fd), b) }); err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, fmt.Errorf("gateway: socket read: %w", rerr)
	}
	return max(n, 0), nil
}

// LocalAddr returns an empty address: nothing in the gateway needs it.
func (c sockConn) LocalAddr() net.Addr { return &net.TCPAddr{} }

// RemoteAddr returns the peer's address, built on each call.
func (c sockConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.raddr) }

// SetDeadline sets the write deadline; reads never wait.
func (c sockConn) SetDeadline(t time.Time) error { return c.SetWriteDeadline(t) }

// SetReadDeadline does nothing: reads never wait.
func (c sockConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline bounds how long Write waits for a full socket.
func (c sockConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.wdl.Store(0)
	} else {
		c.wdl.Store(t.UnixNano())
	}
	return nil
}
