// Package bus is the one way taisen's components talk across nodes:
// publish/subscribe, request/reply, queue groups and key-value buckets with
// per-key TTL. It declares the interfaces; bus/natsbus implements them on
// NATS (an embedded nats-server in single-node mode, an external cluster when
// scaled out). Two nodes sharing one NATS behave like one node because even
// node-local traffic takes this path.
package bus

import (
	"context"
	"errors"
	"time"
)

// Errors returned by Bus and KV implementations. Check them with errors.Is.
var (
	// ErrNoResponders means a request found no subscriber on its subject.
	ErrNoResponders = errors.New("bus: no responders")
	// ErrTimeout means a request got no reply before its context ended.
	ErrTimeout = errors.New("bus: timeout")
	// ErrClosed means the bus was closed.
	ErrClosed = errors.New("bus: closed")
	// ErrKeyNotFound means the key does not exist, was deleted or expired.
	ErrKeyNotFound = errors.New("bus: key not found")
	// ErrKeyExists means Create found the key already present.
	ErrKeyExists = errors.New("bus: key exists")
	// ErrWrongRevision means Update or Delete lost a compare-and-set race.
	ErrWrongRevision = errors.New("bus: wrong revision")
)

// Msg is a message received from a subscription.
type Msg struct {
	Subject string
	Data    []byte
	// respond answers a request; nil when the sender expects no reply.
	respond func(data []byte) error
}

// NewMsg builds a Msg; implementations pass respond (nil when the message
// is not a request).
func NewMsg(subject string, data []byte, respond func([]byte) error) *Msg {
	return &Msg{Subject: subject, Data: data, respond: respond}
}

// Respond replies to a request. It fails when the message was not a request.
func (m *Msg) Respond(data []byte) error {
	if m.respond == nil {
		return errors.New("bus: message is not a request")
	}
	return m.respond(data)
}

// IsRequest reports whether the sender waits for a reply.
func (m *Msg) IsRequest() bool { return m.respond != nil }

// Handler handles a message. Messages of one subscription are handled one
// at a time, in order; a handler that blocks delays its subscription only.
type Handler func(m *Msg)

// Subscription is an active subscription.
type Subscription interface {
	// Unsubscribe stops delivery; it is safe to call more than once.
	Unsubscribe() error
}

// Bus carries messages between components and nodes.
type Bus interface {
	// Publish sends data to every subscriber of subject (and one member of
	// each queue group).
	Publish(ctx context.Context, subject string, data []byte) error
	// Request sends data to one subscriber of subject and waits for its
	// reply until ctx ends (ErrTimeout) or no one listens (ErrNoResponders).
	Request(ctx context.Context, subject string, data []byte) ([]byte, error)
	// Subscribe delivers messages on subject (NATS wildcards "*" and ">"
	// allowed) to h.
	Subscribe(subject string, h Handler) (Subscription, error)
	// QueueSubscribe is Subscribe where each message goes to one member of
	// the named queue group only.
	QueueSubscribe(subject, queue string, h Handler) (Subscription, error)
	// KeyValue opens (creating if needed) a key-value bucket.
	KeyValue(ctx context.Context, cfg KVConfig) (KV, error)
	// Ping checks the connection end to end (a round trip to the server).
	Ping(ctx context.Context) error
	// Close drains subscriptions and closes the connection.
	Close() error
}

// KVConfig describes a key-value bucket.
type KVConfig struct {
	// Bucket is the name: letters, digits, "-" and "_".
	Bucket string
	// TTL is the default time to live of every key; zero means none.
	TTL time.Duration
	// Replicas is the number of copies in a NATS cluster (1 when zero).
	Replicas int
	// Memory keeps the bucket in memory instead of on disk.
	Memory bool
}

// Entry is a value read from a bucket.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
}

// KV is a key-value bucket. Keys are dot-free tokens of letters, digits,
// "-", "_", "=" and "/". A ttl of zero means the bucket's default TTL.
type KV interface {
	// Get returns the current value, or ErrKeyNotFound.
	Get(ctx context.Context, key string) (Entry, error)
	// Put writes the value unconditionally and returns its revision.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error)
	// Create writes the value only if the key does not exist (or was
	// deleted or expired); otherwise ErrKeyExists.
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error)
	// Update writes the value only if the key's revision is still rev;
	// otherwise ErrWrongRevision.
	Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error)
	// Delete removes the key; with rev != 0 only if its revision is still
	// rev (ErrWrongRevision otherwise). Deleting a missing key is not an error.
	Delete(ctx context.Context, key string, rev uint64) error
}
