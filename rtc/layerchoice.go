package rtc

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/internal/clock"
)

// Layer choice from a connection's bandwidth estimate. Every
// bweCheckInterval a Peer's allocator shares its estimate among its
// down-tracks: audio first (what it sends is taken off the estimate),
// then each video down-track its lowest layer, by priority (the larger
// the size its subscriber renders, the higher the layer it may take, the
// earlier), then, in the same order, each as far up toward its ceiling
// (the layer the rendered size, the subscriber's cap and the room's
// quality allow) as what is left pays for. A down-track whose lowest
// layer does not fit is paused: nothing of it is sent, and its subscriber
// is told (TrackPausedEvent).
//
// A down-track's layer goes down at once when the estimate no longer pays
// for it, and up only once the estimate has paid for the higher layer
// with a margin (bweUpMargin) for bweUpHold in a row; an up that is
// followed by a down within bweFlapWindow doubles that hold, up to
// bweMaxUpHold, so that a link that cannot carry a layer is not made to
// try it every few seconds. A subscriber whose layer was not held down by
// the estimate (it had its ceiling) follows a higher ceiling at once; a
// start layer under the ceiling counts as held down.
// While the estimate holds a down-track below its ceiling, the allocator
// probes the link for the next layer (probe.go); a probe the link carries
// moves that layer up without the hold.
//
// The start. A new video down-track starts on the highest layer the
// estimate pays for (bweStart): the connection's initial estimate
// (bweInitialBitrate, which pays for a middle layer), or, when the
// connection has an estimate already, what its other tracks leave of it.
// A layer whose rate is not measured yet is not taken to fit, so a
// subscriber of a camera that has just started starts on its lowest
// layer. So a poor link never gets the top layer's keyframe, which a
// start on the ceiling would flood it with before any feedback came. For
// the same reason the start layer goes down when its rate rises over the
// start's budget, but never up: only the estimate moves it up.
// While a down-track starts, the checks come every bweStartCheckInterval:
// the first feedback is acted on at once, and the probe for the next
// layer (probe.go) is sent then, so that a link that carries it moves up
// within about a second, not after the hold. A paused down-track, and one
// that has not sent bweStartChecksFor after it was added (a silent
// camera), do not hold the checks at that pace. A client that sends no
// feedback (no transport-cc, no REMB) keeps its start layer for
// bweStartWait of media, then gets its ceiling, as without an estimate.

const (
	bweCheckInterval = 500 * time.Millisecond
	// bweStartCheckInterval is the checks' interval while a video
	// down-track starts: until it has sent for bweStartWait.
	bweStartCheckInterval = 100 * time.Millisecond
	bweStartWait          = 3 * time.Second
	// bweStartChecksFor ends the start's frequent checks this long after
	// a down-track is added, whether or not it has sent since: one that
	// never sends would otherwise keep them forever.
	bweStartChecksFor = 2 * bweStartWait
	bweUpMargin       = 1.25
	bweUpHold         = 3 * time.Second
	bweMaxUpHold      = 16 * time.Second
	bweFlapWindow     = 10 * time.Second
)

// PauseReasonBandwidth is the reason of a TrackPausedEvent sent because
// the estimate does not pay for the track's lowest layer.
const PauseReasonBandwidth = "bandwidth"

// TrackPausedEvent tells the owner that the Peer stopped (Paused) or
// started again sending the client the track of TrackID (in the stream
// StreamID), for Reason.
type TrackPausedEvent struct {
	peerEvent
	TrackID, StreamID string
	Paused            bool
	Reason            string
}

// layerGovernor applies the hysteresis to one down-track's layer.
type layerGovernor struct {
	// cur is the layer allowed, -1 for paused.
	cur int
	// limited is set when cur is below the ceiling it was chosen under:
	// the estimate holds it down.
	limited          bool
	upSince          time.Time // since when a higher layer has fit; zero if not
	hold             time.Duration
	lastUp, lastDown time.Time
	// granted: a probe showed the link carries the next layer, which
	// may be taken without the hold (probe.go).
	granted bool
}

func newLayerGovernor(ceiling int) layerGovernor {
	return layerGovernor{cur: ceiling, hold: bweUpHold}
}

