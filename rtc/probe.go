package rtc

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/rtc/bwe"
)

// Bandwidth probing.
//
// The estimate (rtc/bwe) rises by at most 8% a second, from what it has seen
// carried: a subscriber held on a low layer, or paused, after its link
// narrowed would take tens of seconds to find the link whole again, on
// its audio or its low layer alone. So when a down-track is held below
// the layer it wants by the estimate, the allocator probes: for
// probeDuration, the connection sends, on top of its media, padding
// packets (RTP packets with nothing but padding, on a video down-track's
// own stream) up to the rate the next layer needs, paced every
// probeTick. The client's transport-cc feedback on the packets sent in
// that window says at what rate they arrived; if nearly all of them did,
// the link carries that rate, and the estimate starts again from it
// (estimator.restart), as a browser's sender does with a probe's result.
// The hold before a layer goes up still applies.
//
// A probe whose feedback shows its packets lost stops at once, so that a
// link that cannot carry more is overrun for a fraction of a second (the
// feedback's delay), not for the whole probe. What it overran is not
// counted as the link's loss by the estimate (bwe.Estimator.Probing):
// on a link that drops what exceeds its rate, a probe for a layer the
// link cannot carry would otherwise take the estimate, and the layer,
// below the one it carries, at each probe.
//
// A probe that succeeds is the proof the hold before a layer goes up
// waits for: the layer it was for goes up at once (layerGovernor.grant),
// and the next probe, for the layer after, may come after
// probeMinInterval. One that fails (packets lost, or no feedback) doubles
// the wait before the next, up to probeMaxBackoff, so that a link that
// cannot carry more is not overrun every second; the bound is short, for
// a link that was cut and is whole again is found within seconds. A layer
// a probe put up that comes down again within bweFlapWindow withholds
// that privilege: for twice the hold, then twice as long at each such
// flap up to bweMaxUpHold, a probe's success only moves the estimate, and
// the layer waits for the hold as without probing, so that a link that
// carries a probe and not the layer is not made to flap every few
// seconds. The flaps are forgotten after bweMaxUpHold without one.

const (
	probeDuration    = 500 * time.Millisecond
	probeTick        = 20 * time.Millisecond
	probeMinInterval = 500 * time.Millisecond
	probeMaxBackoff  = 4 * time.Second
	// probeResultWait is how long after a probe its feedback is awaited.
	probeResultWait = 1500 * time.Millisecond
	// probeMaxLoss is the share of a probe's packets that may be lost for
	// it to count.
	probeMaxLoss = 0.05
	// probeMinPackets: fewer packets tell nothing of a rate.
	probeMinPackets = 20
	// probeMaxPackets bounds what one probe records: 500 ms of 30 Mbps.
	probeMaxPackets = 4096
	// paddingSize is the padding of a padding packet: the most one
	// packet can carry.
	paddingSize = 255
	// maxSeqMappings bounds the sequence-number mappings a down-track
	// keeps for NACKs across its padding (seqMapping.find).
	maxSeqMappings = 64
)

// probeCluster is one probe: the packets the connection sends while it
// runs, and the client's feedback on them.
type probeCluster struct {
	target int       // bits per second, media included
	start  time.Time // when it started sending
	first  uint16    // the transport-cc sequence number of its first packet
	// sizes[i] is the size in bytes of the packet numbered first+i, set
	// as it is sent.
	sizes [probeMaxPackets]atomic.Uint32
	sent  atomic.Uint32 // packets recorded
	bytes atomic.Uint64

	mu       sync.Mutex // guards the following, the feedback's side
	stopped  time.Time  // zero while it sends
	n        uint32     // packets recorded when it stopped
	done     bool       // its result was taken
	seen     [probeMaxPackets / 64]uint64
	reported uint32 // packets the feedback reported, received or not
	received uint32
	// recvBytes are the bytes received but the first arrival's;
	// firstAt and lastAt the arrivals, on the client's clock.
	recvBytes       uint64
	firstAt, lastAt time.Duration
	firstSize       uint32
	highest         int // the highest index reported, -1 for none
}

func newProbeCluster(target int, first uint16, now time.Time) *probeCluster {
	return &probeCluster{target: target, first: first, start: now, highest: -1}
}

// record notes a packet sent while c runs, of size bytes and transport-cc
// sequence number seq.
func (c *probeCluster) record(seq uint16, size int) {
	if i := seq - c.first; i < probeMaxPackets {
		c.sizes[i].Store(uint32(size))
		c.sent.Add(1)
		c.bytes.Add(uint64(size))
	}
}

// stop ends the sending at now.
func (c *probeCluster) stop(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = now
	c.n = c.sent.Load()
}

// feedback takes what the client's transport-cc feedback says of the
// packets of c it reports: whether and when each arrived. It reports
// whether c has stopped and every packet it sent has been reported.
func (c *probeCluster) feedback(acks []bwe.Ack) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range acks {
		c.account(a.Seq-c.first, a.Received, a.Arrival)
	}
	return !c.stopped.IsZero() && c.highest >= int(c.n)-1
}

