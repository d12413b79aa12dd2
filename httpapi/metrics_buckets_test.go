package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request latency histogram's buckets reach the longest a request
// may wait (a forwarded one waits up to ForwardTimeout for its owner), so
// that the slow requests an operator looks for are not all in +Inf.
func TestRequestDurationBucketsCoverForwardTimeout(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newStack(t, func(c *Config) { c.Registry = reg })
	mustStatus(t, s.do(t, http.MethodGet, "/healthz", "", header{"Authorization", ""}), http.StatusOK)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "troupe_http_request_duration_seconds" {
			continue
		}
		buckets := f.GetMetric()[0].GetHistogram().GetBucket()
		top := time.Duration(buckets[len(buckets)-1].GetUpperBound() * float64(time.Second))
		if top < defaultForwardTimeout {
			t.Fatalf("the largest bucket is %v, below the forward timeout %v", top, defaultForwardTimeout)
		}
		return
	}
	t.Fatal("no troupe_http_request_duration_seconds")
}