// step moves the governor at now, given the subscriber's ceiling, the
// highest layer the estimate pays for (down) and the highest it pays for
// with the margin (up), each -1 when not even the lowest fits. It
// returns the layer now allowed.
func (g *layerGovernor) step(now time.Time, ceiling, down, up int) int {
	if g.hold > bweUpHold && now.Sub(g.lastDown) >= bweMaxUpHold {
		g.hold = bweUpHold // calm for long enough: the flaps are forgotten
	}
	granted := g.granted
	g.granted = false
	switch {
	case granted && down > g.cur:
		g.cur++ // the layer probed for
		g.upSince = time.Time{}
		g.lastUp = now
	case down < g.cur:
		g.cur = down
		g.upSince = time.Time{}
		if !g.lastUp.IsZero() && now.Sub(g.lastUp) < bweFlapWindow {
			g.hold = min(2*g.hold, bweMaxUpHold)
		}
		g.lastDown = now
	case up > g.cur && !g.limited:
		g.cur = up // a new ceiling, not a recovery
		g.upSince = time.Time{}
	case up > g.cur:
		if g.upSince.IsZero() {
			g.upSince = now
		}
		if now.Sub(g.upSince) >= g.hold {
			g.cur = up
			g.upSince = time.Time{}
			g.lastUp = now
		}
	default:
		g.upSince = time.Time{}
	}
	g.limited = g.cur < ceiling
	return g.cur
}

// allocItem is a video down-track as allocate sees it: the rates of its
// layers, lowest first, up to its ceiling (a rate of 0 is not known yet
// and costs nothing). A pinned item is a track sent as one stream: it
// always gets its one layer, at its cost, for there is nothing lower to
// fall back to, and without sending it nothing would show whether the
// link carries it.
type allocItem struct {
	rates  []uint64
	pinned bool
}

// allocate shares budget (bits per second) among items, in priority
// order. It returns the layer each item gets, -1 for those whose lowest
// does not fit.
func allocate(budget int64, items []allocItem, out []int) []int {
	out = out[:0]
	left := budget
	for _, it := range items {
		if len(it.rates) > 0 && (it.pinned || int64(it.rates[0]) <= left) {
			left -= int64(it.rates[0])
			out = append(out, 0)
		} else {
			out = append(out, -1)
		}
	}
	for i, it := range items {
		rates := it.rates
		if out[i] < 0 {
			continue
		}
		for l := out[i] + 1; l < len(rates); l++ {
			extra := int64(rates[l]) - int64(rates[out[i]])
			if extra > left {
				break
			}
			left -= extra
			out[i] = l
		}
	}
	return out
}

// allocator is a Peer's layer choice; see the comment above. Its checks
// run on the clock's timer; add, remove and close are called from the
// Peer's owner.
type allocator struct {
	est     *estimator
	clk     clock.Clock
	metrics *Metrics
	probe   *prober

	mu        sync.Mutex // guards the following
	notify    func(PeerEvent)
	subs      map[*DownTrack]*allocState
	timer     clock.Timer
	closed    bool
	lastCheck time.Time
	estimate  int
	source    EstimateSource
	// lastFeedbacks is the estimator's count of feedback at the last
	// check.
	lastFeedbacks uint64
}

// allocState is what the allocator keeps of one down-track.
type allocState struct {
	gov    layerGovernor
	capped bool // gov's layer is applied
	sent   rateMeter
	src    rateMeter // the source's, for a down-track with no Track
	// peak is what each layer has cost lately: its highest rate, less
	// bwePeakDecay a second since (probeFor).
	peak []uint64
	// sendingAt is the check that first saw the down-track send; zero
	// before.
	sendingAt time.Time
	// addedAt is when the down-track was added.
	addedAt time.Time
}

// bweRateWindow is the shortest window over which a down-track's rate is
// measured: over the start's 100 ms checks a keyframe's burst would read
// as several times the stream's rate.
const bweRateWindow = bweCheckInterval

// bwePeakDecay is the share of a layer's peak rate forgotten a second.
const bwePeakDecay = 0.19 // a tenth every bweCheckInterval

// rateMeter measures a byte counter's rate, in bits per second, over
// windows of at least bweRateWindow.
type rateMeter struct {
	bytes uint64    // the counter at the window's start
	at    time.Time // the window's start; zero before the first reading
	rate  uint64
}

