package recorder

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a Prometheus collector for recordings. Recorders count into
// their own atomics; Metrics sums them when scraped, so the packet path
// never touches a Prometheus vector. Register it once and hand it to every
// Config; a nil *Metrics records nothing.
type Metrics struct {
	mu        sync.Mutex // guards the following
	recorders map[*Recorder]struct{}
	ended     Stats // totals of finished recorders, so counters never go back

	active, packets, drops, lost, nacks, keyframes, frames, bytes *prometheus.Desc
}

// NewMetrics returns an empty collector.
func NewMetrics() *Metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("troupe_recorder_"+name, help, labels, nil)
	}
	return &Metrics{
		recorders: make(map[*Recorder]struct{}),
		active:    d("recordings", "Recordings being written."),
		packets:   d("packets_total", "RTP packets handed to recordings."),
		drops:     d("dropped_packets_total", "Packets not recorded, by reason.", "reason"),
		lost:      d("lost_packets_total", "Sequence numbers given up on after the reorder wait."),
		nacks:     d("nacks_sent_total", "Sequence numbers recordings asked to have retransmitted."),
		keyframes: d("keyframe_requests_total", "Keyframes recordings asked for."),
		frames:    d("frames_total", "Frames, by outcome (written, dropped).", "outcome"),
		bytes:     d("bytes_written_total", "Bytes written to recording files."),
	}
}

func (m *Metrics) add(r *Recorder) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recorders[r] = struct{}{}
}

func (m *Metrics) remove(r *Recorder) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recorders[r]; ok {
		delete(m.recorders, r)
		m.ended.add(r.Stats())
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.active, m.packets, m.drops, m.lost, m.nacks, m.keyframes, m.frames, m.bytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	s := m.ended
	n := len(m.recorders)
	for r := range m.recorders {
		s.add(r.Stats())
	}
	m.mu.Unlock()
	c := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(m.active, prometheus.GaugeValue, float64(n))
	c(m.packets, s.PacketsIn)
	c(m.drops, s.QueueDrops, "queue_full")
	c(m.drops, s.Malformed, "malformed")
	c(m.drops, s.Late, "late")
	c(m.lost, s.Lost)
	c(m.nacks, s.NACKs)
	c(m.keyframes, s.KeyframeRequests)
	c(m.frames, s.FramesWritten, "written")
	c(m.frames, s.FramesDropped, "dropped")
	c(m.bytes, s.BytesWritten)
}