// account notes the feedback on packet i of c. c.mu is held.
func (c *probeCluster) account(i uint16, received bool, at time.Duration) {
	n := c.n
	if c.stopped.IsZero() {
		n = c.sent.Load()
	}
	// The count passes the record once the numbers wrap under a probe
	// (record takes them modulo 2^16): i is bounded by both.
	if uint32(i) >= min(n, probeMaxPackets) || c.seen[i/64]&(1<<(i%64)) != 0 {
		return
	}
	c.seen[i/64] |= 1 << (i % 64)
	c.reported++
	c.highest = max(c.highest, int(i))
	if !received {
		return
	}
	size := c.sizes[i].Load()
	switch {
	case c.received == 0:
		c.firstAt, c.lastAt, c.firstSize = at, at, size
	case at < c.firstAt:
		c.recvBytes += uint64(c.firstSize)
		c.firstAt, c.firstSize = at, size
	default:
		c.recvBytes += uint64(size)
		c.lastAt = max(c.lastAt, at)
	}
	c.received++
}

// losing reports whether the feedback so far shows c's packets lost
// beyond what it may lose: the probe has failed, and stops at once
// rather than overrun the link for the rest of its time, its loss taking
// the estimate, and the layers, down.
func (c *probeCluster) losing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reported >= probeMinPackets/2 && 1-float64(c.received)/float64(c.reported) > 2*probeMaxLoss
}

// result returns the rate c shows the link carries, in bits per second,
// or false when it shows nothing: too few packets, too many lost, or
// arrivals too close together to tell a rate from (a busy client may read
// a run of packets late, at once).
// It is taken once: later calls report false.
func (c *probeCluster) result() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done || c.stopped.IsZero() {
		return 0, false
	}
	c.done = true
	if c.n < probeMinPackets || c.reported < c.n/2 || c.received < 2 {
		return 0, false
	}
	if 1-float64(c.received)/float64(c.reported) > probeMaxLoss {
		return 0, false
	}
	span := c.lastAt - c.firstAt
	sending := c.stopped.Sub(c.start)
	if span < probeDuration/4 || sending <= 0 {
		return 0, false
	}
	recv := float64(c.recvBytes) * 8 / span.Seconds()
	sent := float64(c.bytes.Load()) * 8 / sending.Seconds()
	return int(min(recv, sent)), true
}

// prober runs a Peer's probes: the padding's pace, and what becomes of
// each. Its ticks run on the clock's timer.
type prober struct {
	est     *estimator
	clk     clock.Clock
	metrics *Metrics
	// fail is told of a panic recovered in a tick, after which no probe
	// runs; nil to only stop probing.
	fail func(error)

	mu      sync.Mutex // guards the following
	closed  bool
	timer   clock.Timer
	c       *probeCluster // the probe sending or awaiting its feedback
	dt      *DownTrack    // where its padding goes
	until   time.Time     // when it stops sending
	next    time.Time     // no probe starts before
	backoff time.Duration
	okAt    time.Time // the last probe that succeeded
	flapAt  time.Time // the last layer a probe put up that came down
	// noGrant: until then a success moves no layer; noGrantFor is how
	// long the last flap withheld it.
	noGrant    time.Time
	noGrantFor time.Duration
	hdr        rtp.Header // the padding packets' header, reused
}

func newProber(est *estimator, clk clock.Clock, m *Metrics) *prober {
	return &prober{est: est, clk: clk, metrics: m, backoff: probeMinInterval}
}

// probe starts a probe at target bits per second, its padding sent on
// dt, unless one runs or the last one was too recent.
func (p *prober) probe(now time.Time, dt *DownTrack, target int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.est == nil || p.c != nil || now.Before(p.next) {
		return
	}
	c := p.est.startProbe(target, now)
	if c == nil {
		return
	}
	p.c, p.dt = c, dt
	p.until = now.Add(probeDuration)
	p.timer = p.clk.AfterFunc(probeTick, p.tick)
}

// penalize tells p that a layer went down: if a probe put it up within
// bweFlapWindow, successes move no layer for a while.
func (p *prober) penalize(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.okAt.IsZero() && now.Sub(p.okAt) < bweFlapWindow {
		if now.Sub(p.flapAt) >= bweMaxUpHold {
			p.noGrantFor = 0 // the last flap is forgotten
		}
		p.okAt, p.flapAt = time.Time{}, now
		p.noGrantFor = min(max(2*p.noGrantFor, 2*bweUpHold), bweMaxUpHold)
		p.noGrant = now.Add(p.noGrantFor)
	}
}

// tick sends the padding due: what the connection's media has not sent
// of the probe's rate so far.
func (p *prober) tick() {
	var failed error
	defer func() { // once p.mu is released: fail takes the allocator's lock
		if failed != nil && p.fail != nil {
			p.fail(failed)
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			failed = fmt.Errorf("%w: probe: %v", ErrReadLoopPanic, r)
			p.closeLocked()
		}
	}()
	if p.closed || p.c == nil || p.timer == nil {
		return
	}
	now := p.clk.Now()
	if !now.Before(p.until) || p.c.losing() {
		p.timer = nil
		p.est.stopProbe(p.c, now)
		return
	}
	// A late tick, or one that found no frame boundary, sends at most
	// a few ticks' worth, so that padding never comes in a lump.
	rate := float64(p.c.target)
	owed := rate*now.Sub(p.c.start).Seconds() - float64(p.c.bytes.Load()*8)
	owed = min(owed, 3*rate*probeTick.Seconds())
	if n := int(owed / (paddingSize * 8)); n > 0 {
		p.metrics.countPadding(p.dt.sendPadding(n, &p.hdr))
	}
	p.timer = p.clk.AfterFunc(probeTick, p.tick)
}

