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
		DrainTimeout: 30 * time.Second,
		Gateway:      gateway.Defaults(),
		Auth:         Auth{SessionTTL: time.Hour, RefreshTTL: 30 * 24 * time.Hour},

		NodeHeartbeat: time.Second,
	}
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
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
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, fmt.Errorf("database-url: want postgres://… (leave empty for SQLite in the data dir)"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log-format %q: want text or json", c.LogFormat))
	}
	if c.LogQueue < 1 {
		errs = append(errs, errors.New("log-queue: want at least 1"))
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
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("drain-timeout: must not be negative"))
	}
	if c.NodeHeartbeat != 0 && (c.NodeHeartbeat < 100*time.Millisecond || c.NodeHeartbeat > time.Minute) {
		errs = append(errs, fmt.Errorf("node-heartbeat %v: want 100ms to 1m (0 for the default, 1s)", c.NodeHeartbeat))
	}
	if c.Auth.SessionTTL < time.Minute || c.Auth.RefreshTTL < c.Auth.SessionTTL {
		errs = append(errs, errors.New("token-ttl must be at least 1m and refresh-ttl at least token-ttl"))
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
// environment variable, help, and accessors.
type field struct {
	name string
	help string
	get  func() string
	set  func(string) error
}

// Env is the environment variable of a setting: TAISEN_ + the upper-cased
// flag name with dashes as underscores.
func Env(name string) string {
	return "TAISEN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func fields(c *Config) []field {
	var fs []field
	str := func(p *string, name, help string) {
		fs = append(fs, field{name, help, func() string { return *p }, func(v string) error { *p = v; return nil }})
	}
	num := func(p *int, name, help string) {
		fs = append(fs, field{name, help, func() string { return strconv.Itoa(*p) }, func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("want an integer")
			}
			*p = n
			return nil
		}})
	}
	flt := func(p *float64, name, help string) {
		fs = append(fs, field{name, help, func() string { return strconv.FormatFloat(*p, 'g', -1, 64) }, func(v string) error {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("want a number")
			}
			*p = n
			return nil
		}})
	}
	dur := func(p *time.Duration, name, help string) {
		fs = append(fs, field{name, help, func() string { return p.String() }, func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("want a duration like 30s or 5m")
			}
			*p = d
			return nil
		}})
	}
	str(&c.DataDir, "data", "directory for the SQLite file, embedded NATS storage and generated secrets")
	str(&c.ClientAddr, "client-addr", "client listener HOST:PORT (HTTP API and WebSocket at /ws)")
	str(&c.AdminAddr, "admin-addr", "admin listener HOST:PORT (server-to-server API, /metrics, /healthz, /readyz, /debug/pprof/)")
	str(&c.ServerKey, "server-key", "key for server-to-server calls (generated into the data dir when empty)")
	str(&c.TokenSecret, "token-secret", "secret (at least 32 characters) that signs session tokens; the same on every node (generated into the data dir when empty)")
	str(&c.NodeID, "node-id", "this node's name in the cluster (generated when empty)")
	str(&c.NATSURL, "nats-url", "external NATS URL(s), comma-separated; empty runs an embedded NATS")
	str(&c.NATSListen, "nats-listen", "let other nodes join the embedded NATS on this HOST:PORT; empty keeps it in-process")
	str(&c.DatabaseURL, "database-url", "PostgreSQL URL (postgres://…); empty uses SQLite in the data dir")
	str(&c.LogLevel, "log-level", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "text or json")
	num(&c.LogQueue, "log-queue", "log lines queued before new ones are dropped (and counted)")
	str(&c.CORSOrigins, "cors-origins", "browser origins allowed to call the client HTTP API: comma-separated (https://game.example.com), * for any, empty for none")
	str(&c.TLSCert, "tls-cert", "certificate file: serve the client listener over TLS (goroutine engine)")
	str(&c.TLSKey, "tls-key", "private key file for tls-cert")
	num(&c.GCPercent, "gc-percent", "garbage-collector target (GOGC) of the serve process; 0 keeps Go's default. 50 cuts idle memory per session by about a quarter (docs/benchmarks.md)")
	dur(&c.DrainTimeout, "drain-timeout", "on SIGTERM, how long to wait for sessions to leave")
	dur(&c.NodeHeartbeat, "node-heartbeat", "how often the node writes its load record to the nodes bucket (taisen nodes lists it until three are missed)")
	str(&c.Gateway.Engine, "engine", "socket engine: epoll (Linux) or goroutine (portable, one goroutine per socket)")
	num(&c.Gateway.MaxFrameBytes, "max-frame-bytes", "largest client frame accepted")
	num(&c.Gateway.MaxInFlight, "max-in-flight", "requests per session awaiting a reply")
	flt(&c.Gateway.RateLimit, "rate-limit", "sustained requests per second per session")
	num(&c.Gateway.RateBurst, "rate-burst", "request burst per session")
	num(&c.Gateway.MaxViolations, "max-violations", "rejected requests before a session is closed (policy_violation)")
	dur(&c.Gateway.AuthTimeout, "auth-timeout", "close sockets that have not authenticated in this time")
	dur(&c.Gateway.HeartbeatInterval, "heartbeat-interval", "how often clients are told to send a frame")
	dur(&c.Gateway.IdleTimeout, "idle-timeout", "close sockets that sent nothing for this long")
	dur(&c.Gateway.ResumeGrace, "resume-grace", "how long a dropped session stays resumable")
	num(&c.Gateway.ResumeBufferPushes, "resume-buffer", "pushes kept per session for resume")
	num(&c.Gateway.OutboundQueueBytes, "outbound-queue-bytes", "bytes queued per socket before the client is closed as slow")
	dur(&c.Gateway.WriteTimeout, "write-timeout", "close a socket whose write takes longer (slow)")
	dur(&c.Gateway.SessionTTL, "session-ttl", "TTL of the session record in the bus KV (refreshed every third)")
	num(&c.Gateway.KVReplicas, "kv-replicas", "copies of the sessions KV bucket in a NATS cluster (1 for one server; 3 survives losing one)")
	num(&c.Gateway.MaxUnauthSockets, "max-unauth-sockets", "sockets that have not authenticated yet, in total (more are refused with 429)")
	num(&c.Gateway.MaxUnauthPerIP, "max-unauth-per-ip", "sockets that have not authenticated yet, per remote address")
	num(&c.Gateway.Workers, "workers", "epoll loops reading sockets (one per core is plenty)")
	dur(&c.Auth.SessionTTL, "token-ttl", "session token lifetime")
	dur(&c.Auth.RefreshTTL, "refresh-ttl", "refresh token lifetime")
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
		f := f
		fs.Func(f.name, fmt.Sprintf("%s (env %s, default %q)", f.help, Env(f.name), f.get()), func(v string) error {
			explicit[f.name] = v
			return nil
		})
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
