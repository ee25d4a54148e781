package notify

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	loginItems      prometheus.Counter
	retainedItems   prometheus.Counter
	topicDeliveries prometheus.Counter
	published       prometheus.Counter
	acksDropped     prometheus.Counter
	presencePushes  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		loginItems:      prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_notify_login_items_total", Help: "Inbox items pushed to sessions at login."}),
		retainedItems:   prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_notify_retained_pushes_total", Help: "Retained topic items pushed at login or on subscribe (per session)."}),
		topicDeliveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_notify_topic_deliveries_total", Help: "Live topic items pushed to local sessions."}),
		published:       prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_notify_published_total", Help: "Topic items published from this node."}),
		presencePushes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_notify_presence_pushes_total", Help: "Presence changes pushed to local followers."}),
		acksDropped:     prometheus.NewCounter(prometheus.CounterOpts{Name: "taisen_notify_acks_dropped_total", Help: "Client acks dropped because the ack workers were saturated (the items come again at the next login)."}),
	}
	if reg != nil {
		reg.MustRegister(m.loginItems, m.retainedItems, m.topicDeliveries, m.published, m.acksDropped, m.presencePushes)
	}
	return m
}
