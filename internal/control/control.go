// Package control owns the node registry: every node writes a heartbeat
// record (its load, readiness and endpoints) to the bus key-value bucket
// "nodes" with a TTL, and any node lists the live ones for the admin
// NodeService and `taisen nodes`. The control plane builds on it later:
// routing clients to nodes, orchestrating drains, autoscaling.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/clock"
)

// Bucket is the bus key-value bucket holding one NodeRecord per live node,
// keyed by node id.
const Bucket = "nodes"

// DefaultInterval is how often a node rewrites its record when
// Config.Interval is zero.
const DefaultInterval = time.Second

// ttlIntervals is a record's TTL in heartbeat intervals: a node is listed
// until it missed about three heartbeats.
const ttlIntervals = 3

// Load is what a node reports about itself each heartbeat.
type Load struct {
	Sessions, Sockets, DetachedSessions, EpollLoops int
	// Ready is the node's readiness; Draining is true once it drains.
	Ready, Draining bool
}

// LoadSource reports a node's current load. Heartbeat calls it once per
// interval from its own goroutine; it must not block.
type LoadSource interface {
	Load() Load
}

// LoadFunc adapts a function to LoadSource.
type LoadFunc func() Load

// Load calls f.
func (f LoadFunc) Load() Load { return f() }

// Ticker is the ticker of the shared clock package.
type Ticker = clock.Ticker

// Clock is the part of clock.Clock that Heartbeat uses; clock.Real() in
// production, a fake in tests.
type Clock interface {
	Now() time.Time
	NewTicker(d time.Duration) Ticker
}

// KVOpener opens key-value buckets (bus.Bus does).
type KVOpener interface {
	KeyValue(ctx context.Context, cfg bus.KVConfig) (bus.Bucket, error)
}

// Config describes the node a Heartbeat speaks for.
type Config struct {
	// NodeID names the node; required.
	NodeID string
	// Roles are what the node serves, e.g. "gateway".
	Roles []string
	// Version is the build version; the main module's version from the
	// build info when empty.
	Version string
	// ClientAddr and AdminAddr are the listeners, host:port.
	ClientAddr, AdminAddr string
	// Interval is how often the record is rewritten (DefaultInterval when
	// zero). The record's TTL is three intervals, rounded up to whole
	// seconds (the bus's precision).
	Interval time.Duration
	// Replicas is the number of copies of the bucket in a NATS cluster.
	Replicas int
}

// Deps are a Heartbeat's collaborators.
type Deps struct {
	Bus  KVOpener
	Load LoadSource
	// Clock is the system clock when nil.
	Clock  Clock
	Logger *slog.Logger
}

// Heartbeat writes a node's record to the "nodes" bucket every interval.
// When it stops (Stop, or Run's ctx ends) it writes nothing more: the
// record expires after its TTL, exactly as when the node dies, so other
// nodes see one kind of departure.
type Heartbeat struct {
	cfg     Config
	kv      bus.KV
	load    LoadSource
	clock   Clock
	log     *slog.Logger
	ttl     time.Duration
	started time.Time

	mu      sync.Mutex
	cancel  context.CancelFunc // of the running Run; nil when not running
	done    chan struct{}      // closed when that Run returns
	stopped bool
	failing bool // the last write failed (log once per failure streak)
}

// NewHeartbeat opens the bucket and returns a Heartbeat; Run starts it.
func NewHeartbeat(ctx context.Context, cfg Config, deps Deps) (*Heartbeat, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("control: heartbeat: NodeID is required")
	}
	if deps.Bus == nil || deps.Load == nil {
		return nil, errors.New("control: heartbeat: Bus and Load are required")
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("control: heartbeat: negative interval %v", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Version == "" {
		cfg.Version = buildVersion()
	}
	cfg.Roles = slices.Clone(cfg.Roles)
	h := &Heartbeat{cfg: cfg, load: deps.Load, clock: deps.Clock, log: deps.Logger, ttl: ttlIntervals * cfg.Interval}
	if h.clock == nil {
		h.clock = clock.Real()
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	kv, err := openBucket(ctx, deps.Bus, cfg.Replicas)
	if err != nil {
		return nil, fmt.Errorf("control: heartbeat: %w", err)
	}
	h.kv = kv
	h.started = h.clock.Now()
	return h, nil
}

// openBucket opens the "nodes" bucket: in memory (records are rewritten
// every second, nothing is worth a disk write) and without a bucket TTL
// (each record carries its own).
func openBucket(ctx context.Context, b KVOpener, replicas int) (bus.Bucket, error) {
	kv, err := b.KeyValue(ctx, bus.KVConfig{Bucket: Bucket, Memory: true, Replicas: replicas})
	if err != nil {
		return nil, fmt.Errorf("open bucket %q: %w", Bucket, err)
	}
	return kv, nil
}

// TTL is how long the record outlives the last heartbeat.
func (h *Heartbeat) TTL() time.Duration { return h.ttl }

// Run writes the record at once and then every interval, until ctx ends or
// Stop is called; then it returns nil. A failed write is logged and
// retried at the next tick. Run may be called once.
func (h *Heartbeat) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.stopped || h.done != nil {
		h.mu.Unlock()
		return errors.New("control: heartbeat: Run called twice or after Stop")
	}
	ctx, cancel := context.WithCancel(ctx)
	h.cancel, h.done = cancel, make(chan struct{})
	done := h.done
	h.mu.Unlock()
	defer close(done)
	defer cancel()

	t := h.clock.NewTicker(h.cfg.Interval)
	defer t.Stop()
	h.beat(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			h.beat(ctx)
		}
	}
}

// Stop ends Run and waits for it to return; it is safe to call more than
// once and when Run was never called.
func (h *Heartbeat) Stop() {
	h.mu.Lock()
	h.stopped = true
	cancel, done := h.cancel, h.done
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Record builds the node's record as of now.
func (h *Heartbeat) Record() *clusterv1.NodeRecord {
	l := h.load.Load()
	return &clusterv1.NodeRecord{
		NodeId:           h.cfg.NodeID,
		Roles:            h.cfg.Roles,
		Version:          h.cfg.Version,
		ClientVersions:   []string{},
		Sessions:         count(l.Sessions),
		Sockets:          count(l.Sockets),
		DetachedSessions: count(l.DetachedSessions),
		EpollLoops:       count(l.EpollLoops),
		Ready:            l.Ready,
		Draining:         l.Draining,
		StartedAt:        timestamppb.New(h.started),
		UpdatedAt:        timestamppb.New(h.clock.Now()),
		Endpoints:        &clusterv1.NodeEndpoints{Client: h.cfg.ClientAddr, Admin: h.cfg.AdminAddr},
	}
}

// beat writes one record, bounded by one interval.
func (h *Heartbeat) beat(ctx context.Context) {
	data, err := proto.Marshal(h.Record())
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, h.cfg.Interval)
		_, err = h.kv.Put(wctx, h.cfg.NodeID, data, h.ttl)
		cancel()
	}
	if ctx.Err() != nil {
		return // stopping: a write cut short is not a failure
	}
	h.mu.Lock()
	wasFailing := h.failing
	h.failing = err != nil
	h.mu.Unlock()
	switch {
	case err != nil && !wasFailing:
		h.log.Warn("node heartbeat failed; retrying every interval", "err", err, "ttl", h.ttl)
	case err == nil && wasFailing:
		h.log.Info("node heartbeat recovered")
	}
}

func count(n int) uint32 { return uint32(min(max(n, 0), 1<<32-1)) }

// buildVersion is the main module's version from the build info.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}
