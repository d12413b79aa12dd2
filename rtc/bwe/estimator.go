package bwe

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// decreaseFactor: an over-use sets the rate to this share of what
	// the receiver acknowledged.
	decreaseFactor = 0.85
	// increasePerSecond is the multiplicative increase, far from the
	// link's known capacity.
	increasePerSecond = 1.08
	// responseTime is the time a change of rate takes to show in the
	// feedback (a round trip and the feedback's interval, assumed): near
	// the link's capacity the rate grows by a packet per responseTime.
	responseTime = 200 * time.Millisecond
	packetBits   = 1200 * 8
	// decreaseInterval is the least time between two decreases: the
	// feedback after a decrease still shows the packets sent before it.
	decreaseInterval = 300 * time.Millisecond
	// ackedWindow is the span of arrivals the acknowledged bitrate is
	// measured over; ackedMinSpan the least that gives one.
	ackedWindow  = 1_000_000 // µs
	ackedMinSpan = 250_000   // µs
	ackedSamples = 64
	// Loss: a share above lossHigh takes the estimate down (by half the
	// share), one below lossLow lets it grow; lossMinPackets reported
	// packets make one measure.
	lossHigh       = 0.10
	lossLow        = 0.02
	lossMinPackets = 20
	// maxIncreaseInterval caps the time an increase is computed over: a
	// report after a long silence is no proof of a higher rate.
	maxIncreaseInterval = time.Second
)

// Config is an Estimator's bounds, in bits per second.
type Config struct {
	// Initial is the estimate before feedback moves it.
	Initial int
	// Min and Max bound the estimate; Max 0 is no bound.
	Min, Max int
}

// Estimator is one connection's estimate. Sending is safe from any number
// of goroutines at once; Feedback and Reset are serialized by the
// Estimator; Estimate may be read from anywhere.
type Estimator struct {
	// The send side is all an Estimator holds itself: what each packet
	// sent reads and writes, 40 bytes, so that it shares a cache line
	// with its owner's own (rtc's) and, being small, a memory page with
	// other connections'. On a server, a connection's next packet comes
	// after many other connections' have pushed its lines out of the
	// caches and its pages out of the TLB: each line or page of its own
	// the send path touches costs a miss per packet. The ring (its slots)
	// and the feedback's side are allocated apart.

	// last is the sequence number last being sent, the reference
	// against which the feedback's 16-bit numbers are placed.
	last atomic.Uint32
	// probing is set while a probe of the link runs (Probing): the
	// packets sent meanwhile are left out of the loss.
	probing atomic.Bool
	hist    history
	*state
}

// state is the feedback's side of an Estimator.
type state struct {
	cfg      Config
	estimate atomic.Int64
	acked    atomic.Int64 // bits per second, 0 while unknown

	mu sync.Mutex // guards the following: the feedback's side
	// reported marks, by slot, the packets whose fate has been taken: a
	// report repeated, or read through two streams of the connection,
	// counts once; a packet reported lost and then received (late) counts
	// as lost to the loss and as received to the rest.
	reported [historySize]ackMark
	det      detector
	rate     float64 // the delay-based estimate
	lossRate float64 // the loss-based bound
	// increasing: the rate controller's state (hold after an over-use or
	// an under-use, until the delay is normal again).
	increasing bool
	lastUpdate time.Time
	lastCut    time.Time
	// The link's capacity as the acknowledged bitrates at the last
	// decreases showed it (kbps): their mean and variance; 0 for unknown.
	capMean, capVar float64
	// Loss: packets reported and lost since the last measure.
	lossReported, lossLost int
	lastLoss, lastLossCut  time.Time
	// The acknowledged bitrate: per report, the last arrival and the
	// bytes received up to it, in a ring.
	arrivalBase             int64 // unwrapped reference, µs
	lastRef                 time.Duration
	haveRef                 bool
	samplesAt, samplesBytes [ackedSamples]int64
	samples, sampleNext     int
	receivedBytes           int64
}

// ackMark is what the feedback said of the packet seq-1 (0: nothing).
type ackMark struct {
	seq      uint32
	received bool
}

// New returns an Estimator starting at cfg.Initial.
func New(cfg Config) *Estimator {
	e := new(Estimator)
	e.Init(cfg)
	return e
}

