// Package config is taisen's one typed configuration: defaults, validation,
// and loading from flags, TAISEN_* environment variables and a JSON file,
// in that order of precedence. Every setting is declared once, in fields,
// which also generates --help and the reference printed by `taisen config`.
package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/taisen-dev/taisen/internal/gateway"
)

// Config is the configuration of `taisen serve`.
type Config struct {
	// DataDir holds the SQLite file, the embedded NATS storage and the
	// generated secrets.
	DataDir string
	// ClientAddr is the client listener (HTTP API and /ws).
	ClientAddr string
	// AdminAddr is the admin listener (server-to-server API, metrics,
	// health, pprof).
	AdminAddr string
	// Pprof serves /debug/pprof/ on the admin listener (server key
	// required); off by default.
	Pprof bool
	// MetricsAuth requires the server key on the admin /metrics too; by
	// default it is open for Prometheus scrapers.
	MetricsAuth bool
	// HTTPTimeout bounds reading one client HTTP API request (headers and
	// body) and, separately, writing its reply. An upgraded WebSocket is
	// not subject to it.
	HTTPTimeout time.Duration
	// MaxBodyBytes bounds a client HTTP API request body (413 beyond).
	MaxBodyBytes int
	// ServerKey authorises server-to-server calls; generated on first start
	// when empty.
	ServerKey string
	// TokenSecret signs session tokens; generated into DataDir on first
	// start when empty. Every node of a cluster needs the same one.
	TokenSecret string
	// NodeID names this node in the cluster; generated when empty.
	NodeID string
	// NATSURL selects an external NATS; empty runs an embedded server.
	NATSURL string
	// NATSListen makes the embedded NATS listen on TCP so other nodes can
	// share it; empty keeps it in-process.
	NATSListen string
	// DatabaseURL selects PostgreSQL (postgres://…); empty uses SQLite in
	// DataDir.
	DatabaseURL string
	// LogLevel is debug, info, warn or error; LogFormat text or json.
	LogLevel  string
	LogFormat string
	// LogQueue bounds the log lines waiting to be written (the dam).
	LogQueue int
	// CORSOrigins lists the browser origins (comma-separated, or "*")
	// allowed to call the client HTTP API.
	CORSOrigins string
	// TLSCert and TLSKey serve the client listener over TLS.
	TLSCert string
	TLSKey  string
	// GCPercent sets the garbage collector's target (Go's GOGC) for the
	// `taisen serve` process; 0 leaves Go's default (or the GOGC
	// environment variable). Lower trades CPU for memory per session.
	GCPercent int
	// DrainTimeout bounds the wait for sessions to leave on SIGTERM.
	DrainTimeout time.Duration
	// NodeHeartbeat is how often the node writes its record (load,
	// readiness, endpoints) to the "nodes" bucket; the record lives three
	// heartbeats. Zero means one second.
	NodeHeartbeat time.Duration

	// Gateway configures realtime sessions; its NodeID comes from NodeID.
	Gateway gateway.Config
	Auth    Auth
}

// Auth configures tokens.
type Auth struct {
	SessionTTL time.Duration
	RefreshTTL time.Duration
}

// Defaults returns the zero-setup configuration.
func Defaults() Config {
	return Config{
		DataDir:      "./taisen-data",
		ClientAddr:   "127.0.0.1:7350",
		AdminAddr:    "127.0.0.1:7351",
		LogLevel:     "info",
		LogFormat:    "text",
		LogQueue:     10000,
		HTTPTimeout:  30 * time.Second,
		MaxBodyBytes: 16 << 10,
		DrainTimeout: 30 * time.Second,
		Gateway:      gateway.Defaults(),
		Auth:         Auth{SessionTTL: time.Hour, RefreshTTL: 30 * 24 * time.Hour},

		NodeHeartbeat: time.Second,
	}
}

