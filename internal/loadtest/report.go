package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is the result of a run, written as JSON by `taisen loadtest
// --json`.
type Report struct {
	// Scenario, Target and LoginPath repeat the configuration.
	Scenario  string `json:"scenario"`
	Target    string `json:"target"`
	LoginPath string `json:"login_path"`
	// SessionsTarget is the number of sessions asked for.
	SessionsTarget int `json:"sessions_target"`
	// SessionsOK counts sessions that went through the scenario: welcomed
	// and, when held, still connected at the end of the hold.
	SessionsOK int `json:"sessions_ok"`
	// Errors counts failed sessions, dropped held sessions and sessions
	// never started before the deadline; ErrorsByKind splits them by
	// phase and cause ("auth_invalid_credentials", "dial_timeout" on the
	// http login path; "login_invalid_credentials", "login_timeout" on the
	// hello path; "hold_closed_slow", ...) and ErrorSamples keeps one
	// message per kind.
	Errors       int               `json:"errors"`
	ErrorsByKind map[string]int    `json:"errors_by_kind"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	// ConnectRatePerS is the welcomed sessions per second of the
	// connection phase.
	ConnectRatePerS float64 `json:"connect_rate_per_s"`
	// ConnectS is the length of the connection phase, HoldS of the hold
	// (in the notification scenarios, of their main phase: publishing and
	// draining, waiting for the inbox items, watching the drop).
	ConnectS float64 `json:"connect_s"`
	HoldS    float64 `json:"hold_s"`
	// DurationS is the wall time of the whole run.
	DurationS float64 `json:"duration_s"`
	// LatencyMS is login start (the HTTP authenticate, or the socket dial
	// on the hello path) to Welcome received, per session; in the fanout
	// and notify scenarios it is publish → receive instead, per delivery
	// (the time before the Publish or Send call to the push's arrival),
	// and the login latency is LoginLatencyMS.
	LatencyMS Percentiles `json:"latency_ms"`
	// LoginLatencyMS is the login latency of the fanout and notify
	// scenarios (latency_ms of the others); absent elsewhere.
	LoginLatencyMS *Percentiles `json:"login_latency_ms,omitempty"`
	// Published counts the successful Publish calls (fanout) or Send
	// calls (notify).
	Published *int64 `json:"published,omitempty"`
	// Expected counts the deliveries expected: every successfully
	// published item once per session subscribed to its topic (fanout),
	// every notification once per user it was sent to (notify), every
	// stored and retained item once per user (inbox).
	Expected *int64 `json:"expected,omitempty"`
	// Deliveries (fanout, notify) and Delivered (inbox) count the expected
	// deliveries received, each notification once per session.
	Deliveries *int64 `json:"deliveries,omitempty"`
	Delivered  *int64 `json:"delivered,omitempty"`
	// DeliveriesPerS is Deliveries over the time from the first publish
	// to the last delivery.
	DeliveriesPerS *float64 `json:"deliveries_per_s,omitempty"`
	// Lost counts the expected deliveries not received by the end (after
	// the drain wait); Duplicates the notifications a session received
	// more than once (by notification id).
	Lost       *int64 `json:"lost,omitempty"`
	Duplicates *int64 `json:"duplicates,omitempty"`
	// AllDeliveredMS (inbox) is the time from the start of the login wave
	// until every expected item had arrived; absent when some never did.
	AllDeliveredMS *float64 `json:"all_delivered_ms,omitempty"`
	// ZeroActiveMS (disconnect) is the time from the drop until the
	// node's taisen_sessions_active read its value from before the run (0
	// on a node of its own); PresenceOfflineMS until GetPresence read
	// every user offline. Each is absent when it did not happen within
	// Duration.
	ZeroActiveMS      *float64 `json:"zero_active_ms,omitempty"`
	PresenceOfflineMS *float64 `json:"presence_offline_ms,omitempty"`
	// TopicsCreated, TopicSubscriptions, StatusesSet and Follows (idle
	// with TopicsPerSession or Follows) count what the setup did: the
	// topics the run created, the successful topic subscriptions of the
	// sessions (notify.topics.subscribe), presence statuses set
	// (presence.status.set) and users followed (presence.follow, each
	// user named counts once). PushesReceived counts the pushes the held
	// sessions received by kind ("notify", "presence"; "other" when any
	// other kind came). Absent without those options.
	TopicsCreated      *int64           `json:"topics_created,omitempty"`
	TopicSubscriptions *int64           `json:"topic_subscriptions,omitempty"`
	StatusesSet        *int64           `json:"statuses_set,omitempty"`
	Follows            *int64           `json:"follows,omitempty"`
	PushesReceived     map[string]int64 `json:"pushes_received,omitempty"`
	// RPC describes the echo RPCs sent while holding.
	RPC RPCStats `json:"rpc"`
	// ServerCPUSeconds is the server's CPU time (user + system, from
	// process_cpu_seconds_total on AdminURL) from right before the
	// connection phase to right after it; absent without AdminURL. In the
	// login scenario without hold the phase includes closing each socket;
	// in idle with TopicsPerSession or Follows, each session's topic
	// subscriptions and status (the follows come after the phase).
	ServerCPUSeconds *float64 `json:"server_cpu_s,omitempty"`
	// ServerCPUMicrosPerSession is ServerCPUSeconds in microseconds
	// divided by the sessions welcomed during the phase: the server's cost
	// of one login. Absent without AdminURL or when no session was
	// welcomed.
	ServerCPUMicrosPerSession *float64 `json:"server_cpu_us_per_session,omitempty"`
	// Server is measured through AdminURL while holding; absent without
	// it.
	Server *ServerStats `json:"server,omitempty"`
	// Aborted says why the run stopped early, if it did.
	Aborted string `json:"aborted,omitempty"`
	// StartedAt is when the run started; GoVersion the load generator's
	// Go version.
	StartedAt time.Time `json:"started_at"`
	GoVersion string    `json:"go_version"`
}

// Percentiles summarises samples in milliseconds, computed exactly over
// all samples (nearest rank).
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// RPCStats describes the echo RPCs of a run.
type RPCStats struct {
	// Count is the RPCs sent, Errors those that failed, Skipped the ticks
	// that found no idle held session to send from.
	Count     int         `json:"count"`
	Errors    int         `json:"errors"`
	Skipped   int         `json:"skipped"`
	LatencyMS Percentiles `json:"latency_ms"`
}

// ServerStats is the server's footprint, from its /metrics: a median of
// scrapes before connecting (baseline) and while all sessions were held
// (after the settle delay).
type ServerStats struct {
	RSSBaselineBytes int64 `json:"rss_baseline_bytes"`
	RSSHeldBytes     int64 `json:"rss_held_bytes"`
	// RSSPerSessionBytes is the RSS growth divided by the sessions held
	// (by the server's count of active sessions when it grew).
	RSSPerSessionBytes     int64 `json:"rss_per_session_bytes"`
	GoroutinesBaseline     int64 `json:"goroutines_baseline"`
	GoroutinesHeld         int64 `json:"goroutines_held"`
	SessionsActiveBaseline int64 `json:"sessions_active_baseline"`
	SessionsActiveHeld     int64 `json:"sessions_active_held"`
}

// newServerStats computes the server stats from the two samples; held is
// the number of sessions the swarm held during the second.
func newServerStats(base, held serverSample, heldSessions int) *ServerStats {
	st := &ServerStats{
		RSSBaselineBytes:       int64(base.rss),
		RSSHeldBytes:           int64(held.rss),
		GoroutinesBaseline:     int64(base.goroutines),
		GoroutinesHeld:         int64(held.goroutines),
		SessionsActiveBaseline: int64(base.sessions),
		SessionsActiveHeld:     int64(held.sessions),
	}
	n := int64(heldSessions)
	if d := st.SessionsActiveHeld - st.SessionsActiveBaseline; d > 0 {
		n = d
	}
	if n > 0 {
		st.RSSPerSessionBytes = (st.RSSHeldBytes - st.RSSBaselineBytes) / n
	}
	return st
}

// setServerCPU fills the CPU fields of r from the scrapes before and
// after the connection phase, during which welcomed sessions were
// welcomed. It leaves them absent when the server does not export its CPU
// time or the counter went backwards (a restarted server).
func (r *Report) setServerCPU(before, after serverSample, welcomed int) {
	if !before.hasCPU || !after.hasCPU || after.cpu < before.cpu {
		return
	}
	d := round3(after.cpu - before.cpu)
	r.ServerCPUSeconds = &d
	if welcomed > 0 {
		us := math.Round((after.cpu-before.cpu)*1e6/float64(welcomed)*10) / 10
		r.ServerCPUMicrosPerSession = &us
	}
}

// percentiles computes exact nearest-rank percentiles of samples (in any
// order; not modified), rounded to the microsecond.
func percentiles[F float32 | float64](samples []F) Percentiles {
	if len(samples) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return Percentiles{
		P50: round3(float64(rank(s, 50))),
		P90: round3(float64(rank(s, 90))),
		P99: round3(float64(rank(s, 99))),
		Max: round3(float64(s[len(s)-1])),
	}
}

// rank returns the p-th percentile of sorted by the nearest-rank method:
// the smallest sample with at least p% of the samples at or below it.
func rank[F float32 | float64](sorted []F, p float64) F {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("loadtest: write report: %w", err)
	}
	return nil
}

// Summary is a few lines for humans.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s (login path %s) against %s: %d/%d sessions ok, %d errors, %.1f connects/s, %.1fs\n",
		r.Scenario, r.LoginPath, r.Target, r.SessionsOK, r.SessionsTarget, r.Errors, r.ConnectRatePerS, r.DurationS)
	login := r.LatencyMS
	if r.LoginLatencyMS != nil {
		login = *r.LoginLatencyMS
	}
	fmt.Fprintf(&b, "latency (login start to welcome) ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
		login.P50, login.P90, login.P99, login.Max)
	r.deliverySummary(&b)
	if r.TopicSubscriptions != nil {
		fmt.Fprintf(&b, "setup: %d topics created, %d topic subscriptions, %d statuses set, %d follows; pushes received: %d notify, %d presence\n",
			*r.TopicsCreated, *r.TopicSubscriptions, *r.StatusesSet, *r.Follows,
			r.PushesReceived["notify"], r.PushesReceived["presence"])
	}
	if r.ServerCPUSeconds != nil {
		per := "n/a"
		if r.ServerCPUMicrosPerSession != nil {
			per = fmt.Sprintf("%.1f", *r.ServerCPUMicrosPerSession)
		}
		fmt.Fprintf(&b, "server cpu: %s us per session (%.3fs of cpu during the connection phase)\n", per, *r.ServerCPUSeconds)
	}
	if r.RPC.Count > 0 {
		fmt.Fprintf(&b, "echo rpc: %d sent, %d errors, %d skipped; ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
			r.RPC.Count, r.RPC.Errors, r.RPC.Skipped, r.RPC.LatencyMS.P50, r.RPC.LatencyMS.P90, r.RPC.LatencyMS.P99, r.RPC.LatencyMS.Max)
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(&b, "server: rss %d -> %d bytes (%d per session), goroutines %d -> %d, active sessions %d -> %d\n",
			s.RSSBaselineBytes, s.RSSHeldBytes, s.RSSPerSessionBytes, s.GoroutinesBaseline, s.GoroutinesHeld,
			s.SessionsActiveBaseline, s.SessionsActiveHeld)
	}
	if len(r.ErrorsByKind) > 0 {
		kinds := make([]string, 0, len(r.ErrorsByKind))
		for k := range r.ErrorsByKind {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		b.WriteString("errors:")
		for _, k := range kinds {
			fmt.Fprintf(&b, " %s=%d", k, r.ErrorsByKind[k])
		}
		b.WriteString("\n")
	}
	if r.Aborted != "" {
		fmt.Fprintf(&b, "aborted: %s\n", r.Aborted)
	}
	return b.String()
}

// deliverySummary writes the figures of the notification scenarios.
func (r *Report) deliverySummary(b *strings.Builder) {
	i64 := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	ms := func(p *float64) string {
		if p == nil {
			return "not reached"
		}
		return fmt.Sprintf("%.1f ms", *p)
	}
	switch r.Scenario {
	case ScenarioFanout, ScenarioNotify:
		rate := 0.0
		if r.DeliveriesPerS != nil {
			rate = *r.DeliveriesPerS
		}
		fmt.Fprintf(b, "deliveries: %d of %d expected (%d published), %.0f/s, %d lost, %d duplicates\n",
			i64(r.Deliveries), i64(r.Expected), i64(r.Published), rate, i64(r.Lost), i64(r.Duplicates))
		fmt.Fprintf(b, "latency (publish to receive) ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
			r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max)
	case ScenarioInbox:
		fmt.Fprintf(b, "inbox: %d of %d expected items delivered, %d lost, %d duplicates; all delivered: %s after the login wave started\n",
			i64(r.Delivered), i64(r.Expected), i64(r.Lost), i64(r.Duplicates), ms(r.AllDeliveredMS))
	case ScenarioDisconnect:
		fmt.Fprintf(b, "disconnect: active sessions back to the baseline after %s, presence all offline after %s\n",
			ms(r.ZeroActiveMS), ms(r.PresenceOfflineMS))
	}
}

func ptr[T any](v T) *T { return &v }
