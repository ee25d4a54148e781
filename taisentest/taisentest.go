// Package taisentest starts real taisen nodes for tests, like
// net/http/httptest does for HTTP servers: StartNode runs a node in-process
// on random loopback ports with an embedded NATS (or a shared one) and a
// temporary SQLite file (or PostgreSQL), waits until it is ready and stops
// it when the test ends.
package taisentest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/taisen-dev/taisen/game"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	"github.com/taisen-dev/taisen/internal/app"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/bus/natsbus"
	"github.com/taisen-dev/taisen/internal/clock"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/store"
)

// Options adjust a test node.
type Options struct {
	// NATSURL joins an existing NATS (see StartNATS) instead of embedding
	// one: nodes sharing it form a cluster.
	NATSURL string
	// DatabaseURL uses PostgreSQL instead of a temporary SQLite file.
	DatabaseURL string
	// DataDir reuses a data directory (for restart tests); a fresh temp
	// dir when empty. Two running nodes cannot share one (it is locked):
	// use Peer for a second node of the same cluster.
	DataDir string
	// Peer makes this node a second node of peer's cluster: the same
	// database (peer's SQLite file, or its PostgreSQL), token secret and
	// server key, in a data dir of its own. Set NATSURL to the bus they
	// share.
	Peer *Node
	// Configure edits the configuration before the node starts.
	Configure func(*config.Config)
	// RPC adds socket operations.
	RPC *gateway.Registry
	// Logs receives the node's logs; discarded when nil unless the test
	// runs with -v, where they go to t.Log.
	Logs io.Writer
	// Clock drives the node's timers (idle, auth, resume grace, record
	// refresh); the system clock when nil. Pass a *clock.Fake to move
	// time by hand instead of sleeping.
	Clock clock.Clock
	// OnSession receives the node's session lifecycle events, in order.
	OnSession func(gateway.SessionEvent)
	// Games are the games the node's rooms may run; none when nil.
	Games *game.Registry
}

// Node is a running test node.
type Node struct {
	// ClientURL is "http://127.0.0.1:<port>", the HTTP API and /ws.
	ClientURL string
	// AdminURL is "http://127.0.0.1:<port>", metrics, health and the
	// server-to-server API.
	AdminURL string
	// ServerKey authorises server-to-server calls.
	ServerKey string
	// NodeID is the node's cluster name.
	NodeID string
	// DataDir is the node's data directory.
	DataDir string

	databaseURL string

	app      *app.App
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	sessions adminv1connect.SessionServiceClient
}

// StartNode starts a node and registers its shutdown with t.Cleanup.
func StartNode(t testing.TB, opts Options) *Node {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = opts.DataDir
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(t.TempDir(), "data")
	}
	cfg.ClientAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.NATSURL = opts.NATSURL
	cfg.DatabaseURL = opts.DatabaseURL
	if p := opts.Peer; p != nil {
		cfg.DatabaseURL = p.databaseURL
		if cfg.DatabaseURL == "" {
			cfg.DatabaseURL = "sqlite://" + filepath.Join(p.DataDir, "taisen.db")
		}
		secret, err := os.ReadFile(filepath.Join(p.DataDir, "token.secret"))
		if err != nil {
			t.Fatalf("taisentest: peer's token secret: %v", err)
		}
		cfg.TokenSecret = strings.TrimSpace(string(secret))
		cfg.ServerKey = p.ServerKey
	}
	cfg.DrainTimeout = 5 * time.Second
	cfg.LogLevel = "debug"
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	logs := opts.Logs
	if logs == nil {
		if testing.Verbose() {
			logs = tWriter{t}
		} else {
			logs = io.Discard
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	aopts := app.Options{LogOutput: logs, RPC: opts.RPC, Clock: opts.Clock, Games: opts.Games}
	if opts.OnSession != nil {
		aopts.SessionHooks = append(aopts.SessionHooks, opts.OnSession)
	}
	a, err := app.New(ctx, cfg, aopts)
	if err != nil {
		cancel()
		t.Fatalf("taisentest: start node: %v", err)
	}
	n := &Node{
		ClientURL: "http://" + a.ClientAddr(),
		AdminURL:  "http://" + a.AdminAddr(),
		ServerKey: a.ServerKey(),
		NodeID:    a.NodeID(),
		DataDir:   cfg.DataDir,
		app:       a,

		databaseURL: opts.DatabaseURL,
		cancel:      cancel,
		done:        make(chan error, 1),
	}
	go func() { n.done <- a.Run(ctx) }()
	n.sessions = adminv1connect.NewSessionServiceClient(http.DefaultClient, n.AdminURL, connect.WithInterceptors(bearer(n.ServerKey)))
	if err := n.waitReady(10 * time.Second); err != nil {
		n.Stop()
		t.Fatalf("taisentest: %v", err)
	}
	t.Cleanup(n.Stop)
	return n
}

func (n *Node) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(n.AdminURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("node %s not ready after %v", n.NodeID, timeout)
}

// Stop drains and stops the node (idempotent). It is what SIGTERM does.
func (n *Node) Stop() {
	n.stopOnce.Do(func() {
		n.cancel()
		<-n.done
	})
}

// Gateway returns the node's gateway, for tests that look inside.
func (n *Node) Gateway() *gateway.Gateway { return n.app.Gateway() }

// Store returns the node's store, for tests that look inside.
func (n *Node) Store() store.Store { return n.app.Store() }

// Bus returns the node's bus, for tests that look inside.
func (n *Node) Bus() bus.Bus { return n.app.Bus() }

// Push sends an ephemeral push to a user through the server-to-server API.
func (n *Node) Push(ctx context.Context, userID, kind string, payload []byte) (*adminv1.SendPushResponse, error) {
	resp, err := n.sessions.SendPush(ctx, connect.NewRequest(&adminv1.SendPushRequest{UserId: userID, Kind: kind, Payload: payload}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// Session asks the server-to-server API where a user is connected.
func (n *Node) Session(ctx context.Context, userID string) (*adminv1.GetSessionResponse, error) {
	resp, err := n.sessions.GetSession(ctx, connect.NewRequest(&adminv1.GetSessionRequest{UserId: userID}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// Disconnect kicks a user through the server-to-server API.
func (n *Node) Disconnect(ctx context.Context, userID string) (bool, error) {
	resp, err := n.sessions.Disconnect(ctx, connect.NewRequest(&adminv1.DisconnectRequest{UserId: userID}))
	if err != nil {
		return false, err
	}
	return resp.Msg.Disconnected, nil
}

// StartNATS starts a standalone embedded NATS (JetStream on) listening on a
// random loopback port and returns its URL, for several nodes to share.
func StartNATS(t testing.TB) string {
	t.Helper()
	srv, err := natsbus.StartServer(context.Background(), natsbus.ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: "taisentest"})
	if err != nil {
		t.Fatalf("taisentest: start NATS: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

func bearer(key string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+key)
			return next(ctx, req)
		}
	}
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
