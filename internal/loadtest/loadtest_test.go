package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/taisen-dev/taisen/client"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Scenario: ScenarioIdle, Sessions: 10}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // substring; empty means valid
	}{
		{name: "minimal idle", edit: func(*Config) {}},
		{name: "minimal login", edit: func(c *Config) { c.Scenario = ScenarioLogin }},
		{name: "login hold", edit: func(c *Config) { c.Scenario = ScenarioLogin; c.Hold = true }},
		{name: "full", edit: func(c *Config) {
			c.Target = "https://game.example.com"
			c.Rate = 100
			c.RPCRate = 50
			c.AdminURL = "http://127.0.0.1:7351"
			c.SourceIPs = -1
			c.Format = client.FormatJSON
		}},
		{name: "max sessions", edit: func(c *Config) { c.Sessions = MaxSessions }},
		{name: "no scenario", edit: func(c *Config) { c.Scenario = "" }, wantErr: "scenario is required"},
		{name: "bad scenario", edit: func(c *Config) { c.Scenario = "storm" }, wantErr: `scenario "storm"`},
		{name: "no sessions", edit: func(c *Config) { c.Sessions = 0 }, wantErr: "want at least 1"},
		{name: "too many sessions", edit: func(c *Config) { c.Sessions = MaxSessions + 1 }, wantErr: "fd limit is 20000"},
		{name: "negative rate", edit: func(c *Config) { c.Rate = -1 }, wantErr: "rate -1"},
		{name: "bad target", edit: func(c *Config) { c.Target = "127.0.0.1:7350" }, wantErr: "target"},
		{name: "ws target", edit: func(c *Config) { c.Target = "ws://127.0.0.1:7350" }, wantErr: "target"},
		{name: "bad admin", edit: func(c *Config) { c.AdminURL = "localhost" }, wantErr: "admin url"},
		{name: "rpc on login", edit: func(c *Config) { c.Scenario = ScenarioLogin; c.RPCRate = 1 }, wantErr: "rpc rate applies to the idle"},
		{name: "hold on idle", edit: func(c *Config) { c.Hold = true }, wantErr: "hold applies to the login"},
		{name: "too many source ips", edit: func(c *Config) { c.SourceIPs = 300 }, wantErr: "source ips 300"},
		{name: "huge payload", edit: func(c *Config) { c.RPCPayloadBytes = 1 << 20 }, wantErr: "rpc payload"},
		{name: "negative duration", edit: func(c *Config) { c.Duration = -time.Second }, wantErr: "duration"},
		{name: "duration over cap", edit: func(c *Config) { c.Duration = time.Hour }, wantErr: "over the max run time"},
		{name: "concurrency", edit: func(c *Config) { c.Concurrency = 10000 }, wantErr: "concurrency"},
		{name: "login path http", edit: func(c *Config) { c.LoginPath = LoginPathHTTP }},
		{name: "login path hello", edit: func(c *Config) { c.LoginPath = LoginPathHello }},
		{name: "bad login path", edit: func(c *Config) { c.LoginPath = "grpc" }, wantErr: `login path "grpc"`},
		{name: "server key", edit: func(c *Config) { c.ServerKey = "0123456789abcdef" }},
		{name: "two-line server key", edit: func(c *Config) { c.ServerKey = "0123456789abcdef\n" }, wantErr: "server key: must be one line"},
		{name: "several problems", edit: func(c *Config) { c.Scenario = ""; c.Sessions = -1 }, wantErr: "sessions -1"},
		{name: "fanout", edit: func(c *Config) { s2s(c, ScenarioFanout); c.Topics = 10; c.Messages = 1000; c.SendRate = 500 }},
		{name: "fanout defaults", edit: func(c *Config) { s2s(c, ScenarioFanout) }},
		{name: "notify", edit: func(c *Config) { s2s(c, ScenarioNotify); c.SendRate = 10000 }},
		{name: "inbox", edit: func(c *Config) { s2s(c, ScenarioInbox); c.Messages = 10; c.Retained = 3 }},
		{name: "inbox retained only", edit: func(c *Config) { s2s(c, ScenarioInbox); c.Retained = 3 }},
		{name: "disconnect", edit: func(c *Config) { s2s(c, ScenarioDisconnect); c.Duration = 2 * time.Minute }},
		{name: "fanout without admin", edit: func(c *Config) { s2s(c, ScenarioFanout); c.AdminURL = "" }, wantErr: "scenario fanout needs --admin"},
		{name: "notify without key", edit: func(c *Config) { s2s(c, ScenarioNotify); c.ServerKey = "" }, wantErr: "pass --server-key or set TAISEN_SERVER_KEY"},
		{name: "disconnect without key", edit: func(c *Config) { s2s(c, ScenarioDisconnect); c.ServerKey = "" }, wantErr: "scenario disconnect needs the server key"},
		{name: "more topics than sessions", edit: func(c *Config) { s2s(c, ScenarioFanout); c.Topics = 11 }, wantErr: "topics 11: want 1 to 10"},
		{name: "topics on notify", edit: func(c *Config) { s2s(c, ScenarioNotify); c.Topics = 2 }, wantErr: "topics applies to the fanout"},
		{name: "too many fanout messages", edit: func(c *Config) { s2s(c, ScenarioFanout); c.Messages = MaxFanoutMessages + 1 }, wantErr: "messages 1000001"},
		{name: "fanout over the delivery cap", edit: func(c *Config) {
			s2s(c, ScenarioFanout)
			c.Sessions, c.Messages, c.SendRate = MaxSessions, 1_000_000, 1e6
		}, wantErr: "deliveries: publish fewer"},
		{name: "fanout longer than the run", edit: func(c *Config) { s2s(c, ScenarioFanout); c.Messages = 100000; c.SendRate = 10 }, wantErr: "take longer than the max run time"},
		{name: "inbox over the login cap", edit: func(c *Config) { s2s(c, ScenarioInbox); c.Messages = 1001 }, wantErr: "a node pushes at most 1000"},
		{name: "too many retained", edit: func(c *Config) { s2s(c, ScenarioInbox); c.Retained = 101 }, wantErr: "retained 101"},
		{name: "retained on fanout", edit: func(c *Config) { s2s(c, ScenarioFanout); c.Retained = 1 }, wantErr: "retained applies to the inbox"},
		{name: "messages on disconnect", edit: func(c *Config) { s2s(c, ScenarioDisconnect); c.Messages = 1 }, wantErr: "messages applies to the fanout and inbox"},
		{name: "send rate on idle", edit: func(c *Config) { c.SendRate = 1 }, wantErr: "send rate applies"},
		{name: "negative send rate", edit: func(c *Config) { s2s(c, ScenarioNotify); c.SendRate = -1 }, wantErr: "send rate -1"},
		{name: "notify over the delivery cap", edit: func(c *Config) { s2s(c, ScenarioNotify); c.SendRate = 1e6; c.Duration = 9 * time.Minute }, wantErr: "expect more than"},
		{name: "idle topics and follows", edit: func(c *Config) { s2s(c, ScenarioIdle); c.TopicsPerSession = 3; c.Follows = 3 }},
		{name: "idle topic pool", edit: func(c *Config) { s2s(c, ScenarioIdle); c.TopicsPerSession = 3; c.Topics = 50 }},
		{name: "idle follows without admin", edit: func(c *Config) { c.Follows = 9 }},
		{name: "idle max topics per session", edit: func(c *Config) { s2s(c, ScenarioIdle); c.TopicsPerSession = MaxTopicsPerSession }},
		{name: "topics per session without admin", edit: func(c *Config) { c.TopicsPerSession = 1 }, wantErr: "topics per session needs --admin"},
		{name: "topics per session without key", edit: func(c *Config) { s2s(c, ScenarioIdle); c.ServerKey = ""; c.TopicsPerSession = 1 }, wantErr: "topics per session needs the server key"},
		{name: "too many topics per session", edit: func(c *Config) { s2s(c, ScenarioIdle); c.TopicsPerSession = MaxTopicsPerSession + 1 }, wantErr: "topics per session 33: want 0 to 32"},
		{name: "negative topics per session", edit: func(c *Config) { s2s(c, ScenarioIdle); c.TopicsPerSession = -1 }, wantErr: "topics per session -1"},
		{name: "topic pool under topics per session", edit: func(c *Config) { s2s(c, ScenarioIdle); c.TopicsPerSession = 3; c.Topics = 2 }, wantErr: "topics 2: want 3 (topics per session) to 1000"},
		{name: "topic pool over the max", edit: func(c *Config) { s2s(c, ScenarioIdle); c.TopicsPerSession = 3; c.Topics = MaxTopics + 1 }, wantErr: "topics 1001"},
		{name: "topics on idle without topics per session", edit: func(c *Config) { s2s(c, ScenarioIdle); c.Topics = 3 }, wantErr: "topics applies to the fanout scenario, and to idle with --topics-per-session"},
		{name: "topics per session on fanout", edit: func(c *Config) { s2s(c, ScenarioFanout); c.TopicsPerSession = 1 }, wantErr: "topics per session and follows apply to the idle"},
		{name: "follows on login", edit: func(c *Config) { c.Scenario = ScenarioLogin; c.Follows = 1 }, wantErr: "topics per session and follows apply to the idle"},
		{name: "too many follows", edit: func(c *Config) { c.Sessions = 1000; c.Follows = MaxFollows + 1 }, wantErr: "follows 101: want 0 to 100"},
		{name: "negative follows", edit: func(c *Config) { c.Follows = -1 }, wantErr: "follows -1"},
		{name: "follows not fewer than sessions", edit: func(c *Config) { c.Follows = 10 }, wantErr: "follows 10: want fewer than the sessions (10)"},
		{name: "negative drain", edit: func(c *Config) { s2s(c, ScenarioFanout); c.Drain = -time.Second }, wantErr: "drain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// s2s makes c a notification scenario with the admin URL and key it
// needs.
func s2s(c *Config, scenario string) {
	c.Scenario, c.AdminURL, c.ServerKey = scenario, "http://127.0.0.1:7351", "0123456789abcdef"
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Scenario: ScenarioIdle, Sessions: 1000}.WithDefaults()
	assert.Equal(t, DefaultTarget, c.Target)
	assert.Equal(t, DefaultConcurrency, c.Concurrency)
	assert.Equal(t, DefaultHold, c.Duration)
	assert.Equal(t, DefaultSourceIPs, c.SourceIPs)
	assert.Equal(t, DefaultSettle, c.Settle)
	assert.Equal(t, DefaultMaxRunTime, c.MaxRunTime)
	assert.Equal(t, client.FormatBinary, c.Format)
	assert.Equal(t, LoginPathHello, c.LoginPath)
	assert.Equal(t, time.Minute+10*time.Second, c.ConnectTimeout)
	assert.NotNil(t, c.Logger)

	paced := Config{Scenario: ScenarioLogin, Sessions: 1000, Rate: 500}.WithDefaults()
	assert.Equal(t, 1000, paced.Concurrency, "about twice the rate")
	assert.Equal(t, time.Minute+2400*time.Millisecond, paced.ConnectTimeout)
	assert.Zero(t, paced.holdDuration(), "login does not hold")

	withAdmin := Config{Scenario: ScenarioIdle, Sessions: 1, Duration: time.Second, AdminURL: "http://x"}.WithDefaults()
	assert.Equal(t, DefaultSettle+4*time.Second, withAdmin.holdDuration(), "the hold fits the scrapes")
	assert.LessOrEqual(t, Config{Scenario: ScenarioIdle, Sessions: MaxSessions, Duration: 9 * time.Minute}.WithDefaults().runDeadline(), DefaultMaxRunTime)

	idle := Config{Scenario: ScenarioIdle, Sessions: 100, TopicsPerSession: 3}.WithDefaults()
	assert.Equal(t, 3, idle.Topics, "every session on every topic")
	assert.Zero(t, Config{Scenario: ScenarioIdle, Sessions: 100}.WithDefaults().Topics)
	assert.Greater(t, Config{Scenario: ScenarioIdle, Sessions: 100, Follows: 3}.WithDefaults().runDeadline(),
		Config{Scenario: ScenarioIdle, Sessions: 100}.WithDefaults().runDeadline(), "the follow pass has its own time")

	fan := Config{Scenario: ScenarioFanout, Sessions: 100}.WithDefaults()
	assert.Equal(t, DefaultTopics, fan.Topics)
	assert.Equal(t, DefaultFanoutMessages, fan.Messages)
	assert.Equal(t, float64(DefaultFanoutRate), fan.SendRate)
	assert.Equal(t, DefaultDrain, fan.Drain)
	assert.Equal(t, time.Second, fan.phaseDuration(), "100 items at 100/s")
	assert.Equal(t, float64(DefaultNotifyRate), Config{Scenario: ScenarioNotify, Sessions: 1}.WithDefaults().SendRate)
	assert.Equal(t, DefaultInboxMessages, Config{Scenario: ScenarioInbox, Sessions: 1}.WithDefaults().Messages)
	assert.Zero(t, Config{Scenario: ScenarioInbox, Sessions: 1, Retained: 3}.WithDefaults().Messages, "retained items only")
	assert.Zero(t, Config{Scenario: ScenarioIdle, Sessions: 1}.WithDefaults().SendRate)
	assert.LessOrEqual(t, Config{Scenario: ScenarioNotify, Sessions: MaxSessions, Duration: 9 * time.Minute}.WithDefaults().runDeadline(), DefaultMaxRunTime)
}

func TestPercentiles(t *testing.T) {
	seq := func(n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = float64(n - i) // descending: percentiles must sort
		}
		return out
	}
	tests := []struct {
		name string
		in   []float64
		want Percentiles
	}{
		{name: "none", in: nil, want: Percentiles{}},
		{name: "one", in: []float64{7}, want: Percentiles{P50: 7, P90: 7, P99: 7, Max: 7}},
		{name: "two", in: []float64{2, 1}, want: Percentiles{P50: 1, P90: 2, P99: 2, Max: 2}},
		{name: "ten", in: seq(10), want: Percentiles{P50: 5, P90: 9, P99: 10, Max: 10}},
		{name: "hundred", in: seq(100), want: Percentiles{P50: 50, P90: 90, P99: 99, Max: 100}},
		{name: "thousand", in: seq(1000), want: Percentiles{P50: 500, P90: 900, P99: 990, Max: 1000}},
		{name: "outlier", in: append(seq(99), 10000), want: Percentiles{P50: 50, P90: 90, P99: 99, Max: 10000}},
		{name: "rounded to microseconds", in: []float64{1.23456789}, want: Percentiles{P50: 1.235, P90: 1.235, P99: 1.235, Max: 1.235}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			assert.Equal(t, tt.want, percentiles(in))
			assert.Equal(t, tt.in, in, "samples are not modified")
		})
	}
}

