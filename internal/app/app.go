// Package app wires a taisen node together from a config.Config: it opens
// the store and the bus (embedded or external), builds the domain
// services, serves the client and admin listeners, reports readiness and
// drains on shutdown. It holds wiring only; behaviour lives in the domain
// packages.
//
// A node is a list of roles (roles.go) with one lifecycle: New starts
// them in order, Run serves, Shutdown drains them and stops them in
// reverse order.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/taisen-dev/taisen/game"
	"github.com/taisen-dev/taisen/internal/auth"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/bus/natsbus"
	"github.com/taisen-dev/taisen/internal/clock"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/control"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/logdam"
	"github.com/taisen-dev/taisen/internal/notify"
	"github.com/taisen-dev/taisen/internal/room"
	"github.com/taisen-dev/taisen/internal/store"
)

// Options adjust how a node is built, beyond its Config.
type Options struct {
	// LogOutput receives the logs (through the dam); os.Stderr when nil.
	LogOutput io.Writer
	// RPC holds extra socket operations (server-as-library users).
	RPC *gateway.Registry
	// Banner receives the human-readable start-up lines (where secrets
	// are, listener addresses); LogOutput when nil.
	Banner io.Writer
	// Clock drives the node's timers; the system clock when nil (tests
	// pass a clock.Fake).
	Clock clock.Clock
	// Version is the build version the node reports in its heartbeat.
	Version string
	// SessionHooks are called with this node's session lifecycle events
	// (see gateway.Gateway.OnSession).
	SessionHooks []func(gateway.SessionEvent)
	// Games are the games rooms may run; none when nil.
	Games *game.Registry
}

// App is one running taisen node.
type App struct {
	cfg    config.Config
	opts   Options
	log    *slog.Logger
	dam    *logdam.Writer
	banner io.Writer
	reg    *prometheus.Registry

	// roles in start order; see roles.go.
	roles []role

	// Set by the roles as they start.
	dataLock    *dirLock
	serverKey   string
	tokenSecret string
	natsSrv     *natsbus.Server
	bus         bus.Bus
	store       store.Store
	auth        *auth.Service
	gw          *gateway.Gateway
	nodes       *control.Registry
	beat        *control.Heartbeat
	// rpc holds the socket operations (Options.RPC or a new registry);
	// domains add theirs as they start.
	rpc *gateway.Registry
	// notify is set once the notify role started; the gateway's session
	// hook reads it.
	notify atomic.Pointer[notify.Service]
	// rooms is set once the room role started; read like notify.
	rooms atomic.Pointer[room.Manager]
	// live caches the live node ids for presence (liveNodes).
	liveMu sync.Mutex
	live   map[string]bool
	liveAt time.Time

	clientLn, adminLn net.Listener
	clientSrv         *http.Server
	adminSrv          *http.Server

	ready     atomic.Bool
	serveErr  chan error
	closeOnce sync.Once
}

// New starts every role of a node in order (store, bus, auth, gateway,
// and binds the listeners); Run serves. On error the roles started so far
// are stopped again, in reverse order, and the error names the role.
func New(ctx context.Context, cfg config.Config, opts Options) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := opts.LogOutput
	if out == nil {
		out = os.Stderr
	}
	if cfg.NodeID == "" {
		cfg.NodeID = generateNodeID()
	}
	a := &App{cfg: cfg, opts: opts, reg: prometheus.NewRegistry(), serveErr: make(chan error, 1), rpc: opts.RPC}
	if a.rpc == nil {
		a.rpc = gateway.NewRegistry()
	}
	a.banner = opts.Banner
	if a.banner == nil {
		a.banner = out
	}
	a.dam = logdam.New(out, cfg.LogQueue)
	a.log = newLogger(a.dam, cfg).With("node", cfg.NodeID)
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "taisen_log_dropped_total", Help: "Log lines dropped because the log queue was full."},
			func() float64 { return float64(a.dam.Dropped()) }))

	if err := a.startRoles(ctx, a.nodeRoles()); err != nil {
		a.closeLog(context.Background())
		return nil, err
	}
	return a, nil
}

