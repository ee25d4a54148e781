package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus instruments.
type metrics struct {
	accepted      prometheus.Counter
	opened        prometheus.Counter
	resumed       prometheus.Counter
	resumeFailed  prometheus.Counter
	expired       prometheus.Counter
	closes        *prometheus.CounterVec
	frames        prometheus.Counter
	requestErrors *prometheus.CounterVec
	violations    prometheus.Counter
	authFailures  prometheus.Counter
	pushes        prometheus.Counter
	events        prometheus.Counter
	sends         *prometheus.CounterVec
	hookQueue     prometheus.Gauge
	coalesced     prometheus.Counter
	rpcDuration   *prometheus.HistogramVec
	refreshFails  prometheus.Counter
	unauthRefused prometheus.Counter
	nodeRequests  *prometheus.CounterVec
}

func newMetrics(g *Gateway, reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted:      prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_sockets_accepted_total", Help: "WebSocket connections upgraded."}),
		opened:        prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_sessions_opened_total", Help: "Fresh sessions established (resumes not included)."}),
		resumed:       prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_sessions_resumed_total", Help: "Sessions resumed with their missed pushes."}),
		resumeFailed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_session_resume_failures_total", Help: "Resumes refused (grace over, buffer overrun, replaced); the client started fresh."}),
		expired:       prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_sessions_expired_total", Help: "Detached sessions whose resume grace ran out."}),
		closes:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taisen_session_closes_total", Help: "Sockets closed, by reason."}, []string{"reason"}),
		frames:        prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_frames_received_total", Help: "Protocol frames received."}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taisen_request_errors_total", Help: "Error replies sent, by code."}, []string{"code"}),
		violations:    prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_session_violations_total", Help: "Rate, in-flight and protocol violations."}),
		authFailures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_auth_failures_total", Help: "Failed socket authentications."}),
		pushes:        prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_pushes_total", Help: "Pushes assigned a sequence number."}),
		events:        prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_ephemeral_total", Help: "Ephemeral messages queued on sockets (a multicast counts each socket)."}),
		sends:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taisen_client_sends_total", Help: "Fire-and-forget client messages, by outcome (handled, dropped)."}, []string{"outcome"}),
		hookQueue:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "taisen_session_hook_queue", Help: "Session lifecycle events waiting for their hooks."}),
		coalesced:     prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_frames_coalesced_total", Help: "Frames written in the same writev as an earlier frame."}),
		refreshFails: prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_session_refresh_failures_total",
			Help: "Session record refreshes that failed on the bus (retried at the next sweep); growing means the KV is unreachable and records may expire."}),
		unauthRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_sockets_refused_total",
			Help: "WebSocket upgrades refused because too many sockets (in total or from one address) had not authenticated yet."}),
		nodeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taisen_node_requests_total",
			Help: "Requests from nodes (this one included) about local sessions, by kind."}, []string{"kind"}),
		rpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taisen_rpc_duration_seconds",
			Help:    "Socket RPCs from the frame being read to the reply being queued, by registered name.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"rpc"}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.accepted, m.opened, m.resumed, m.resumeFailed, m.expired, m.closes, m.frames,
		m.requestErrors, m.violations, m.authFailures, m.pushes, m.coalesced, m.rpcDuration, m.refreshFails, m.unauthRefused, m.nodeRequests, m.events, m.sends, m.hookQueue,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "taisen_sessions_active", Help: "Sessions attached to a socket."},
			func() float64 { return float64(g.openSockets.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "taisen_sockets_open", Help: "Open WebSockets, authenticated or not."},
			func() float64 { return float64(g.Stats().Sockets) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "taisen_sessions_detached", Help: "Sessions without socket, resumable until their grace ends."},
			func() float64 { return float64(g.Stats().Detached) }),
	)
	return m
}
