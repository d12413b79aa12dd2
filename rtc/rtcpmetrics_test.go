package rtc

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// walkRTCP finds the report block about the down-track's SSRC in a
// receiver report and in a sender report, and ignores the others'.
func TestWalkRTCPFindsReceptionReport(t *testing.T) {
	block := rtcp.ReceptionReport{SSRC: 7, FractionLost: 64, Jitter: 900, LastSenderReport: 0x12345678, Delay: 0x10000}
	other := rtcp.ReceptionReport{SSRC: 8, FractionLost: 255, Jitter: 1}
	for name, pkt := range map[string]rtcp.Packet{
		"receiver report": &rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{other, block}},
		"sender report":   &rtcp.SenderReport{SSRC: 1, NTPTime: 5, Reports: []rtcp.ReceptionReport{block, other}},
	} {
		b, err := rtcp.Marshal([]rtcp.Packet{pkt, &rtcp.PictureLossIndication{MediaSSRC: 7}})
		if err != nil {
			t.Fatal(err)
		}
		var fb rtcpFeedback
		walkRTCP(b, 7, &fb)
		want := receptionReport{fractionLost: 64, jitter: 900, lsr: 0x12345678, dlsr: 0x10000}
		if !fb.hasReport || fb.report != want || fb.pli != 1 {
			t.Errorf("%s: report %+v (found %v), pli %d; want %+v and 1 PLI", name, fb.report, fb.hasReport, fb.pli, want)
		}
	}
	b, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1, Reports: []rtcp.ReceptionReport{other}}})
	if err != nil {
		t.Fatal(err)
	}
	var fb rtcpFeedback
	if walkRTCP(b, 7, &fb); fb.hasReport {
		t.Errorf("found a report about SSRC 7 in one about SSRC 8: %+v", fb.report)
	}
}

// The round trip is the time since the echoed sender report less the
// receiver's delay; a report that echoes none, or one from the future,
// gives none.
func TestReportRTT(t *testing.T) {
	sent := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	lsr := uint32(ntpTime(sent) >> 16)
	now := sent.Add(250 * time.Millisecond)
	rtt, ok := reportRTT(receptionReport{lsr: lsr, dlsr: 0x10000 / 10}, now) // held 100 ms
	if !ok || rtt < 149*time.Millisecond || rtt > 151*time.Millisecond {
		t.Errorf("rtt = %v (%v), want 150ms", rtt, ok)
	}
	if _, ok := reportRTT(receptionReport{}, now); ok {
		t.Error("a report with no LSR gave a round trip")
	}
	if _, ok := reportRTT(receptionReport{lsr: lsr, dlsr: 0x10000}, now); ok {
		t.Error("a report held longer than the round trip gave one")
	}
}

// A real subscriber's reception reports fill the round-trip, jitter and
// loss histograms, and its connection is counted by candidate type and
// protocol: over UDP, and over ICE-TCP for a client whose UDP is blocked.
func TestPeerLinkMetrics(t *testing.T) {
	for _, tc := range []struct {
		protocol, candidate string
		tcp                 bool
	}{
		{"udp", "host", false},
		// An active TCP client's candidate has no port the server can
		// reach: the server learns its address from the connection.
		{"tcp", "prflx", true},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			engine, err := newEngine(Config{LoopbackOnly: true, TCP: tc.tcp}, defaultInterceptors)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = engine.Close() })
			src := newTestSource(t, vp8Codec)
			src.feed(t)
			api, err := rtctest.ClientAPIWithCodecs()
			if tc.tcp {
				api, err = rtctest.ClientAPIOnNetworks(webrtc.NetworkTypeTCP4)
			}
			if err != nil {
				t.Fatal(err)
			}
			m := NewMetrics()
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(m)
			o := newPeerOwnerWith(t, PeerConfig{Engine: engine, Mode: PeerSignaling, Metrics: m}, api)
			connectedWithSource(t, o, src)
			// Read the receiver's RTCP, as browsers do, so that the server's
			// sender reports reach the client's interceptors, whose reports
			// then echo them. The loop ends with the client.
			for _, r := range o.client.GetReceivers() {
				go func() {
					for {
						if _, _, err := r.ReadRTCP(); err != nil {
							return
						}
					}
				}()
			}

			poll.Until(t, "a reception report", func() bool { return histogramCount(t, reg, "troupe_rtc_loss_ratio", "video") > 0 })
			poll.Until(t, "a round trip from the subscriber's reports", func() bool {
				return histogramCount(t, reg, "troupe_rtc_round_trip_time_seconds", "video") > 0
			})
			if histogramCount(t, reg, "troupe_rtc_jitter_seconds", "video") == 0 {
				t.Error("troupe_rtc_jitter_seconds has no video observation")
			}
			// Every candidate type and protocol has its series from the
			// start; only the one connected counts.
			if n := testutil.CollectAndCount(m.link.connections); n != 8 {
				t.Errorf("%d candidate type series, want 8", n)
			}
			if sum := sumCounters(t, m.link.connections); sum != 1 {
				t.Errorf("%v connections counted, want 1", sum)
			}
			if got := testutil.ToFloat64(m.link.connections.WithLabelValues(tc.candidate, tc.protocol)); got != 1 {
				t.Errorf("connections over %s/%s = %v, want 1", tc.candidate, tc.protocol, got)
			}
		})
	}
}

// histogramCount is the number of observations of histogram name for
// kind, as scraped from reg.
func histogramCount(t *testing.T, reg *prometheus.Registry, name, kind string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return metric.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// sumCounters adds up the series of c.
func sumCounters(t *testing.T, c *prometheus.CounterVec) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		sum += pb.GetCounter().GetValue()
	}
	return sum
}
