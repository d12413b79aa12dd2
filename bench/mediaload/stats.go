package mediaload

import (
	"slices"
	"time"
)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted values; zero for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// Nearest rank: the smallest value with at least p% of the values at
	// or below it.
	rank := int(float64(len(sorted))*p/100 + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// summary is the percentiles of a set of durations, in milliseconds.
type summary struct {
	P50, P99, Max float64
	N             int
}

func summarize(d []time.Duration) summary {
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	s := summary{P50: ms(percentile(d, 50)), P99: ms(percentile(d, 99)), N: len(d)}
	if len(d) > 0 {
		s.Max = ms(d[len(d)-1])
	}
	return s
}

// lossRatio is the share of expected packets that did not arrive; never
// negative (duplicates do not make up for losses elsewhere: received is
// counted once per packet).
func lossRatio(expected, received int64) float64 {
	if expected <= 0 || received >= expected {
		return 0
	}
	return float64(expected-received) / float64(expected)
}

// cpuPerPacketUs is CPU time per forwarded packet in microseconds; zero
// when nothing was forwarded.
func cpuPerPacketUs(cpu time.Duration, packets int64) float64 {
	if packets <= 0 {
		return 0
	}
	return float64(cpu) / float64(time.Microsecond) / float64(packets)
}

// packetsPerCoreSecond is how many packets one fully busy core forwards
// a second at the measured cost; zero when no CPU was measured.
func packetsPerCoreSecond(cpu time.Duration, packets int64) float64 {
	if cpu <= 0 {
		return 0
	}
	return float64(packets) / cpu.Seconds()
}

// window counts the distinct counters in [from, to) among what a receiver
// got, so a retransmitted packet is counted once.
type window struct {
	from, to uint32
	seen     []uint64 // bitmap of counter-from
	n        int64
}

func newWindow(from, to uint32) *window {
	w := &window{from: from, to: to}
	if to > from {
		w.seen = make([]uint64, (to-from+63)/64)
	}
	return w
}

// add records a counter and reports whether it is inside the window.
func (w *window) add(counter uint32) bool {
	if counter < w.from || counter >= w.to {
		return false
	}
	i := counter - w.from
	if bit := uint64(1) << (i % 64); w.seen[i/64]&bit == 0 {
		w.seen[i/64] |= bit
		w.n++
	}
	return true
}

func (w *window) expected() int64 { return int64(w.to - w.from) }
