// Package app wires a taisen node together from a config.Config: it opens
// the store and the bus (embedded or external), builds the domain
// services, serves the client and admin listeners, reports readiness and
// drains on shutdown. It holds wiring only; behaviour lives in the domain
// packages.
package app

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/auth"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/bus/natsbus"
	"github.com/taisen-dev/taisen/internal/clock"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/control"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/logdam"
	"github.com/taisen-dev/taisen/internal/store"
	"github.com/taisen-dev/taisen/internal/store/postgres"
	"github.com/taisen-dev/taisen/internal/store/sqlite"
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
}

// App is one running taisen node.
type App struct {
	cfg     config.Config
	log     *slog.Logger
	dam     *logdam.Writer
	banner  io.Writer
	reg     *prometheus.Registry
	natsSrv *natsbus.Server
	bus     bus.Bus
	store   store.Store
	auth    *auth.Service
	gw      *gateway.Gateway
	nodes   *control.Registry
	beat    *control.Heartbeat

	clientLn, adminLn net.Listener
	clientSrv         *http.Server
	adminSrv          *http.Server
	serverKey         string
	ready             atomic.Bool
	serveErr          chan error
	closeOnce         sync.Once
}

// New opens everything a node needs and binds its listeners; Run serves.
// On error everything opened so far is closed again.
func New(ctx context.Context, cfg config.Config, opts Options) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := opts.LogOutput
	if out == nil {
		out = os.Stderr
	}
	a := &App{cfg: cfg, reg: prometheus.NewRegistry(), serveErr: make(chan error, 2)}
	a.banner = opts.Banner
	if a.banner == nil {
		a.banner = out
	}
	a.dam = logdam.New(out, cfg.LogQueue)
	a.log = newLogger(a.dam, cfg)
	defer func() {
		if err != nil {
			a.closeAll(context.Background())
		}
	}()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "taisen_log_dropped_total", Help: "Log lines dropped because the log queue was full."},
			func() float64 { return float64(a.dam.Dropped()) }))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = generateNodeID()
		a.cfg.NodeID = cfg.NodeID
	}
	a.log = a.log.With("node", cfg.NodeID)

	// Secrets: flags/env win; otherwise generated once into the data dir.
	a.serverKey = cfg.ServerKey
	if a.serverKey == "" {
		key, path, created, err := loadOrCreateSecret(cfg.DataDir, "server.key", 24)
		if err != nil {
			return nil, err
		}
		a.serverKey = key
		verb := "using"
		if created {
			verb = "generated"
		}
		fmt.Fprintf(a.banner, "taisen: %s server key in %s (server-to-server calls: Authorization: Bearer <key>)\n", verb, path)
	}
	tokenSecret := cfg.TokenSecret
	if tokenSecret == "" {
		secret, path, created, err := loadOrCreateSecret(cfg.DataDir, "token.secret", 32)
		if err != nil {
			return nil, err
		}
		if created {
			fmt.Fprintf(a.banner, "taisen: generated token signing secret in %s\n", path)
		}
		tokenSecret = secret
	}

	// Bus.
	if cfg.NATSURL == "" {
		a.natsSrv, err = natsbus.StartServer(ctx, natsbus.ServerConfig{
			StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: cfg.NATSListen, ServerName: cfg.NodeID, Logger: a.log.With("component", "nats"),
		})
		if err != nil {
			return nil, fmt.Errorf("start embedded NATS: %w", err)
		}
		if u := a.natsSrv.ClientURL(); u != "" {
			fmt.Fprintf(a.banner, "taisen: embedded NATS accepts other nodes at %s (start them with --nats-url %s)\n", u, u)
		}
	}
	nb, err := natsbus.Connect(ctx, natsbus.Config{URL: cfg.NATSURL, Server: a.natsSrv, Name: "taisen-" + cfg.NodeID, Logger: a.log.With("component", "bus")})
	if err != nil {
		if cfg.NATSURL != "" {
			return nil, fmt.Errorf("connect to NATS at %s (is it running, version ≥ 2.11 with JetStream?): %w", cfg.NATSURL, err)
		}
		return nil, fmt.Errorf("connect to embedded NATS: %w", err)
	}
	a.bus = nb

	// Store.
	if cfg.DatabaseURL != "" {
		st, err := postgres.Open(ctx, cfg.DatabaseURL, a.log.With("component", "store"))
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL (check --database-url): %w", err)
		}
		a.store = st
	} else {
		st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "taisen.db"), a.log.With("component", "store"))
		if err != nil {
			return nil, fmt.Errorf("open SQLite: %w", err)
		}
		a.store = st
	}

	// Auth.
	tokens, err := auth.NewTokenIssuer(auth.TokenConfig{Secret: []byte(tokenSecret), SessionTTL: cfg.Auth.SessionTTL, RefreshTTL: cfg.Auth.RefreshTTL})
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	hasher, err := auth.NewHasher(auth.DefaultPasswordParams(), 0)
	if err != nil {
		return nil, fmt.Errorf("password hasher: %w", err)
	}
	a.auth, err = auth.New(auth.Config{}, auth.Deps{Accounts: a.store, Tokens: tokens, Hasher: hasher, Logger: a.log.With("component", "auth"),
		Bus: a.bus, OnRevoke: a.kickRevoked})
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := a.auth.Start(ctx); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}

	// Gateway.
	gcfg := cfg.Gateway
	gcfg.NodeID = cfg.NodeID
	if cfg.TLSCert != "" && gcfg.Engine != "goroutine" {
		a.log.Info("TLS is served by the goroutine engine (about 8 KiB more per idle session than epoll)")
		gcfg.Engine = "goroutine"
	}
	a.gw, err = gateway.New(gcfg, gateway.Deps{
		Logger: a.log.With("component", "gateway"), Bus: a.bus, Auth: authAdapter{a.auth}, RPC: opts.RPC, Metrics: a.reg, Clock: opts.Clock,
	})
	if err != nil {
		return nil, err
	}
	if err := a.gw.Start(ctx); err != nil {
		return nil, err
	}

	// Listeners.
	if a.clientLn, err = net.Listen("tcp", cfg.ClientAddr); err != nil {
		return nil, fmt.Errorf("client listener %s (is another taisen running? choose --client-addr): %w", cfg.ClientAddr, err)
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		a.clientLn = tls.NewListener(a.clientLn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	if a.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return nil, fmt.Errorf("admin listener %s (is another taisen running? choose --admin-addr): %w", cfg.AdminAddr, err)
	}
	if err := a.startNodes(ctx, opts.Version); err != nil {
		return nil, err
	}
	a.clientSrv = &http.Server{Handler: a.clientMux(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(a.log.With("component", "http").Handler(), slog.LevelDebug)}
	a.adminSrv = &http.Server{Handler: a.adminMux(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.With("component", "http").Handler(), slog.LevelDebug)}
	return a, nil
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

// kickRevoked closes the live socket of a user whose sessions auth revoked.
func (a *App) kickRevoked(ctx context.Context, userID string) {
	if _, err := a.gw.Kick(ctx, userID, realtimev1.CloseReason_CLOSE_REASON_KICKED, "sessions revoked"); err != nil {
		a.log.WarnContext(ctx, "revoked sessions: socket not closed", "user_id", userID, "err", err)
	}
}

// authAdapter gives the gateway the view of auth.Service it declares.
type authAdapter struct{ s *auth.Service }

func (a authAdapter) Authenticate(ctx context.Context, req *apiv1.AuthenticateRequest, clientIP string) (*apiv1.AuthenticateResponse, error) {
	if ip, err := netip.ParseAddr(clientIP); err == nil {
		ctx = auth.WithClientIP(ctx, ip)
	}
	return a.s.Authenticate(ctx, req)
}

func (a authAdapter) VerifyToken(token string) (gateway.Identity, error) {
	c, err := a.s.VerifySession(token)
	if err != nil {
		return gateway.Identity{}, err
	}
	return gateway.Identity{UserID: c.UserID, Username: c.Username}, nil
}

func (a *App) clientMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", a.gw)
	path, h := auth.HTTPHandler(a.auth)
	mux.Handle(path, h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return newCORS(a.cfg.CORSOrigins, mux)
}

func (a *App) adminMux() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	path, h := adminv1connect.NewSessionServiceHandler(gateway.NewAdminHandler(a.gw))
	mux.Handle(path, a.requireServerKey(h))
	mux.Handle(a.nodeService())
	path, h = auth.AdminHTTPHandler(a.auth)
	mux.Handle(path, a.requireServerKey(h))
	return mux
}

// requireServerKey admits only calls bearing the server key.
func (a *App) requireServerKey(next http.Handler) http.Handler {
	want := []byte("Bearer " + a.serverKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"code":"unauthenticated","message":"send the server key as Authorization: Bearer <key>"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readyz is ready when the listeners serve, bus and store answer, and the
// node is not draining.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var problems []string
	if !a.ready.Load() {
		problems = append(problems, "listeners not serving")
	}
	if a.gw.Draining() {
		problems = append(problems, "draining")
	}
	if err := a.gw.Healthy(); err != nil {
		problems = append(problems, err.Error())
	}
	if err := a.bus.Ping(ctx); err != nil {
		problems = append(problems, "bus: "+err.Error())
	}
	if err := a.store.Ping(ctx); err != nil {
		problems = append(problems, "store: "+err.Error())
	}
	if len(problems) > 0 {
		http.Error(w, "not ready: "+strings.Join(problems, "; "), http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
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

// Logger is the node's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Run serves until ctx ends, then drains (up to the drain timeout) and
// closes everything. A clean drain returns nil.
func (a *App) Run(ctx context.Context) error {
	go func() { a.serveErr <- serve(a.clientSrv, a.clientLn) }()
	go func() { a.serveErr <- serve(a.adminSrv, a.adminLn) }()
	a.ready.Store(true)
	go func() { _ = a.beat.Run(context.Background()) }() // ended by beat.Stop in closeAll
	fmt.Fprintf(a.banner, "taisen: node %s serving clients on %s (WebSocket /ws), admin on %s\n", a.cfg.NodeID, a.ClientAddr(), a.AdminAddr())
	a.log.Info("serving", "client", a.ClientAddr(), "admin", a.AdminAddr())
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-a.serveErr:
		runErr = fmt.Errorf("listener failed: %w", err)
	}
	a.Shutdown(context.Background())
	return runErr
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown drains the node (stop accepting, ask clients to reconnect
// elsewhere, wait up to the drain timeout) and closes it. ctx can cut the
// drain short.
func (a *App) Shutdown(ctx context.Context) {
	a.closeOnce.Do(func() {
		a.ready.Store(false)
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, a.cfg.DrainTimeout)
		// Other nodes can only resume our sessions when they share our bus.
		waitResume := a.natsSrv == nil || a.natsSrv.ClientURL() != ""
		if err := a.gw.Drain(dctx, gateway.DrainOptions{WaitResume: waitResume}); err != nil {
			a.log.Warn("drain incomplete", "err", err)
		}
		cancel()
		a.log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
		a.closeAll(ctx)
	})
}

func (a *App) closeAll(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if a.clientSrv != nil {
		_ = a.clientSrv.Shutdown(sctx)
	} else if a.clientLn != nil {
		a.clientLn.Close()
	}
	if a.adminSrv != nil {
		_ = a.adminSrv.Shutdown(sctx)
	} else if a.adminLn != nil {
		a.adminLn.Close()
	}
	if a.beat != nil {
		a.beat.Stop()
	}
	if a.gw != nil {
		_ = a.gw.Close()
	}
	if a.auth != nil {
		_ = a.auth.Close()
	}
	if a.bus != nil {
		_ = a.bus.Close()
	}
	if a.natsSrv != nil {
		a.natsSrv.Shutdown()
	}
	if a.store != nil {
		_ = a.store.Close()
	}
	if a.dam != nil {
		_ = a.dam.Close(sctx)
	}
}
