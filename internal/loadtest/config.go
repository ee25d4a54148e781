package loadtest

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/taisen-dev/taisen/client"
)

// The scenarios.
const (
	// ScenarioIdle connects Sessions sessions, holds them for Duration
	// while they heartbeat (optionally sending echo RPCs at RPCRate), then
	// closes them.
	ScenarioIdle = "idle"
	// ScenarioLogin is a login storm: Sessions sessions authenticate and
	// connect, each closing right after its Welcome (or holding until the
	// end with Hold).
	ScenarioLogin = "login"
)

// The login paths: how a session signs in before its Welcome.
const (
	// LoginPathHello sends the device credential in the socket's Hello
	// (client.Login): one WebSocket upgrade and one round trip, no HTTP
	// request. The default.
	LoginPathHello = "hello"
	// LoginPathHTTP authenticates over the HTTP API first, then dials the
	// socket with the session token (client.AuthenticateDevice, then
	// client.Dial): the two-step path, kept for comparison.
	LoginPathHTTP = "http"
)

// Limits and defaults of a Config.
const (
	// MaxSessions caps the sessions of one load generator process: each
	// holds a socket (a file descriptor) and the fd limit is 20000.
	MaxSessions = 19000
	// DefaultTarget is the client listener of a local node.
	DefaultTarget = "http://127.0.0.1:7350"
	// DefaultConcurrency bounds the sessions being set up at once.
	DefaultConcurrency = 64
	// DefaultHold is how long sessions are held when Duration is zero.
	DefaultHold = 10 * time.Second
	// DefaultSourceIPs is how many loopback source addresses sockets are
	// spread over (127.0.0.2 and up) when the target is on loopback.
	DefaultSourceIPs = 50
	// DefaultSettle is the wait after the last connection before the
	// server's memory is measured.
	DefaultSettle = 5 * time.Second
	// DefaultMaxRunTime caps a whole run.
	DefaultMaxRunTime = 10 * time.Minute
	// DefaultRPCPayloadBytes is the size of an echo RPC payload.
	DefaultRPCPayloadBytes = 16
	// maxSourceIPs is 127.0.0.2 to 127.0.0.255.
	maxSourceIPs = 254
	// maxRPCPayloadBytes stays under the server's default frame limit.
	maxRPCPayloadBytes = 60 << 10
)

