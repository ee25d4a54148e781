package natsbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/taisen-dev/taisen/internal/bus"
)

const (
	// watchInactive is how long the server keeps a watch's consumer once
	// nobody pulls from it (a node that died without stopping its watch).
	watchInactive = 30 * time.Second
	// watchCleanupTimeout bounds the deletion of a stopped watch's
	// consumer.
	watchCleanupTimeout = 2 * time.Second
	// Header values that tell a key's deletion from its expiry: a
	// Delete writes "KV-Operation: PURGE" (or DEL from other clients);
	// the server writes "Nats-Marker-Reason: MaxAge" when a TTL ran out.
	hdrKVOperation   = "KV-Operation"
	hdrMarkerReason  = "Nats-Marker-Reason"
	markerReasonAge  = "MaxAge"
	watchBufferedOut = 64
	// watchProbe is how long a watch waits for an initial value before
	// asking the server whether any is left.
	watchProbe = time.Second
)

// Keys returns every live key of the bucket, sorted. It reads the last
// message of each key (headers only) and leaves out deleted and expired
// ones.
func (k *kvBucket) Keys(ctx context.Context) ([]string, error) {
	w, err := k.openWatch(ctx, ">", true)
	if err != nil {
		return nil, fmt.Errorf("natsbus: kv keys %s: %w", k.bucket, err)
	}
	defer w.stop()
	keys := []string{}
	for {
		ev, err := w.next(ctx)
		if err != nil {
			return nil, fmt.Errorf("natsbus: kv keys %s: %w", k.bucket, mapErr(err))
		}
		if ev.Op == bus.KVSynced {
			break
		}
		keys = append(keys, ev.Entry.Key)
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// Watch reports the changes of the keys matching pattern (a key, or ">"
// or "*" for every key) on the returned channel until ctx ends or the bus
// closes. It runs one goroutine and one server-side ordered consumer,
// which survives reconnects; events are pulled only as fast as the
// channel is read.
func (k *kvBucket) Watch(ctx context.Context, pattern string) (<-chan bus.KVEvent, error) {
	if pattern != ">" && pattern != "*" {
		if err := k.check(pattern, 0); err != nil {
			return nil, fmt.Errorf("natsbus: kv watch: %w", err)
		}
	}
	w, err := k.openWatch(ctx, pattern, false)
	if err != nil {
		return nil, fmt.Errorf("natsbus: kv watch %s/%s: %w", k.bucket, pattern, err)
	}
	out := make(chan bus.KVEvent, watchBufferedOut)
	go func() {
		defer close(out)
		defer w.stop()
		for {
			ev, err := w.next(ctx)
			if err != nil {
				return
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// kvWatch reads a bucket through an ordered consumer that starts with the
// last message of each matching key.
type kvWatch struct {
	k    *kvBucket
	cons jetstream.Consumer
	it   jetstream.MessagesContext
	// initPending is how many messages the consumer had to deliver when
	// it was created: the initial values end after that many (or when
	// the server says none are pending).
	initPending uint64
	received    uint64
	synced      bool
	sentSynced  bool
}

func (k *kvBucket) openWatch(ctx context.Context, pattern string, headersOnly bool) (*kvWatch, error) {
	cons, err := k.js.OrderedConsumer(ctx, "KV_"+k.bucket, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{k.prefix + pattern},
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		HeadersOnly:       headersOnly,
		InactiveThreshold: watchInactive,
	})
	if err != nil {
		return nil, mapErr(err)
	}
	w := &kvWatch{k: k, cons: cons, initPending: cons.CachedInfo().NumPending}
	w.synced = w.initPending == 0
	w.it, err = cons.Messages()
	if err != nil {
		w.deleteConsumer()
		return nil, mapErr(err)
	}
	return w, nil
}

// next returns the next event. Before KVSynced it reports live keys only
// (a deleted or expired key's marker is skipped).
func (w *kvWatch) next(ctx context.Context) (bus.KVEvent, error) {
	for {
		if w.synced && !w.sentSynced {
			w.sentSynced = true
			return bus.KVEvent{Op: bus.KVSynced}, nil
		}
		m, err := w.nextMsg(ctx)
		if errors.Is(err, errProbe) {
			continue
		}
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return bus.KVEvent{}, ctxErr
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
				return bus.KVEvent{}, bus.ErrClosed
			}
			return bus.KVEvent{}, err
		}
		meta, err := m.Metadata()
		if err != nil {
			return bus.KVEvent{}, err
		}
		ev := bus.KVEvent{Op: kvOp(m), Entry: bus.Entry{
			Key:      m.Subject()[len(w.k.prefix):],
			Revision: meta.Sequence.Stream,
		}}
		if ev.Op == bus.KVPut {
			ev.Entry.Value = m.Data()
		}
		if !w.synced {
			w.received++
			if w.received >= w.initPending || meta.NumPending == 0 {
				w.synced = true
			}
			if ev.Op != bus.KVPut {
				continue
			}
		}
		return ev, nil
	}
}

// errProbe reports that nextMsg checked whether the initial values ended.
var errProbe = errors.New("probe")

// nextMsg returns the next message. Until the initial values ended it
// waits at most watchProbe, then asks the server whether anything is
// still pending: initial values can expire before they are delivered, and
// then no message would say that they ended.
func (w *kvWatch) nextMsg(ctx context.Context) (jetstream.Msg, error) {
	if w.synced {
		return w.it.Next(jetstream.NextContext(ctx))
	}
	pctx, cancel := context.WithTimeout(ctx, watchProbe)
	defer cancel()
	m, err := w.it.Next(jetstream.NextContext(pctx))
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return m, err
	}
	info, err := w.cons.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.NumPending == 0 {
		w.synced = true
	}
	return nil, errProbe
}

// kvOp tells what a bucket message says about its key.
func kvOp(m jetstream.Msg) bus.KVOp {
	h := m.Headers()
	if len(h) == 0 {
		return bus.KVPut
	}
	if h.Get(hdrKVOperation) != "" {
		return bus.KVDelete // DEL or PURGE: a deletion by a client
	}
	switch h.Get(hdrMarkerReason) {
	case "":
		return bus.KVPut
	case markerReasonAge:
		return bus.KVExpire
	default: // "Purge" or "Remove": removed by an operator
		return bus.KVDelete
	}
}

// stop ends the watch and deletes its consumer (best effort; the server
// removes it after watchInactive anyway).
func (w *kvWatch) stop() {
	w.it.Stop()
	w.deleteConsumer()
}

func (w *kvWatch) deleteConsumer() {
	info := w.cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchCleanupTimeout)
	defer cancel()
	_ = w.k.js.DeleteConsumer(ctx, "KV_"+w.k.bucket, info.Name)
}
