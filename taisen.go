// Package taisen runs a taisen node inside your own Go program: the server
// as a library. Build a Config (DefaultConfig gives the zero-setup one),
// register your socket operations, and Run:
//
//	srv, err := taisen.New(taisen.DefaultConfig())
//	if err != nil { ... }
//	srv.RegisterRPC("inventory.get", func(ctx context.Context, c taisen.Call) ([]byte, error) { ... })
//	err = srv.Run(ctx) // until ctx ends, then drains
//
// The `taisen` command is this package plus flag parsing.
package taisen

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/taisen-dev/taisen/internal/app"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/gateway"
)

// Config is the node configuration; see `taisen config` for every setting.
type Config = config.Config

// DefaultConfig returns the zero-setup configuration.
func DefaultConfig() Config { return config.Defaults() }

// Call is one socket RPC as a handler sees it: the caller's user and
// session, and the request payload.
type Call = gateway.Call

// RPCFunc handles a socket RPC. Return an error made with the apierr codes
// of the protocol to send a specific code; other errors reach the client
// as "internal" and are logged.
type RPCFunc = gateway.RPCFunc

// Server is a taisen node embedded in a program.
type Server struct {
	cfg Config
	rpc *gateway.Registry
	// LogOutput receives the node's logs; os.Stderr when nil. Set it before
	// Start.
	LogOutput io.Writer

	mu  sync.Mutex
	app *app.App // guarded by mu; set by Start
}

// New checks cfg and returns a server that is not started yet.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, rpc: gateway.NewRegistry()}, nil
}

// RegisterRPC adds a socket operation. Register before Start.
func (s *Server) RegisterRPC(name string, fn RPCFunc) error { return s.rpc.Register(name, fn) }

// Start opens the store and bus and binds the listeners; Run serves.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.app != nil {
		return errors.New("taisen: already started")
	}
	a, err := app.New(ctx, s.cfg, app.Options{LogOutput: s.LogOutput, RPC: s.rpc})
	if err != nil {
		return err
	}
	s.app = a
	return nil
}

// Run starts the server if needed and serves until ctx ends, then drains
// (telling clients to reconnect elsewhere) and stops.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	started := s.app != nil
	s.mu.Unlock()
	if !started {
		if err := s.Start(ctx); err != nil {
			return err
		}
	}
	return s.app.Run(ctx)
}

// ClientAddr is the bound client listener (after Start).
func (s *Server) ClientAddr() string { return s.app.ClientAddr() }

// AdminAddr is the bound admin listener (after Start).
func (s *Server) AdminAddr() string { return s.app.AdminAddr() }

// ServerKey is the key server-to-server calls must bear (after Start).
func (s *Server) ServerKey() string { return s.app.ServerKey() }

// Push delivers an ephemeral push to a user's session wherever it lives in
// the cluster and returns its sequence number.
func (s *Server) Push(ctx context.Context, userID, kind string, payload []byte) (uint64, error) {
	return s.app.Gateway().Deliver(ctx, userID, kind, payload)
}
