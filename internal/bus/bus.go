// Package bus is the one way taisen's components talk across nodes:
// publish/subscribe, request/reply, queue groups, key-value buckets with
// per-key TTL and change watches, and durable streams with pull consumers
// (inboxes, tickets, analytics events). It declares the interfaces; bus/natsbus implements them on
// NATS (an embedded nats-server in single-node mode, an external cluster when
// scaled out). Two nodes sharing one NATS behave like one node because even
// node-local traffic takes this path.
package bus

import (
	"context"
	"errors"
	"fmt"
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
	// ErrStreamNotFound means the stream does not exist (it was deleted)
	// or no stream stores the subject published to.
	ErrStreamNotFound = errors.New("bus: stream not found")
	// ErrConsumerNotFound means the durable consumer was deleted.
	ErrConsumerNotFound = errors.New("bus: consumer not found")
	// ErrConfigConflict means a stream or consumer exists with settings
	// that cannot change (retention, storage, deliver policy, …).
	ErrConfigConflict = errors.New("bus: conflicting configuration")
	// ErrStreamFull means a work-queue or interest stream reached MaxMsgs
	// or MaxBytes and refused the message; the producer should retry
	// later. Such streams never drop stored messages to make room.
	ErrStreamFull = errors.New("bus: stream full")
	// ErrAlreadyAcked means the message was already acked, naked or
	// terminated.
	ErrAlreadyAcked = errors.New("bus: message already acknowledged")
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
	KeyValue(ctx context.Context, cfg KVConfig) (Bucket, error)
	// Stream opens a durable stream, creating it or updating its limits.
	Stream(ctx context.Context, cfg StreamConfig) (Stream, error)
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

// KV reads and writes the keys of a bucket, with compare-and-set. Keys
// are dot-free tokens of letters, digits, "-", "_", "=" and "/". A ttl of
// zero means the bucket's default TTL. Consumers that only read and write
// keys declare this; Bucket adds listing and watching.
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

// Bucket is a whole key-value bucket: KV plus listing and watching its
// keys.
type Bucket interface {
	KV
	// Keys returns every live key (not deleted, not expired), sorted; an
	// empty bucket gives an empty slice.
	Keys(ctx context.Context) ([]string, error)
	// Watch reports changes of the keys matching pattern: one key, or ">"
	// for every key. It first sends a KVPut for each matching live key,
	// then one KVSynced event, then every change as it happens. The
	// channel is closed when ctx ends or the bus closes. A consumer that
	// reads slowly delays its own events only; none are dropped.
	Watch(ctx context.Context, pattern string) (<-chan KVEvent, error)
}

// KVOp says what happened to a key.
type KVOp uint8

// The operations a Watch reports.
const (
	// KVPut means the key was written; Entry holds its new value.
	KVPut KVOp = iota + 1
	// KVDelete means the key was deleted.
	KVDelete
	// KVExpire means the key's TTL (or the bucket's) ran out.
	KVExpire
	// KVSynced marks the end of the initial values: every key live when
	// the watch started has been sent. It carries no Entry.
	KVSynced
)

// String names the operation ("put", "delete", "expire", "synced").
func (op KVOp) String() string {
	switch op {
	case KVPut:
		return "put"
	case KVDelete:
		return "delete"
	case KVExpire:
		return "expire"
	case KVSynced:
		return "synced"
	}
	return fmt.Sprintf("KVOp(%d)", uint8(op))
}

// KVEvent is one change seen by a Watch. Entry.Key and Entry.Revision are
// set for KVPut, KVDelete and KVExpire; Entry.Value only for KVPut.
type KVEvent struct {
	Op    KVOp
	Entry Entry
}

// Retention decides when a stream forgets a message.
type Retention uint8

// The retention policies.
const (
	// RetentionLimits keeps messages until MaxAge, MaxMsgs or MaxBytes
	// removes the oldest: a log that any number of consumers replay.
	RetentionLimits Retention = iota
	// RetentionWorkQueue removes a message once one consumer acked it:
	// each message is handled once. Consumers must not overlap in the
	// subjects they filter.
	RetentionWorkQueue
	// RetentionInterest keeps a message until every consumer that
	// existed when it was stored has acked it.
	RetentionInterest
)

// StreamConfig describes a durable stream.
type StreamConfig struct {
	// Name: letters, digits, "-" and "_".
	Name string
	// Subjects the stream stores (wildcards allowed); they must not
	// overlap another stream's.
	Subjects []string
	// Retention decides when messages are removed.
	Retention Retention
	// MaxAge removes messages older than this; zero keeps them forever.
	MaxAge time.Duration
	// MaxBytes and MaxMsgs bound the stream; zero means unbounded. A
	// limits stream removes its oldest messages to stay within them; a
	// work-queue or interest stream refuses new messages (ErrStreamFull)
	// instead, so unhandled work is never dropped.
	MaxBytes int64
	MaxMsgs  int64
	// Replicas is the number of copies in a NATS cluster (1 when zero).
	Replicas int
	// Memory keeps the stream in memory instead of on disk.
	Memory bool
	// Duplicates is how long a MsgID is remembered to drop a republished
	// message; zero means the server's default (2 minutes, or MaxAge when
	// shorter).
	Duplicates time.Duration
}

// PublishOptions adjust one stream publish; build them with the
// PublishOption functions.
type PublishOptions struct {
	// MsgID identifies the message: publishing the same MsgID again
	// within the stream's Duplicates window stores nothing and returns
	// the first copy's sequence.
	MsgID string
}

// PublishOption sets a PublishOptions field.
type PublishOption func(*PublishOptions)

// WithMsgID sets the message's de-duplication id.
func WithMsgID(id string) PublishOption {
	return func(o *PublishOptions) { o.MsgID = id }
}

// Stream is a durable stream of messages.
type Stream interface {
	// Name is the stream's name.
	Name() string
	// Publish stores data under subject (one of the stream's subjects)
	// and returns its sequence in the stream once stored. A duplicate
	// (same MsgID within the Duplicates window) returns the sequence of
	// the first copy.
	Publish(ctx context.Context, subject string, data []byte, opts ...PublishOption) (uint64, error)
	// Consumer opens the durable consumer cfg.Durable, creating it or
	// updating its settings.
	Consumer(ctx context.Context, cfg ConsumerConfig) (Consumer, error)
}

// DeliverPolicy says where a new durable consumer starts; an existing one
// continues where it stopped.
type DeliverPolicy uint8

// The deliver policies.
const (
	// DeliverAll starts at the first message the stream holds.
	DeliverAll DeliverPolicy = iota
	// DeliverNew starts with messages stored after the consumer was
	// created.
	DeliverNew
	// DeliverLast starts at the last message the stream holds.
	DeliverLast
)

// ConsumerConfig describes a durable pull consumer.
type ConsumerConfig struct {
	// Durable names the consumer: letters, digits, "-" and "_". Every
	// Consume of one durable, on any node, shares its messages: each
	// message goes to one of them.
	Durable string
	// FilterSubject limits the consumer to matching subjects (wildcards
	// allowed); empty means every subject of the stream.
	FilterSubject string
	// AckWait is how long a delivered message may stay unsettled before
	// it is delivered again (30 s when zero).
	AckWait time.Duration
	// MaxAckPending bounds the messages delivered and not yet settled,
	// across every Consume of the durable (1000 when zero): the server
	// delivers nothing more until one is settled. This is the
	// backpressure: a slow consumer holds at most this many, the rest
	// wait in the stream.
	MaxAckPending int
	// MaxDeliver bounds the deliveries of one message (unlimited when
	// zero); after the last one the message is no longer delivered.
	MaxDeliver int
	// DeliverPolicy says where a new consumer starts.
	DeliverPolicy DeliverPolicy
}

// Consumer is a durable pull consumer of a stream.
type Consumer interface {
	// Consume passes messages to h, one at a time, until ctx ends (it
	// returns nil) or the bus closes (ErrClosed) or the consumer is
	// deleted (ErrConsumerNotFound). h settles each message with Ack, Nak
	// or Term, now or later from another goroutine; messages that h
	// returned without settling still count against MaxAckPending.
	// Messages fetched but not yet passed to h when Consume returns are
	// delivered again after AckWait. Several Consume calls of one durable
	// (on one node or many) share its messages.
	Consume(ctx context.Context, h StreamHandler) error
}

// StreamHandler handles a message of a durable consumer.
type StreamHandler func(m *StreamMsg)

// Acker settles a StreamMsg; implementations provide it.
type Acker interface {
	Ack(ctx context.Context) error
	Nak(delay time.Duration) error
	Term() error
	InProgress() error
}

// StreamMsg is a message delivered by a durable consumer. It must be
// settled exactly once by Ack, Nak or Term.
type StreamMsg struct {
	Subject string
	Data    []byte
	// Seq is the message's sequence in the stream.
	Seq uint64
	// NumDelivered counts deliveries of this message, 1 the first time.
	NumDelivered uint64
	// Time is when the stream stored the message.
	Time time.Time

	acker Acker
}

// NewStreamMsg returns m settled through a; implementations use it.
func NewStreamMsg(m StreamMsg, a Acker) *StreamMsg {
	m.acker = a
	return &m
}

// Ack settles the message as handled and returns once the server recorded
// it, so an acked message is not delivered again even if this node dies
// right after.
func (m *StreamMsg) Ack(ctx context.Context) error { return m.acker.Ack(ctx) }

// Nak settles the message as not handled: it is delivered again after
// delay (at once when zero), unless MaxDeliver is reached.
func (m *StreamMsg) Nak(delay time.Duration) error { return m.acker.Nak(delay) }

// Term settles the message as never to be delivered again (a poison
// message).
func (m *StreamMsg) Term() error { return m.acker.Term() }

// InProgress resets the message's AckWait: the handler still works on it.
func (m *StreamMsg) InProgress() error { return m.acker.InProgress() }