// Init makes e, a zero Estimator, what New(cfg) returns: for one that is
// part of a larger struct whose own fields the send path reads beside
// e's, on the same cache line. Nothing may use e before.
func (e *Estimator) Init(cfg Config) {
	cfg.Min = max(cfg.Min, 1)
	if cfg.Max <= 0 {
		cfg.Max = math.MaxInt32
	}
	cfg.Initial = min(max(cfg.Initial, cfg.Min), cfg.Max)
	e.hist = history{slots: make([]slot, historySize)}
	e.state = &state{cfg: cfg, rate: float64(cfg.Initial), lossRate: float64(cfg.Initial), det: newDetector()}
	e.estimate.Store(int64(cfg.Initial))
}

// Sending records the packet numbered seq (the connection's count of
// packets sent with the extension: its low 16 bits are the header's) as
// it is sent: its Record gives the extension's bytes, and is told when
// the packet went out. False when it cannot be recorded; the packet then
// goes out with an extension of the caller's.
func (e *Estimator) Sending(seq uint32) (Record, bool) {
	e.last.Store(seq)
	return e.hist.claim(seq, e.probing.Load())
}

// Probing tells the Estimator that a probe of the link starts (on) or
// stops. A probe sends above what the link is known to carry, to see
// whether it carries more; on a link that drops what exceeds its rate
// rather than queue it, what the probe overruns is lost, its padding and
// the media sent with it alike. That loss is the probe's answer (the
// prober takes it), not the link's at the rate of the media: counted by
// the loss bound, each failed probe for a layer the link cannot carry
// would cut the estimate below the layer it carries.
func (e *Estimator) Probing(on bool) { e.probing.Store(on) }

// Estimate returns the estimate, in bits per second.
func (e *Estimator) Estimate() int { return int(e.estimate.Load()) }

// Acked returns the bitrate the receiver acknowledged lately, 0 while
// unknown.
func (e *Estimator) Acked() int { return int(e.acked.Load()) }

// Reset starts the estimate again from bps, what a probe showed the link
// carries: the delay's trendline and the loss are forgotten.
func (e *Estimator) Reset(bps int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	bps = min(max(bps, e.cfg.Min), e.cfg.Max)
	e.rate, e.lossRate = float64(bps), float64(bps)
	e.det.reset()
	e.increasing = false
	e.capMean, e.capVar = 0, 0
	e.lossReported, e.lossLost = 0, 0
	e.estimate.Store(int64(bps))
}

// Feedback takes a feedback report's acks (ParseFeedback), read at now,
// and returns the estimate after them.
func (e *Estimator) Feedback(acks []Ack, now time.Time) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	last := e.last.Load()
	ref := now.Sub(epoch).Microseconds()
	state := e.det.state
	latest, got := int64(0), false
	for _, a := range acks {
		// The full number of a.Seq: the one nearest the last sent.
		seq := last + uint32(int32(int16(a.Seq-uint16(last))))
		sendAt, size, probing, ok := e.hist.lookup(seq, ref)
		if !ok {
			continue
		}
		mark := &e.reported[seq%historySize]
		again := mark.seq == seq+1
		if again && (mark.received || !a.Received) {
			continue // taken already
		}
		*mark = ackMark{seq: seq + 1, received: a.Received}
		if !probing { // a probe's loss is its own answer (Probing)
			if !again {
				e.lossReported++
			}
			if !a.Received {
				e.lossLost++
			}
		}
		if !a.Received {
			continue
		}
		arrival := e.arrival(a.Arrival)
		e.receivedBytes += int64(size)
		latest, got = max(latest, arrival), true
		state = e.det.packet(sendAt, arrival)
	}
	if got {
		e.sampleAcked(latest)
	}
	e.control(state, now)
	e.lossControl(now)
	est := min(e.rate, e.lossRate)
	est = min(max(est, float64(e.cfg.Min)), float64(e.cfg.Max))
	e.estimate.Store(int64(est))
	return int(est)
}

// arrival places a report's arrival time on one continuous clock (µs):
// the reference time wraps every 2^24 × 64 ms.
func (e *Estimator) arrival(at time.Duration) int64 {
	const wrap = (1 << 24) * referenceUnit
	if !e.haveRef {
		e.haveRef, e.lastRef = true, at
	}
	d := at - e.lastRef
	switch {
	case d > wrap/2:
		d -= wrap
	case d < -wrap/2:
		d += wrap
	}
	e.lastRef = at
	e.arrivalBase += d.Microseconds()
	return e.arrivalBase
}

