package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/auth"
	"github.com/taisen-dev/taisen/internal/bus/natsbus"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/notify"
	"github.com/taisen-dev/taisen/internal/store/postgres"
	"github.com/taisen-dev/taisen/internal/store/sqlite"
)

// role is one part of a node with one lifecycle. New starts the roles in
// order; Shutdown stops them in reverse order. Start may use what earlier
// roles set up. Stop undoes whatever Start did, even when Start failed
// half way, and must be safe to call then.
type role interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// drainingRole is a role that hands its work over before the node stops:
// Shutdown drains roles in reverse order, while every role still runs.
type drainingRole interface {
	role
	Drain(ctx context.Context) error
}

// servingRole is a role that begins serving when the node runs (after
// every role started). Serve must not block; fail reports a failure while
// serving, which stops the node.
type servingRole interface {
	role
	Serve(fail func(error))
}

// nodeRoles lists the roles of a node in start order. A new domain
// (notify, rooms, match) is one line here.
func (a *App) nodeRoles() []role {
	return []role{
		dataRole{a},
		storeRole{a},
		busRole{a},
		authRole{a},
		gatewayRole{a},
		notifyRole{a},
		roomRole{a},
		listenersRole{a},
		controlRole{a},
	}
}

// dataRole owns the data directory: it creates and locks it (one node per
// directory) and loads or generates the secrets kept there.
type dataRole struct{ a *App }

func (dataRole) Name() string { return "data dir" }

func (r dataRole) Start(context.Context) error {
	a, cfg := r.a, r.a.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", cfg.DataDir, err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	a.dataLock = lock
	// Secrets: flags/env win; otherwise generated once into the data dir.
	a.serverKey = cfg.ServerKey
	if a.serverKey == "" {
		key, path, created, err := loadOrCreateSecret(cfg.DataDir, "server.key", 24)
		if err != nil {
			return err
		}
		a.serverKey = key
		verb := "using"
		if created {
			verb = "generated"
		}
		fmt.Fprintf(a.banner, "taisen: %s server key in %s (server-to-server calls: Authorization: Bearer <key>)\n", verb, path)
	}
	a.tokenSecret = cfg.TokenSecret
	if a.tokenSecret == "" {
		secret, path, created, err := loadOrCreateSecret(cfg.DataDir, "token.secret", 32)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(a.banner, "taisen: generated token signing secret in %s\n", path)
		}
		a.tokenSecret = secret
	}
	return nil
}

func (r dataRole) Stop(context.Context) error {
	if r.a.dataLock == nil {
		return nil
	}
	err := r.a.dataLock.release()
	r.a.dataLock = nil
	return err
}

// storeRole opens PostgreSQL or the SQLite file in the data dir.
type storeRole struct{ a *App }

func (storeRole) Name() string { return "store" }

func (r storeRole) Start(ctx context.Context) error {
	a, cfg := r.a, r.a.cfg
	logger := a.log.With("component", "store")
	path := filepath.Join(cfg.DataDir, "taisen.db")
	if p, ok := strings.CutPrefix(cfg.DatabaseURL, "sqlite://"); ok {
		path = p
	} else if cfg.DatabaseURL != "" {
		st, err := postgres.Open(ctx, cfg.DatabaseURL, logger)
		if err != nil {
			return fmt.Errorf("open PostgreSQL (check --database-url): %w", err)
		}
		a.store = st
		return nil
	}
	st, err := sqlite.Open(ctx, path, logger)
	if err != nil {
		return fmt.Errorf("open SQLite: %w", err)
	}
	a.store = st
	return nil
}

func (r storeRole) Stop(context.Context) error {
	if r.a.store == nil {
		return nil
	}
	return r.a.store.Close()
}

// busRole connects to NATS, starting the embedded server unless an
// external one is configured.
type busRole struct{ a *App }

func (busRole) Name() string { return "bus" }

