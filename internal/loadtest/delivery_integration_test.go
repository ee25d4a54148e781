package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/taisentest"
)

// runDelivery runs a notification scenario against n and checks what
// every such run must satisfy; it returns the report and its JSON keys.
func runDeliveryScenario(t *testing.T, n *taisentest.Node, cfg Config) (*Report, map[string]any) {
	t.Helper()
	cfg.Target, cfg.AdminURL, cfg.ServerKey = n.ClientURL, n.AdminURL, n.ServerKey
	cfg.MaxRunTime = time.Minute
	var progress bytes.Buffer
	r, err := Run(context.Background(), cfg, &progress)
	require.NoError(t, err, "progress:\n%s", progress.String())
	t.Logf("progress:\n%s\nsummary:\n%s", progress.String(), r.Summary())
	assert.Equal(t, cfg.Scenario, r.Scenario)
	assert.Equal(t, cfg.Sessions, r.SessionsOK, "errors: %v %v", r.ErrorsByKind, r.ErrorSamples)
	assert.Zero(t, r.Errors, "errors: %v %v", r.ErrorsByKind, r.ErrorSamples)
	assert.Empty(t, r.Aborted)
	var buf bytes.Buffer
	require.NoError(t, r.WriteJSON(&buf))
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
	return r, m
}

// checkLatency checks publish → receive percentiles.
func checkLatency(t *testing.T, l Percentiles) {
	t.Helper()
	assert.Positive(t, l.P50)
	assert.LessOrEqual(t, l.P50, l.P90)
	assert.LessOrEqual(t, l.P90, l.P99)
	assert.LessOrEqual(t, l.P99, l.Max)
	assert.Less(t, l.Max, 5000.0, "a delivery on loopback took over 5 s")
}

func TestRunFanout(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	const sessions, topics, messages = 50, 3, 30
	r, m := runDeliveryScenario(t, n, Config{Scenario: ScenarioFanout, Sessions: sessions, Topics: topics, Messages: messages, SendRate: 200})
	for _, k := range []string{"deliveries", "deliveries_per_s", "lost", "duplicates", "latency_ms", "login_latency_ms", "expected", "published"} {
		assert.Contains(t, m, k)
	}
	// 50 sessions over 3 topics: 17, 17 and 16 subscribers; 30 items, 10
	// per topic.
	assert.Equal(t, int64(messages), *r.Published)
	assert.Equal(t, int64(10*sessions), *r.Expected)
	assert.Equal(t, int64(10*sessions), *r.Deliveries)
	assert.Zero(t, *r.Lost)
	assert.Zero(t, *r.Duplicates)
	assert.Positive(t, *r.DeliveriesPerS)
	assert.GreaterOrEqual(t, r.HoldS, 0.14, "30 items at 200/s take 0.15 s to publish")
	checkLatency(t, r.LatencyMS)
	require.NotNil(t, r.LoginLatencyMS)
	assert.Positive(t, r.LoginLatencyMS.P50)
	assert.Contains(t, r.Summary(), "deliveries: 500 of 500 expected")
	assert.NotContains(t, m, "all_delivered_ms")
	require.Eventually(t, func() bool { return n.Gateway().Stats().Sessions == 0 }, 5*time.Second, 50*time.Millisecond)
}

func TestRunNotify(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	// 150 sessions: batches of 100 and 50 users.
	const sessions = 150
	r, m := runDeliveryScenario(t, n, Config{Scenario: ScenarioNotify, Sessions: sessions, SendRate: 1500, Duration: time.Second})
	for _, k := range []string{"deliveries", "deliveries_per_s", "lost", "duplicates", "latency_ms"} {
		assert.Contains(t, m, k)
	}
	// About 1500 notifications in the second, each user in every other
	// call.
	assert.InDelta(t, 1500, float64(*r.Expected), 300)
	assert.GreaterOrEqual(t, r.HoldS, 0.9, "sending lasts about the duration")
	assert.Equal(t, *r.Expected, *r.Deliveries)
	assert.Zero(t, *r.Lost)
	assert.Zero(t, *r.Duplicates)
	checkLatency(t, r.LatencyMS)
	assert.Contains(t, r.Summary(), "latency (publish to receive)")
}

func TestRunInbox(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	const sessions, stored, retained = 50, 4, 3
	r, m := runDeliveryScenario(t, n, Config{Scenario: ScenarioInbox, Sessions: sessions, Messages: stored, Retained: retained, Duration: 10 * time.Second})
	for _, k := range []string{"expected", "delivered", "lost", "duplicates", "all_delivered_ms"} {
		assert.Contains(t, m, k)
	}
	assert.Equal(t, int64(sessions*(stored+retained)), *r.Expected)
	assert.Equal(t, *r.Expected, *r.Delivered)
	assert.Zero(t, *r.Lost)
	assert.Zero(t, *r.Duplicates)
	require.NotNil(t, r.AllDeliveredMS)
	assert.Positive(t, *r.AllDeliveredMS)
	assert.Contains(t, r.Summary(), "inbox: 350 of 350 expected items delivered")
}

func TestRunDisconnect(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) {
		c.Gateway.SessionTTL = 3 * time.Second
		c.Gateway.ResumeGrace = time.Second
	}})
	const sessions = 50
	r, m := runDeliveryScenario(t, n, Config{Scenario: ScenarioDisconnect, Sessions: sessions, Duration: 15 * time.Second})
	assert.Contains(t, m, "zero_active_ms")
	assert.Contains(t, m, "presence_offline_ms")
	require.NotNil(t, r.ZeroActiveMS)
	require.NotNil(t, r.PresenceOfflineMS)
	assert.Positive(t, *r.ZeroActiveMS)
	// Presence comes from session records that expire with the TTL.
	assert.GreaterOrEqual(t, *r.PresenceOfflineMS, *r.ZeroActiveMS)
	assert.Less(t, *r.PresenceOfflineMS, 15000.0)
	assert.Zero(t, n.Gateway().Stats().Sessions)
	assert.True(t, strings.Contains(r.Summary(), "disconnect: active sessions back"))
}

// A key the node refuses stops the run before any session connects, and
// says so.
func TestRunDeliveryWrongKey(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	r, err := Run(context.Background(), Config{Target: n.ClientURL, AdminURL: n.AdminURL, ServerKey: "not-the-server-key-0123",
		Scenario: ScenarioNotify, Sessions: 5}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the node refused the server key")
	require.NotNil(t, r)
	assert.Contains(t, r.Aborted, "refused the server key")
	assert.Zero(t, r.SessionsOK)
	assert.Zero(t, n.Gateway().Stats().Sessions)
}
