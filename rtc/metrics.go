package rtc

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a Prometheus collector for the data plane. Tracks count into
// their own atomics; Metrics sums them only when scraped, so the packet path
// never touches a Prometheus vector. Register it once:
//
//	m := rtc.NewMetrics()
//	registry.MustRegister(m)
//
// and hand it to every ForwarderConfig and DownTrackConfig. A nil *Metrics
// records nothing.
type Metrics struct {
	mu         sync.Mutex // guards the following
	forwarders map[*Forwarder]struct{}
	downTracks map[*DownTrack]struct{}
	// in and out keep the totals of closed tracks, so that counters never
	// go backwards when a track goes away.
	in, out Stats

	tracks, subscribers                      *prometheus.Desc
	packetsIn, bytesIn, packetsOut, bytesOut *prometheus.Desc
	drops                                    *prometheus.Desc
	nacks, retransmits, nackMisses           *prometheus.Desc
	nackSuppressed                           *prometheus.Desc
	keyframeReceived, keyframeSent           *prometheus.Desc
	catchUps                                 *prometheus.Desc
	layerSwitches                            *prometheus.Desc
	bwe                                      bandwidthMetrics
	link                                     linkMetrics
}

// NewMetrics returns an empty collector.
func NewMetrics() *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("troupe_rtc_"+name, help, labels, nil)
	}
	return &Metrics{
		forwarders:       make(map[*Forwarder]struct{}),
		downTracks:       make(map[*DownTrack]struct{}),
		tracks:           d("tracks", "Published streams being forwarded: a track, or each layer of a simulcast track."),
		subscribers:      d("subscribers", "Down-tracks (one per subscriber per track)."),
		packetsIn:        d("packets_in_total", "RTP packets received from publishers."),
		bytesIn:          d("bytes_in_total", "RTP bytes received from publishers."),
		packetsOut:       d("packets_out_total", "RTP packets sent to subscribers, retransmissions excluded."),
		bytesOut:         d("bytes_out_total", "RTP bytes sent to subscribers, retransmissions excluded."),
		drops:            d("dropped_packets_total", "Packets not forwarded, by reason.", "reason"),
		nacks:            d("nacks_received_total", "Sequence numbers NACKed by subscribers."),
		retransmits:      d("nack_retransmits_total", "NACKed packets answered from the packet cache."),
		nackMisses:       d("nack_misses_total", "NACKed packets no longer in the packet cache."),
		nackSuppressed:   d("nack_suppressed_total", "NACKed packets not resent: resent as often, or as lately, as a packet may be."),
		keyframeReceived: d("keyframe_requests_received_total", "Keyframe requests from subscribers, by type.", "type"),
		keyframeSent:     d("keyframe_requests_sent_total", "PLIs sent to publishers after throttling."),
		catchUps:         d("keyframe_catch_ups_total", "Subscriber streams started from a cached keyframe instead of a new one."),
		layerSwitches:    d("layer_switches_total", "Subscribers' moves from one simulcast layer to another, each on the new layer's keyframe, by direction: to a larger picture, a smaller one, or unknown when a layer's size is not known.", "direction"),
		bwe:              newBandwidthMetrics(d),
		link:             newLinkMetrics(),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		m.tracks, m.subscribers, m.packetsIn, m.bytesIn, m.packetsOut, m.bytesOut, m.drops,
		m.nacks, m.retransmits, m.nackMisses, m.nackSuppressed, m.keyframeReceived, m.keyframeSent, m.catchUps, m.layerSwitches,
	} {
		ch <- d
	}
	m.bwe.describe(ch)
	m.link.describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	in, out := m.in, m.out
	nf, nd := len(m.forwarders), len(m.downTracks)
	for f := range m.forwarders {
		in.add(f.ctr.snapshot())
	}
	for dt := range m.downTracks {
		out.add(dt.ctr.snapshot())
	}
	m.mu.Unlock()

	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(m.tracks, nf)
	gauge(m.subscribers, nd)
	counter(m.packetsIn, in.Packets)
	counter(m.bytesIn, in.Bytes)
	counter(m.packetsOut, out.Packets)
	counter(m.bytesOut, out.Bytes)
	for r := DropReason(0); r < numDropReasons; r++ {
		counter(m.drops, in.Drops[r]+out.Drops[r], r.String())
	}
	counter(m.nacks, out.NACKs)
	counter(m.retransmits, out.Retransmits)
	counter(m.nackMisses, out.NACKMisses)
	counter(m.nackSuppressed, out.NACKSuppressed)
	counter(m.keyframeReceived, out.PLIs, "pli")
	counter(m.keyframeReceived, out.FIRs, "fir")
	counter(m.keyframeSent, in.KeyframeRequests)
	counter(m.catchUps, out.CatchUps)
	counter(m.layerSwitches, out.LayerSwitchesUp, "up")
	counter(m.layerSwitches, out.LayerSwitchesDown, "down")
	counter(m.layerSwitches, out.LayerSwitches-out.LayerSwitchesUp-out.LayerSwitchesDown, "unknown")
	m.bwe.collect(ch)
	m.link.collect(ch)
}

// DownTracks returns the number of down-tracks: one per subscriber per
// track forwarded. A nil *Metrics has none.
func (m *Metrics) DownTracks() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.downTracks)
}

func (m *Metrics) addForwarder(f *Forwarder) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.forwarders[f] = struct{}{}
	m.mu.Unlock()
}

func (m *Metrics) removeForwarder(f *Forwarder) {
	if m == nil {
		return
	}
	m.mu.Lock()
	if _, ok := m.forwarders[f]; ok {
		delete(m.forwarders, f)
		m.in.add(f.ctr.snapshot())
	}
	m.mu.Unlock()
}

func (m *Metrics) addDownTrack(dt *DownTrack) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.downTracks[dt] = struct{}{}
	m.mu.Unlock()
}

func (m *Metrics) removeDownTrack(dt *DownTrack) {
	if m == nil {
		return
	}
	m.mu.Lock()
	if _, ok := m.downTracks[dt]; ok {
		delete(m.downTracks, dt)
		m.out.add(dt.ctr.snapshot())
	}
	m.mu.Unlock()
}
