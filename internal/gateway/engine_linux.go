//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

const (
	defaultEngine  = "epoll"
	epollSupported = true
)

// epollEngine watches sockets with a few epoll loops (Config.Workers, one
// per core by default). Each loop owns an epoll instance and the sockets
// assigned to it, waits for edge-triggered readiness, reads what a ready
// socket has without blocking and processes its frames on the spot
// (requests that may block run on their own goroutines). A socket is
// registered once, when it arrives. An idle socket costs that
// registration and nothing else: no goroutine, no buffer.
type epollEngine struct {
	g     *Gateway
	loops []*epollLoop
	wg    sync.WaitGroup
	once  sync.Once
}

type epollLoop struct {
	e      *epollEngine
	epfd   int
	wakeFD int // eventfd that stops the loop
	// file wraps epfd so the loop waits for it in Go's own network poller
	// (an epoll fd is readable while it has events): a waiting loop parks
	// like any goroutine instead of holding a thread in epoll_wait, which
	// would delay the goroutines it starts until the runtime noticed.
	file *os.File
	rc   syscall.RawConn
	// failed is set when the loop stopped on an error.
	failed atomic.Bool
}

const wakeID = 0

func newEpollEngine(g *Gateway) (engine, error) {
	e := &epollEngine{g: g}
	for i := 0; i < g.cfg.Workers; i++ {
		l, err := newEpollLoop(e)
		if err != nil {
			e.close()
			return nil, err
		}
		e.loops = append(e.loops, l)
	}
	for _, l := range e.loops {
		e.wg.Add(1)
		go l.run()
	}
	return e, nil
}

func newEpollLoop(e *epollEngine) (*epollLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setID(&ev, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(wfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(wfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll fd nonblocking: %w", err)
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		unix.Close(wfd)
		return nil, fmt.Errorf("epoll fd raw conn: %w", err)
	}
	return &epollLoop{e: e, epfd: epfd, wakeFD: wfd, file: f, rc: rc}, nil
}

func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func getID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// iovMax is Linux's IOV_MAX, the most buffers one writev accepts.
const iovMax = 1024

// armEvents are edge-triggered: a socket is added once and never
// re-armed (one system call less per read).
const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

func (e *epollEngine) serve(c *conn, buffered []byte) error {
	rc := c.rc // set by newConn
	if rc == nil {
		return fmt.Errorf("socket %T has no file descriptor; use the goroutine engine", c.nc)
	}
	if len(buffered) > 0 && !c.onData(buffered) {
		return nil
	}
	l := e.loopOf(c)
	if l.failed.Load() {
		return errors.New("the socket loop for this socket stopped")
	}
	var cerr error
	err := rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: armEvents}
		setID(&ev, c.id)
		cerr = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

func (l *epollLoop) run() {
	defer l.e.wg.Done()
	events := make([]unix.EpollEvent, 128)
	buf := make([]byte, 16<<10)
	// again holds the sockets whose last read stopped at readBudget with
	// bytes possibly left: edge-triggered epoll reports only new bytes,
	// so the loop serves them again after the next wait, which then must
	// not park.
	var again, next []*conn
	for {
		var n int
		var werr error
		if len(again) > 0 {
			n, werr = unix.EpollWait(l.epfd, events, 0)
		} else if err := l.rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			// Nothing ready: park until the epoll fd becomes readable.
			return n != 0 || (werr != nil && werr != unix.EINTR && werr != unix.EAGAIN)
		}); err != nil {
			l.fail(fmt.Errorf("waiting on epoll: %w", err))
			return
		}
		if werr != nil {
			if errors.Is(werr, unix.EINTR) {
				continue
			}
			l.fail(fmt.Errorf("epoll_wait: %w", werr))
			return
		}
		next = next[:0]
		for i := 0; i < n; i++ {
			id := getID(&events[i])
			if id == wakeID {
				return
			}
			// Sockets are looked up in the gateway's table: a socket closed
			// meanwhile is gone from it and its stale event is skipped.
			if c := l.e.g.conns.get(id); c != nil && l.read(c, buf) {
				next = append(next, c)
			}
		}
		for _, c := range again {
			if l.e.g.conns.get(c.id) == c && l.read(c, buf) {
				next = append(next, c)
			}
		}
		clear(again)
		again, next = next, again
	}
}

// fail stops a loop that cannot wait any more: the gateway reports not
// ready and takes no new sockets, and the loop's sockets are closed so
// their clients reconnect (to another node) instead of hanging.
func (l *epollLoop) fail(err error) {
	l.failed.Store(true)
	l.e.g.engineFailed(err)
	for _, c := range l.e.g.conns.all() {
		if l.e.loopOf(c) == l {
			c.closeWith(realtimev1.CloseReason_CLOSE_REASON_SERVER_ERROR, "socket loop failed; reconnect", withNotice)
		}
	}
}

func (e *epollEngine) loopOf(c *conn) *epollLoop { return e.loops[c.id%uint64(len(e.loops))] }

// readBudget bounds the bytes one socket may have read per turn of its
// loop, so a client that keeps sending cannot hold the loop: the rest is
// read after the loop has served the other ready sockets.
const readBudget = 64 << 10

// read drains what the socket has, up to readBudget, and reports whether
// bytes may be left (the budget ran out). Events are edge-triggered: a
// socket needs no re-arming after a read, and a short read means the
// socket was drained (bytes arriving later report a new event).
func (l *epollLoop) read(c *conn, buf []byte) (more bool) {
	for budget := readBudget; budget > 0; {
		var n int
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true
		})
		if err != nil { // the socket was closed under us
			c.readFailed()
			return false
		}
		if rerr == unix.EINTR {
			continue
		}
		if rerr == unix.EAGAIN {
			return false
		}
		if rerr != nil || n == 0 {
			c.readFailed()
			return false
		}
		if !c.onData(buf[:n]) {
			return false
		}
		if n < len(buf) {
			return false
		}
		budget -= n
	}
	return true
}

func (e *epollEngine) close() {
	e.once.Do(func() {
		one := [8]byte{1}
		for _, l := range e.loops {
			_, _ = unix.Write(l.wakeFD, one[:])
		}
		e.wg.Wait()
		for _, l := range e.loops {
			unix.Close(l.wakeFD)
			l.file.Close() // closes epfd
		}
	})
}

// writeNow writes bufs to the socket without blocking and returns how many
// bytes went out; EAGAIN is not an error (0 or a partial count). ok is
// false when the socket has no raw file descriptor.
func (c *conn) writeNow(bufs [][]byte) (n int, ok bool, err error) {
	if c.rc == nil {
		return 0, false, nil
	}
	if len(bufs) > iovMax {
		// writev takes at most IOV_MAX buffers; the rest goes out on the
		// next call (the caller loops on partial writes).
		bufs = bufs[:iovMax]
	}
	var werr error
	cerr := c.rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), bufs)
			if werr != unix.EINTR {
				return true
			}
		}
	})
	if cerr != nil {
		return 0, true, cerr
	}
	if werr == unix.EAGAIN {
		return 0, true, nil
	}
	if n < 0 {
		n = 0
	}
	return n, true, werr
}
