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
	// closes them. With TopicsPerSession each session subscribes itself
	// to topics the run creates; with Follows each sets a presence status
	// and follows other users of the run (see Config).
	ScenarioIdle = "idle"
	// ScenarioLogin is a login storm: Sessions sessions authenticate and
	// connect, each closing right after its Welcome (or holding until the
	// end with Hold).
	ScenarioLogin = "login"
	// ScenarioFanout: Sessions sessions are subscribed (server API) to
	// one of Topics topics each, round robin; Messages items are then
	// published through the notification API at SendRate per second,
	// spread over the topics, and every delivery's publish → receive
	// latency is measured.
	ScenarioFanout = "fanout"
	// ScenarioNotify: Sessions sessions stay online while CONNECTED
	// notifications are sent to them (up to 100 users per Send) at
	// SendRate notifications per second for Duration; every delivery's
	// publish → receive latency is measured.
	ScenarioNotify = "notify"
	// ScenarioInbox: the Sessions accounts are created (log in, log out),
	// subscribed to a topic holding Retained retained items, and sent
	// Messages STORED items each while offline; then all log in at once
	// and the time until every item arrived is measured (waiting at most
	// Duration).
	ScenarioInbox = "inbox"
	// ScenarioDisconnect: Sessions sessions log in, then all close their
	// sockets at once; the time until the node's active sessions fall back
	// and until presence reads every user offline is measured (waiting at
	// most Duration).
	ScenarioDisconnect = "disconnect"
)

// scenarios lists the scenarios for messages.
const scenarios = "idle, login, fanout, notify, inbox or disconnect"

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

	// DefaultTopics is the fanout scenario's topic count.
	DefaultTopics = 1
	// DefaultFanoutMessages is how many items the fanout scenario
	// publishes, DefaultInboxMessages how many STORED items the inbox
	// scenario sends each user.
	DefaultFanoutMessages = 100
	DefaultInboxMessages  = 10
	// DefaultFanoutRate and DefaultNotifyRate are the publish rates (items
	// per second) and send rates (notifications per second).
	DefaultFanoutRate = 100
	DefaultNotifyRate = 1000
	// DefaultDrain is how long fanout and notify wait after the last
	// publish for deliveries still in flight.
	DefaultDrain = 5 * time.Second
	// MaxTopics bounds the fanout scenario's topics and the idle
	// scenario's topic pool.
	MaxTopics = 1000
	// MaxTopicsPerSession bounds the topics each idle session subscribes
	// itself to.
	MaxTopicsPerSession = 32
	// MaxFollows bounds the users each idle session follows (one
	// presence.follow request names at most 100).
	MaxFollows = 100
	// IdleActivity is the presence activity each idle session sets when
	// it follows others (playing, "loadtest").
	IdleActivity = "loadtest"
	// MaxFanoutMessages bounds the items the fanout scenario publishes.
	MaxFanoutMessages = 1_000_000
	// MaxInboxMessages is the most STORED items a node pushes at one
	// login; the inbox scenario sends at most that many per user.
	MaxInboxMessages = 1000
	// MaxRetained is the largest retain count of a topic.
	MaxRetained = 100
	// MaxDeliveries bounds the deliveries one run expects, so that the
	// per-delivery latencies fit in memory (4 bytes each).
	MaxDeliveries = 50_000_000
	// maxSendRate bounds SendRate.
	maxSendRate = 1e7
)