// update reads the counter, b, at now; the rate changes once the window
// is long enough.
func (m *rateMeter) update(now time.Time, b uint64) {
	// A counter below the window's start is another one (a down-track's
	// new source): its window starts here, and the last rate stands
	// until it is measured, rather than the difference wrapping to an
	// absurd rate.
	if m.at.IsZero() || b < m.bytes {
		m.bytes, m.at = b, now
		return
	}
	if w := now.Sub(m.at); w >= bweRateWindow {
		m.rate = uint64(float64(b-m.bytes) * 8 / w.Seconds())
		m.bytes, m.at = b, now
	}
}

// starting reports whether st's down-track has not yet sent, or not for
// bweStartWait, at now.
func (st *allocState) starting(now time.Time) bool {
	return st.sendingAt.IsZero() || now.Sub(st.sendingAt) < bweStartWait
}

// fastChecks reports whether dt, whose state is st, has the checks come
// every bweStartCheckInterval at now: a video down-track of a Track in
// its start, sent (not paused), and added less than bweStartChecksFor
// ago. Its start layer itself still holds after that while it has not
// sent (starting): its layers' rates are not measured.
func (st *allocState) fastChecks(dt *DownTrack, now time.Time) bool {
	return dt.kind == webrtc.RTPCodecTypeVideo && dt.track.Load() != nil &&
		!dt.paused.Load() && !dt.bwePaused.Load() &&
		st.starting(now) && now.Sub(st.addedAt) < bweStartChecksFor
}

func newAllocator(est *estimator, clk clock.Clock, m *Metrics) *allocator {
	a := &allocator{est: est, clk: clk, metrics: m, probe: newProber(est, clk, m), subs: make(map[*DownTrack]*allocState)}
	a.probe.fail = a.fail
	return a
}

// setNotify sets where pauses and resumes are told.
func (a *allocator) setNotify(notify func(PeerEvent)) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.notify = notify
	a.mu.Unlock()
}

// add has the allocator share the estimate with dt too.
func (a *allocator) add(dt *DownTrack) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if dt.kind == webrtc.RTPCodecTypeVideo {
		dt.bweStart.Store(a.startBudget())
	}
	now := a.clk.Now()
	a.subs[dt] = &allocState{gov: newLayerGovernor(-1), sent: rateMeter{bytes: dt.ctr.bytes.Load(), at: now}, addedAt: now}
	if a.timer == nil {
		a.lastCheck = now
		a.timer = a.clk.AfterFunc(bweStartCheckInterval, a.check)
	}
}

// startBudget is the rate a new down-track's first layer must fit: what
// the estimate leaves of what the connection sends, or the initial
// estimate before there is one. a.mu is held.
func (a *allocator) startBudget() int64 {
	if a.source == EstimateNone {
		return bweInitialBitrate
	}
	left := int64(a.estimate)
	for _, st := range a.subs {
		left -= int64(st.sent.rate)
	}
	return max(left, 1) // 1: the lowest layer, which always fits
}

// remove forgets dt; a paused dt counts as paused no longer.
func (a *allocator) remove(dt *DownTrack) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.subs[dt]; ok {
		delete(a.subs, dt)
		if dt.bwePaused.Load() {
			a.metrics.addBandwidthPaused(-1)
		}
	}
}

// fail stops the checks after a panic on the allocator's timer or the
// probe's, and tells the owner (FailureEvent), which closes the Peer: a
// panic there must end one connection, not the server.
func (a *allocator) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failLocked(err)
}

// failLocked is fail with a.mu held.
func (a *allocator) failLocked(err error) {
	if a.closed {
		return
	}
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
	a.probe.close()
	if a.notify != nil {
		a.notify(FailureEvent{Err: err})
	}
}

// close stops the checks.
func (a *allocator) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
	}
	a.probe.close()
	for dt := range a.subs {
		if dt.bwePaused.Load() {
			a.metrics.addBandwidthPaused(-1)
		}
	}
	clear(a.subs)
}

