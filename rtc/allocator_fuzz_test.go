package rtc

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/bwe"
)

// allocFuzzOps bounds the operations one fuzz input runs: each feeds
// frames or runs checks, and the fixture's read loops are real.
const allocFuzzOps = 48

// allocFuzzRates are the estimates the fuzz input picks from, in bits per
// second: below, between and above the fixture's layers (about 600 bps,
// 10 kbps and 39 kbps).
var allocFuzzRates = [...]int{1, 400, 700, 9_000, 12_000, 45_000, 60_000, 5_000_000}

// allocFuzzSub is one down-track the fuzz input drives.
type allocFuzzSub struct {
	dt   *DownTrack
	sink *memContext
	// pausedAt is the sink's count when its subscriber paused it (the
	// writes in flight done), -1 while it is not paused.
	pausedAt int
}

// allocFuzzFixture is a Peer's allocator over down-tracks of a three-layer
// simulcast track, of a track sent as one stream, and of a Forwarder
// without a Track, on the fixture's manual clock, with an estimate the
// input sets by hand.
type allocFuzzFixture struct {
	t      *testing.T
	fx     *simulcastFixture
	single *Track
	// the single-stream track's one Forwarder, the plain one and an
	// audio one, and their inputs
	singleFwd, plain, audio *Forwarder
	input, plainIn, audioIn *layerTrack
	seq                     uint16
	fed                     [3]uint64 // packets sent to singleFwd, plain and audio
	est                     *estimator
	st                      *sendState
	a                       *allocator
	subs                    []*allocFuzzSub
}

func newAllocFuzzFixture(t *testing.T) *allocFuzzFixture {
	fx := newSimulcastFixture(t)
	af := &allocFuzzFixture{t: t, fx: fx, seq: 1}
	var fwds [3]*Forwarder
	var ins [3]*layerTrack
	for i, codec := range []webrtc.RTPCodecParameters{vp8Codec, vp8Codec, opusCodec} {
		ins[i] = &layerTrack{chanTrack: newChanTrack(codec), ssrc: webrtc.SSRC(200 + i)}
		f, err := NewForwarder(ForwarderConfig{Track: ins[i], RTCP: fx.plis, CacheSlots: 64})
		if err != nil {
			t.Fatal(err)
		}
		fwds[i] = f
	}
	af.input, af.plainIn, af.audioIn = ins[0], ins[1], ins[2]
	af.singleFwd, af.plain, af.audio = fwds[0], fwds[1], fwds[2]
	single, err := NewTrack(TrackConfig{Layer: fwds[0], Clock: fx.clk})
	if err != nil {
		t.Fatal(err)
	}
	af.single = single
	t.Cleanup(func() {
		if err := single.Close(); err != nil {
			t.Error(err)
		}
		for _, f := range []*Forwarder{af.plain, af.audio} {
			if err := f.Close(); err != nil {
				t.Error(err)
			}
		}
	})
	af.est, af.st = &estimator{}, new(sendState)
	af.st.est.Init(bwe.Config{Initial: bweInitialBitrate, Min: 1, Max: bweMaxBitrate})
	af.st.active.Store(true)
	af.est.active.Store(true)
	af.est.send.Store(af.st)
	af.a = newAllocator(af.est, fx.clk, nil)
	t.Cleanup(af.a.close)
	return af
}

// add subscribes a new down-track, added to the allocator first as a Peer
// does: to the simulcast track (kind 0), the single-stream one (1), the
// plain Forwarder (2) or the audio one (3).
func (af *allocFuzzFixture) add(kind int) {
	if len(af.subs) >= 4 {
		return
	}
	var dt *DownTrack
	var sink *memContext
	switch kind {
	case 0:
		dt, sink = af.fx.subscriberWith(af.a.add)
	default:
		codec, src := vp8Codec, af.plain
		if kind == 3 {
			codec, src = opusCodec, af.audio
		}
		sink = &memContext{id: "sub", ssrc: 4242, record: true, codecs: []webrtc.RTPCodecParameters{codec}}
		var err error
		dt, err = NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: codec.RTPCodecCapability})
		if err != nil {
			af.t.Fatal(err)
		}
		af.t.Cleanup(func() { _ = dt.Close() })
		if _, err := dt.Bind(sink); err != nil {
			af.t.Fatal(err)
		}
		dt.TransportReady()
		af.a.add(dt)
		if kind == 1 {
			err = af.single.AddSubscriber(dt)
		} else {
			err = src.AddSubscriber(dt)
		}
		if err != nil {
			af.t.Fatal(err)
		}
	}
	af.subs = append(af.subs, &allocFuzzSub{dt: dt, sink: sink, pausedAt: -1})
}

