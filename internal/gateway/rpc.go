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
	// JSON is set when the socket speaks JSON (?format=json): typed
	// operations decode and encode protojson then.
	JSON bool
}

// RPCFunc handles a socket RPC. A returned *apierr.Error reaches the client
// with its code; any other error reaches it as internal and is logged.
type RPCFunc func(ctx context.Context, call Call) ([]byte, error)

// MessageFunc handles a fire-and-forget client message (Send). It runs on
// the goroutine that read the socket, in the order the client sent, so it
// must not block: hand the work to a goroutine of your own (a room's
// input channel) and return. There is no reply.
type MessageFunc func(ctx context.Context, call Call)

// AckFunc receives the push ids a client acknowledged. Like MessageFunc it
// must not block.
type AckFunc func(ctx context.Context, call Call, ids []string)

// Registry maps socket RPC names to handlers. Later domains (rooms,
// matchmaker, meta services) add their operations here without touching
// the gateway. It is safe for concurrent use.
type Registry struct {
	mu   sync.RWMutex
	m    map[string]RPCFunc     // guarded by mu
	msgs map[string]MessageFunc // guarded by mu
	acks []AckFunc              // guarded by mu
}

// NewRegistry returns a registry holding the built-in operation
// "taisen.echo", which returns its payload (the no-op request used to
// measure round trips).
func NewRegistry() *Registry {
	r := &Registry{m: make(map[string]RPCFunc), msgs: make(map[string]MessageFunc)}
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

// RegisterMessage adds a handler of fire-and-forget client messages. Names
// follow the rules of Register; RPCs and messages have separate names.
func (r *Registry) RegisterMessage(name string, fn MessageFunc) error {
	if !rpcName.MatchString(name) {
		return fmt.Errorf("gateway: message name %q: want 1-128 of [a-zA-Z0-9_.-] starting with a letter", name)
	}
	if fn == nil {
		return fmt.Errorf("gateway: message %q: nil handler", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.msgs[name]; dup {
		return fmt.Errorf("gateway: message %q is already registered", name)
	}
	r.msgs[name] = fn
	return nil
}

// LookupMessage returns the handler of messages named name.
func (r *Registry) LookupMessage(name string) (MessageFunc, bool) {
	r.mu.RLock()
	fn, ok := r.msgs[name]
	r.mu.RUnlock()
	return fn, ok
}

// HandleAck adds a receiver of client acks (the notification inbox is
// one). Every receiver gets every ack and ignores ids that are not its
// own.
func (r *Registry) HandleAck(fn AckFunc) error {
	if fn == nil {
		return fmt.Errorf("gateway: nil ack handler")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acks = append(r.acks, fn)
	return nil
}

func (r *Registry) ackHandlers() []AckFunc {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.acks
}

// Lookup returns the handler for name.
func (r *Registry) Lookup(name string) (RPCFunc, bool) {
	r.mu.RLock()
	fn, ok := r.m[name]
	r.mu.RUnlock()
	return fn, ok
}