// Estimate returns the last estimate the allocator shared and its source.
func (a *allocator) Estimate() (int, EstimateSource) {
	if a == nil {
		return 0, EstimateNone
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.estimate, a.source
}

// videoItem is a video down-track in the allocation.
type videoItem struct {
	dt      *DownTrack
	st      *allocState
	alloc   allocItem
	ceiling int
	area    int
}

func (a *allocator) check() {
	a.mu.Lock()
	defer a.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			a.failLocked(fmt.Errorf("%w: bandwidth check: %v", ErrReadLoopPanic, r))
		}
	}()
	if a.closed {
		return
	}
	if len(a.subs) == 0 {
		a.timer = nil // the next add starts the checks again
		a.estimate, a.source = 0, EstimateNone
		a.est.setActive(false)
		return
	}
	now := a.clk.Now()
	elapsed := now.Sub(a.lastCheck)
	a.lastCheck = now

	var audio int64
	var items []videoItem
	interval := bweCheckInterval
	for dt, st := range a.subs {
		b := dt.ctr.bytes.Load()
		st.sent.update(now, b)
		if b > 0 && st.sendingAt.IsZero() {
			st.sendingAt = now
		}
		if st.fastChecks(dt, now) {
			interval = bweStartCheckInterval
		}
		if dt.paused.Load() {
			continue // its subscriber paused it: it costs nothing
		}
		if dt.kind != webrtc.RTPCodecTypeVideo {
			audio += int64(st.sent.rate)
			continue
		}
		it := videoItem{dt: dt, st: st}
		if l := dt.limits.Load(); l != nil {
			it.area = l.Width * l.Height
		}
		if t := dt.track.Load(); t != nil {
			it.alloc.rates, it.ceiling, it.alloc.pinned = t.layerCosts(dt)
		} else if s := dt.source.Load(); s != nil {
			st.src.update(now, s.ctr.bytes.Load())
			it.alloc = allocItem{rates: []uint64{st.src.rate}, pinned: true}
		}
		if len(it.alloc.rates) > 0 {
			st.peak = peakRates(st.peak, it.alloc.rates, elapsed)
			items = append(items, it)
		}
	}
	a.timer = a.clk.AfterFunc(interval, a.check)
	// The estimate runs only while there is a layer to choose.
	a.est.setActive(slices.ContainsFunc(items, func(it videoItem) bool { return !it.alloc.pinned }))
	// A down-track on its start layer keeps it while the rates of its
	// layers are not all measured: nothing says yet what the estimate
	// pays for (allocate takes an unknown rate as free).
	items = slices.DeleteFunc(items, func(it videoItem) bool {
		return it.dt.bweStart.Load() > 0 && it.st.starting(now) && slices.Contains(it.alloc.rates, 0)
	})
	est, src := a.est.Estimate(now)
	a.estimate, a.source = est, src
	if src != EstimateNone {
		a.metrics.observeEstimate(est)
	}
	budget := int64(est) - audio
	if dt, ok := a.probe.settle(now); ok {
		if st := a.subs[dt]; st != nil && st.capped {
			st.gov.granted = true
		}
		est, src = a.est.Estimate(now) // started again from the probe's
		a.estimate, a.source = est, src
		budget = int64(est) - audio
	}
	if src == EstimateNone {
		for _, it := range items {
			if it.dt.bweStart.Load() > 0 && it.st.starting(now) {
				continue // the start layer holds until an estimate comes
			}
			a.apply(it.dt, it.st, -1, false)
			it.st.gov = newLayerGovernor(it.ceiling)
		}
		return
	}
	slices.SortFunc(items, func(x, y videoItem) int {
		if c := cmp.Compare(y.area, x.area); c != 0 {
			return c
		}
		if c := cmp.Compare(y.ceiling, x.ceiling); c != 0 {
			return c
		}
		return cmp.Compare(x.dt.id, y.dt.id)
	})
	alloc := make([]allocItem, len(items))
	for i, it := range items {
		alloc[i] = it.alloc
	}
	down := allocate(budget, alloc, nil)
	up := allocate(int64(float64(budget)/bweUpMargin), alloc, nil)
	// No feedback since the last check: the estimate has learnt nothing,
	// and cannot while nothing is sent (every video track paused and no
	// audio). Nothing goes down on it, and a paused track is tried again
	// once its hold has passed: what it sends brings feedback.
	fb := a.est.feedbackCount()
	stale := src == EstimateTWCC && fb == a.lastFeedbacks
	a.lastFeedbacks = fb
	layers := make([]int, len(items))
	for i, it := range items {
		if !it.st.capped {
			// From the layer it has: a stale check keeps a start layer,
			// as it keeps any other.
			cur := it.ceiling
			if it.dt.bweStart.Load() > 0 {
				if start := it.dt.startTarget(); start >= 0 {
					cur = min(cur, start)
				}
			}
			it.st.gov = newLayerGovernor(cur)
			// A start under the ceiling was held there by its budget,
			// a guess: it goes up as a layer the estimate held down,
			// after the hold or a probe, not at once as a new ceiling.
			it.st.gov.limited = cur < it.ceiling
		}
		if stale {
			// Held where it is, but never above its ceiling: one that
			// fell since (the subscriber asked for less) costs only the
			// layers up to it.
			down[i] = max(down[i], min(it.st.gov.cur, it.ceiling))
			up[i] = max(up[i], 0)
		}
		prev := it.st.gov.cur
		layers[i] = it.st.gov.step(now, it.ceiling, down[i], up[i])
		if layers[i] < prev {
			a.probe.penalize(now)
		}
		// A track sent as one stream has no layer to cap: it is neither
		// capped nor counted as moved.
		a.apply(it.dt, it.st, layers[i], !it.alloc.pinned)
	}
	if src == EstimateTWCC {
		a.probeFor(now, est, audio, items, layers)
	}
}

