package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request latency histogram's buckets reach the longest a request
// may wait (a forwarded one waits up to ForwardTimeout for its owner,
// which serve derives from the request timeout), so that the slow
// requests an operator looks for are not all in +Inf.
func TestRequestDurationBucketsCoverForwardTimeout(t *testing.T) {
	for _, forward := range []time.Duration{0, 14 * time.Second, 100 * time.Second, 101 * time.Second} {
		reg := prometheus.NewRegistry()
		s := newStack(t, func(c *Config) { c.Registry, c.ForwardTimeout = reg, forward })
		mustStatus(t, s.do(t, http.MethodGet, "/healthz", "", header{"Authorization", ""}), http.StatusOK)
		want := forward
		if want == 0 {
			want = defaultForwardTimeout
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var bounds []float64
		for _, f := range families {
			if f.GetName() == "troupe_http_request_duration_seconds" {
				for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
					bounds = append(bounds, b.GetUpperBound())
				}
			}
		}
		if len(bounds) == 0 {
			t.Fatal("no troupe_http_request_duration_seconds")
		}
		if top := time.Duration(bounds[len(bounds)-1] * float64(time.Second)); top < want {
			t.Errorf("forward timeout %v: the largest bucket is %v, below it (%v)", want, top, bounds)
		}
		if len(bounds) > 1 && time.Duration(bounds[len(bounds)-2]*float64(time.Second)) >= want {
			t.Errorf("forward timeout %v: buckets past the one that holds it: %v", want, bounds)
		}
	}
}