// sampleAcked notes the bytes received up to the arrival at, and measures
// the acknowledged bitrate over the last ackedWindow of arrivals.
func (e *Estimator) sampleAcked(at int64) {
	e.samplesAt[e.sampleNext], e.samplesBytes[e.sampleNext] = at, e.receivedBytes
	e.sampleNext = (e.sampleNext + 1) % ackedSamples
	e.samples = min(e.samples+1, ackedSamples)
	// The oldest sample within the window.
	oldest := -1
	for i := 1; i < e.samples; i++ {
		j := (e.sampleNext - 1 - i + 2*ackedSamples) % ackedSamples
		if at-e.samplesAt[j] > ackedWindow {
			break
		}
		oldest = j
	}
	if oldest < 0 || at-e.samplesAt[oldest] < ackedMinSpan {
		return
	}
	bits := float64(e.receivedBytes-e.samplesBytes[oldest]) * 8
	e.acked.Store(int64(bits * 1e6 / float64(at-e.samplesAt[oldest])))
}

// control moves the delay-based rate by the detector's state: down on an
// over-use to a share of what arrived, held on an under-use (the queues
// drain), up otherwise, multiplicatively far from the link's known
// capacity and additively near it, never above what arrived by much.
func (e *Estimator) control(state usage, now time.Time) {
	dt := now.Sub(e.lastUpdate)
	if e.lastUpdate.IsZero() || dt < 0 {
		dt = 0
	}
	e.lastUpdate = now
	acked := float64(e.acked.Load())
	switch state {
	case usageOver:
		e.increasing = false
		if now.Sub(e.lastCut) < decreaseInterval {
			return
		}
		base := e.rate
		if acked > 0 {
			base = acked
			e.noteCapacity(acked)
		}
		e.rate = min(e.rate, decreaseFactor*base)
		e.lastCut = now
		return
	case usageUnder:
		e.increasing = false
		return
	}
	if !e.increasing {
		e.increasing = true // from the next report on
		return
	}
	dt = min(dt, maxIncreaseInterval)
	if acked > 0 && e.capMean > 0 && acked/1000 > e.capMean+3*math.Sqrt(e.capVar) {
		e.capMean, e.capVar = 0, 0 // the link grew: search again
	}
	next := e.rate
	if e.capMean > 0 {
		next += packetBits * dt.Seconds() / responseTime.Seconds()
	} else {
		next *= math.Pow(increasePerSecond, dt.Seconds())
	}
	e.rate = e.ceiling(e.rate, next, acked)
}

// ceiling returns next, the rate after an increase from cur, bounded by
// what the receiver acknowledged (half again, and a little): a rate the
// sender does not use proves nothing. A rate above the bound already
// stays (a probe put it there).
func (e *Estimator) ceiling(cur, next, acked float64) float64 {
	if acked <= 0 {
		return next
	}
	return max(cur, min(next, 1.5*acked+10_000))
}

// noteCapacity adds an acknowledged bitrate at an over-use to the link's
// capacity estimate.
func (e *Estimator) noteCapacity(acked float64) {
	kbps := acked / 1000
	if e.capMean == 0 {
		e.capMean, e.capVar = kbps, 0.4*kbps
		return
	}
	const alpha = 0.05
	e.capMean = (1-alpha)*e.capMean + alpha*kbps
	d := kbps - e.capMean
	e.capVar = max((1-alpha)*e.capVar+alpha*d*d/max(e.capMean, 1), 0.4)
}

// lossControl measures the loss once enough packets have been reported,
// and moves the loss-based bound: when it is high, down to what arrived
// (or the estimate, if less) less half the share lost; when it is low,
// up as fast as the delay-based rate may grow and no higher, for the
// bound only matters once loss has cut it; held between.
func (e *Estimator) lossControl(now time.Time) {
	if e.lossReported < lossMinPackets {
		return
	}
	loss := float64(e.lossLost) / float64(e.lossReported)
	e.lossReported, e.lossLost = 0, 0
	dt := min(max(now.Sub(e.lastLoss), 0), maxIncreaseInterval)
	if e.lastLoss.IsZero() {
		dt = 0
	}
	e.lastLoss = now
	switch {
	case loss > lossHigh:
		if now.Sub(e.lastLossCut) < decreaseInterval {
			return
		}
		base := min(e.rate, e.lossRate)
		if acked := float64(e.acked.Load()); acked > 0 {
			base = min(base, acked)
		}
		e.lossRate = base * (1 - loss/2)
		e.lastLossCut = now
	case loss < lossLow:
		e.lossRate = min(e.lossRate*math.Pow(increasePerSecond, dt.Seconds()), e.rate)
	}
}