// frames sends a frame of each layer in mask (bits 0-2 the simulcast
// layers, 3 the single-stream track, 4 the plain Forwarder) and an audio
// packet, waits for the read loops to take them, and moves the clock by d.
func (af *allocFuzzFixture) frames(mask byte, key bool, d time.Duration) {
	fx := af.fx
	for i := range 3 {
		if mask&(1<<i) != 0 {
			fx.frame(i, fx.n, key || fx.fed[i] == 0)
		}
	}
	fx.n++
	for i, in := range []*layerTrack{af.input, af.plainIn} {
		if mask&(8<<i) != 0 {
			body := make([]byte, 200)
			af.seq++
			in.in <- rawRTP(af.t, 96, af.seq, uint32(af.seq)*3000, key || af.fed[i] == 0, body)
			af.fed[i]++
		}
	}
	af.seq++
	af.audioIn.in <- rawRTP(af.t, 111, af.seq, uint32(af.seq)*960, false, make([]byte, 100))
	af.fed[2]++
	fx.settle()
	poll.Until(af.t, "the single-stream and audio read loops", func() bool {
		return af.singleFwd.Stats().Packets == af.fed[0] && af.plain.Stats().Packets == af.fed[1] && af.audio.Stats().Packets == af.fed[2]
	})
	fx.clk.Advance(d)
}

// probePackets records n packets of the probe running, if one does, as
// the estimator's send path would.
func (af *allocFuzzFixture) probePackets(n int) {
	c := af.est.probed.Load()
	if c == nil {
		return
	}
	for range n {
		c.record(uint16(af.st.seq.Add(1)-1), 1200)
	}
}

// probeFeedback acknowledges the packets the probe running has sent, as
// arrived over span (none lost when lossless), as a transport-cc
// feedback would.
func (af *allocFuzzFixture) probeFeedback(span time.Duration, lossless bool) {
	c := af.est.probed.Load()
	if c == nil {
		return
	}
	n := int(c.sent.Load())
	acks := make([]bwe.Ack, 0, n)
	for i := range n {
		acks = append(acks, bwe.Ack{
			Seq:      c.first + uint16(i),
			Received: lossless || i%3 != 0,
			Arrival:  time.Duration(i) * span / time.Duration(max(n, 1)),
		})
	}
	c.feedback(acks)
	af.est.feedbacks.Add(1)
}

// step runs the operation op with argument arg.
func (af *allocFuzzFixture) step(op, arg byte) {
	var sub *allocFuzzSub
	if len(af.subs) > 0 {
		sub = af.subs[int(arg>>4)%len(af.subs)]
	}
	switch op % 14 {
	case 0:
		af.add(int(arg) % 4)
	case 1:
		if sub != nil {
			// As a Peer drops a send: out of the allocation, then closed.
			af.a.remove(sub.dt)
			if err := sub.dt.Close(); err != nil {
				af.t.Fatal(err)
			}
			af.subs = removeSub(af.subs, sub)
		}
	case 2:
		if sub != nil {
			sub.dt.SetTargetLayer(int(arg&7) - 2) // LayerAuto, 0-2, past the top
		}
	case 3:
		if sub != nil {
			sizes := [...]int{0, 90, 180, 360, 720, 4000}
			sub.dt.SetLimits(LayerLimits{
				MaxLines: sizes[int(arg&3)],
				Width:    sizes[int(arg>>2&3)] * 16 / 9,
				Height:   sizes[int(arg>>2&3)],
			})
		}
	case 4:
		if sub != nil {
			sub.dt.SetMaxSize([...]int{0, 1, 180, 360, 720, 1 << 20, -5, 200}[arg&7])
		}
	case 5:
		if sub != nil && sub.dt.SetPaused(arg&1 == 0) {
			sub.pausedAt = -1
			if sub.dt.Paused() {
				// A write that found it not paused yet ends first.
				sub.dt.wmu.Lock()
				sub.pausedAt = sub.sink.count()
				sub.dt.wmu.Unlock()
			}
		}
	case 6:
		// Frames of some layers: one that stops arriving goes idle
		// after LayerIdleChecks.
		af.frames(arg&0x1f, arg&0x20 != 0, DefaultLayerCheckInterval)
	case 7:
		// Transport-cc feedback, new or none since the last check.
		af.st.est.Reset(allocFuzzRates[arg&7])
		if arg&8 != 0 {
			af.est.feedbacks.Add(1)
		}
	case 8:
		// A REMB; with the transport-cc feedback gone (the estimate
		// turned off), it is what the allocator goes by.
		af.est.remb.Store(uint64(allocFuzzRates[arg&7]))
		af.est.rembAt.Store(af.fx.clk.Now().UnixNano())
		if arg&8 != 0 {
			af.est.feedbacks.Store(0)
		}
	case 9:
		d := bweCheckInterval
		if arg&1 != 0 {
			d = bweStartCheckInterval
		}
		af.fx.clk.Advance(d * time.Duration(arg>>1&3+1))
	case 10:
		af.probePackets(int(arg) % 64)
	case 11:
		af.probeFeedback(time.Duration(arg&0x7f)*10*time.Millisecond, arg&0x80 == 0)
	case 12:
		af.fx.clk.Advance(probeTick * time.Duration(arg&15+1))
	case 13:
		// The source republished: the down-track moves to the other
		// track, keeping its caps and the allocator's state of it.
		if sub == nil {
			return
		}
		to := af.single
		if tr := sub.dt.track.Load(); tr == nil {
			return
		} else if tr == af.single {
			to = af.fx.track
		}
		if err := to.AddSubscriber(sub.dt); err != nil {
			af.t.Fatal(err)
		}
	}
}

