package gateway

import (
	"fmt"
)

// engine reads sockets and feeds their bytes to conn.onData. At most one
// onData call per socket runs at a time.
type engine interface {
	// serve starts reading c; buffered are bytes already read during the
	// upgrade.
	serve(c *conn, buffered []byte) error
	// close stops the engine; sockets are closed by the gateway.
	close()
}

func newEngine(g *Gateway) (engine, error) {
	switch g.cfg.Engine {
	case "goroutine":
		return &portableEngine{g: g}, nil
	case "epoll":
		return newEpollEngine(g)
	}
	return nil, fmt.Errorf("unknown engine %q", g.cfg.Engine)
}

// portableEngine reads each socket on a goroutine of its own. It works on
// every platform and for TLS sockets, at the cost of a goroutine and a read
// buffer per socket (about 8-10 KiB; see docs/benchmarks.md).
type portableEngine struct {
	g *Gateway
}

func (e *portableEngine) serve(c *conn, buffered []byte) error {
	e.g.wg.Add(1)
	go func() {
		defer e.g.wg.Done()
		if len(buffered) > 0 && !c.onData(buffered) {
			return
		}
		buf := make([]byte, 4096)
		for {
			n, err := c.nc.Read(buf)
			if n > 0 && !c.onData(buf[:n]) {
				return
			}
			if err != nil {
				c.readFailed()
				return
			}
		}
	}()
	return nil
}

func (e *portableEngine) close() {}