// startRoles starts roles in order. When one fails, it and the roles
// before it are stopped in reverse order, and the error names it.
func (a *App) startRoles(ctx context.Context, roles []role) error {
	a.roles = roles
	for i, r := range roles {
		if err := r.Start(ctx); err != nil {
			a.stopRoles(context.Background(), i)
			return fmt.Errorf("%s: %w", r.Name(), err)
		}
	}
	return nil
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	o := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func generateNodeID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, host)
	if len(host) > 32 {
		host = host[:32]
	}
	if host == "" {
		host = "node"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// ClientAddr is the bound client listener address.
func (a *App) ClientAddr() string { return a.clientLn.Addr().String() }

// AdminAddr is the bound admin listener address.
func (a *App) AdminAddr() string { return a.adminLn.Addr().String() }

// ServerKey is the key for server-to-server calls.
func (a *App) ServerKey() string { return a.serverKey }

// NodeID is this node's name.
func (a *App) NodeID() string { return a.cfg.NodeID }

// NATSURL is the URL other nodes can use to join the embedded NATS ("" when
// it does not listen or NATS is external).
func (a *App) NATSURL() string {
	if a.natsSrv == nil {
		return ""
	}
	return a.natsSrv.ClientURL()
}

// Gateway returns the node's gateway (tests and the server library use it
// to deliver pushes).
func (a *App) Gateway() *gateway.Gateway { return a.gw }

// Store returns the node's store (nil before it started).
func (a *App) Store() store.Store { return a.store }

// Bus returns the node's bus (nil before it started).
func (a *App) Bus() bus.Bus { return a.bus }

// Rooms returns the node's room manager (nil before it started).
func (a *App) Rooms() *room.Manager { return a.rooms.Load() }

// Notify returns the node's notification service (nil before it started).
func (a *App) Notify() *notify.Service { return a.notify.Load() }

// Logger is the node's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Run serves until ctx ends, then drains (up to the drain timeout) and
// stops every role. A clean drain returns nil; a role that fails while
// serving stops the node and its error is returned.
func (a *App) Run(ctx context.Context) error {
	for _, r := range a.roles {
		if s, ok := r.(servingRole); ok {
			name := r.Name()
			s.Serve(func(err error) {
				select {
				case a.serveErr <- fmt.Errorf("%s: %w", name, err):
				default: // the node is already stopping for an earlier failure
				}
			})
		}
	}
	a.ready.Store(true)
	fmt.Fprintf(a.banner, "taisen: node %s serving clients on %s (WebSocket /ws), admin on %s\n", a.cfg.NodeID, a.ClientAddr(), a.AdminAddr())
	a.log.Info("serving", "client", a.ClientAddr(), "admin", a.AdminAddr())
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-a.serveErr:
		a.log.Error("stopping after a failure", "err", runErr)
	}
	a.Shutdown(context.Background())
	return runErr
}

// Shutdown drains the node (stop accepting, ask clients to reconnect
// elsewhere, wait up to the drain timeout) and stops its roles in reverse
// order. ctx can cut the drain short.
func (a *App) Shutdown(ctx context.Context) {
	a.closeOnce.Do(func() {
		a.ready.Store(false)
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, a.cfg.DrainTimeout)
		for i := len(a.roles) - 1; i >= 0; i-- {
			if d, ok := a.roles[i].(drainingRole); ok {
				if err := d.Drain(dctx); err != nil {
					a.log.Warn("drain incomplete", "role", a.roles[i].Name(), "err", err)
				}
			}
		}
		cancel()
		a.log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
		a.stopRoles(ctx, len(a.roles)-1)
		a.closeLog(ctx)
	})
}

// stopRoles stops roles[last] down to roles[0], each with a bounded time.
func (a *App) stopRoles(ctx context.Context, last int) {
	for i := last; i >= 0; i-- {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		if err := a.roles[i].Stop(sctx); err != nil {
			a.log.Warn("stop", "role", a.roles[i].Name(), "err", err)
		}
		cancel()
	}
}

// stopTimeout bounds one role's Stop.
const stopTimeout = 5 * time.Second

func (a *App) closeLog(ctx context.Context) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	_ = a.dam.Close(sctx)
}