// Config describes a load test run. Zero fields take the defaults
// documented on them; WithDefaults applies them and Validate checks the
// result.
type Config struct {
	// Target is the node's client listener (DefaultTarget when empty).
	Target string
	// Scenario is ScenarioIdle, ScenarioLogin, ScenarioFanout,
	// ScenarioNotify, ScenarioInbox or ScenarioDisconnect. The last four
	// need AdminURL and ServerKey (the notification API).
	Scenario string
	// Sessions is how many sessions to run, 1..MaxSessions.
	Sessions int
	// Rate is how many sessions start per second; 0 starts them as fast
	// as Concurrency allows. (`taisen loadtest --rate` sets SendRate
	// instead in the fanout and notify scenarios.)
	Rate float64
	// Concurrency bounds the sessions authenticating and connecting at
	// once: DefaultConcurrency, or about twice Rate (up to 1024) when a
	// rate is set.
	Concurrency int
	// Duration is how long sessions are held (idle, or login with Hold);
	// DefaultHold when zero. With AdminURL the hold lasts at least Settle
	// plus the memory scrapes. In the notify scenario it is how long
	// notifications are sent; in inbox and disconnect the longest wait for
	// the figure measured.
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
	// Topics is the fanout scenario's topic count, 1 to min(Sessions,
	// MaxTopics) (DefaultTopics when zero). In the idle scenario with
	// TopicsPerSession it is the pool of topics the run creates,
	// TopicsPerSession to MaxTopics (TopicsPerSession when zero: every
	// session subscribes to every topic).
	Topics int
	// TopicsPerSession (idle only, 0 to MaxTopicsPerSession) makes the
	// run create Topics topics that clients may subscribe to (through the
	// notification API: needs AdminURL and ServerKey) before connecting,
	// and each session subscribe itself over its socket, right after its
	// Welcome, to TopicsPerSession distinct topics of the pool: session i
	// to topics (i+j) mod Topics for j < TopicsPerSession. The topics are
	// deleted at the end of the run.
	TopicsPerSession int
	// Follows (idle only, 0 to MaxFollows and less than Sessions) makes
	// each session set its presence status (playing IdleActivity) right
	// after its Welcome and, once every session connected, follow the
	// presence of the Follows sessions after it in index order (wrapping
	// around, among the sessions connected). The presence pushes that
	// arrive are read and counted.
	Follows int
	// Messages is, in the fanout scenario, the items published in all
	// (DefaultFanoutMessages when zero); in the inbox scenario the STORED
	// items sent to each user, 0 to MaxInboxMessages
	// (DefaultInboxMessages when zero and Retained is zero too).
	Messages int
	// Retained is the inbox scenario's retained topic items (and the
	// topic's retain count), 0 to MaxRetained.
	Retained int
	// SendRate is the fanout scenario's items published per second
	// (DefaultFanoutRate when zero) and the notify scenario's
	// notifications per second (DefaultNotifyRate when zero).
	SendRate float64
	// Drain is how long fanout and notify wait after the last publish for
	// the deliveries still expected (DefaultDrain when zero).
	Drain time.Duration
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
	switch c.Scenario {
	case ScenarioFanout:
		if c.Topics == 0 {
			c.Topics = DefaultTopics
		}
		if c.Messages == 0 {
			c.Messages = DefaultFanoutMessages
		}
		if c.SendRate == 0 {
			c.SendRate = DefaultFanoutRate
		}
	case ScenarioNotify:
		if c.SendRate == 0 {
			c.SendRate = DefaultNotifyRate
		}
	case ScenarioInbox:
		if c.Messages == 0 && c.Retained == 0 {
			c.Messages = DefaultInboxMessages
		}
	case ScenarioIdle:
		if c.Topics == 0 && c.TopicsPerSession > 0 {
			c.Topics = c.TopicsPerSession
		}
	}
	if c.delivery() && c.Drain == 0 {
		c.Drain = DefaultDrain
	}
	return c
}

// delivery reports whether the scenario drives the notification API
// (fanout, notify, inbox, disconnect).
func (c Config) delivery() bool {
	switch c.Scenario {
	case ScenarioFanout, ScenarioNotify, ScenarioInbox, ScenarioDisconnect:
		return true
	}
	return false
}

// holding reports whether the sessions are held after connecting.
func (c Config) holding() bool { return c.Scenario == ScenarioIdle || c.Hold || c.delivery() }

