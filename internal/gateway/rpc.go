package gateway

import (
	"context"
	"fmt"
	"regexp"
	"sync"
)

// Call is one socket RPC as a handler sees it.
type Call struct {
	UserID    string
	Username  string
	SessionID string
	Payload   []byte
}

// RPCFunc handles a socket RPC. A returned *apierr.Error reaches the client
// with its code; any other error reaches it as internal and is logged.
type RPCFunc func(ctx context.Context, call Call) ([]byte, error)

// Registry maps socket RPC names to handlers. Later domains (rooms,
// matchmaker, meta services) add their operations here without touching
// the gateway. It is safe for concurrent use.
type Registry struct {
	mu sync.RWMutex
	m  map[string]RPCFunc // guarded by mu
}

// NewRegistry returns a registry holding the built-in operation
// "taisen.echo", which returns its payload (the no-op request used to
// measure round trips).
func NewRegistry() *Registry {
	r := &Registry{m: make(map[string]RPCFunc)}
	_ = r.Register("taisen.echo", func(_ context.Context, c Call) ([]byte, error) { return c.Payload, nil })
	return r
}

var rpcName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.\-]{0,127}$`)

// Register adds an operation. Names are 1-128 characters of letters,
// digits, "_", "." and "-", starting with a letter; the "taisen." prefix is
// reserved for built-ins registered by taisen itself.
func (r *Registry) Register(name string, fn RPCFunc) error {
	if !rpcName.MatchString(name) {
		return fmt.Errorf("gateway: rpc name %q: want 1-128 of [a-zA-Z0-9_.-] starting with a letter", name)
	}
	if fn == nil {
		return fmt.Errorf("gateway: rpc %q: nil handler", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		return fmt.Errorf("gateway: rpc %q is already registered", name)
	}
	r.m[name] = fn
	return nil
}

// Lookup returns the handler for name.
func (r *Registry) Lookup(name string) (RPCFunc, bool) {
	r.mu.RLock()
	fn, ok := r.m[name]
	r.mu.RUnlock()
	return fn, ok
}
