// Package notify owns notifications and presence: per-user notifications
// in three delivery modes (playing, connected, stored), the durable inbox
// of stored ones delivered at the next login until acknowledged, topics
// with subscribers and retained items fanned out once per node from an
// in-memory index, and presence read from the session records the gateway
// already keeps. It serves the admin NotifyService and registers the
// socket operations notify.* and presence.*.
//
// Design rules (from a production push service that reached 100 M
// connections): a session's end does no store or bus work; nothing is
// ever forwarded by a dying session to another session of the same user
// (stored items simply stay in the inbox); a topic publish crosses the bus
// once per topic, and only nodes with local subscribers listen.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/clock"
	"github.com/taisen-dev/taisen/internal/gateway"
	"github.com/taisen-dev/taisen/internal/store"
)

// Gateway is what notify needs of the node's gateway.
type Gateway interface {
	Send(ctx context.Context, userID string, m gateway.Message) (uint64, error)
	SendMany(ctx context.Context, userIDs []string, m gateway.Message) ([]uint64, []error)
	PushLocal(sessionIDs []string, m gateway.Message) int
	Lookup(ctx context.Context, userID string) (*clusterv1.SessionRecord, error)
	SetStatus(ctx context.Context, sessionID string, playing bool, activity string) (*clusterv1.SessionRecord, error)
}

// Store is the durable state notify uses.
type Store interface {
	store.Inbox
	store.Topics
	store.LoginPending
}

// Config tunes the service; zero fields take defaults.
type Config struct {
	// DedupWindow is how long an acknowledged stored item, and a producer
	// id sent in mode playing or connected, is remembered to refuse
	// duplicates (default 24h; non-stored ids: 10 min).
	DedupWindow time.Duration
	// LoginWorkers bounds the logins whose inbox is being loaded at once.
	LoginWorkers int
	// JanitorInterval is how often expired items are pruned.
	JanitorInterval time.Duration
	// NodeCheckInterval is how often a node with presence followers looks
	// for nodes that stopped without a word (default 5s).
	NodeCheckInterval time.Duration
}

func (c Config) withDefaults() Config {
	if c.DedupWindow <= 0 {
		c.DedupWindow = 24 * time.Hour
	}
	if c.LoginWorkers <= 0 {
		c.LoginWorkers = 32
	}
	if c.JanitorInterval <= 0 {
		c.JanitorInterval = time.Minute
	}
	if c.NodeCheckInterval <= 0 {
		c.NodeCheckInterval = 5 * time.Second
	}
	return c
}

// Deps are the service's collaborators.
type Deps struct {
	Gateway Gateway
	Store   Store
	Bus     bus.Bus
	Logger  *slog.Logger
	// Clock is clock.Real() when nil.
	Clock clock.Clock
	// Metrics registers the service's metrics; none when nil.
	Metrics prometheus.Registerer
	// LiveNodes returns the ids of the nodes that are alive (their
	// heartbeat records); presence treats a session on any other node as
	// offline. Nil: every node counts as alive.
	LiveNodes func(ctx context.Context) (map[string]bool, error)
	// NodeID is this node's id, announced with presence changes.
	NodeID string
}

// Service is the notification and presence service of one node.
type Service struct {
	cfg   Config
	gw    Gateway
	st    Store
	bus   bus.Bus
	log   *slog.Logger
	clock clock.Clock
	dedup bus.KV

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	logins    chan loginJob
	acks      chan ackJob
	idx       *index
	metrics   *metrics
	liveNodes func(ctx context.Context) (map[string]bool, error)
	nodeID    string
}

// New builds the service; Start starts it.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Gateway == nil || deps.Store == nil || deps.Bus == nil {
		return nil, errors.New("notify: Gateway, Store and Bus are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real()
	}
	cfg = cfg.withDefaults()
	s := &Service{cfg: cfg, gw: deps.Gateway, st: deps.Store, bus: deps.Bus, log: deps.Logger, clock: deps.Clock,
		logins: make(chan loginJob, 4096), acks: make(chan ackJob, 4096)}
	s.idx = newIndex(s)
	s.liveNodes, s.nodeID = deps.LiveNodes, deps.NodeID
	s.metrics = newMetrics(deps.Metrics)
	return s, nil
}

