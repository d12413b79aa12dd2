package rtc

import (
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// linkMetrics are what operators watch of the links to subscribers and
// clients: the round-trip time, jitter and loss their RTCP reception
// reports give (by media kind, never by participant: one histogram each
// whatever the number of peers), and the candidate pairs connections
// settle on.
type linkMetrics struct {
	rtt, jitter, loss *prometheus.HistogramVec
	connections       *prometheus.CounterVec
	// iceFragments counts WHIP and WHEP clients' ICE fragments
	// (peer_ice.go) by what they did.
	iceFragments *prometheus.CounterVec
}

func newLinkMetrics() linkMetrics {
	l := linkMetrics{
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "troupe_rtc_round_trip_time_seconds",
			Help:    "Round-trip times to subscribers, from the sender report timing echoed in their RTCP reception reports, by media kind.",
			Buckets: []float64{.005, .01, .025, .05, .075, .1, .15, .2, .3, .5, 1, 2},
		}, []string{"kind"}),
		jitter: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "troupe_rtc_jitter_seconds",
			Help:    "Interarrival jitter subscribers report in their RTCP reception reports, by media kind.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .03, .05, .1, .2, .5},
		}, []string{"kind"}),
		loss: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "troupe_rtc_loss_ratio",
			Help:    "Fraction of packets lost since the previous report, as subscribers report it in their RTCP reception reports, by media kind.",
			Buckets: []float64{0, .01, .02, .05, .1, .2, .3, .5, 1},
		}, []string{"kind"}),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_rtc_connections_total",
			Help: "Peer connections established, by the type of the client's candidate in the selected pair (host, srflx, prflx, relay) and its protocol (udp, tcp).",
		}, []string{"candidate_type", "protocol"}),
		iceFragments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_rtc_ice_fragments_total",
			Help: "WHIP and WHEP clients' trickle ICE fragments, by result: trickle (candidates added), restart (an ICE restart), refused (the fragment did not fit the session, or the restart failed).",
		}, []string{"result"}),
	}
	// Every series reads 0 (an empty histogram) from the start rather than
	// be absent until the first report or connection.
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		l.rtt.WithLabelValues(kind.String())
		l.jitter.WithLabelValues(kind.String())
		l.loss.WithLabelValues(kind.String())
	}
	for _, typ := range []webrtc.ICECandidateType{webrtc.ICECandidateTypeHost, webrtc.ICECandidateTypeSrflx,
		webrtc.ICECandidateTypePrflx, webrtc.ICECandidateTypeRelay} {
		for _, proto := range []webrtc.ICEProtocol{webrtc.ICEProtocolUDP, webrtc.ICEProtocolTCP} {
			l.connections.WithLabelValues(typ.String(), proto.String())
		}
	}
	return l
}

func (l *linkMetrics) describe(ch chan<- *prometheus.Desc) {
	l.rtt.Describe(ch)
	l.jitter.Describe(ch)
	l.loss.Describe(ch)
	l.connections.Describe(ch)
	l.iceFragments.Describe(ch)
}

func (l *linkMetrics) collect(ch chan<- prometheus.Metric) {
	l.rtt.Collect(ch)
	l.jitter.Collect(ch)
	l.loss.Collect(ch)
	l.connections.Collect(ch)
	l.iceFragments.Collect(ch)
}

// maxReportRTT bounds the round-trip times taken from reports: beyond it,
// the echoed timestamp is stale or made up.
const maxReportRTT = 60 * time.Second

// observeReport records a subscriber's reception report about a
// down-track of kind, whose RTP clock runs at clockRate, received at now.
// It runs once per report (about one a second per down-track), not per
// packet.
func (m *Metrics) observeReport(kind webrtc.RTPCodecType, r receptionReport, clockRate uint32, now time.Time) {
	if m == nil {
		return
	}
	k := kind.String()
	m.link.loss.WithLabelValues(k).Observe(float64(r.fractionLost) / 256)
	if clockRate > 0 {
		m.link.jitter.WithLabelValues(k).Observe(float64(r.jitter) / float64(clockRate))
	}
	if rtt, ok := reportRTT(r, now); ok {
		m.link.rtt.WithLabelValues(k).Observe(rtt.Seconds())
	}
}

// reportRTT is the round trip a report measures (RFC 3550 section 6.4.1):
// the time since the sender report it echoes, less the delay the receiver
// held it. A report that echoes no sender report (lsr 0) measures none.
func reportRTT(r receptionReport, now time.Time) (time.Duration, bool) {
	if r.lsr == 0 {
		return 0, false
	}
	mid := uint32(ntpTime(now) >> 16) // in 1/65536 s, modulo 2^32
	d := mid - r.lsr - r.dlsr
	if d >= 1<<31 { // the report is from the future: a clock or a packet is wrong
		return 0, false
	}
	rtt := time.Duration(uint64(d) * uint64(time.Second) >> 16)
	if rtt > maxReportRTT {
		return 0, false
	}
	return rtt, true
}

// countConnection records a peer connection that connected over pair.
func (m *Metrics) countConnection(pair *webrtc.ICECandidatePair) {
	if m == nil || pair == nil || pair.Remote == nil || pair.Local == nil {
		return
	}
	m.link.connections.WithLabelValues(pair.Remote.Typ.String(), pair.Local.Protocol.String()).Inc()
}