// Validate reports every invalid setting. The bounds of single settings
// live with their fields (and are printed in the reference); the rules
// that relate two settings are here.
func (c Config) Validate() error {
	var errs []error
	for _, f := range fields(&c) {
		if f.check != nil {
			if err := f.check(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data: must not be empty"))
	}
	for name, addr := range map[string]string{"client-addr": c.ClientAddr, "admin-addr": c.AdminAddr} {
		if _, _, err := splitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want HOST:PORT", name, addr))
		}
	}
	if c.ClientAddr == c.AdminAddr && !strings.HasSuffix(c.ClientAddr, ":0") {
		errs = append(errs, errors.New("client-addr and admin-addr must differ"))
	}
	if c.ServerKey != "" && len(c.ServerKey) < 16 {
		errs = append(errs, errors.New("server-key: want at least 16 characters"))
	}
	if c.TokenSecret != "" && len(c.TokenSecret) < 32 {
		errs = append(errs, errors.New("token-secret: want at least 32 characters"))
	}
	if c.NATSURL != "" && c.NATSListen != "" {
		errs = append(errs, errors.New("nats-listen only applies to the embedded NATS; drop it or nats-url"))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") &&
		!(strings.HasPrefix(c.DatabaseURL, "sqlite://") && len(c.DatabaseURL) > len("sqlite://")) {
		errs = append(errs, fmt.Errorf("database-url: want postgres://… or sqlite:///path/to/file.db (leave empty for SQLite in the data dir)"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log-format %q: want text or json", c.LogFormat))
	}
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" || o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("cors-origins %q: want an origin like https://game.example.com (scheme and host, no path), or *", o))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if c.GCPercent < 0 || c.GCPercent > 1000 {
		errs = append(errs, fmt.Errorf("gc-percent %d: want 0 (Go's default) or 1..1000", c.GCPercent))
	}
	g := c.Gateway
	if g.Engine != "epoll" && g.Engine != "goroutine" {
		errs = append(errs, fmt.Errorf("engine %q: want epoll or goroutine", g.Engine))
	}
	if g.IdleTimeout <= g.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("idle-timeout %v must be longer than heartbeat-interval %v", g.IdleTimeout, g.HeartbeatInterval))
	}
	if g.OutboundQueueBytes < g.MaxFrameBytes {
		errs = append(errs, fmt.Errorf("outbound-queue-bytes %d must be at least max-frame-bytes %d", g.OutboundQueueBytes, g.MaxFrameBytes))
	}
	if g.SessionTTL < g.ResumeGrace {
		errs = append(errs, fmt.Errorf("session-ttl %v must be at least resume-grace %v", g.SessionTTL, g.ResumeGrace))
	}
	if c.Auth.RefreshTTL < c.Auth.SessionTTL {
		errs = append(errs, fmt.Errorf("refresh-ttl %v must be at least token-ttl %v", c.Auth.RefreshTTL, c.Auth.SessionTTL))
	}
	if c.NodeHeartbeat > time.Minute {
		errs = append(errs, fmt.Errorf("node-heartbeat %v: want at most 1m", c.NodeHeartbeat))
	}
	if g.MaxUnauthPerIP > g.MaxUnauthSockets {
		errs = append(errs, fmt.Errorf("max-unauth-per-ip %d must be at most max-unauth-sockets %d", g.MaxUnauthPerIP, g.MaxUnauthSockets))
	}
	return errors.Join(errs...)
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, errors.New("missing port")
	}
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil || p < 0 || p > 65535 {
		return "", 0, errors.New("bad port")
	}
	return addr[:i], p, nil
}

// field is one setting: its flag name (also its key in the config file),
// environment variable, help (ending with its bound, if any), and
// accessors.
type field struct {
	name   string
	help   string
	isBool bool
	get    func() string
	set    func(string) error
	// check enforces the bound stated at the end of help; nil when the
	// setting has none of its own.
	check func() error
}

