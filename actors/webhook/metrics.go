package webhook

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	deliveries *prometheus.CounterVec
	delivered  prometheus.Counter
	retried    prometheus.Counter
	failed     prometheus.Counter
	duration   prometheus.Histogram
	inFlight   *prometheus.GaugeVec
	queues     prometheus.Gauge
	claimed    prometheus.Gauge
	claimsLost prometheus.Counter
	backlog    []prometheus.Collector
}

func newMetrics(store Store) metrics {
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "troupe_webhook_deliveries_total",
		Help: "Webhook delivery attempts by result: delivered (2xx), retry (failed, to be retried), failed (given up after the max age, or refused).",
	}, []string{"result"})
	return metrics{
		deliveries: deliveries,
		delivered:  deliveries.WithLabelValues("delivered"),
		retried:    deliveries.WithLabelValues("retry"),
		failed:     deliveries.WithLabelValues("failed"),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "troupe_webhook_request_duration_seconds",
			Help:    "Time from sending a webhook request to its response or error.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "troupe_webhook_in_flight",
			Help: "Webhook requests in flight by pool: answering (endpoints whose last request got a response), probing (new endpoints, and those that did not answer).",
		}, []string{"pool"}),
		queues: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "troupe_webhook_queues",
			Help: "Webhook queues (one room's deliveries to one endpoint) this node is draining.",
		}),
		claimed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "troupe_webhook_claimed_rooms",
			Help: "Rooms whose webhook queues this node delivers; in a cluster, one node at a time holds a room's claim.",
		}),
		claimsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "troupe_webhook_claims_lost_total",
			Help: "Rooms whose webhook delivery claim this node lost while delivering them (its cluster lease ended); another node delivers them from where the outbox says.",
		}),
		backlog: []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "troupe_webhook_pending",
				Help: "Webhook deliveries waiting in the outbox (in a cluster, the whole cluster's).",
			}, func() float64 { p, _ := store.WebhookBacklog(); return float64(p) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "troupe_webhook_failed",
				Help: "Failed webhook deliveries kept (GET /api/v1/webhooks/deliveries?status=failed).",
			}, func() float64 { _, f := store.WebhookBacklog(); return float64(f) }),
		},
	}
}

func (m metrics) register(r prometheus.Registerer) error {
	for _, c := range append([]prometheus.Collector{m.deliveries, m.duration, m.inFlight, m.queues, m.claimed, m.claimsLost}, m.backlog...) {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
