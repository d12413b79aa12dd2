package rtc

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/bwe"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// Padding goes between frames only, numbered on from the last packet
// sent, and the media after it goes on from there; NACKs for packets sent
// before the padding are still answered, and those for padding are not.
func TestPaddingBetweenFrames(t *testing.T) {
	fx := newFixture(t, vp8Codec)
	sub := &memContext{id: "p", ssrc: 77, record: true, rtcp: make(chan []byte)}
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	send := func(i int, marker bool) {
		t.Helper()
		raw := rawRTP(t, 96, uint16(900+i), uint32(3000*(i/2)), i == 0, rtctest.CounterPayload(uint32(i), 40))
		if marker {
			raw[1] |= 0x80
		}
		fx.track.in <- raw
		poll.Until(t, "the packet forwarded", func() bool { return int(dt.Stats().Packets) == i+1 })
	}
	// Two frames of two packets.
	for i := range 4 {
		send(i, i%2 == 1)
	}
	var hdr rtp.Header
	if n := dt.sendPadding(3, &hdr); n != 3 {
		t.Fatalf("%d padding packets sent between frames, want 3", n)
	}
	send(4, false) // a frame begins
	if n := dt.sendPadding(2, &hdr); n != 0 {
		t.Fatalf("%d padding packets sent inside a frame", n)
	}
	send(5, true)

	sent := sub.sent()
	if len(sent) != 9 {
		t.Fatalf("%d packets written, want 9", len(sent))
	}
	for i, p := range sent {
		if i > 0 && p.hdr.SequenceNumber != sent[i-1].hdr.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence number %d after %d", i, p.hdr.SequenceNumber, sent[i-1].hdr.SequenceNumber)
		}
		padding := i >= 4 && i < 7
		if padding != (p.hdr.Padding && len(p.payload) == 0) {
			t.Fatalf("packet %d: padding %v (%d bytes of payload), want %v", i, p.hdr.Padding, len(p.payload), padding)
		}
		if padding && (p.hdr.PaddingSize != paddingSize || p.hdr.Timestamp != sent[3].hdr.Timestamp || p.hdr.Marker) {
			t.Fatalf("padding packet %d: %+v", i, p.hdr)
		}
	}

	nacks, err := rtcp.Marshal([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: 77, Nacks: []rtcp.NackPair{
		{PacketID: sent[1].hdr.SequenceNumber}, // before the padding
		{PacketID: sent[5].hdr.SequenceNumber}, // padding
		{PacketID: sent[7].hdr.SequenceNumber}, // after it
	}}})
	if err != nil {
		t.Fatal(err)
	}
	sub.rtcp <- nacks
	poll.Until(t, "the NACKs answered", func() bool { return dt.Stats().NACKs == 3 })
	close(sub.rtcp)
	poll.Until(t, "the retransmissions", func() bool { return sub.count() == 11 })
	for i, want := range []sentPacket{sent[1], sent[7]} {
		got := sub.sent()[9+i]
		if got.hdr.SequenceNumber != want.hdr.SequenceNumber || got.hdr.Timestamp != want.hdr.Timestamp || !bytes.Equal(got.payload, want.payload) {
			t.Fatalf("retransmission %d: %+v, want %+v", i, got.hdr, want.hdr)
		}
	}
	if s := dt.Stats(); s.Retransmits != 2 || s.NACKMisses != 1 {
		t.Fatalf("stats %+v: want 2 retransmits and 1 miss (the padding)", s)
	}
}

// TestPaddingBeforeFirstPacket: a down-track paused for bandwidth before
// it sent anything (the estimate fell while the connection carried only
// audio, as it did for a Firefox subscriber on a loaded machine) takes a
// probe's padding, or no probe could ever resume it; once resumed, its
// media goes on from the padding's numbers, later in time.
func TestPaddingBeforeFirstPacket(t *testing.T) {
	fx := newFixture(t, vp8Codec)
	sub := &memContext{id: "p", ssrc: 77, record: true}
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	dt.TransportReady() // the connection is up
	dt.setBandwidthCap(LayerAuto, true)
	var hdr rtp.Header
	if n := dt.sendPadding(3, &hdr); n != 3 {
		t.Fatalf("%d padding packets sent to a down-track paused before its first packet, want 3", n)
	}
	dt.setBandwidthCap(LayerAuto, false)
	for i := range 2 { // a keyframe of two packets
		raw := rawRTP(t, 96, uint16(500+i), 9000, i == 0, rtctest.CounterPayload(uint32(i), 40))
		if i == 1 {
			raw[1] |= 0x80
		}
		fx.track.in <- raw
	}
	poll.Until(t, "the keyframe forwarded", func() bool { return sub.count() == 5 })
	sent := sub.sent()
	for i, p := range sent {
		if padding := i < 3; padding != (p.hdr.Padding && len(p.payload) == 0) {
			t.Fatalf("packet %d: padding %v (%d bytes of payload), want %v", i, p.hdr.Padding, len(p.payload), padding)
		}
		if i > 0 && p.hdr.SequenceNumber != sent[i-1].hdr.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence number %d after %d", i, p.hdr.SequenceNumber, sent[i-1].hdr.SequenceNumber)
		}
	}
	if d := int32(sent[3].hdr.Timestamp - sent[2].hdr.Timestamp); d <= 0 {
		t.Fatalf("the keyframe's timestamp %d is not after the padding's %d", sent[3].hdr.Timestamp, sent[2].hdr.Timestamp)
	}
	// Not paused, a down-track that has sent nothing waits for its media.
	fx2 := newFixture(t, vp8Codec)
	idle := &memContext{id: "q", ssrc: 78, record: true}
	dt2 := fx2.downTrack(idle)
	if err := fx2.f.AddSubscriber(dt2); err != nil {
		t.Fatal(err)
	}
	dt2.TransportReady()
	if n := dt2.sendPadding(3, &hdr); n != 0 || idle.count() != 0 {
		t.Fatalf("%d padding packets sent to a down-track not paused that has sent nothing", n)
	}
}

