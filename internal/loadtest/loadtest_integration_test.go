package loadtest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taisen-dev/taisen/client"
	"github.com/taisen-dev/taisen/taisentest"
)

// checkReport checks what every successful run must satisfy.
func checkReport(t *testing.T, r *Report, scenario string, n int) {
	t.Helper()
	assert.Equal(t, scenario, r.Scenario)
	assert.Equal(t, n, r.SessionsTarget)
	assert.Equal(t, n, r.SessionsOK, "errors: %v %v", r.ErrorsByKind, r.ErrorSamples)
	assert.Zero(t, r.Errors, "errors: %v %v", r.ErrorsByKind, r.ErrorSamples)
	assert.Empty(t, r.Aborted)
	l := r.LatencyMS
	assert.Positive(t, l.P50)
	assert.LessOrEqual(t, l.P50, l.P90)
	assert.LessOrEqual(t, l.P90, l.P99)
	assert.LessOrEqual(t, l.P99, l.Max)
	assert.Positive(t, r.ConnectRatePerS)
	assert.Positive(t, r.DurationS)
	assert.NotEmpty(t, r.GoVersion)
	assert.False(t, r.StartedAt.IsZero())
}

func TestRunIdleWithRPCs(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	var progress bytes.Buffer
	cfg := Config{
		Target:   n.ClientURL,
		AdminURL: n.AdminURL,
		Scenario: ScenarioIdle,
		Sessions: 50,
		Duration: 2 * time.Second,
		Settle:   500 * time.Millisecond,
		RPCRate:  50,
	}
	r, err := Run(context.Background(), cfg, &progress)
	require.NoError(t, err)
	t.Logf("progress:\n%s\nsummary:\n%s", progress.String(), r.Summary())
	checkReport(t, r, ScenarioIdle, 50)

	assert.Positive(t, r.RPC.Count)
	assert.Zero(t, r.RPC.Errors, "errors: %v %v", r.ErrorsByKind, r.ErrorSamples)
	rl := r.RPC.LatencyMS
	assert.Positive(t, rl.P50)
	assert.LessOrEqual(t, rl.P50, rl.P90)
	assert.LessOrEqual(t, rl.P90, rl.P99)
	assert.LessOrEqual(t, rl.P99, rl.Max)
	assert.GreaterOrEqual(t, r.HoldS, 4.0, "the hold fits the settle delay and the scrapes")

	require.NotNil(t, r.Server)
	assert.Positive(t, r.Server.RSSBaselineBytes)
	assert.Positive(t, r.Server.RSSHeldBytes)
	assert.Equal(t, int64(50), r.Server.SessionsActiveHeld-r.Server.SessionsActiveBaseline)
	assert.Positive(t, r.Server.GoroutinesHeld)

	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	assert.GreaterOrEqual(t, len(lines), 3, "a progress line per second: %q", progress.String())
	assert.Contains(t, progress.String(), "connected 50/50")

	// The swarm closed everything it held.
	require.Eventually(t, func() bool { return n.Gateway().Stats().Sessions == 0 }, 5*time.Second, 50*time.Millisecond)
}

// requestCounter is a reverse proxy in front of a node that counts the
// requests of each path it passes on.
type requestCounter struct {
	mu    sync.Mutex
	paths map[string]int
	proxy *httputil.ReverseProxy
}

func (rc *requestCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.paths[r.URL.Path]++
	rc.mu.Unlock()
	rc.proxy.ServeHTTP(w, r)
}

func (rc *requestCounter) count(path string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.paths[path]
}