// Validate checks c after applying the defaults and reports every problem.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if u, err := url.Parse(c.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("target %q: want the node's client URL, like %s", c.Target, DefaultTarget))
	}
	switch c.Scenario {
	case ScenarioIdle, ScenarioLogin, ScenarioFanout, ScenarioNotify, ScenarioInbox, ScenarioDisconnect:
	case "":
		errs = append(errs, errors.New("scenario is required: "+scenarios))
	default:
		errs = append(errs, fmt.Errorf("scenario %q: want %s", c.Scenario, scenarios))
	}
	errs = append(errs, c.validateDelivery()...)
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

// validateDelivery checks the options of the notification scenarios.
func (c Config) validateDelivery() []error {
	var errs []error
	if c.delivery() {
		if c.AdminURL == "" {
			errs = append(errs, fmt.Errorf("scenario %s needs --admin: the node's admin URL, where the notification API and /metrics are", c.Scenario))
		}
		if c.ServerKey == "" {
			errs = append(errs, fmt.Errorf("scenario %s needs the server key for the notification API: pass --server-key or set TAISEN_SERVER_KEY", c.Scenario))
		}
	}
	errs = append(errs, c.validateIdle()...)
	if c.Topics != 0 && c.Scenario != ScenarioFanout && (c.Scenario != ScenarioIdle || c.TopicsPerSession == 0) {
		errs = append(errs, errors.New("topics applies to the fanout scenario, and to idle with --topics-per-session"))
	} else if c.Scenario == ScenarioFanout && (c.Topics < 1 || c.Topics > min(max(c.Sessions, 1), MaxTopics)) {
		errs = append(errs, fmt.Errorf("topics %d: want 1 to %d (at most one per session)", c.Topics, min(max(c.Sessions, 1), MaxTopics)))
	}
	switch c.Scenario {
	case ScenarioFanout:
		if c.Messages < 1 || c.Messages > MaxFanoutMessages {
			errs = append(errs, fmt.Errorf("messages %d: want 1 to %d items to publish", c.Messages, MaxFanoutMessages))
		} else if c.Topics > 0 && int64(c.Sessions)*int64(c.Messages)/int64(c.Topics) > MaxDeliveries {
			errs = append(errs, fmt.Errorf("%d sessions and %d messages over %d topics expect more than %d deliveries: publish fewer messages", c.Sessions, c.Messages, c.Topics, MaxDeliveries))
		}
	case ScenarioInbox:
		if c.Messages < 0 || c.Messages > MaxInboxMessages {
			errs = append(errs, fmt.Errorf("messages %d: want 0 to %d stored items per user (a node pushes at most %d at login)", c.Messages, MaxInboxMessages, MaxInboxMessages))
		}
		if c.Messages == 0 && c.Retained == 0 {
			errs = append(errs, errors.New("inbox: want at least one stored (--messages) or retained (--retained) item"))
		}
	default:
		if c.Messages != 0 {
			errs = append(errs, errors.New("messages applies to the fanout and inbox scenarios"))
		}
	}
	if c.Retained != 0 && c.Scenario != ScenarioInbox {
		errs = append(errs, errors.New("retained applies to the inbox scenario"))
	} else if c.Retained < 0 || c.Retained > MaxRetained {
		errs = append(errs, fmt.Errorf("retained %d: want 0 to %d (a topic's largest retain count)", c.Retained, MaxRetained))
	}
	switch {
	case c.SendRate < 0 || math.IsNaN(c.SendRate) || math.IsInf(c.SendRate, 0) || c.SendRate > maxSendRate:
		errs = append(errs, fmt.Errorf("send rate %v: want items per second, more than 0 and at most %g", c.SendRate, float64(maxSendRate)))
	case c.SendRate != 0 && c.Scenario != ScenarioFanout && c.Scenario != ScenarioNotify:
		errs = append(errs, errors.New("send rate applies to the fanout and notify scenarios"))
	case c.Scenario == ScenarioFanout && c.SendRate > 0 && time.Duration(float64(c.Messages)/c.SendRate*float64(time.Second)) > c.MaxRunTime:
		errs = append(errs, fmt.Errorf("%d messages at %v/s take longer than the max run time %v", c.Messages, c.SendRate, c.MaxRunTime))
	case c.Scenario == ScenarioNotify && c.SendRate*c.Duration.Seconds() > MaxDeliveries:
		errs = append(errs, fmt.Errorf("%v notifications/s for %v expect more than %d deliveries", c.SendRate, c.Duration, MaxDeliveries))
	}
	if c.Drain < 0 {
		errs = append(errs, fmt.Errorf("drain %v: must not be negative", c.Drain))
	}
	return errs
}