// A probe's result is the rate its packets arrived at, when nearly all
// did and their arrivals are spread as their sending was; nothing when
// too many are lost or they came in one burst.
func TestProbeClusterResult(t *testing.T) {
	const first, packets, size = 65530, 40, 1000 // the numbers wrap
	start := time.Unix(1000, 0)
	run := func(t *testing.T, spacing time.Duration, lost func(i int) bool) (int, bool) {
		t.Helper()
		c := newProbeCluster(800_000, first, start)
		for i := range packets {
			c.record(uint16(first+i), size)
		}
		c.stop(start.Add(packets * 10 * time.Millisecond))
		rec := twcc.NewRecorder(5)
		for i := range packets {
			if !lost(i) {
				rec.Record(77, uint16(first+i), 1_000_000+int64(i)*spacing.Microseconds())
			}
		}
		complete := false
		for _, p := range rec.BuildFeedbackPacket() {
			if fb, ok := p.(*rtcp.TransportLayerCC); ok {
				complete = probeFeedback(t, c, fb)
			}
		}
		if !complete && !lost(packets-1) {
			t.Fatal("the feedback on every packet does not complete the probe")
		}
		return c.result()
	}
	none := func(int) bool { return false }
	bps, ok := run(t, 10*time.Millisecond, none)
	// 39 packets after the first in 390 ms, as sent.
	if !ok || math.Abs(float64(bps)-800_000) > 8_000 {
		t.Fatalf("result %d, %v; want about 800000", bps, ok)
	}
	if bps, ok := run(t, 20*time.Millisecond, none); !ok || math.Abs(float64(bps)-400_000) > 4_000 {
		t.Fatalf("arrivals twice as slow: result %d, %v; want about 400000", bps, ok)
	}
	if bps, ok := run(t, 10*time.Millisecond, func(i int) bool { return i%4 == 1 }); ok {
		t.Fatalf("a quarter lost: result %d, want none", bps)
	}

	// A probe stops as soon as its feedback shows it losing.
	c := newProbeCluster(800_000, first, start)
	for i := range packets {
		c.record(uint16(first+i), size)
	}
	rec := twcc.NewRecorder(5)
	for i := range 12 {
		if i%3 != 0 {
			rec.Record(77, uint16(first+i), 1_000_000+int64(i)*10_000)
		}
	}
	if c.losing() {
		t.Fatal("losing before any feedback")
	}
	for _, p := range rec.BuildFeedbackPacket() {
		if fb, ok := p.(*rtcp.TransportLayerCC); ok {
			probeFeedback(t, c, fb)
		}
	}
	if !c.losing() {
		t.Fatal("not losing with a third of the packets reported lost")
	}
	if bps, ok := run(t, time.Millisecond, none); ok {
		t.Fatalf("arrivals in one burst: result %d, want none", bps)
	}
	c = newProbeCluster(800_000, first, start)
	c.stop(start.Add(time.Second))
	if _, ok := c.result(); ok {
		t.Fatal("a probe that sent nothing has a result")
	}
}