func TestParseMetrics(t *testing.T) {
	const text = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2345678e+07
taisen_sessions_active 3
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
taisen_session_closes_total{reason="client_gone"} 5
taisen_session_closes_total{reason="a } tricky \" label",other="x"} 7 1700000000000
go_goroutines_other 1
`
	m, err := parseMetrics(strings.NewReader(text), metricRSS, metricGoroutines, metricSessions, metricCPU, "taisen_session_closes_total", "absent")
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{
		metricRSS:                     12345678,
		metricGoroutines:              42,
		metricSessions:                3,
		metricCPU:                     12.34,
		"taisen_session_closes_total": 12,
	}, m)

	_, err = parseMetrics(strings.NewReader("go_goroutines abc\n"), metricGoroutines)
	assert.Error(t, err)
	m, err = parseMetrics(strings.NewReader("go_goroutines NaN\nbroken{label\n"), metricGoroutines)
	require.NoError(t, err)
	assert.Len(t, m, 1)
}

func TestMedian(t *testing.T) {
	assert.Equal(t, 0.0, median(nil))
	assert.Equal(t, 2.0, median([]float64{3, 1, 2}))
	assert.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
}

func TestNewServerStats(t *testing.T) {
	base := serverSample{rss: 100 << 20, goroutines: 50, sessions: 10}
	held := serverSample{rss: 100<<20 + 4096*1000, goroutines: 60, sessions: 1010}
	st := newServerStats(base, held, 1000)
	assert.Equal(t, int64(4096), st.RSSPerSessionBytes)
	assert.Equal(t, int64(1010), st.SessionsActiveHeld)
	// Without the server's session count, the swarm's count is used.
	st = newServerStats(serverSample{rss: 1000}, serverSample{rss: 3000}, 2)
	assert.Equal(t, int64(1000), st.RSSPerSessionBytes)
	assert.Zero(t, newServerStats(serverSample{}, serverSample{}, 0).RSSPerSessionBytes)
}

func TestSetServerCPU(t *testing.T) {
	cpu := func(s float64) serverSample { return serverSample{cpu: s, hasCPU: true} }
	tests := []struct {
		name            string
		before, after   serverSample
		welcomed        int
		wantS, wantUSPS float64 // -1: absent
	}{
		{name: "15000 logins", before: cpu(10), after: cpu(14.5), welcomed: 15000, wantS: 4.5, wantUSPS: 300},
		{name: "rounded to a tenth", before: cpu(1), after: cpu(1.01), welcomed: 3, wantS: 0.01, wantUSPS: 3333.3},
		{name: "no cpu used", before: cpu(2), after: cpu(2), welcomed: 10, wantS: 0, wantUSPS: 0},
		{name: "nobody welcomed", before: cpu(2), after: cpu(3), welcomed: 0, wantS: 1, wantUSPS: -1},
		{name: "counter went back (restart)", before: cpu(5), after: cpu(1), welcomed: 10, wantS: -1, wantUSPS: -1},
		{name: "not exported", before: serverSample{rss: 1}, after: serverSample{rss: 2}, welcomed: 10, wantS: -1, wantUSPS: -1},
		{name: "not exported after", before: cpu(1), after: serverSample{rss: 2}, welcomed: 10, wantS: -1, wantUSPS: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Report
			r.setServerCPU(tt.before, tt.after, tt.welcomed)
			if tt.wantS < 0 {
				assert.Nil(t, r.ServerCPUSeconds)
			} else {
				require.NotNil(t, r.ServerCPUSeconds)
				assert.InDelta(t, tt.wantS, *r.ServerCPUSeconds, 1e-9)
			}
			if tt.wantUSPS < 0 {
				assert.Nil(t, r.ServerCPUMicrosPerSession)
			} else {
				require.NotNil(t, r.ServerCPUMicrosPerSession)
				assert.InDelta(t, tt.wantUSPS, *r.ServerCPUMicrosPerSession, 1e-9)
			}
		})
	}
}

// metricsNeedingKey serves a fixed exposition to requests that present
// key as a bearer token, like a node started with metrics authentication.
func metricsNeedingKey(t *testing.T, key string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+key {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, "process_resident_memory_bytes 1000\nprocess_cpu_seconds_total 2.5\ngo_goroutines 7")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestScrapeSendsServerKey(t *testing.T) {
	const key = "0123456789abcdef-key"
	admin := metricsNeedingKey(t, key)
	ctx := context.Background()

	s, err := scraper{hc: http.DefaultClient, adminURL: admin, key: key}.scrape(ctx)
	require.NoError(t, err)
	assert.Equal(t, serverSample{rss: 1000, goroutines: 7, cpu: 2.5, hasCPU: true}, s)

	_, err = scraper{hc: http.DefaultClient, adminURL: admin}.scrape(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")
	assert.Contains(t, err.Error(), "--server-key")

	_, err = scraper{hc: http.DefaultClient, adminURL: admin, key: "wrong-key-wrong-key"}.scrape(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "refused the server key")

	// Run fails up front, with the same advice, when the key is missing.
	_, err = Run(ctx, Config{Target: "http://127.0.0.1:1", AdminURL: admin, Scenario: ScenarioLogin, Sessions: 1}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--server-key")
	http.DefaultClient.CloseIdleConnections()
}

func TestErrorKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{err: fmt.Errorf("x: %w", context.DeadlineExceeded), want: "timeout"},
		{err: context.Canceled, want: "canceled"},
		{err: fmt.Errorf("client: dial: %w", &client.Error{Code: realtimev1.ErrorCode_ERROR_CODE_RATE_LIMITED}), want: "rate_limited"},
		{err: &client.CloseError{Reason: realtimev1.CloseReason_CLOSE_REASON_SLOW}, want: "closed_slow"},
		{err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, want: "refused"},
		{err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)}, want: "no_source_port"},
		{err: os.NewSyscallError("socket", syscall.EMFILE), want: "too_many_open_files"},
		{err: fmt.Errorf("%w: %w", client.ErrDisconnected, io.EOF), want: "disconnected"},
		{err: client.ErrClosed, want: "closed"},
		{err: io.ErrUnexpectedEOF, want: "eof"},
		{err: errors.New("odd"), want: "other"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, errorKind(tt.err), "%v", tt.err)
	}
}

func TestReportJSON(t *testing.T) {
	r := &Report{Scenario: "idle", ErrorsByKind: map[string]int{}, Server: &ServerStats{}, StartedAt: time.Unix(0, 0).UTC()}
	var buf bytes.Buffer
	require.NoError(t, r.WriteJSON(&buf))
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
	for _, k := range []string{"scenario", "target", "sessions_target", "sessions_ok", "errors", "errors_by_kind",
		"connect_rate_per_s", "duration_s", "latency_ms", "rpc", "server", "started_at", "go_version"} {
		assert.Contains(t, m, k)
	}
	assert.Equal(t, map[string]any{"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}, m["latency_ms"])
	rpc := m["rpc"].(map[string]any)
	for _, k := range []string{"count", "errors", "latency_ms"} {
		assert.Contains(t, rpc, k)
	}
	server := m["server"].(map[string]any)
	for _, k := range []string{"rss_baseline_bytes", "rss_held_bytes", "rss_per_session_bytes", "goroutines_held", "sessions_active_held"} {
		assert.Contains(t, server, k)
	}
	assert.NotContains(t, buf.String(), "aborted")
	for _, k := range []string{"deliveries", "lost", "duplicates", "expected", "all_delivered_ms", "zero_active_ms", "presence_offline_ms", "login_latency_ms"} {
		assert.NotContains(t, m, k, "only the notification scenarios report it")
	}
	for _, k := range []string{"topics_created", "topic_subscriptions", "statuses_set", "follows", "pushes_received"} {
		assert.NotContains(t, m, k, "only idle with topics or follows reports it")
	}
	assert.NotContains(t, buf.String(), "server_cpu", "absent without --admin")
	assert.Contains(t, r.Summary(), "scenario idle")

	r.LoginPath = LoginPathHello
	r.setServerCPU(serverSample{cpu: 1, hasCPU: true}, serverSample{cpu: 4, hasCPU: true}, 10000)
	buf.Reset()
	require.NoError(t, r.WriteJSON(&buf))
	m = nil
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
	assert.Equal(t, "hello", m["login_path"])
	assert.Equal(t, 300.0, m["server_cpu_us_per_session"])
	assert.Equal(t, 3.0, m["server_cpu_s"])
	assert.Contains(t, r.Summary(), "server cpu: 300.0 us per session")
	assert.Contains(t, r.Summary(), "login path hello")
}

func TestDeviceIDsMeetServerRules(t *testing.T) {
	for _, tt := range []struct {
		run string
		i   int
	}{{"a", 0}, {"g51", 99}, {"x", 18999}, {strings.Repeat("r", 64), 0}} {
		id := DeviceID(tt.run, tt.i)
		if len(id) < 10 || len(id) > 128 {
			t.Errorf("DeviceID(%q, %d) = %q: %d characters, the server wants 10-128", tt.run, tt.i, id, len(id))
		}
	}
	if err := (Config{Scenario: ScenarioLogin, Sessions: 1, RunID: "has space"}).Validate(); err == nil {
		t.Error("a run id with a space validated")
	}
}
