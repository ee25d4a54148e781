//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	defaultEngine  = "epoll"
	epollSupported = true
)

// epollEngine watches every socket with one epoll instance in one-shot
// mode. A poller goroutine waits for readiness and hands ready sockets to
// a fixed pool of workers, which read what is there without blocking,
// process the frames and re-arm the socket. An idle socket costs an epoll
// registration and nothing else: no goroutine, no buffer.
type epollEngine struct {
	g      *Gateway
	epfd   int
	wakeFD int // eventfd that stops the poller
	ready  chan *conn

	mu    sync.Mutex
	conns map[uint64]*conn // guarded by mu; sockets being watched, by id

	wg   sync.WaitGroup
	once sync.Once
}

const wakeID = 0

func newEpollEngine(g *Gateway) (engine, error) {
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
	e := &epollEngine{g: g, epfd: epfd, wakeFD: wfd, ready: make(chan *conn, 1024), conns: make(map[uint64]*conn)}
	e.wg.Add(1 + g.cfg.Workers)
	go e.poll()
	for i := 0; i < g.cfg.Workers; i++ {
		go e.work()
	}
	return e, nil
}

func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func getID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func (e *epollEngine) serve(c *conn, buffered []byte) error {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("socket %T has no file descriptor; use the goroutine engine", c.nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("syscall conn: %w", err)
	}
	c.rc = rc
	if len(buffered) > 0 && !c.onData(buffered) {
		return nil
	}
	e.mu.Lock()
	e.conns[c.id] = c
	e.mu.Unlock()
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: armEvents}
		setID(&ev, c.id)
		cerr = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		e.forget(c)
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

func (e *epollEngine) forget(c *conn) {
	e.mu.Lock()
	delete(e.conns, c.id)
	e.mu.Unlock()
}

func (e *epollEngine) poll() {
	defer e.wg.Done()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(e.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			e.g.log.Error("epoll_wait failed; socket engine stops", "err", err)
			close(e.ready)
			return
		}
		for i := 0; i < n; i++ {
			id := getID(&events[i])
			if id == wakeID {
				close(e.ready)
				return
			}
			e.mu.Lock()
			c := e.conns[id]
			e.mu.Unlock()
			if c != nil {
				e.ready <- c
			}
		}
	}
}

func (e *epollEngine) work() {
	defer e.wg.Done()
	buf := make([]byte, 16<<10)
	for c := range e.ready {
		e.read(c, buf)
	}
}

// read drains what the socket has, then re-arms it.
func (e *epollEngine) read(c *conn, buf []byte) {
	for {
		var n int
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf)
			return true
		})
		if err != nil { // the socket was closed under us
			e.forget(c)
			c.readFailed()
			return
		}
		if rerr == unix.EINTR {
			continue
		}
		if rerr == unix.EAGAIN {
			break
		}
		if rerr != nil || n == 0 {
			e.forget(c)
			c.readFailed()
			return
		}
		if !c.onData(buf[:n]) {
			e.forget(c)
			return
		}
		if n < len(buf) {
			break
		}
	}
	var cerr error
	err := c.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: armEvents}
		setID(&ev, c.id)
		cerr = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		e.forget(c)
		c.readFailed()
	}
}

func (e *epollEngine) close() {
	e.once.Do(func() {
		var one = [8]byte{1, 0, 0, 0, 0, 0, 0, 0}
		_, _ = unix.Write(e.wakeFD, one[:])
		e.wg.Wait()
		unix.Close(e.wakeFD)
		unix.Close(e.epfd)
	})
}