func (r busRole) Start(ctx context.Context) error {
	a, cfg := r.a, r.a.cfg
	if cfg.NATSURL == "" {
		srv, err := natsbus.StartServer(ctx, natsbus.ServerConfig{
			StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: cfg.NATSListen, ServerName: cfg.NodeID, Logger: a.log.With("component", "nats"),
		})
		if err != nil {
			return fmt.Errorf("start embedded NATS: %w", err)
		}
		a.natsSrv = srv
		if u := srv.ClientURL(); u != "" {
			fmt.Fprintf(a.banner, "taisen: embedded NATS accepts other nodes at %s (start them with --nats-url %s)\n", u, u)
		}
	}
	nb, err := natsbus.Connect(ctx, natsbus.Config{URL: cfg.NATSURL, Server: a.natsSrv, Name: "taisen-" + cfg.NodeID, Logger: a.log.With("component", "bus")})
	if err != nil {
		if cfg.NATSURL != "" {
			return fmt.Errorf("connect to NATS at %s (is it running, version ≥ 2.11 with JetStream?): %w", cfg.NATSURL, err)
		}
		return fmt.Errorf("connect to embedded NATS: %w", err)
	}
	a.bus = nb
	return nil
}

func (r busRole) Stop(context.Context) error {
	var err error
	if r.a.bus != nil {
		err = r.a.bus.Close()
	}
	if r.a.natsSrv != nil {
		r.a.natsSrv.Shutdown()
	}
	return err
}

// authRole builds the credential and token service over the store.
type authRole struct{ a *App }

func (authRole) Name() string { return "auth" }

func (r authRole) Start(ctx context.Context) error {
	a, cfg := r.a, r.a.cfg
	tokens, err := auth.NewTokenIssuer(auth.TokenConfig{Secret: []byte(a.tokenSecret), SessionTTL: cfg.Auth.SessionTTL, RefreshTTL: cfg.Auth.RefreshTTL})
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	hasher, err := auth.NewHasher(auth.DefaultPasswordParams(), 0)
	if err != nil {
		return fmt.Errorf("password hasher: %w", err)
	}
	a.auth, err = auth.New(auth.Config{}, auth.Deps{Accounts: a.store, Tokens: tokens, Hasher: hasher, Logger: a.log.With("component", "auth"),
		Bus: a.bus, OnRevoke: a.kickRevoked})
	if err != nil {
		return err
	}
	// Loads the revocation cache and follows revocations on the bus.
	return a.auth.Start(ctx)
}

func (r authRole) Stop(context.Context) error {
	if r.a.auth == nil {
		return nil
	}
	return r.a.auth.Close()
}

// kickRevoked closes the live socket of a user whose sessions auth revoked.
func (a *App) kickRevoked(ctx context.Context, userID string) {
	if a.gw == nil {
		return
	}
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

// gatewayRole runs the realtime sessions; it drains before the node stops.
type gatewayRole struct{ a *App }

func (gatewayRole) Name() string { return "gateway" }

func (r gatewayRole) Start(ctx context.Context) error {
	a, cfg := r.a, r.a.cfg
	gcfg := cfg.Gateway
	gcfg.NodeID = cfg.NodeID
	if cfg.TLSCert != "" && gcfg.Engine != "goroutine" {
		a.log.Info("TLS is served by the goroutine engine (about 8 KiB more per idle session than epoll)")
		gcfg.Engine = "goroutine"
	}
	gw, err := gateway.New(gcfg, gateway.Deps{
		Logger: a.log.With("component", "gateway"), Bus: a.bus, Auth: authAdapter{a.auth}, RPC: a.rpc, Metrics: a.reg, Clock: a.opts.Clock,
	})
	if err != nil {
		return err
	}
	a.gw = gw
	for _, fn := range a.opts.SessionHooks {
		gw.OnSession(fn)
	}
	gw.OnSession(func(ev gateway.SessionEvent) {
		if n := a.notify.Load(); n != nil {
			n.OnSession(ev)
		}
		if m := a.rooms.Load(); m != nil {
			m.OnSession(ev)
		}
	})
	return gw.Start(ctx)
}

// Drain asks every client to reconnect elsewhere and waits for them; other
// nodes can only resume our sessions when they share our bus.
func (r gatewayRole) Drain(ctx context.Context) error {
	a := r.a
	waitResume := a.natsSrv == nil || a.natsSrv.ClientURL() != ""
	return a.gw.Drain(ctx, gateway.DrainOptions{WaitResume: waitResume})
}

func (r gatewayRole) Stop(context.Context) error {
	if r.a.gw == nil {
		return nil
	}
	return r.a.gw.Close()
}

// listenersRole binds the client and admin listeners in Start (so their
// addresses are known before Run) and serves them in Serve.
type listenersRole struct{ a *App }

func (listenersRole) Name() string { return "listeners" }

func (r listenersRole) Start(ctx context.Context) error {
	a, cfg := r.a, r.a.cfg
	var err error
	// No TCP keep-alive probes on client sockets: the gateway's heartbeat
	// and idle timeout find dead peers, and --http-timeout bounds HTTP
	// connections; the probes' four socket options would cost every
	// accepted connection four system calls.
	lc := net.ListenConfig{KeepAlive: -1}
	if a.clientLn, err = lc.Listen(ctx, "tcp", cfg.ClientAddr); err != nil {
		return fmt.Errorf("client listener %s (is another taisen running? choose --client-addr): %w", cfg.ClientAddr, err)
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		a.clientLn = tls.NewListener(a.clientLn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	a.clientLn = a.clientListener(a.clientLn)
	if a.adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
		return fmt.Errorf("admin listener %s (is another taisen running? choose --admin-addr): %w", cfg.AdminAddr, err)
	}
	return nil
}

// Serve builds the servers once every role has started (the admin routes
// include every role's services) and serves the bound listeners.
func (r listenersRole) Serve(fail func(error)) {
	a := r.a
	errorLog := slog.NewLogLogger(a.log.With("component", "http").Handler(), slog.LevelDebug)
	a.clientSrv = a.clientServer()
	a.clientSrv.ErrorLog = errorLog
	a.adminSrv = a.adminServer()
	a.adminSrv.ErrorLog = errorLog
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{a.clientSrv, a.clientLn}, {a.adminSrv, a.adminLn}} {
		go func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(err)
			}
		}()
	}
}

