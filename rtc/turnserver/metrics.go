package turnserver

import "github.com/prometheus/client_golang/prometheus"

// metrics are what an operator watches of the TURN server: how many relays
// run, and what is refused.
type metrics struct {
	allocations prometheus.Gauge
	refused     *prometheus.CounterVec
	dropped     prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		allocations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "troupe_turn_allocations", Help: "TURN relays allocated now.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_turn_refused_total",
			Help: "TURN requests refused, by reason: bad_username, expired, wrong_password, quota (too many relays for one user), peer (a permission for an address other than the media server's).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "troupe_turn_relay_dropped_total",
			Help: "Datagrams a relay dropped because they were sent to a port other than the media server's.",
		}),
	}
	for _, r := range []string{"bad_username", "expired", "wrong_password", "quota", "peer"} {
		m.refused.WithLabelValues(r)
	}
	return m
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.allocations.Describe(ch)
	m.refused.Describe(ch)
	m.dropped.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.allocations.Collect(ch)
	m.refused.Collect(ch)
	m.dropped.Collect(ch)
}
