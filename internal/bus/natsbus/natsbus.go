// Package natsbus implements bus.Bus on NATS: core NATS for publish/subscribe,
// request/reply and queue groups, JetStream key-value buckets (with per-key
// TTL, watched through ordered consumers) for bus.Bucket, and JetStream
// streams with durable pull consumers for bus.Stream. StartServer embeds a nats-server with JetStream in the
// process for single-node setups; Connect reaches it in-process or reaches
// any NATS server (≥ 2.11 for per-key TTL) over TCP.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/taisen-dev/taisen/internal/bus"
)

const (
	// dialTimeout bounds one TCP dial and the NATS handshake.
	dialTimeout = 5 * time.Second
	// drainTimeout bounds Close's drain.
	drainTimeout = 10 * time.Second
	// pingTimeout bounds Ping when its ctx has no deadline.
	pingTimeout = 10 * time.Second
	// subscribeFlushTimeout bounds the round trip that makes Subscribe
	// effective on the server before it returns.
	subscribeFlushTimeout = 5 * time.Second
	// Reconnect backoff: doubles from reconnectMin up to reconnectMax,
	// plus up to 20% jitter.
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
)

// Config configures a connection to NATS.
type Config struct {
	// URL is an external NATS server, e.g. "nats://127.0.0.1:4222"; it may
	// be a comma-separated list of servers of one cluster.
	URL string
	// Server, when set and URL is empty, is the embedded server to connect
	// to in-process (no TCP).
	Server *Server
	// Name is the connection name the server reports (monitoring, logs).
	Name string
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

// Bus is a bus.Bus on one NATS connection. It is safe for concurrent use.
type Bus struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	log       *slog.Logger
	closed    chan struct{} // closed by nats once the connection is closed
	closeOnce sync.Once
	closeErr  error
}

var _ bus.Bus = (*Bus)(nil)

// Connect connects to cfg.URL, or in-process to cfg.Server. The first
// connection must succeed (each TCP dial honors ctx); afterwards the
// connection reconnects forever with a backoff, logging disconnects at Warn
// and reconnects at Info. Messages published while disconnected are
// buffered (up to 8 MiB) and sent on reconnect.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natsbus: connect: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "natsbus", "conn", cfg.Name)

	b := &Bus{log: log, closed: make(chan struct{})}
	dialer := &ctxDialer{ctx: ctx}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.Timeout(dialTimeout),
		nats.DrainTimeout(drainTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			} else {
				log.Debug("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", connectedURL(nc, cfg.URL))
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			log.Debug("nats connection closed")
			close(b.closed)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("nats async error", "subject", sub.Subject, "err", err)
				return
			}
			log.Error("nats async error", "err", err)
		}),
		nats.LameDuckModeHandler(func(nc *nats.Conn) {
			log.Warn("nats server entering lame duck mode", "url", connectedURL(nc, cfg.URL))
		}),
	}
	url := cfg.URL
	switch {
	case url != "":
		opts = append(opts, nats.SetCustomDialer(dialer))
	case cfg.Server != nil:
		opts = append(opts, nats.InProcessServer(cfg.Server.ns))
	default:
		return nil, errors.New("natsbus: connect: either URL or Server is required")
	}

	nc, err := nats.Connect(url, opts...)
	dialer.done()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("natsbus: connect: %w", ctxErr)
		}
		return nil, fmt.Errorf("natsbus: connect: %w", err)
	}
	if err := ctx.Err(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: connect: jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	log.Info("nats connected", "url", connectedURL(nc, cfg.URL), "server", nc.ConnectedServerName())
	return b, nil
}

// connectedURL names the server nc is connected to for logs. An in-process
// connection (no configured URL) reports nats.go's placeholder URL, so it
// is named "in-process" instead.
func connectedURL(nc *nats.Conn, configured string) string {
	if configured == "" {
		return "in-process"
	}
	return nc.ConnectedUrlRedacted()
}

// reconnectDelay is the backoff between reconnect rounds.
func reconnectDelay(attempts int) time.Duration {
	d := reconnectMax
	if attempts < 16 {
		d = min(reconnectMin<<max(attempts-1, 0), reconnectMax)
	}
	return d + rand.N(d/5+1)
}

// ctxDialer dials TCP honoring Connect's ctx during the first connection
// and only its own timeout afterwards (reconnects outlive that ctx).
type ctxDialer struct {
	mu  sync.Mutex
	ctx context.Context
}

func (d *ctxDialer) done() {
	d.mu.Lock()
	d.ctx = nil
	d.mu.Unlock()
}

// Dial implements nats.CustomDialer.
func (d *ctxDialer) Dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	nd := net.Dialer{Timeout: dialTimeout}
	return nd.DialContext(ctx, network, address)
}

// Publish sends data to subject. It returns once the message is buffered
// for sending; order is kept per connection.
func (b *Bus) Publish(ctx context.Context, subject string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("natsbus: publish %q: %w", subject, mapErr(err))
	}
	if err := validSubject(subject, false); err != nil {
		return fmt.Errorf("natsbus: publish: %w", err)
	}
	if err := b.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("natsbus: publish %q: %w", subject, mapErr(err))
	}
	return nil
}