// probeFeedback gives c the feedback fb, and reports whether that
// completes it.
func probeFeedback(t *testing.T, c *probeCluster, fb *rtcp.TransportLayerCC) bool {
	t.Helper()
	raw, err := fb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	acks, err := bwe.ParseFeedback(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.feedback(acks)
}

// A probe's success lets the layer it was for go up at once, without the
// hold; only by one layer, and only if the estimate pays for it.
func TestGovernorGrant(t *testing.T) {
	now := time.Unix(0, 0)
	g := newLayerGovernor(2)
	if l := g.step(now, 2, 0, 0); l != 0 {
		t.Fatalf("layer %d after a cut, want 0", l)
	}
	g.granted = true
	if l := g.step(now.Add(time.Second), 2, 0, 0); l != 0 {
		t.Fatalf("layer %d granted with an estimate that pays for no more, want 0", l)
	}
	g.granted = true
	if l := g.step(now.Add(2*time.Second), 2, 2, 1); l != 1 {
		t.Fatalf("layer %d right after a grant, want 1", l)
	}
	if l := g.step(now.Add(2500*time.Millisecond), 2, 2, 2); l != 1 {
		t.Fatalf("layer %d without a grant before the hold, want 1", l)
	}
}

// TestProbeSendsNoPaddingWhilePaused: a probe's padding goes to the
// down-track it was started on for as long as it runs; once that
// down-track's subscriber pauses it, nothing is sent to it, padding
// included.
func TestProbeSendsNoPaddingWhilePaused(t *testing.T) {
	sub := &memContext{id: "p", ssrc: 77, record: true}
	dt, est := paddableDownTrack(t, sub)
	clk := clock.NewManual(time.Unix(6_000_000, 0))
	p := newProber(est, clk, nil)
	t.Cleanup(p.close)
	p.probe(clk.Now(), dt, 2_000_000)
	clk.Advance(probeTick)
	padded := sub.count()
	if padded == 2 {
		t.Fatal("the probe sent no padding before the pause")
	}
	dt.SetPaused(true)
	for range 5 {
		clk.Advance(probeTick)
	}
	if n := sub.count(); n != padded {
		t.Fatalf("%d packets sent while paused by its subscriber, want none", n-padded)
	}
}

// TestProbeClusterFeedbackPastItsRecord: a probe records at most
// probeMaxPackets packets; once the connection's transport-cc numbers
// have wrapped under a running probe, the count of packets it sent passes
// that, and feedback on a number beyond its record is ignored, not read
// past it.
func TestProbeClusterFeedbackPastItsRecord(t *testing.T) {
	c := newProbeCluster(800_000, 0, time.Unix(1000, 0))
	for i := range 1<<16 + probeMaxPackets + 10 {
		c.record(uint16(i), 1000)
	}
	rec := twcc.NewRecorder(5)
	rec.Record(77, probeMaxPackets+100, 1_000_000)
	rec.Record(77, probeMaxPackets+101, 1_010_000)
	for _, p := range rec.BuildFeedbackPacket() {
		if fb, ok := p.(*rtcp.TransportLayerCC); ok {
			probeFeedback(t, c, fb)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reported != 0 {
		t.Fatalf("%d packets past the probe's record taken as reported", c.reported)
	}
}

// TestProbePanicFailsThePeer: a panic in a probe's tick (here the
// connection's write of a padding packet) is recovered and reported as a
// FailureEvent through the allocator, whose checks and probes stop.
func TestProbePanicFailsThePeer(t *testing.T) {
	sub := &memContext{id: "p", ssrc: 77, record: true, panicAt: 3} // the first padding packet
	dt, est := paddableDownTrack(t, sub)
	clk := clock.NewManual(time.Unix(8_000_000, 0))
	a := newAllocator(est, clk, nil)
	t.Cleanup(a.close)
	var failures []error
	a.setNotify(func(ev PeerEvent) {
		if ev, ok := ev.(FailureEvent); ok {
			failures = append(failures, ev.Err)
		}
	})
	a.probe.probe(clk.Now(), dt, 2_000_000)
	clk.Advance(probeTick)
	if len(failures) != 1 || !errors.Is(failures[0], ErrReadLoopPanic) {
		t.Fatalf("failures reported: %v, want one panic", failures)
	}
	if n, probing := clk.Pending(), est.send.Load().probe.Load() != nil; n != 0 || probing {
		t.Fatalf("%d timers left after the failure, probe recording %v; want neither", n, probing)
	}
}

// paddableDownTrack returns a down-track sending to sub, which has been
// sent one whole frame (so that a probe may pad after it), and an active
// estimator for a probe to record its packets in.
func paddableDownTrack(t *testing.T, sub *memContext) (*DownTrack, *estimator) {
	t.Helper()
	fx := newFixture(t, vp8Codec)
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // one frame, ended: padding may follow
		raw := rawRTP(t, 96, uint16(900+i), 3000, i == 0, rtctest.CounterPayload(uint32(i), 40))
		if i == 1 {
			raw[1] |= 0x80
		}
		fx.track.in <- raw
	}
	poll.Until(t, "the frame forwarded", func() bool { return sub.count() == 2 })
	est, st := &estimator{}, new(sendState)
	st.est.Init(bwe.Config{Initial: bweInitialBitrate, Min: 1, Max: bweMaxBitrate})
	est.send.Store(st)
	est.setActive(true)
	return dt, est
}
