package natsbus

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/taisen-dev/taisen/internal/bus"
)

// markerTTL is how long a bucket keeps the marker of a deleted or expired
// key (JetStream's LimitMarkerTTL). Setting it enables per-key TTL on the
// bucket's stream (AllowMsgTTL); markers of Delete expire after it too, so
// deleted keys leave nothing behind for long.
const markerTTL = time.Minute

// createAttempts bounds Create's retries when a deleted key's marker
// expires between JetStream's read and its compare-and-set.
const createAttempts = 3

var (
	// ErrInvalidBucket means a bucket name is not letters, digits, "-"
	// and "_".
	ErrInvalidBucket = errors.New("natsbus: invalid bucket name")
	// ErrInvalidKey means a key is not a dot-free token of letters,
	// digits, "-", "_", "=" and "/".
	ErrInvalidKey = errors.New("natsbus: invalid key")

	bucketRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	keyRe    = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+$`)
)

// KeyValue opens the bucket cfg.Bucket, creating it or updating its
// settings. Buckets keep one revision per key and allow per-key TTL, which
// needs nats-server 2.11 or later. Changing Memory of an existing bucket
// fails (JetStream cannot change a stream's storage).
//
// In the embedded server a key of a memory bucket costs about 460 bytes
// of heap (a 36-byte key, a 35-byte value), 50 of them the compare-and-set
// header stored with each Create and Update; a file bucket costs more
// while the block being written is cached (BenchmarkKVRecordMemory).
func (b *Bus) KeyValue(ctx context.Context, cfg bus.KVConfig) (bus.Bucket, error) {
	if !bucketRe.MatchString(cfg.Bucket) {
		return nil, fmt.Errorf("%w %q: use letters, digits, \"-\" and \"_\"", ErrInvalidBucket, cfg.Bucket)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("natsbus: kv bucket %q: negative TTL %v", cfg.Bucket, cfg.TTL)
	}
	if cfg.Replicas < 0 {
		return nil, fmt.Errorf("natsbus: kv bucket %q: negative replicas %d", cfg.Bucket, cfg.Replicas)
	}
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         cfg.Bucket,
		History:        1,
		TTL:            cfg.TTL,
		Storage:        storage,
		Replicas:       max(cfg.Replicas, 1),
		LimitMarkerTTL: markerTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: kv bucket %q: %w", cfg.Bucket, mapErr(err))
	}
	return &kvBucket{
		js:     b.js,
		kv:     kv,
		bucket: cfg.Bucket,
		prefix: "$KV." + cfg.Bucket + ".",
	}, nil
}

// kvBucket is a bus.KV on a JetStream key-value bucket.
//
// A ttl is rounded up to whole seconds (the server's precision, minimum
// 1 s) and sent as the "Nats-TTL" header of the key's message; a bucket TTL
// still applies, so a key's ttl can shorten the bucket's but not extend it.
// A ttl of zero sends no header, so the bucket's TTL applies.
type kvBucket struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	bucket string
	prefix string // "$KV.<bucket>.", the subject prefix of the keys
}

var _ bus.Bucket = (*kvBucket)(nil)

// Get returns the key's value, or bus.ErrKeyNotFound when it is missing,
// deleted or expired.
func (k *kvBucket) Get(ctx context.Context, key string) (bus.Entry, error) {
	if err := k.check(key, 0); err != nil {
		return bus.Entry{}, fmt.Errorf("natsbus: kv get: %w", err)
	}
	e, err := k.kv.Get(ctx, key)
	if err != nil {
		return bus.Entry{}, fmt.Errorf("natsbus: kv get %s/%s: %w", k.bucket, key, k.mapErr(err, nil))
	}
	return bus.Entry{Key: e.Key(), Value: e.Value(), Revision: e.Revision()}, nil
}

// Put writes the value and returns its revision.
func (k *kvBucket) Put(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	if err := k.check(key, ttl); err != nil {
		return 0, fmt.Errorf("natsbus: kv put: %w", err)
	}
	var (
		rev uint64
		err error
	)
	if ttl == 0 {
		rev, err = k.kv.Put(ctx, key, value)
	} else {
		rev, err = k.publish(ctx, key, value, jetstream.WithMsgTTL(roundTTL(ttl)))
	}
	if err != nil {
		return 0, fmt.Errorf("natsbus: kv put %s/%s: %w", k.bucket, key, k.mapErr(err, nil))
	}
	return rev, nil
}

// Create writes the value only if the key is missing, deleted or expired;
// otherwise it returns bus.ErrKeyExists.
func (k *kvBucket) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	if err := k.check(key, ttl); err != nil {
		return 0, fmt.Errorf("natsbus: kv create: %w", err)
	}
	var opts []jetstream.KVCreateOpt
	if ttl > 0 {
		opts = append(opts, jetstream.KeyTTL(roundTTL(ttl)))
	}
	for attempt := 1; ; attempt++ {
		rev, err := k.kv.Create(ctx, key, value, opts...)
		if err == nil {
			return rev, nil
		}
		if isWrongLastSeq(err) && attempt < createAttempts {
			// Creating over a deleted or expired key compares against the
			// key's marker; if the marker expired meanwhile the compare
			// fails although the key is gone. Retry only then.
			if _, getErr := k.kv.Get(ctx, key); errors.Is(getErr, jetstream.ErrKeyNotFound) {
				continue
			}
		}
		return 0, fmt.Errorf("natsbus: kv create %s/%s: %w", k.bucket, key, k.mapErr(err, bus.ErrKeyExists))
	}
}

// Update writes the value only if the key's revision is still rev;
// otherwise it returns bus.ErrWrongRevision.
func (k *kvBucket) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if err := k.check(key, ttl); err != nil {
		return 0, fmt.Errorf("natsbus: kv update: %w", err)
	}
	var (
		newRev uint64
		err    error
	)
	if ttl == 0 {
		newRev, err = k.kv.Update(ctx, key, value, rev)
	} else {
		// jetstream.KeyValue.Update takes no TTL: publish the same message
		// it would, plus the TTL header.
		newRev, err = k.publish(ctx, key, value,
			jetstream.WithExpectLastSequencePerSubject(rev),
			jetstream.WithMsgTTL(roundTTL(ttl)))
	}
	if err != nil {
		return 0, fmt.Errorf("natsbus: kv update %s/%s: %w", k.bucket, key, k.mapErr(err, bus.ErrWrongRevision))
	}
	return newRev, nil
}

// Delete removes the key; with rev != 0 only if its revision is still rev.
// It purges the key (its one revision) and leaves a marker that expires
// after a minute, so deleted keys do not accumulate markers.
func (k *kvBucket) Delete(ctx context.Context, key string, rev uint64) error {
	if err := k.check(key, 0); err != nil {
		return fmt.Errorf("natsbus: kv delete: %w", err)
	}
	opts := []jetstream.KVDeleteOpt{jetstream.PurgeTTL(markerTTL)}
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	if err := k.kv.Purge(ctx, key, opts...); err != nil {
		return fmt.Errorf("natsbus: kv delete %s/%s: %w", k.bucket, key, k.mapErr(err, bus.ErrWrongRevision))
	}
	return nil
}

// publish sends value as the key's message through JetStream and returns
// the stored sequence, the key's new revision.
func (k *kvBucket) publish(ctx context.Context, key string, value []byte, opts ...jetstream.PublishOpt) (uint64, error) {
	ack, err := k.js.PublishMsg(ctx, &nats.Msg{Subject: k.prefix + key, Data: value}, opts...)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// check validates a key and a ttl.
// validKey reports whether key matches keyRe, without the regexp (it
// runs on every session record write).
func validKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '/', c == '_', c == '=':
		default:
			return false
		}
	}
	return true
}

func (k *kvBucket) check(key string, ttl time.Duration) error {
	if !validKey(key) {
		return fmt.Errorf("%w %q: use letters, digits, \"-\", \"_\", \"=\" and \"/\" (no dots)", ErrInvalidKey, key)
	}
	if ttl < 0 {
		return fmt.Errorf("negative ttl %v for key %q", ttl, key)
	}
	return nil
}

// mapErr maps JetStream errors to bus sentinels. A wrong-last-sequence
// error maps to casErr: bus.ErrKeyExists for Create, bus.ErrWrongRevision
// for Update and Delete.
func (k *kvBucket) mapErr(err error, casErr error) error {
	switch {
	case casErr != nil && (isWrongLastSeq(err) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)):
		return fmt.Errorf("%w: %w", casErr, err)
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return fmt.Errorf("%w: %w", bus.ErrKeyNotFound, err)
	}
	return mapErr(err)
}

// isWrongLastSeq reports whether err is JetStream's "wrong last sequence"
// API error, the failed compare-and-set of Create, Update and Delete
// (10071; 10164 on replicated streams).
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// roundTTL rounds ttl up to whole seconds, at least one: the server keeps
// TTLs in whole seconds (truncating) and rejects less than a second.
func roundTTL(ttl time.Duration) time.Duration {
	if r := ttl.Truncate(time.Second); r != ttl {
		ttl = r + time.Second
	}
	return max(ttl, time.Second)
}