// Env is the environment variable of a setting: TAISEN_ + the upper-cased
// flag name with dashes as underscores.
func Env(name string) string {
	return "TAISEN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// noMax marks an integer setting without an upper bound.
const noMax = 0

// shortDuration prints 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// relatedRules are the bounds that relate two settings (checked by
// Validate), printed after the setting's own bound.
var relatedRules = map[string]string{
	"idle-timeout":         "longer than heartbeat-interval",
	"session-ttl":          "at least resume-grace",
	"outbound-queue-bytes": "at least max-frame-bytes",
	"refresh-ttl":          "at least token-ttl",
}

func also(name string) string {
	if r := relatedRules[name]; r != "" {
		return ", " + r
	}
	return ""
}

func fields(c *Config) []field {
	var fs []field
	str := func(p *string, name, help string) {
		fs = append(fs, field{name: name, help: help, get: func() string { return *p }, set: func(v string) error { *p = v; return nil }})
	}
	boolean := func(p *bool, name, help string) {
		fs = append(fs, field{name: name, help: help, isBool: true, get: func() string { return strconv.FormatBool(*p) }, set: func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("want true or false")
			}
			*p = b
			return nil
		}})
	}
	// num declares an integer setting with the range lo..hi (hi noMax: at
	// least lo); the range ends its help.
	num := func(p *int, name, help string, lo, hi int) {
		bound := fmt.Sprintf("%d..%d", lo, hi)
		if hi == noMax {
			bound = fmt.Sprintf("at least %d", lo)
		}
		fs = append(fs, field{name: name, help: help + "; " + bound + also(name), get: func() string { return strconv.Itoa(*p) }, set: func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("want an integer")
			}
			*p = n
			return nil
		}, check: func() error {
			if *p < lo || hi != noMax && *p > hi {
				return fmt.Errorf("%s %d: want %s", name, *p, bound)
			}
			return nil
		}})
	}
	// positive declares a number that must be more than 0.
	positive := func(p *float64, name, help string) {
		fs = append(fs, field{name: name, help: help + "; more than 0" + also(name), get: func() string { return strconv.FormatFloat(*p, 'g', -1, 64) }, set: func(v string) error {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("want a number")
			}
			*p = n
			return nil
		}, check: func() error {
			if !(*p > 0) {
				return fmt.Errorf("%s %v: want more than 0", name, *p)
			}
			return nil
		}})
	}
	// dur declares a duration of at least lowest; lowest 0 allows 0 and
	// lowest 1ns means "more than 0".
	dur := func(p *time.Duration, name, help string, lowest time.Duration) {
		bound := "at least " + shortDuration(lowest)
		switch lowest {
		case 0:
			bound = "0 or more"
		case time.Nanosecond:
			bound = "more than 0"
		}
		fs = append(fs, field{name: name, help: help + "; " + bound + also(name), get: func() string { return p.String() }, set: func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("want a duration like 30s or 5m")
			}
			*p = d
			return nil
		}, check: func() error {
			if *p < lowest {
				return fmt.Errorf("%s %v: want %s", name, *p, bound)
			}
			return nil
		}})
	}
	const positiveDuration = time.Nanosecond
	str(&c.DataDir, "data", "directory for the SQLite file, embedded NATS storage and generated secrets; one node per directory (a lock file refuses a second); not empty")
	str(&c.ClientAddr, "client-addr", "client listener HOST:PORT (HTTP API and WebSocket at /ws)")
	str(&c.AdminAddr, "admin-addr", "admin listener HOST:PORT (server-to-server API, /metrics, /healthz, /readyz, /debug/pprof/ with --pprof); not the same as client-addr")
	str(&c.ServerKey, "server-key", "key (at least 16 characters) for server-to-server calls and the admin listener (generated into the data dir when empty; a flag is visible in ps, prefer the environment or the file)")
	str(&c.TokenSecret, "token-secret", "secret (at least 32 characters) that signs session tokens; the same on every node (generated into the data dir when empty; a flag is visible in ps, prefer the environment or the file)")
	str(&c.NodeID, "node-id", "this node's name in the cluster (generated when empty)")
	str(&c.NATSURL, "nats-url", "external NATS URL(s), comma-separated; empty runs an embedded NATS")
	str(&c.NATSListen, "nats-listen", "let other nodes join the embedded NATS on this HOST:PORT; empty keeps it in-process; not with nats-url")
	str(&c.DatabaseURL, "database-url", "PostgreSQL URL (postgres://…), or sqlite:///path for an SQLite file outside the data dir; empty uses SQLite in the data dir; a password in a flag is visible in ps, prefer the environment or the file")
	boolean(&c.Pprof, "pprof", "serve /debug/pprof/ on the admin listener (the server key is required); off: 404")
	boolean(&c.MetricsAuth, "metrics-auth", "require the server key on the admin /metrics (open by default for Prometheus scrapers)")
	str(&c.LogLevel, "log-level", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "text or json")
	num(&c.LogQueue, "log-queue", "log lines queued before new ones are dropped (and counted)", 1, noMax)
	str(&c.CORSOrigins, "cors-origins", "browser origins allowed to call the client HTTP API: comma-separated (https://game.example.com), * for any, empty for none")
	str(&c.TLSCert, "tls-cert", "certificate file: serve the client listener over TLS (goroutine engine); needs tls-key")
	str(&c.TLSKey, "tls-key", "private key file for tls-cert")
	dur(&c.HTTPTimeout, "http-timeout", "client HTTP API: longest time to read a request (headers and body) and to write its reply; an upgraded WebSocket is not subject to it", time.Second)
	num(&c.MaxBodyBytes, "max-body-bytes", "largest client HTTP API request body; larger ones get 413", 1024, 16<<20)
	fs = append(fs, field{name: "gc-percent",
		help: "garbage-collector target (GOGC) of the serve process; 0 keeps Go's default. 50 cuts idle memory per session by about a quarter (docs/benchmarks.md); 0, or 1..1000",
		get:  func() string { return strconv.Itoa(c.GCPercent) },
		set: func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("want an integer")
			}
			c.GCPercent = n
			return nil
		}})
	dur(&c.DrainTimeout, "drain-timeout", "on SIGTERM, how long to wait for sessions to leave", 0)
	dur(&c.NodeHeartbeat, "node-heartbeat", "how often the node writes its load record to the nodes bucket (taisen nodes lists it until three are missed); at most 1m", 100*time.Millisecond)
	str(&c.Gateway.Engine, "engine", "socket engine: epoll (Linux) or goroutine (portable, one goroutine per socket)")
	num(&c.Gateway.MaxFrameBytes, "max-frame-bytes", "largest client frame accepted", 256, 16<<20)
	num(&c.Gateway.MaxInFlight, "max-in-flight", "requests per session awaiting a reply", 1, 1024)
	positive(&c.Gateway.RateLimit, "rate-limit", "sustained requests per second per session")
	num(&c.Gateway.RateBurst, "rate-burst", "request burst per session", 1, noMax)
	positive(&c.Gateway.SendRate, "send-rate", "sustained fire-and-forget messages (room inputs, acks) per second per session")
	num(&c.Gateway.SendBurst, "send-burst", "fire-and-forget message burst per session", 1, noMax)
	num(&c.Gateway.MaxViolations, "max-violations", "rejected requests before a session is closed (policy_violation)", 1, noMax)
	dur(&c.Gateway.AuthTimeout, "auth-timeout", "close sockets that have not authenticated in this time", positiveDuration)
	dur(&c.Gateway.HeartbeatInterval, "heartbeat-interval", "how often clients are told to send a frame", positiveDuration)
	dur(&c.Gateway.IdleTimeout, "idle-timeout", "close sockets that sent nothing for this long", positiveDuration)
	dur(&c.Gateway.ResumeGrace, "resume-grace", "how long a dropped session stays resumable", positiveDuration)
	num(&c.Gateway.ResumeBufferPushes, "resume-buffer", "pushes kept per session for resume", 1, noMax)
	num(&c.Gateway.OutboundQueueBytes, "outbound-queue-bytes", "bytes queued per socket before the client is closed as slow", 1, noMax)
	dur(&c.Gateway.WriteTimeout, "write-timeout", "close a socket whose write takes longer (slow)", positiveDuration)
	dur(&c.Gateway.SessionTTL, "session-ttl", "TTL of the session record in the bus KV (refreshed every third)", 3*time.Second)
	num(&c.Gateway.KVReplicas, "kv-replicas", "copies of the sessions KV bucket in a NATS cluster (1 for one server; 3 survives losing one)", 1, 5)
	num(&c.Gateway.MaxUnauthSockets, "max-unauth-sockets", "sockets that have not authenticated yet, in total (more are refused with 429)", 1, noMax)
	num(&c.Gateway.MaxUnauthPerIP, "max-unauth-per-ip", "sockets that have not authenticated yet, per remote address; at most max-unauth-sockets", 1, noMax)
	num(&c.Gateway.Workers, "workers", "epoll loops reading sockets (one per core is plenty)", 1, noMax)
	dur(&c.Auth.SessionTTL, "token-ttl", "session token lifetime", time.Minute)
	dur(&c.Auth.RefreshTTL, "refresh-ttl", "refresh token lifetime", positiveDuration)
	return fs
}