// dedupBucket remembers producer ids of notifications that are not
// stored, so the same id sent twice is delivered once.
const dedupBucket = "notify-dedup"

// nonStoredDedup is how long a non-stored notification's id is
// remembered.
const nonStoredDedup = 10 * time.Minute

// Start opens the de-duplication bucket and starts the workers.
func (s *Service) Start(ctx context.Context) error {
	kv, err := s.bus.KeyValue(ctx, bus.KVConfig{Bucket: dedupBucket, TTL: nonStoredDedup, Memory: true})
	if err != nil {
		return fmt.Errorf("notify: open %s bucket: %w", dedupBucket, err)
	}
	s.dedup = kv
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.idx.start(); err != nil {
		s.cancel()
		return fmt.Errorf("notify: listen for subscription changes: %w", err)
	}
	for i := 0; i < s.cfg.LoginWorkers; i++ {
		s.wg.Add(1)
		go s.loginWorker()
	}
	for i := 0; i < 4; i++ {
		s.wg.Add(1)
		go s.ackWorker()
	}
	s.wg.Add(1)
	go s.janitor()
	s.wg.Add(1)
	go s.watchNodes()
	return nil
}

// Stop stops the workers and the topic subscriptions.
func (s *Service) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.idx.close()
	s.wg.Wait()
}

// OnSession follows the node's sessions: a fresh login gets its inbox and
// retained topic items; sessions join and leave the local topic index. A
// session's end does nothing else.
func (s *Service) OnSession(ev gateway.SessionEvent) {
	switch ev.Kind {
	case gateway.SessionAttached:
		// Indexed here, in event order, so a quick end is never undone by
		// the login job.
		s.idx.addSession(ev.UserID, ev.SessionID)
		s.queueLogin(loginJob{user: ev.UserID, session: ev.SessionID, fresh: true})
		s.announcePresence(s.ctx, &apiv1.Presence{UserId: ev.UserID, State: apiv1.PresenceState_PRESENCE_STATE_ONLINE, SinceMs: ev.At.UnixMilli()}, s.nodeID)
	case gateway.SessionResumed:
		// Resumed from another node: this node must learn its topics (the
		// resume replayed what it missed; nothing is pushed again).
		if s.idx.addSession(ev.UserID, ev.SessionID) {
			s.queueLogin(loginJob{user: ev.UserID, session: ev.SessionID})
			s.announcePresence(s.ctx, &apiv1.Presence{UserId: ev.UserID, State: apiv1.PresenceState_PRESENCE_STATE_ONLINE, SinceMs: ev.At.UnixMilli()}, s.nodeID)
		}
	case gateway.SessionEnded:
		s.idx.remove(ev.UserID, ev.SessionID)
		switch ev.Cause {
		case gateway.EndLogout, gateway.EndKicked, gateway.EndExpired:
			// Over for good (a replaced or moved session lives on and its
			// new node announces it). One core publish; nobody listening
			// costs nothing.
			s.announcePresence(s.ctx, &apiv1.Presence{UserId: ev.UserID, State: apiv1.PresenceState_PRESENCE_STATE_OFFLINE, SinceMs: ev.At.UnixMilli()}, "")
		}
	}
}

func (s *Service) queueLogin(job loginJob) {
	select {
	case s.logins <- job:
	case <-s.ctx.Done():
	}
}

var (
	idPattern    = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
	topicPattern = regexp.MustCompile(`^[a-zA-Z0-9_.\-]{1,128}$`)
)

// Limits of the API.
const (
	maxUsersPerCall = 1000
	maxContentBytes = 32 << 10
	maxSubjectLen   = 128
	maxSenderLen    = 128
	maxActivityLen  = 128
)
