package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// defaultStartTimeout bounds StartServer when ctx has no deadline.
const defaultStartTimeout = 30 * time.Second

// ServerConfig configures an embedded NATS server.
type ServerConfig struct {
	// StoreDir is the JetStream storage directory; required.
	StoreDir string
	// Listen is the client address: "" accepts in-process connections
	// only (no TCP listener), "127.0.0.1:0" picks a random port, and
	// "host:port" listens there.
	Listen string
	// ServerName names the server; NATS generates one when empty.
	ServerName string
	// Logger receives the server's log; nil discards it. The server's
	// chatter (notices, debug) goes to Debug, warnings to Warn and errors
	// to Error, so Info only carries StartServer's and Shutdown's lines.
	Logger *slog.Logger
}

// Server is an embedded nats-server with JetStream enabled.
type Server struct {
	ns        *server.Server
	log       *slog.Logger
	listening bool
	stopOnce  sync.Once
}

// StartServer starts a nats-server in this process with JetStream enabled
// and waits until it accepts connections, until ctx ends (or for 30 seconds
// when ctx has no deadline).
func StartServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsbus: start server: StoreDir is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "nats-server")

	opts := &server.Options{
		ServerName: cfg.ServerName,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		Debug:      log.Enabled(ctx, slog.LevelDebug),
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, portStr, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsbus: start server: listen address %q: %w", cfg.Listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("natsbus: start server: listen address %q: invalid port", cfg.Listen)
		}
		if port == 0 {
			// nats-server reads port 0 as "default port 4222".
			port = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, port
	}

	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsbus: start server: %w", err)
	}
	bridge := &serverLogger{log: log, fatal: make(chan string, 1)}
	ns.SetLoggerV2(bridge, opts.Debug, false, false)

	s := &Server{ns: ns, log: log, listening: !opts.DontListen}
	go ns.Start()

	if err := s.waitReady(ctx, bridge.fatal); err != nil {
		s.stop()
		return nil, fmt.Errorf("natsbus: start server: %w", err)
	}
	if !ns.JetStreamEnabled() {
		s.stop()
		return nil, errors.New("natsbus: start server: JetStream is not enabled")
	}
	log.Info("nats server ready", "name", ns.Name(), "client_url", s.ClientURL(), "store_dir", cfg.StoreDir)
	return s, nil
}

// waitReady polls the server until it is ready, ctx ends, the default
// start timeout passes or the server reports a fatal error.
func (s *Server) waitReady(ctx context.Context, fatal <-chan string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	for {
		if s.ns.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		select {
		case msg := <-fatal:
			return errors.New(msg)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", ctx.Err())
		default:
		}
	}
}

// ClientURL returns the URL clients on other nodes connect to, or "" when
// the server accepts in-process connections only.
func (s *Server) ClientURL() string {
	if !s.listening {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it is down. Connected clients
// see a disconnect. It is safe to call more than once.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() {
		s.stop()
		s.log.Info("nats server stopped", "name", s.ns.Name())
	})
}

func (s *Server) stop() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// serverLogger bridges nats-server's Logger to slog.
type serverLogger struct {
	log *slog.Logger
	// fatal receives the first fatal message, which nats-server logs
	// instead of returning an error from Start.
	fatal chan string
}

func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, fmt.Sprintf(format, v...))
	}
}

// Noticef logs the server's notices at Debug: they are startup banners
// and routine events, noise at Info.
func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }

// Warnf logs at Warn.
func (l *serverLogger) Warnf(format string, v ...any) { l.logf(slog.LevelWarn, format, v) }

// Fatalf logs at Error and reports the message to StartServer.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg, "fatal", true)
	select {
	case l.fatal <- msg:
	default:
	}
}

// Errorf logs at Error.
func (l *serverLogger) Errorf(format string, v ...any) { l.logf(slog.LevelError, format, v) }

// Debugf logs at Debug.
func (l *serverLogger) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }

// Tracef logs at Debug (tracing is never switched on).
func (l *serverLogger) Tracef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