// peakRates moves peak, each layer's recent highest rate, to rates, the
// layers' rates now, elapsed after it last moved. The decay is by time,
// not by check: the start's checks come five times as often.
func peakRates(peak, rates []uint64, elapsed time.Duration) []uint64 {
	if len(peak) != len(rates) {
		peak = make([]uint64, len(rates))
	}
	keep := math.Pow(1-bwePeakDecay, elapsed.Seconds())
	for i, r := range rates {
		peak[i] = max(r, uint64(float64(peak[i])*keep))
	}
	return peak
}

// probeFor probes the link (probe.go) when the estimate holds a video
// down-track below its ceiling: up to the rate with which the first of
// them in priority order would go one layer up, the others keeping
// theirs (layers). The layers cost their recent peaks: a probe's success
// moves a layer up at once, and a layer that costs more than probed
// would come down again. a.mu is held.
func (a *allocator) probeFor(now time.Time, est int, audio int64, items []videoItem, layers []int) {
	cost := func(it videoItem, layer int) int64 {
		if layer < 0 {
			return 0
		}
		return int64(it.st.peak[layer])
	}
	sum := audio
	want := -1
	for i, it := range items {
		sum += cost(it, layers[i])
		if want < 0 && layers[i] < it.ceiling {
			want = i
		}
	}
	if want < 0 {
		return
	}
	it := items[want]
	need := float64(sum+cost(it, layers[want]+1)-cost(it, layers[want])) * bweUpMargin
	if need <= float64(est) {
		return // the estimate pays: the hold decides
	}
	a.probe.probe(now, it.dt, int(need))
}

// apply caps dt at layer (paused when -1), or lifts its cap when capped
// is false, counting the change and telling the owner of a pause or a
// resume. It ends dt's start: the first cap replaces its start layer,
// and counts as a switch only if it moves dt off that layer. a.mu is
// held.
func (a *allocator) apply(dt *DownTrack, st *allocState, layer int, capped bool) {
	starting := dt.bweStart.Load() > 0
	prev, wasPaused := dt.bandwidthCap()
	paused := capped && layer < 0
	if !capped {
		layer = LayerAuto
	}
	st.capped = capped
	if paused {
		layer = 0
	}
	if prev == layer && wasPaused == paused && !starting {
		return
	}
	switch {
	case paused && !wasPaused:
		a.metrics.countBandwidthSwitch(false)
		a.metrics.addBandwidthPaused(1)
	case wasPaused && !paused:
		a.metrics.countBandwidthSwitch(true)
		a.metrics.addBandwidthPaused(-1)
	case starting:
		// From the start layer: a cap above or below it is a switch;
		// the start lifted for want of an estimate is not counted.
		if from := dt.startTarget(); capped && layer != from {
			a.metrics.countBandwidthSwitch(layer > from)
		}
	case prev != LayerAuto && (layer == LayerAuto || layer > prev):
		a.metrics.countBandwidthSwitch(true)
	case layer != LayerAuto && (prev == LayerAuto || layer < prev):
		a.metrics.countBandwidthSwitch(false)
	}
	dt.setBandwidthCap(layer, paused)
	if paused != wasPaused && a.notify != nil {
		a.notify(TrackPausedEvent{TrackID: dt.id, StreamID: dt.streamID, Paused: paused, Reason: PauseReasonBandwidth})
	}
}

