package promtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValue(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "c"}, []string{"direction"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "g"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "h"})
	reg.MustRegister(c, g, h)
	c.WithLabelValues("up").Add(2)
	c.WithLabelValues("down").Add(5)
	g.Set(3)
	h.Observe(1)
	h.Observe(7)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"c_total", []string{"direction", "up"}, 2},
		{"c_total", []string{"direction", "down"}, 5},
		{"g", nil, 3},
		{"h", nil, 2},
	} {
		if got := Value(t, reg, tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s %v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
