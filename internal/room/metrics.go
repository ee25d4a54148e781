package room

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	active   prometheus.Gauge
	ended    *prometheus.CounterVec
	inputs   *prometheus.CounterVec
	applied  prometheus.Counter
	rejected prometheus.Counter
	busy     prometheus.Counter
	tickLate prometheus.Histogram
	skipped  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "taisen_rooms_active", Help: "Rooms running on this node."}),
		ended:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taisen_rooms_ended_total", Help: "Rooms ended on this node, by status."}, []string{"status"}),
		inputs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "taisen_room_inputs_total", Help: "Entries applied to rooms' games (applied) or refused by the game (rejected)."}, []string{"result"}),
		busy:   prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_room_inputs_busy_total", Help: "Player inputs refused because the room's mailbox was full."}),
		tickLate: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "taisen_room_tick_lateness_seconds",
			Help:    "Room clock reading when a tick was applied minus its scheduled time.",
			Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1}}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_room_clock_skipped_seconds_total", Help: "Room clock time skipped because a room fell more than the catch-up bound behind."}),
	}
	m.applied, m.rejected = m.inputs.WithLabelValues("applied"), m.inputs.WithLabelValues("rejected")
	if reg != nil {
		reg.MustRegister(m.active, m.ended, m.inputs, m.busy, m.tickLate, m.skipped)
	}
	return m
}