// Request sends data to one subscriber of subject and waits for its reply
// until ctx ends (bus.ErrTimeout, which also matches ctx's error) or no
// subscriber listens (bus.ErrNoResponders, reported at once by the server).
func (b *Bus) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	if err := validSubject(subject, false); err != nil {
		return nil, fmt.Errorf("natsbus: request: %w", err)
	}
	m, err := b.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, fmt.Errorf("natsbus: request %q: %w", subject, mapErr(err))
	}
	return m.Data, nil
}

// Subscribe delivers messages on subject to h, one at a time and in order.
// The subscription is registered with the server when Subscribe returns
// (unless the connection is reconnecting, then it is on reconnect).
func (b *Bus) Subscribe(subject string, h bus.Handler) (bus.Subscription, error) {
	return b.subscribe(subject, "", h)
}

// QueueSubscribe is Subscribe where each message goes to one member of the
// queue group only.
func (b *Bus) QueueSubscribe(subject, queue string, h bus.Handler) (bus.Subscription, error) {
	if queue == "" || strings.ContainsAny(queue, " \t\r\n") {
		return nil, fmt.Errorf("natsbus: queue subscribe %q: invalid queue name %q", subject, queue)
	}
	return b.subscribe(subject, queue, h)
}

func (b *Bus) subscribe(subject, queue string, h bus.Handler) (bus.Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("natsbus: subscribe %q: nil handler", subject)
	}
	if err := validSubject(subject, true); err != nil {
		return nil, fmt.Errorf("natsbus: subscribe: %w", err)
	}
	sub, err := b.nc.QueueSubscribe(subject, queue, func(m *nats.Msg) {
		var respond func([]byte) error
		if m.Reply != "" {
			respond = func(data []byte) error {
				if err := m.Respond(data); err != nil {
					return fmt.Errorf("natsbus: respond on %q: %w", m.Subject, mapErr(err))
				}
				return nil
			}
		}
		h(bus.NewMsg(m.Subject, m.Data, respond))
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: subscribe %q: %w", subject, mapErr(err))
	}
	// Make the subscription effective before returning, so a publish from
	// another connection right after cannot miss it. While reconnecting the
	// flush fails but the subscription is replayed on reconnect.
	if err := b.nc.FlushTimeout(subscribeFlushTimeout); err != nil {
		if b.nc.IsClosed() || b.nc.IsDraining() {
			_ = sub.Unsubscribe()
			return nil, fmt.Errorf("natsbus: subscribe %q: %w", subject, mapErr(err))
		}
		b.log.Debug("subscribe flush failed", "subject", subject, "err", err)
	}
	return &subscription{sub: sub}, nil
}

// subscription wraps a NATS subscription.
type subscription struct {
	sub *nats.Subscription
}

// Unsubscribe stops delivery; a handler already running finishes. It is
// safe to call more than once and after the bus is closed.
func (s *subscription) Unsubscribe() error {
	err := s.sub.Unsubscribe()
	if err == nil || errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed) {
		return nil
	}
	return fmt.Errorf("natsbus: unsubscribe %q: %w", s.sub.Subject, mapErr(err))
}

// Ping makes a round trip to the server. Without a deadline on ctx it gives
// up after 10 seconds.
func (b *Bus) Ping(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pingTimeout)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("natsbus: ping: %w", mapErr(err))
	}
	return nil
}

// Close drains the connection: subscriptions stop taking new messages,
// handlers finish the messages already received, buffered publishes are
// flushed, then the connection closes. Close waits for that (at most about
// 10 seconds); later calls on the bus return bus.ErrClosed. Calling Close
// again returns the first call's result.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		err := b.nc.Drain()
		switch {
		case err == nil:
		case errors.Is(err, nats.ErrConnectionClosed):
		case errors.Is(err, nats.ErrConnectionReconnecting):
			// Drain closed the connection: there is nothing to drain into.
		default:
			b.closeErr = fmt.Errorf("natsbus: close: %w", err)
			b.nc.Close()
		}
		t := time.NewTimer(drainTimeout + time.Second)
		defer t.Stop()
		select {
		case <-b.closed:
		case <-t.C:
			b.nc.Close()
			<-b.closed
		}
	})
	return b.closeErr
}

// mapErr adds the bus sentinel matching a NATS error, keeping the original
// in the chain (so context.Canceled stays distinguishable from
// context.DeadlineExceeded).
func mapErr(err error) error {
	var sentinel error
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		sentinel = bus.ErrNoResponders
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, nats.ErrTimeout):
		sentinel = bus.ErrTimeout
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrDrainTimeout):
		sentinel = bus.ErrClosed
	default:
		return err
	}
	if errors.Is(err, sentinel) {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// validSubject checks a subject: dot-separated non-empty tokens without
// whitespace; wildcards ("*" tokens, ">" as the last token) only when
// wildcards is set.
func validSubject(subject string, wildcards bool) error {
	if subject == "" {
		return errors.New("empty subject")
	}
	if strings.ContainsAny(subject, " \t\r\n") {
		return fmt.Errorf("invalid subject %q: contains whitespace", subject)
	}
	tokens := strings.Split(subject, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Errorf("invalid subject %q: empty token", subject)
		case t == "*" || t == ">":
			if !wildcards {
				return fmt.Errorf("invalid subject %q: wildcards are for subscriptions only", subject)
			}
			if t == ">" && i != len(tokens)-1 {
				return fmt.Errorf("invalid subject %q: \">\" must be the last token", subject)
			}
		}
	}
	return nil
}
