package gateway

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the gateway's limits and timers. The zero value of a field
// means its default (see Defaults).
type Config struct {
	// NodeID names this node on the bus; required.
	NodeID string
	// Engine selects the socket engine: "epoll" (Linux, default there) or
	// "goroutine" (portable, one goroutine per socket; TLS uses it).
	Engine string
	// MaxFrameBytes is the largest client frame accepted.
	MaxFrameBytes int
	// MaxInFlight bounds the requests of one session awaiting a reply.
	MaxInFlight int
	// RateLimit is the sustained requests per second per session and
	// RateBurst the bucket size.
	RateLimit float64
	RateBurst int
	// SendRate and SendBurst are the same for fire-and-forget messages
	// (room inputs at 20-60 Hz), which have a budget of their own.
	SendRate  float64
	SendBurst int
	// MaxViolations closes a session after this many rate, in-flight or
	// decoding violations (reason policy_violation).
	MaxViolations int
	// AuthTimeout closes a socket that has not authenticated in time.
	AuthTimeout time.Duration
	// HeartbeatInterval is what clients are told to ping at; IdleTimeout
	// closes a socket that sent nothing for that long.
	HeartbeatInterval time.Duration
	IdleTimeout       time.Duration
	// ResumeGrace keeps a dropped session resumable this long.
	ResumeGrace time.Duration
	// ResumeBufferPushes and ResumeBufferBytes bound the pushes kept per
	// session for resume (the oldest are evicted first).
	ResumeBufferPushes int
	ResumeBufferBytes  int
	// OutboundQueueBytes bounds the bytes queued for one socket; a client
	// that lets more pile up is closed with reason slow.
	OutboundQueueBytes int
	// WriteTimeout closes a socket whose write does not finish in time
	// (reason slow).
	WriteTimeout time.Duration
	// RequestTimeout bounds one request's handler.
	RequestTimeout time.Duration
	// SessionTTL is the TTL of the session record in the bus KV; it is
	// refreshed every SessionTTL/3 while the session lives.
	SessionTTL time.Duration
	// KVReplicas is the number of copies of the sessions bucket in a NATS
	// cluster (1 for a single server; 3 survives the loss of one).
	KVReplicas int
	// Workers is the number of epoll loops reading sockets.
	Workers int
	// SweepInterval is how often timers (idle, auth, grace, refresh) are
	// checked.
	SweepInterval time.Duration
	// MaxUnauthSockets bounds the sockets that have not authenticated yet,
	// in total and (MaxUnauthPerIP) per remote address; upgrades beyond
	// them are refused with 429.
	MaxUnauthSockets int
	MaxUnauthPerIP   int
}

// Defaults returns the default configuration.
func Defaults() Config {
	return Config{
		Engine:             defaultEngine,
		MaxFrameBytes:      64 << 10,
		MaxInFlight:        1,
		RateLimit:          20,
		RateBurst:          40,
		SendRate:           60,
		SendBurst:          120,
		MaxViolations:      10,
		AuthTimeout:        10 * time.Second,
		HeartbeatInterval:  25 * time.Second,
		IdleTimeout:        60 * time.Second,
		ResumeGrace:        30 * time.Second,
		ResumeBufferPushes: 256,
		ResumeBufferBytes:  256 << 10,
		OutboundQueueBytes: 1 << 20,
		WriteTimeout:       10 * time.Second,
		RequestTimeout:     10 * time.Second,
		SessionTTL:         90 * time.Second,
		Workers:            4,
		KVReplicas:         1,
		SweepInterval:      time.Second,
		MaxUnauthSockets:   4096,
		MaxUnauthPerIP:     128,
	}
}

// withDefaults fills zero fields from Defaults.
func (c Config) withDefaults() Config {
	d := Defaults()
	if c.Engine == "" {
		c.Engine = d.Engine
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.MaxFrameBytes, d.MaxFrameBytes)
	setInt(&c.MaxInFlight, d.MaxInFlight)
	if c.RateLimit == 0 {
		c.RateLimit = d.RateLimit
	}
	setInt(&c.RateBurst, d.RateBurst)
	if c.SendRate == 0 {
		c.SendRate = d.SendRate
	}
	setInt(&c.SendBurst, d.SendBurst)
	setInt(&c.MaxViolations, d.MaxViolations)
	setDur(&c.AuthTimeout, d.AuthTimeout)
	setDur(&c.HeartbeatInterval, d.HeartbeatInterval)
	setDur(&c.IdleTimeout, d.IdleTimeout)
	setDur(&c.ResumeGrace, d.ResumeGrace)
	setInt(&c.ResumeBufferPushes, d.ResumeBufferPushes)
	setInt(&c.ResumeBufferBytes, d.ResumeBufferBytes)
	setInt(&c.OutboundQueueBytes, d.OutboundQueueBytes)
	setDur(&c.WriteTimeout, d.WriteTimeout)
	setDur(&c.RequestTimeout, d.RequestTimeout)
	setDur(&c.SessionTTL, d.SessionTTL)
	setDur(&c.SweepInterval, d.SweepInterval)
	setInt(&c.KVReplicas, d.KVReplicas)
	setInt(&c.MaxUnauthSockets, d.MaxUnauthSockets)
	setInt(&c.MaxUnauthPerIP, d.MaxUnauthPerIP)
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	return c
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node id is required"))
	}
	if c.Engine != "epoll" && c.Engine != "goroutine" {
		errs = append(errs, fmt.Errorf("engine %q: want epoll or goroutine", c.Engine))
	}
	if c.Engine == "epoll" && !epollSupported {
		errs = append(errs, errors.New("engine epoll is only available on Linux; use goroutine"))
	}
	if c.MaxFrameBytes < 256 || c.MaxFrameBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("max frame bytes %d: want 256..16777216", c.MaxFrameBytes))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 1024 {
		errs = append(errs, fmt.Errorf("max in flight %d: want 1..1024", c.MaxInFlight))
	}
	if c.RateLimit < 0 || c.RateBurst < 1 {
		errs = append(errs, fmt.Errorf("rate limit %.1f/s burst %d: want a positive rate and burst", c.RateLimit, c.RateBurst))
	}
	if c.IdleTimeout <= c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("idle timeout %v must be longer than the heartbeat interval %v", c.IdleTimeout, c.HeartbeatInterval))
	}
	if c.SessionTTL < 3*time.Second {
		errs = append(errs, fmt.Errorf("session ttl %v: want at least 3s", c.SessionTTL))
	}
	if c.SessionTTL < c.ResumeGrace {
		errs = append(errs, fmt.Errorf("session ttl %v must be at least the resume grace %v", c.SessionTTL, c.ResumeGrace))
	}
	if c.KVReplicas < 1 || c.KVReplicas > 5 {
		errs = append(errs, fmt.Errorf("kv replicas %d: want 1..5", c.KVReplicas))
	}
	if c.OutboundQueueBytes < c.MaxFrameBytes {
		errs = append(errs, fmt.Errorf("outbound queue %d bytes must hold at least one max frame (%d)", c.OutboundQueueBytes, c.MaxFrameBytes))
	}
	if c.MaxUnauthSockets < 1 || c.MaxUnauthPerIP < 1 || c.MaxUnauthPerIP > c.MaxUnauthSockets {
		errs = append(errs, fmt.Errorf("unauthenticated socket caps %d total, %d per address: want 1 <= per address <= total", c.MaxUnauthSockets, c.MaxUnauthPerIP))
	}
	return errors.Join(errs...)
}
