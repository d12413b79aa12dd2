package rtc

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

func TestMetricsAggregateTracks(t *testing.T) {
	m := NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)

	track := newChanTrack(vp8Codec)
	f, err := NewForwarder(ForwarderConfig{Track: track, RTCP: &rtcpSink{}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	sub := &memContext{id: "m", ssrc: 3}
	dt, err := NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: vp8Codec.RTPCodecCapability, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	sub.codecs = []webrtc.RTPCodecParameters{vp8Codec}
	if _, err := dt.Bind(sub); err != nil {
		t.Fatal(err)
	}
	if err := f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		track.in <- rawRTP(t, 96, uint16(i), 0, i == 1, rtctest.CounterPayload(uint32(i), 10))
	}
	poll.Until(t, "2 packets out", func() bool { return sub.count() == 2 })

	want := `
# HELP troupe_rtc_packets_in_total RTP packets received from publishers.
# TYPE troupe_rtc_packets_in_total counter
troupe_rtc_packets_in_total 3
# HELP troupe_rtc_packets_out_total RTP packets sent to subscribers, retransmissions excluded.
# TYPE troupe_rtc_packets_out_total counter
troupe_rtc_packets_out_total 2
# HELP troupe_rtc_subscribers Down-tracks (one per subscriber per track).
# TYPE troupe_rtc_subscribers gauge
troupe_rtc_subscribers 1
# HELP troupe_rtc_tracks Published streams being forwarded: a track, or each layer of a simulcast track.
# TYPE troupe_rtc_tracks gauge
troupe_rtc_tracks 1
`
	names := []string{"troupe_rtc_packets_in_total", "troupe_rtc_packets_out_total", "troupe_rtc_subscribers", "troupe_rtc_tracks"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(dropsMetric(t, reg, "wait_keyframe")); got != 1 {
		t.Errorf("wait_keyframe drops = %v, want 1", got)
	}

	// Closing the tracks keeps the counters and empties the gauges.
	_ = dt.Close()
	_ = f.Close()
	want = strings.Replace(want, "troupe_rtc_subscribers 1", "troupe_rtc_subscribers 0", 1)
	want = strings.Replace(want, "troupe_rtc_tracks 1", "troupe_rtc_tracks 0", 1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// dropsMetric returns the drop counter for one reason as a collector.
func dropsMetric(t *testing.T, reg *prometheus.Registry, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "troupe_rtc_dropped_packets_total" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			if mm.GetLabel()[0].GetValue() == reason {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(mm.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no drop metric for %s", reason)
	return nil
}