// countRequests starts a proxy to target and returns its URL.
func countRequests(t *testing.T, target string) (string, *requestCounter) {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	rc := &requestCounter{paths: make(map[string]int), proxy: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return srv.URL, rc
}

func TestRunLoginStorm(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	const authPath = "/taisen.api.v1.AuthService/Authenticate"
	for _, tc := range []struct {
		path      string
		wantAuths int
	}{
		{path: "", wantAuths: 0}, // the default: hello
		{path: LoginPathHello, wantAuths: 0},
		{path: LoginPathHTTP, wantAuths: 50},
	} {
		t.Run("path="+tc.path, func(t *testing.T) {
			target, rc := countRequests(t, n.ClientURL)
			r, err := Run(context.Background(), Config{
				Target:    target,
				AdminURL:  n.AdminURL,
				Scenario:  ScenarioLogin,
				LoginPath: tc.path,
				Sessions:  50,
				Rate:      200,
			}, nil)
			require.NoError(t, err)
			t.Logf("summary:\n%s", r.Summary())
			checkReport(t, r, ScenarioLogin, 50)
			want := tc.path
			if want == "" {
				want = LoginPathHello
			}
			assert.Equal(t, want, r.LoginPath)
			assert.Equal(t, tc.wantAuths, rc.count(authPath), "HTTP authenticate requests")
			assert.Equal(t, 50, rc.count("/ws"), "socket upgrades")
			assert.Nil(t, r.Server)
			assert.Zero(t, r.RPC.Count)
			assert.Zero(t, r.HoldS)
			// 50 sessions at 200/s take about a quarter of a second to start.
			assert.GreaterOrEqual(t, r.ConnectS, 0.2)

			// The CPU time comes from the node's process_cpu_seconds_total
			// (here the test process's, swarm included).
			require.NotNil(t, r.ServerCPUSeconds)
			require.NotNil(t, r.ServerCPUMicrosPerSession)
			assert.Positive(t, *r.ServerCPUSeconds)
			assert.InDelta(t, *r.ServerCPUSeconds*1e6/50, *r.ServerCPUMicrosPerSession, 0.05*1e6/50+0.1)
			assert.Contains(t, r.Summary(), "us per session")
			require.Eventually(t, func() bool { return n.Gateway().Stats().Sessions == 0 }, 5*time.Second, 50*time.Millisecond)
		})
	}
}

func TestRunLoginHoldJSON(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	r, err := Run(context.Background(), Config{
		Target:     n.ClientURL,
		Scenario:   ScenarioLogin,
		Hold:       true,
		Sessions:   20,
		Duration:   500 * time.Millisecond,
		Format:     client.FormatJSON,
		SourceIPs:  -1,
		RunID:      "holdjson",
		MaxRunTime: time.Minute,
	}, nil)
	require.NoError(t, err)
	checkReport(t, r, ScenarioLogin, 20)
	assert.GreaterOrEqual(t, r.HoldS, 0.5)
}

func TestRunCanceled(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	start := time.Now()
	r, err := Run(ctx, Config{Target: n.ClientURL, Scenario: ScenarioIdle, Sessions: 10, Duration: time.Minute}, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.NotNil(t, r)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Contains(t, r.Aborted, "canceled")
	assert.Equal(t, 10, r.SessionsOK, "sessions held until the cancel are ok")
	require.Eventually(t, func() bool { return n.Gateway().Stats().Sessions == 0 }, 5*time.Second, 50*time.Millisecond)
}

func TestRunUnreachableTarget(t *testing.T) {
	for _, tc := range []struct{ path, phase string }{{LoginPathHTTP, "auth"}, {LoginPathHello, "login"}} {
		r, err := Run(context.Background(), Config{Target: "http://127.0.0.1:1", Scenario: ScenarioLogin, LoginPath: tc.path, Sessions: 5, DialTimeout: 2 * time.Second}, nil)
		require.NoError(t, err)
		assert.Zero(t, r.SessionsOK)
		assert.Equal(t, 5, r.Errors)
		assert.Equal(t, 5, r.ErrorsByKind[tc.phase+"_unavailable"]+r.ErrorsByKind[tc.phase+"_refused"], "%s: %v", tc.path, r.ErrorsByKind)
		assert.Equal(t, Percentiles{}, r.LatencyMS)
		assert.Nil(t, r.ServerCPUMicrosPerSession, "no --admin, no cpu")
	}
}

// The idle scenario signs in by either path too, and reports the CPU of
// its connection phase; a server key the node does not ask for is
// harmless.
func TestRunIdleHTTPPathCPU(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	r, err := Run(context.Background(), Config{
		Target:    n.ClientURL,
		AdminURL:  n.AdminURL,
		ServerKey: n.ServerKey, // not required by this node: harmless
		Scenario:  ScenarioIdle,
		LoginPath: LoginPathHTTP,
		Sessions:  30,
		Duration:  time.Second,
		Settle:    200 * time.Millisecond,
	}, nil)
	require.NoError(t, err)
	checkReport(t, r, ScenarioIdle, 30)
	assert.Equal(t, LoginPathHTTP, r.LoginPath)
	require.NotNil(t, r.Server)
	require.NotNil(t, r.ServerCPUMicrosPerSession)
	assert.Positive(t, *r.ServerCPUMicrosPerSession)
}