// settle takes the result of the probe that has stopped sending, once
// the feedback on it is complete or overdue, and sets when the next may
// start. It returns the down-track the probe was for if it succeeded and
// may move its layer.
func (p *prober) settle(now time.Time) (*DownTrack, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, dt := p.c, p.dt
	if c == nil || p.timer != nil {
		return nil, false
	}
	c.mu.Lock()
	stopped, complete := c.stopped, !c.stopped.IsZero() && c.highest >= int(c.n)-1
	c.mu.Unlock()
	if stopped.IsZero() || (!complete && now.Sub(stopped) < probeResultWait) {
		return nil, false
	}
	ok := p.est.finishProbe(c)
	p.c, p.dt = nil, nil
	p.metrics.countProbe(ok)
	if !ok {
		p.backoff = min(2*p.backoff, probeMaxBackoff)
		p.next = now.Add(p.backoff)
		return nil, false
	}
	p.backoff = probeMinInterval
	p.next = now.Add(probeMinInterval)
	if now.Before(p.noGrant) {
		return nil, false
	}
	p.okAt = now
	return dt, true
}

// close stops the probing.
func (p *prober) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}

// closeLocked is close with p.mu held.
func (p *prober) closeLocked() {
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if p.c != nil && p.est != nil {
		p.est.stopProbe(p.c, p.clk.Now())
	}
}

// sendPadding writes up to n padding packets (paddingSize bytes of
// padding, no payload) on dt's stream, numbered on from the last packet
// sent and stamped with its timestamp, and returns how many went out.
// Only between frames: a receiver takes a frame from consecutive sequence
// numbers. A down-track paused for bandwidth is between frames until it
// resumes on a keyframe, even one paused before its first packet; one its
// subscriber paused gets nothing.
func (dt *DownTrack) sendPadding(n int, hdr *rtp.Header) int {
	dt.wmu.Lock()
	defer dt.wmu.Unlock()
	w := &dt.w
	b := dt.bound.Load()
	// A down-track its subscriber paused is sent nothing, padding
	// included: a probe started on it before the pause runs on.
	if w.stopped || b == nil || !dt.ready.Load() || dt.paused.Load() {
		return 0
	}
	if !w.rw.started {
		// Paused for bandwidth before its first packet (the estimate fell
		// while the connection carried only audio): without padding no
		// probe could ever lift the pause, so the padding starts the
		// stream, and the media, once resumed, continues it. A stream not
		// paused starts with its media.
		if !dt.bwePaused.Load() {
			return 0
		}
		w.rw.startEmpty()
		w.lastSent = time.Now()
	}
	if !dt.bwePaused.Load() && w.src != nil && !w.hdr.Marker {
		return 0
	}
	from := w.rw.lastSeq + 1
	sent := 0
	for range n {
		hdr.Version = 2
		hdr.Padding, hdr.PaddingSize = true, paddingSize
		hdr.Marker = false
		hdr.PayloadType = b.pt
		hdr.SequenceNumber = w.rw.lastSeq + 1
		hdr.Timestamp = w.rw.lastTS
		hdr.SSRC = b.ssrc
		if _, err := b.writer.WriteRTP(hdr, nil); err != nil {
			break
		}
		w.rw.lastSeq++
		w.rw.seqOff++
		sent++
	}
	if sent > 0 {
		if m := dt.mapping.Load(); m != nil {
			dt.mapping.Store(m.after(w.rw.seqOff, from, w.rw.lastSeq+1))
		}
	}
	return sent
}

// after returns the mapping that follows m once padding took the
// subscriber's sequence numbers from padFrom to firstOut (exclusive):
// the source's packets are numbered seqOff on from firstOut. m stays
// reachable for the NACKs of what was sent before, up to maxSeqMappings.
func (m *seqMapping) after(seqOff, padFrom, firstOut uint16) *seqMapping {
	next := *m
	next.seqOff, next.firstOut = seqOff, firstOut
	next.prev, next.prevEnd, next.depth = m, padFrom, m.depth+1
	if next.depth >= maxSeqMappings {
		// Forget the older ones: a NACK for those comes too late anyway.
		next.prev, next.depth = nil, 0
	}
	return &next
}

// find returns the mapping that numbered seq in the subscriber's stream,
// nil for a padding packet or one sent before the current source.
func (m *seqMapping) find(seq uint16) *seqMapping {
	for m != nil {
		if seq-m.firstOut < 0x8000 {
			return m
		}
		if m.prev == nil || seq-m.prevEnd < 0x8000 {
			return nil
		}
		m = m.prev
	}
	return nil
}