// layerCosts returns the rates of t's layers up to the one dt may have
// without the bandwidth cap (its ceiling), lowest first, that layer's
// index, and whether t is sent as one stream. A layer that stopped costs
// what it cost while it arrived.
func (t *Track) layerCosts(dt *DownTrack) ([]uint64, int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ceiling := layerIndex(t.ceilingOf(dt), len(t.layers))
	rates := make([]uint64, ceiling+1)
	for i := range rates {
		l := t.layers[i]
		rates[i] = l.bitrate
		if rates[i] == 0 {
			rates[i] = l.rate
		}
	}
	return rates, ceiling, len(t.layers) == 1
}

// bandwidthLimit lowers target, a layer index or LayerAuto, to dt's
// bandwidth cap, or to its start layer while it has none. t.mu is held.
func (t *Track) bandwidthLimit(dt *DownTrack, target int) int {
	if b := dt.bweStart.Load(); b > 0 && dt.bweCap.Load() == 0 {
		return min(layerIndex(target, len(t.layers)), t.startLayerOf(dt, b))
	}
	return t.estimateLimit(dt, target)
}

// startLayerOf is dt's start layer for budget: the highest layer that fits
// it (startLayer), but never above one dt's start took before. The rates
// move with what the publisher sends, and a top layer that looks cheap for
// a moment (a slowed publisher, a still scene) would otherwise move a
// start up, and send a poor link the top layer's keyframe before any
// feedback could say it does not carry it. Up is the estimate's to
// decide. t.mu is held.
func (t *Track) startLayerOf(dt *DownTrack, budget int64) int {
	l := t.startLayer(budget)
	if top := int(dt.bweStartTop.Load()) - 1; top >= 0 && top < l {
		return top
	}
	dt.bweStartTop.Store(int32(l + 1))
	return l
}

// estimateLimit lowers target, a layer index or LayerAuto, to dt's
// bandwidth cap, if it has one. t.mu is held.
func (t *Track) estimateLimit(dt *DownTrack, target int) int {
	if c := int(dt.bweCap.Load()) - 1; c >= 0 {
		return min(layerIndex(target, len(t.layers)), c)
	}
	return target
}

