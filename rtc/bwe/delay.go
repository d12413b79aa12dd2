package bwe

import "math"

// The delay-based detection: arrival groups, the trendline of their
// delay's growth, and the over-use detector.

const (
	// groupSpan: packets sent within it of a group's first are one group
	// (a frame's packets, sent in a burst).
	groupSpan = 5_000 // µs
	// trendWindow is how many groups the trendline fits.
	trendWindow = 20
	// trendSmoothing smooths the accumulated delay before the fit.
	trendSmoothing = 0.9
	// trendGain scales the slope into the detector's units (ms).
	trendGain = 4
	// trendMaxDeltas caps the count the slope is multiplied by.
	trendMaxDeltas = 60
	// The detector's threshold: where it starts, its bounds, and how fast
	// it follows the trend up and down.
	thresholdInitial = 12.5
	thresholdMin     = 6
	thresholdMax     = 600
	thresholdUp      = 0.0087
	thresholdDown    = 0.039
	// overuseTime is how long the trend must stay above the threshold.
	overuseTime = 10.0 // ms
	// groupGapReset: a gap longer than this between groups (nothing sent,
	// or nothing reported) starts the trendline afresh.
	groupGapReset = 2_000_000 // µs
)

// usage is what the detector makes of the link's delay.
type usage int8

const (
	usageNormal usage = iota
	usageOver
	usageUnder
)

// group is packets sent close together.
type group struct {
	firstSend, lastSend int64 // µs, the sender's clock
	lastArrival         int64 // µs, the receiver's clock
	valid               bool
}

// detector is the delay-based detection's state.
type detector struct {
	cur, prev group

	// The trendline: the accumulated delay variation, smoothed, over the
	// arrival time of the last trendWindow groups.
	firstArrival  int64
	accumulated   float64
	smoothed      float64
	xs, ys        [trendWindow]float64
	n, next       int // points held, where the next goes
	deltas        int // groups seen, up to 1000
	threshold     float64
	lastThreshold int64 // µs, arrival clock; 0: not yet
	timeOver      float64
	overCount     int
	prevTrend     float64
	state         usage
}

func newDetector() detector { return detector{threshold: thresholdInitial, timeOver: -1} }

// reset forgets the trendline (not the threshold).
func (d *detector) reset() {
	thr := d.threshold
	*d = newDetector()
	d.threshold = thr
}

// packet takes one received packet, in send order: sent at send, arrived
// at arrival (µs). It returns the detector's state after it.
func (d *detector) packet(send, arrival int64) usage {
	switch {
	case !d.cur.valid:
		d.cur = group{firstSend: send, lastSend: send, lastArrival: arrival, valid: true}
	case send-d.cur.firstSend <= groupSpan:
		d.cur.lastSend = max(d.cur.lastSend, send)
		d.cur.lastArrival = max(d.cur.lastArrival, arrival)
	default:
		if d.prev.valid {
			d.compare(d.prev, d.cur)
		}
		d.prev = d.cur
		d.cur = group{firstSend: send, lastSend: send, lastArrival: arrival, valid: true}
	}
	return d.state
}

// compare takes the delay variation between two consecutive groups.
func (d *detector) compare(a, b group) {
	sendDelta := b.lastSend - a.lastSend
	arrivalDelta := b.lastArrival - a.lastArrival
	if arrivalDelta < 0 || sendDelta < 0 {
		return // reordered: tells nothing of queues
	}
	if arrivalDelta > groupGapReset {
		d.reset()
		return
	}
	variation := float64(arrivalDelta-sendDelta) / 1000 // ms
	if d.n == 0 && d.deltas == 0 {
		d.firstArrival = b.lastArrival
	}
	d.deltas = min(d.deltas+1, 1000)
	d.accumulated += variation
	d.smoothed = trendSmoothing*d.smoothed + (1-trendSmoothing)*d.accumulated
	d.xs[d.next] = float64(b.lastArrival-d.firstArrival) / 1000
	d.ys[d.next] = d.smoothed
	d.next = (d.next + 1) % trendWindow
	d.n = min(d.n+1, trendWindow)
	trend := d.prevTrend
	if d.n == trendWindow {
		if s, ok := slope(d.xs[:], d.ys[:]); ok {
			trend = s
		}
	}
	modified := float64(min(d.deltas, trendMaxDeltas)) * trend * trendGain
	d.detect(modified, float64(arrivalDelta)/1000, b.lastArrival)
}

// slope fits y = a + slope*x by least squares.
func slope(xs, ys []float64) (float64, bool) {
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/float64(len(xs)), sy/float64(len(ys))
	var num, den float64
	for i := range xs {
		dx := xs[i] - mx
		num += dx * (ys[i] - my)
		den += dx * dx
	}
	if den == 0 {
		return 0, false
	}
	return num / den, true
}

// detect compares the modified trend with the threshold; dt is the time
// since the last group (ms), at the arrival time (µs).
func (d *detector) detect(trend, dt float64, at int64) {
	if d.deltas < 2 {
		return
	}
	switch {
	case trend > d.threshold:
		if d.timeOver < 0 {
			d.timeOver = dt / 2
		} else {
			d.timeOver += dt
		}
		d.overCount++
		if d.timeOver > overuseTime && d.overCount > 1 && trend >= d.prevTrend {
			d.timeOver, d.overCount = 0, 0
			d.state = usageOver
		}
	case trend < -d.threshold:
		d.timeOver, d.overCount = -1, 0
		d.state = usageUnder
	default:
		d.timeOver, d.overCount = -1, 0
		d.state = usageNormal
	}
	d.prevTrend = trend
	d.adapt(trend, at)
}

// adapt moves the threshold toward the trend's size: quickly down, slowly
// up, so that a noisy link is not taken for a congested one, nor does a
// competing flow starve this one. Outliers move nothing.
func (d *detector) adapt(trend float64, at int64) {
	if d.lastThreshold == 0 {
		d.lastThreshold = at
	}
	abs := math.Abs(trend)
	if abs > d.threshold+15 {
		d.lastThreshold = at
		return
	}
	k := thresholdUp
	if abs < d.threshold {
		k = thresholdDown
	}
	dt := min(float64(at-d.lastThreshold)/1000, 100)
	d.threshold = min(max(d.threshold+k*(abs-d.threshold)*dt, thresholdMin), thresholdMax)
	d.lastThreshold = at
}