// Load builds the configuration from defaults, then the JSON file named by
// --config or TAISEN_CONFIG, then TAISEN_* environment variables, then
// flags in args. getenv is os.Getenv in production.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	c := Defaults()
	flds := fields(&c)
	explicit := map[string]string{}
	for _, f := range flds {
		usage := fmt.Sprintf("%s (env %s, default %q)", f.help, Env(f.name), f.get())
		record := func(v string) error {
			explicit[f.name] = v
			return nil
		}
		if f.isBool {
			fs.BoolFunc(f.name, usage, record) // --pprof alone means true
		} else {
			fs.Func(f.name, usage, record)
		}
	}
	var file string
	fs.StringVar(&file, "config", "", "JSON file with settings keyed by flag name, e.g. {\"client-addr\": \"0.0.0.0:7350\"} (env TAISEN_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if file == "" {
		file = getenv("TAISEN_CONFIG")
	}
	byName := map[string]field{}
	for _, f := range flds {
		byName[f.name] = f
	}
	if file != "" {
		raw, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("config file: %w", err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return c, fmt.Errorf("config file %s: %w", file, err)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f, ok := byName[k]
			if !ok {
				return c, fmt.Errorf("config file %s: unknown setting %q (see `taisen config`)", file, k)
			}
			v := fmt.Sprint(m[k])
			if n, isNum := m[k].(float64); isNum {
				v = strconv.FormatFloat(n, 'f', -1, 64)
			}
			if err := f.set(v); err != nil {
				return c, fmt.Errorf("config file %s: %s: %w", file, k, err)
			}
		}
	}
	for _, f := range flds {
		if v := getenv(Env(f.name)); v != "" {
			if err := f.set(v); err != nil {
				return c, fmt.Errorf("%s=%q: %w", Env(f.name), v, err)
			}
		}
	}
	for _, f := range flds {
		if v, ok := explicit[f.name]; ok {
			if err := f.set(v); err != nil {
				return c, fmt.Errorf("--%s=%q: %w", f.name, v, err)
			}
		}
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// WriteReference writes the table of every setting (flag, environment
// variable, default, meaning) as Markdown.
func WriteReference(w io.Writer) {
	c := Defaults()
	fmt.Fprintln(w, "| flag | environment | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|---|")
	fmt.Fprintf(w, "| `--config` | `TAISEN_CONFIG` | | JSON file of settings keyed by flag name |\n")
	for _, f := range fields(&c) {
		def := f.get()
		if def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(w, "| `--%s` | `%s` | %s | %s |\n", f.name, Env(f.name), def, f.help)
	}
}