// startTarget is the layer dt's start caps it at; LayerAuto when it
// receives no Track.
func (dt *DownTrack) startTarget() int {
	t := dt.track.Load()
	if t == nil {
		return LayerAuto
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bandwidthLimit(dt, t.ceilingOf(dt))
}

// startLayer is the highest layer whose measured rate is at most budget
// bits per second: a layer whose rate is not known yet is taken not to
// fit, and the lowest always does. t.mu is held.
func (t *Track) startLayer(budget int64) int {
	start := 0
	for i := 1; i < len(t.layers); i++ {
		r := t.layers[i].bitrate
		if r == 0 {
			r = t.layers[i].rate
		}
		if r == 0 || int64(r) > budget {
			break
		}
		start = i
	}
	return start
}

// bandwidthCap returns dt's bandwidth cap (LayerAuto for none) and
// whether it is paused.
func (dt *DownTrack) bandwidthCap() (int, bool) {
	return int(dt.bweCap.Load()) - 1, dt.bwePaused.Load()
}

// setBandwidthCap caps the layer dt receives (LayerAuto for no cap) and
// pauses or resumes it. A resumed down-track starts again on a keyframe,
// its stream continuous.
func (dt *DownTrack) setBandwidthCap(layer int, paused bool) {
	if layer < 0 {
		layer = LayerAuto
	}
	dt.bweCap.Store(int32(layer + 1))
	dt.bweStart.Store(0)
	if paused {
		dt.bwePaused.Store(true)
	} else {
		dt.resume(&dt.bwePaused)
	}
	if t := dt.track.Load(); t != nil {
		t.reselect(dt)
	}
}

// BandwidthPaused reports whether dt is paused because the estimate does
// not pay for its lowest layer.
func (dt *DownTrack) BandwidthPaused() bool { return dt.bwePaused.Load() }

// bandwidthMetrics are the layer choice's figures in Metrics.
type bandwidthMetrics struct {
	up, down  atomic.Uint64
	paused    atomic.Int64
	estimates prometheus.Histogram
	// probes that showed the link carries their rate, and the others;
	// padding packets sent.
	probesOK, probesFailed, padding atomic.Uint64

	switches, pausedDesc, probesDesc, paddingDesc *prometheus.Desc
}

func newBandwidthMetrics(d func(name, help string, labels ...string) *prometheus.Desc) bandwidthMetrics {
	return bandwidthMetrics{
		estimates: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "troupe_rtc_bandwidth_estimate_bps",
			Help: "Subscribers' bandwidth estimates, one observation per connection per check.",
			// 50 kbps to 25.6 Mbps.
			Buckets: prometheus.ExponentialBuckets(50_000, 2, 10),
		}),
		switches:    d("bandwidth_layer_changes_total", "Changes of the layer subscribers' bandwidth estimates allow, by direction (a pause counts down, a resume up).", "direction"),
		pausedDesc:  d("bandwidth_paused_tracks", "Subscribers' video down-tracks paused because their estimate pays for no layer."),
		probesDesc:  d("bandwidth_probes_total", "Probes of subscribers' links for a higher layer, by result (ok: the link carried the rate probed).", "result"),
		paddingDesc: d("bandwidth_padding_packets_total", "Padding packets sent to subscribers to probe their links."),
	}
}

func (b *bandwidthMetrics) describe(ch chan<- *prometheus.Desc) {
	b.estimates.Describe(ch)
	ch <- b.switches
	ch <- b.pausedDesc
	ch <- b.probesDesc
	ch <- b.paddingDesc
}

func (b *bandwidthMetrics) collect(ch chan<- prometheus.Metric) {
	b.estimates.Collect(ch)
	ch <- prometheus.MustNewConstMetric(b.switches, prometheus.CounterValue, float64(b.up.Load()), "up")
	ch <- prometheus.MustNewConstMetric(b.switches, prometheus.CounterValue, float64(b.down.Load()), "down")
	ch <- prometheus.MustNewConstMetric(b.pausedDesc, prometheus.GaugeValue, float64(b.paused.Load()))
	ch <- prometheus.MustNewConstMetric(b.probesDesc, prometheus.CounterValue, float64(b.probesOK.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(b.probesDesc, prometheus.CounterValue, float64(b.probesFailed.Load()), "failed")
	ch <- prometheus.MustNewConstMetric(b.paddingDesc, prometheus.CounterValue, float64(b.padding.Load()))
}

func (m *Metrics) countProbe(ok bool) {
	switch {
	case m == nil:
	case ok:
		m.bwe.probesOK.Add(1)
	default:
		m.bwe.probesFailed.Add(1)
	}
}

func (m *Metrics) countPadding(n int) {
	if m != nil && n > 0 {
		m.bwe.padding.Add(uint64(n))
	}
}

func (m *Metrics) observeEstimate(bps int) {
	if m != nil {
		m.bwe.estimates.Observe(float64(bps))
	}
}

func (m *Metrics) countBandwidthSwitch(up bool) {
	switch {
	case m == nil:
	case up:
		m.bwe.up.Add(1)
	default:
		m.bwe.down.Add(1)
	}
}

func (m *Metrics) addBandwidthPaused(n int64) {
	if m != nil {
		m.bwe.paused.Add(n)
	}
}

// Bandwidth is a Peer's bandwidth estimate, as last shared among its
// down-tracks.
type Bandwidth struct {
	// Estimate is in bits per second; 0 with Source EstimateNone.
	Estimate int
	Source   EstimateSource
}

// Bandwidth returns the connection's estimate, as last shared among its
// down-tracks. It is safe for concurrent use.
func (p *Peer) Bandwidth() Bandwidth {
	est, src := p.bwe.Estimate()
	return Bandwidth{Estimate: est, Source: src}
}