func removeSub(subs []*allocFuzzSub, s *allocFuzzSub) []*allocFuzzSub {
	out := subs[:0]
	for _, x := range subs {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// checkInvariants fails unless each down-track's bandwidth cap and layer
// are among its track's layers and within the ceiling it was allocated
// under, a bandwidth pause caps it at its lowest, and a down-track its
// subscriber paused has sent nothing since.
func (af *allocFuzzFixture) checkInvariants(step int) {
	t := af.t
	af.a.mu.Lock()
	defer af.a.mu.Unlock()
	for i, s := range af.subs {
		dt := s.dt
		limit, bwPaused := dt.bandwidthCap()
		if st := af.a.subs[dt]; st != nil && st.capped {
			if st.gov.cur < -1 || st.gov.cur >= len(st.peak) {
				t.Fatalf("step %d: down-track %d allocated layer %d of %d", step, i, st.gov.cur, len(st.peak))
			}
			if limit >= len(st.peak) {
				t.Fatalf("step %d: down-track %d capped at layer %d of the %d its ceiling allows", step, i, limit, len(st.peak))
			}
		}
		if bwPaused && limit != 0 {
			t.Fatalf("step %d: down-track %d paused for bandwidth, capped at %d", step, i, limit)
		}
		if tr := dt.track.Load(); tr != nil {
			tr.mu.Lock()
			n := len(tr.layers)
			ceiling := layerIndex(tr.ceilingOf(dt), n)
			target := layerIndex(tr.targetOf(dt), n)
			tr.mu.Unlock()
			if target > ceiling {
				t.Fatalf("step %d: down-track %d targets layer %d above its ceiling %d", step, i, target, ceiling)
			}
			if l := dt.Layer(); l.Current < -1 || l.Current >= n || l.Next < -1 || l.Next >= n {
				t.Fatalf("step %d: down-track %d at %+v of %d layers", step, i, l, n)
			}
		}
		if s.pausedAt >= 0 {
			if n := s.sink.count(); n != s.pausedAt {
				t.Fatalf("step %d: down-track %d sent %d packets while its subscriber paused it", step, i, n-s.pausedAt)
			}
		}
	}
}

// FuzzAllocator drives a Peer's allocator through what its subscriber and
// its link may do, in any order: down-tracks added and removed, their
// targets, limits, sizes and pauses changed, layers arriving and
// stopping, feedback new or stale, REMB or transport-cc estimates at any
// level, probes sent, acknowledged and settled, the checks at either
// interval. No step may panic (a panic on the allocator's timer takes the
// server down), and the invariants of checkInvariants hold after each.
func FuzzAllocator(f *testing.F) {
	// Pairs of (operation, argument); see step.
	f.Add([]byte{0, 0, 0, 0, 6, 0x27, 7, 0x0d, 9, 1, 2, 0x02, 9, 1, 6, 0x07})
	// The ceiling falls between two feedbacks (the stale check's panic).
	f.Add([]byte{0, 0x00, 0, 0x00, 2, 0x02, 6, 0x27, 7, 0x0f, 9, 0x01, 2, 0x12, 9, 0x01, 9, 0x01})
	// A probe sent, acknowledged and settled.
	f.Add([]byte{0, 0, 6, 0x27, 7, 0x0c, 9, 1, 6, 0x27, 10, 63, 12, 15, 10, 63, 11, 0x40, 12, 15, 9, 6, 9, 6})
	// Paused by its subscriber while a probe pads it.
	f.Add([]byte{0, 0, 0, 0x10, 2, 0x02, 6, 0x27, 7, 0x0d, 9, 1, 12, 3, 5, 0x10, 12, 15, 6, 0x07, 5, 0x11, 6, 0x27})
	// Moved from the simulcast track on its top layer to the
	// single-stream one, and back.
	f.Add([]byte{0, 0, 7, 0x0f, 6, 0x3f, 9, 1, 6, 0x3f, 13, 0, 7, 0x0f, 9, 1, 6, 0x3f, 13, 0, 9, 0})
	// Audio beside video: what it sends is taken off the estimate.
	f.Add([]byte{0, 3, 0, 0, 7, 0x0b, 6, 0x27, 9, 1, 6, 0x27, 7, 0x0b, 9, 0, 5, 0x00, 6, 0x27, 5, 0x01, 9, 1})
	// REMB, single-stream and plain down-tracks, a layer that stops.
	f.Add([]byte{0, 1, 0, 2, 0, 0, 8, 0x0b, 6, 0x3f, 6, 0x1b, 6, 0x1b, 6, 0x1b, 6, 0x1b, 4, 0x21, 3, 0x15, 1, 0x20, 9, 7})
	f.Fuzz(func(t *testing.T, ops []byte) {
		af := newAllocFuzzFixture(t)
		for i := 0; i+1 < len(ops) && i/2 < allocFuzzOps; i += 2 {
			af.step(ops[i], ops[i+1])
			af.checkInvariants(i / 2)
		}
	})
}
