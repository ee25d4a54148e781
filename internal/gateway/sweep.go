package gateway

import (
	"context"
	"time"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/clock"
)

// sweepLoop runs the timers: auth and idle timeouts, resume grace and
// session record refreshes, all from one goroutine on the gateway's clock.
func (g *Gateway) sweepLoop(t clock.Ticker) {
	defer g.wg.Done()
	defer t.Stop()
	for {
		select {
		case <-g.baseCtx.Done():
			return
		case <-t.C():
			g.sweep()
		}
	}
}

func (g *Gateway) sweep() {
	now := g.mono.Now()
	authLimit := int64(g.cfg.AuthTimeout)
	idleLimit := int64(g.cfg.IdleTimeout)
	type closing struct {
		c      *conn
		reason realtimev1.CloseReason
		msg    string
	}
	var toClose []closing
	g.conns.each(func(c *conn) {
		c.mu.Lock()
		st := c.state
		c.mu.Unlock()
		switch {
		case st >= stateClosing:
		case st != stateOpen && now-c.openedAt > authLimit:
			toClose = append(toClose, closing{c, realtimev1.CloseReason_CLOSE_REASON_AUTH_TIMEOUT, "not authenticated in time"})
		case now-c.lastRecv.Load() > idleLimit:
			toClose = append(toClose, closing{c, realtimev1.CloseReason_CLOSE_REASON_IDLE_TIMEOUT, "no frame received in time"})
		}
	})
	for _, x := range toClose {
		x.c.closeWith(x.reason, x.msg, withNotice)
	}

	grace := int64(g.cfg.ResumeGrace)
	var expired []*Session
	g.sessMu.Lock()
	for _, s := range g.sessions {
		s.mu.Lock()
		switch {
		case s.state != sessLive:
		case s.conn == nil && s.detachedAt != 0 && now-s.detachedAt > grace:
			expired = append(expired, s)
		case s.refreshAt <= now:
			s.refreshAt = now + int64(g.cfg.SessionTTL/3)
			select {
			case g.refreshCh <- s:
			default:
				s.refreshAt = now // retry on the next sweep
			}
		}
		s.mu.Unlock()
	}
	g.sessMu.Unlock()
	for _, s := range expired {
		// The record is left to expire by its TTL: a mass disconnect costs
		// no writes.
		g.end(s, EndExpired)
	}
}

func (g *Gateway) refreshLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.baseCtx.Done():
			return
		case s := <-g.refreshCh:
			ctx, cancel := context.WithTimeout(g.baseCtx, 5*time.Second)
			_ = g.refresh(ctx, s)
			cancel()
		}
	}
}