func (r listenersRole) Stop(ctx context.Context) error {
	a := r.a
	var errs []error
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{a.clientSrv, a.clientLn}, {a.adminSrv, a.adminLn}} {
		if s.srv != nil {
			errs = append(errs, s.srv.Shutdown(ctx))
		}
		// Shutdown closes only listeners it served; New without Run
		// leaves them to us.
		if s.ln != nil {
			if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// controlRole publishes this node's load record every heartbeat (from
// Serve on, so a node is never listed before it serves) and answers the
// admin NodeService. It stops before the gateway, so a draining node
// reports draining until its record expires.
type controlRole struct{ a *App }

func (controlRole) Name() string { return "control" }

func (r controlRole) Start(ctx context.Context) error { return r.a.startNodes(ctx, r.a.opts.Version) }

func (r controlRole) Serve(func(error)) {
	beat := r.a.beat
	go func() { _ = beat.Run(context.Background()) }() // ended by Stop
}

func (r controlRole) Stop(context.Context) error {
	if r.a.beat != nil {
		r.a.beat.Stop()
	}
	return nil
}

// notifyRole runs notifications, topics and presence: the admin
// NotifyService and the socket operations notify.* and presence.*.
type notifyRole struct{ a *App }

func (notifyRole) Name() string { return "notify" }

func (r notifyRole) Start(ctx context.Context) error {
	a := r.a
	svc, err := notify.New(notify.Config{}, notify.Deps{Gateway: a.gw, Store: a.store, Bus: a.bus,
		Logger: a.log.With("component", "notify"), Clock: a.opts.Clock, Metrics: a.reg,
		NodeID: a.cfg.NodeID, LiveNodes: a.liveNodes})
	if err != nil {
		return err
	}
	if err := svc.Start(ctx); err != nil {
		return err
	}
	if err := svc.RegisterOps(a.rpc); err != nil {
		svc.Stop()
		return err
	}
	a.notify.Store(svc)
	return nil
}

func (r notifyRole) Stop(context.Context) error {
	if svc := r.a.notify.Swap(nil); svc != nil {
		svc.Stop()
	}
	return nil
}

// liveNodes returns the nodes whose heartbeat records are live, read at
// most once a second; nil (all alive) until the control role started.
func (a *App) liveNodes(ctx context.Context) (map[string]bool, error) {
	a.liveMu.Lock()
	defer a.liveMu.Unlock()
	if a.nodes == nil {
		return nil, nil
	}
	if a.live != nil && time.Since(a.liveAt) < time.Second {
		return a.live, nil
	}
	recs, err := a.nodes.List(ctx)
	if err != nil {
		return nil, err
	}
	live := make(map[string]bool, len(recs))
	for _, r := range recs {
		live[r.NodeId] = true
	}
	a.live, a.liveAt = live, time.Now()
	return live, nil
}