// Config describes a load test run. Zero fields take the defaults
// documented on them; WithDefaults applies them and Validate checks the
// result.
type Config struct {
	// Target is the node's client listener (DefaultTarget when empty).
	Target string
	// Scenario is ScenarioIdle or ScenarioLogin.
	Scenario string
	// Sessions is how many sessions to run, 1..MaxSessions.
	Sessions int
	// Rate is how many sessions start per second; 0 starts them as fast
	// as Concurrency allows.
	Rate float64
	// Concurrency bounds the sessions authenticating and connecting at
	// once: DefaultConcurrency, or about twice Rate (up to 1024) when a
	// rate is set.
	Concurrency int
	// Duration is how long sessions are held (idle, or login with Hold);
	// DefaultHold when zero. With AdminURL the hold lasts at least Settle
	// plus the memory scrapes.
	Duration time.Duration
	// LoginPath is how each session signs in: LoginPathHello (the
	// default when empty) or LoginPathHTTP. It applies to both scenarios.
	LoginPath string
	// Hold keeps the sessions of the login scenario until the end instead
	// of closing each right after its Welcome.
	Hold bool
	// RPCRate sends this many "taisen.echo" RPCs per second from random
	// held sessions (idle only), to measure a no-op round trip under load.
	RPCRate float64
	// RPCPayloadBytes is the echo payload size (DefaultRPCPayloadBytes
	// when zero).
	RPCPayloadBytes int
	// SourceIPs spreads sockets over the source addresses 127.0.0.2 to
	// 127.0.0.(1+SourceIPs) when the target is on loopback, so a large run
	// does not exhaust the ephemeral ports of one address pair.
	// DefaultSourceIPs when zero; negative disables it.
	SourceIPs int
	// AdminURL is the node's admin listener. When set, its /metrics are
	// scraped before connecting and while all sessions are held, and the
	// report includes the server's memory growth per session; they are
	// also scraped right before and right after the connection phase for
	// the server's CPU time per session.
	AdminURL string
	// ServerKey, when set, is sent as "Authorization: Bearer <key>" with
	// every scrape of AdminURL, for a node whose /metrics require the
	// server key. A node that does not require it ignores it.
	ServerKey string
	// Settle is the wait before the held scrapes (DefaultSettle when
	// zero).
	Settle time.Duration
	// ConnectTimeout bounds the connection phase; when zero it is derived
	// from Sessions and Rate.
	ConnectTimeout time.Duration
	// MaxRunTime caps the whole run (DefaultMaxRunTime when zero): when it
	// is reached everything stops and the report says so.
	MaxRunTime time.Duration
	// DialTimeout bounds one session's authentication and connection
	// (client.DefaultDialTimeout when zero).
	DialTimeout time.Duration
	// Format is the socket frame format (binary when FormatDefault).
	Format client.Format
	// RunID names the run in device ids (see DeviceID); random when
	// empty.
	RunID string
	// Logger receives diagnostics; nothing is logged when nil.
	Logger *slog.Logger
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Target == "" {
		c.Target = DefaultTarget
	}
	if c.LoginPath == "" {
		c.LoginPath = LoginPathHello
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
		if c.Rate > 0 {
			c.Concurrency = int(min(max(math.Ceil(2*c.Rate), DefaultConcurrency), 1024))
		}
	}
	if c.Duration == 0 {
		c.Duration = DefaultHold
	}
	if c.RPCPayloadBytes == 0 {
		c.RPCPayloadBytes = DefaultRPCPayloadBytes
	}
	if c.SourceIPs == 0 {
		c.SourceIPs = DefaultSourceIPs
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.MaxRunTime == 0 {
		c.MaxRunTime = DefaultMaxRunTime
	}
	if c.ConnectTimeout == 0 {
		// Generous: a minute plus the paced start time (or 10ms per
		// session when unpaced), within the run cap.
		bound := time.Minute + time.Duration(c.Sessions)*10*time.Millisecond
		if c.Rate > 0 {
			bound = time.Minute + time.Duration(1.2*float64(c.Sessions)/c.Rate*float64(time.Second))
		}
		c.ConnectTimeout = min(bound, c.MaxRunTime)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = client.DefaultDialTimeout
	}
	if c.Format == client.FormatDefault {
		c.Format = client.FormatBinary
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// holding reports whether the sessions are held after connecting.
func (c Config) holding() bool { return c.Scenario == ScenarioIdle || c.Hold }

// Validate checks c after applying the defaults and reports every problem.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if u, err := url.Parse(c.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("target %q: want the node's client URL, like %s", c.Target, DefaultTarget))
	}
	switch c.Scenario {
	case ScenarioIdle, ScenarioLogin:
	case "":
		errs = append(errs, errors.New("scenario is required: idle or login"))
	default:
		errs = append(errs, fmt.Errorf("scenario %q: want idle or login", c.Scenario))
	}
	switch c.LoginPath {
	case LoginPathHello, LoginPathHTTP:
	default:
		errs = append(errs, fmt.Errorf("login path %q: want hello (credential in the socket's Hello) or http (HTTP authenticate, then dial)", c.LoginPath))
	}
	switch {
	case c.Sessions < 1:
		errs = append(errs, fmt.Errorf("sessions %d: want at least 1", c.Sessions))
	case c.Sessions > MaxSessions:
		errs = append(errs, fmt.Errorf("sessions %d: one load generator runs at most %d (every session holds a socket and the fd limit is 20000); run several generators, each with its own --sessions", c.Sessions, MaxSessions))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v: want sessions per second, or 0 for as fast as possible", c.Rate))
	}
	if c.Concurrency < 1 || c.Concurrency > 4096 {
		errs = append(errs, fmt.Errorf("concurrency %d: want 1..4096", c.Concurrency))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration %v: must not be negative", c.Duration))
	}
	if c.Hold && c.Scenario != ScenarioLogin {
		errs = append(errs, errors.New("hold applies to the login scenario (idle always holds)"))
	}
	if c.RPCRate < 0 || math.IsNaN(c.RPCRate) || math.IsInf(c.RPCRate, 0) {
		errs = append(errs, fmt.Errorf("rpc rate %v: want RPCs per second, or 0 for none", c.RPCRate))
	} else if c.RPCRate > 0 && c.Scenario != ScenarioIdle {
		errs = append(errs, errors.New("rpc rate applies to the idle scenario"))
	}
	if c.RPCPayloadBytes < 0 || c.RPCPayloadBytes > maxRPCPayloadBytes {
		errs = append(errs, fmt.Errorf("rpc payload %d bytes: want 0..%d", c.RPCPayloadBytes, maxRPCPayloadBytes))
	}
	if len(c.RunID) > 64 || strings.IndexFunc(c.RunID, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		errs = append(errs, fmt.Errorf("run id %q: want at most 64 printable ASCII characters without spaces", c.RunID))
	}
	if c.SourceIPs > maxSourceIPs {
		errs = append(errs, fmt.Errorf("source ips %d: at most %d (127.0.0.2 to 127.0.0.255)", c.SourceIPs, maxSourceIPs))
	}
	if c.AdminURL != "" {
		if u, err := url.Parse(c.AdminURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("admin url %q: want the node's admin URL, like http://127.0.0.1:7351", c.AdminURL))
		}
	}
	if strings.ContainsAny(c.ServerKey, "\r\n") {
		errs = append(errs, errors.New("server key: must be one line"))
	}
	if c.Settle < 0 || c.ConnectTimeout < 0 || c.DialTimeout < 0 || c.MaxRunTime < 0 {
		errs = append(errs, errors.New("settle, connect timeout, dial timeout and max run time must not be negative"))
	}
	if c.holding() && c.Duration > c.MaxRunTime {
		errs = append(errs, fmt.Errorf("duration %v is over the max run time %v", c.Duration, c.MaxRunTime))
	}
	if c.Format != client.FormatBinary && c.Format != client.FormatJSON {
		errs = append(errs, fmt.Errorf("format %v: want binary or json", c.Format))
	}
	return errors.Join(errs...)
}

// holdDuration is how long sessions are held: Duration, extended so that
// the memory scrapes fit.
func (c Config) holdDuration() time.Duration {
	if !c.holding() {
		return 0
	}
	d := c.Duration
	if c.AdminURL != "" {
		d = max(d, c.Settle+scrapeCount*scrapeInterval+time.Second)
	}
	return d
}

// runDeadline is the overall bound of the run: connecting, holding, the
// scrapes and closing, capped by MaxRunTime.
func (c Config) runDeadline() time.Duration {
	d := c.ConnectTimeout + c.holdDuration() + 30*time.Second
	if c.AdminURL != "" {
		// The baseline and held scrapes, and the CPU scrapes around the
		// connection phase.
		d += scrapeCount*(scrapeInterval+scrapeTimeout) + 2*scrapeTimeout
	}
	return min(d, c.MaxRunTime)
}