// idleSetup reports whether the idle sessions subscribe to topics or
// follow presence.
func (c Config) idleSetup() bool {
	return c.Scenario == ScenarioIdle && (c.TopicsPerSession > 0 || c.Follows > 0)
}

// validateIdle checks the topic and presence options of the idle
// scenario.
func (c Config) validateIdle() []error {
	var errs []error
	if c.TopicsPerSession != 0 || c.Follows != 0 {
		if c.Scenario != ScenarioIdle {
			errs = append(errs, errors.New("topics per session and follows apply to the idle scenario"))
		}
	}
	if c.TopicsPerSession < 0 || c.TopicsPerSession > MaxTopicsPerSession {
		errs = append(errs, fmt.Errorf("topics per session %d: want 0 to %d", c.TopicsPerSession, MaxTopicsPerSession))
	} else if c.Scenario == ScenarioIdle && c.TopicsPerSession > 0 {
		if c.Topics < c.TopicsPerSession || c.Topics > MaxTopics {
			errs = append(errs, fmt.Errorf("topics %d: want %d (topics per session) to %d: each session subscribes to distinct topics of the pool", c.Topics, c.TopicsPerSession, MaxTopics))
		}
		if c.AdminURL == "" {
			errs = append(errs, errors.New("topics per session needs --admin: the run creates its topics through the node's notification API"))
		}
		if c.ServerKey == "" {
			errs = append(errs, errors.New("topics per session needs the server key for the notification API: pass --server-key or set TAISEN_SERVER_KEY"))
		}
	}
	switch {
	case c.Follows < 0 || c.Follows > MaxFollows:
		errs = append(errs, fmt.Errorf("follows %d: want 0 to %d", c.Follows, MaxFollows))
	case c.Follows > 0 && c.Follows >= c.Sessions:
		errs = append(errs, fmt.Errorf("follows %d: want fewer than the sessions (%d): each session follows other sessions of the run", c.Follows, c.Sessions))
	}
	return errs
}

// phaseDuration is the main phase of a notification scenario: the
// publishing of fanout, the sending of notify, the waits of inbox and
// disconnect.
func (c Config) phaseDuration() time.Duration {
	if c.Scenario == ScenarioFanout && c.SendRate > 0 {
		return time.Duration(float64(c.Messages) / c.SendRate * float64(time.Second))
	}
	return c.Duration
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
	if c.delivery() {
		// Inbox connects twice; fanout waits for its subscriptions.
		d := 2*c.ConnectTimeout + c.phaseDuration() + c.Drain + time.Minute
		return min(d, c.MaxRunTime)
	}
	d := c.ConnectTimeout + c.holdDuration() + 30*time.Second
	if c.Follows > 0 {
		// The follows go in a second pass, bounded like the connections.
		d += c.ConnectTimeout
	}
	if c.AdminURL != "" {
		// The baseline and held scrapes, and the CPU scrapes around the
		// connection phase.
		d += scrapeCount*(scrapeInterval+scrapeTimeout) + 2*scrapeTimeout
	}
	return min(d, c.MaxRunTime)
}
