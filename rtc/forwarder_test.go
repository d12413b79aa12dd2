package rtc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

// fixture is a Forwarder fed by a chanTrack, with down-tracks bound to
// memory.
type fixture struct {
	t     *testing.T
	track *chanTrack
	rtcp  *rtcpSink
	f     *Forwarder
}

func newFixture(t *testing.T, codec webrtc.RTPCodecParameters) *fixture {
	t.Helper()
	return newFixtureWith(t, codec, ForwarderConfig{CacheSlots: 64})
}

// newFixtureWith is newFixture with cfg's other fields.
func newFixtureWith(t *testing.T, codec webrtc.RTPCodecParameters, cfg ForwarderConfig) *fixture {
	t.Helper()
	fx := &fixture{t: t, track: newChanTrack(codec), rtcp: &rtcpSink{}}
	cfg.Track, cfg.RTCP = fx.track, fx.rtcp
	f, err := NewForwarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fx.f = f
	t.Cleanup(func() { _ = f.Close() })
	return fx
}

func (fx *fixture) downTrack(ctx *memContext) *DownTrack {
	fx.t.Helper()
	dt, err := NewDownTrack(DownTrackConfig{ID: ctx.id, StreamID: "s", Codec: fx.f.Codec().RTPCodecCapability})
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.t.Cleanup(func() { _ = dt.Close() })
	if ctx.codecs == nil {
		ctx.codecs = []webrtc.RTPCodecParameters{fx.f.Codec()}
	}
	if _, err := dt.Bind(ctx); err != nil {
		fx.t.Fatal(err)
	}
	return dt
}

func TestForwardRewritesHeaders(t *testing.T) {
	fx := newFixture(t, vp8Codec)
	// The subscriber negotiated VP8 under another payload type.
	sub := &memContext{id: "a", ssrc: 999, record: true, codecs: []webrtc.RTPCodecParameters{
		{RTPCodecCapability: opusCodec.RTPCodecCapability, PayloadType: 111},
		{RTPCodecCapability: vp8Codec.RTPCodecCapability, PayloadType: 120},
	}}
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	// Two delta packets are held back: the subscriber starts at a keyframe.
	for i := 0; i < 12; i++ {
		fx.track.in <- rawRTP(t, 96, uint16(65530+i), uint32(1000+3000*i), i == 2, rtctest.CounterPayload(uint32(i), 40))
	}
	poll.Until(t, "10 packets", func() bool { return sub.count() == 10 })
	got := sub.sent()
	for k, p := range got {
		if p.hdr.SSRC != 999 || p.hdr.PayloadType != 120 {
			t.Fatalf("packet %d: ssrc %d pt %d, want 999 and 120", k, p.hdr.SSRC, p.hdr.PayloadType)
		}
		if k > 0 {
			if d := p.hdr.SequenceNumber - got[k-1].hdr.SequenceNumber; d != 1 {
				t.Errorf("packet %d: sequence step %d", k, d)
			}
			if d := p.hdr.Timestamp - got[k-1].hdr.Timestamp; d != 3000 {
				t.Errorf("packet %d: timestamp step %d", k, d)
			}
		}
		if i, ok := rtctest.CheckCounterPayload(p.payload[2:]); !ok || i != uint32(k+2) {
			t.Errorf("packet %d: payload counter %d intact=%v", k, i, ok)
		}
	}
	if s := dt.Stats(); s.Dropped(DropWaitKeyframe) != 2 || s.Packets != 10 {
		t.Errorf("stats %+v: want 10 packets and 2 wait_keyframe drops", s)
	}
	if s := fx.f.Stats(); s.Packets != 12 {
		t.Errorf("forwarder counted %d packets, want 12", s.Packets)
	}
}

func TestSourceSwitchKeepsStreamContinuous(t *testing.T) {
	a := newFixture(t, vp8Codec)
	b := newFixture(t, vp8Codec)
	sub := &memContext{id: "s", ssrc: 5, record: true}
	dt := a.downTrack(sub)
	if err := a.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		a.track.in <- rawRTP(t, 96, uint16(100+i), uint32(1000+3000*i), i == 0, rtctest.CounterPayload(uint32(i), 20))
	}
	poll.Until(t, "first source", func() bool { return sub.count() == 5 })
	// Kept: the switch reads the wall time since the first source's last
	// packet (time.Since), and the timestamp gap must show this pause; a
	// longer one on a loaded machine only widens the gap.
	time.Sleep(20 * time.Millisecond)

	if err := b.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	if dt.Source() != b.f || a.f.Subscribers() != 0 || b.f.Subscribers() != 1 {
		t.Fatalf("after switch: source %p, subscribers %d/%d", dt.Source(), a.f.Subscribers(), b.f.Subscribers())
	}
	// Sequence numbers and timestamps far from the first source's.
	for i := 0; i < 5; i++ {
		b.track.in <- rawRTP(t, 96, uint16(40000+i), uint32(7_000_000+3000*i), i == 0, rtctest.CounterPayload(uint32(100+i), 20))
	}
	poll.Until(t, "second source", func() bool { return sub.count() == 10 })
	got := sub.sent()
	for k := 1; k < len(got); k++ {
		if d := got[k].hdr.SequenceNumber - got[k-1].hdr.SequenceNumber; d != 1 {
			t.Errorf("packet %d: sequence step %d", k, d)
		}
		if d := int32(got[k].hdr.Timestamp - got[k-1].hdr.Timestamp); d <= 0 || d > 90000 {
			t.Errorf("packet %d: timestamp step %d", k, d)
		}
	}
	// 20 ms passed between the sources: the timestamp gap says so.
	if d := got[5].hdr.Timestamp - got[4].hdr.Timestamp; d < 20*90 {
		t.Errorf("timestamp gap across the switch %d, want at least %d", d, 20*90)
	}
	// A switch to another codec is refused.
	op := newFixture(t, opusCodec)
	if err := op.f.AddSubscriber(dt); !errors.Is(err, ErrKindMismatch) {
		t.Errorf("switch to audio: %v, want ErrKindMismatch", err)
	}
}

// A subscriber whose writes block holds up its own group and no one else:
// the read loop goes on, the other group receives every packet, and the
// blocked group's packets are dropped once its writer's queue is full.
func TestSlowSubscriberHoldsUpItsGroupAlone(t *testing.T) {
	clk := clock.NewManual(time.Unix(1, 0))
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 64, Writers: 2, QueueSize: 16, Clock: clk})
	slow := &memContext{id: "slow", ssrc: 1, block: make(chan struct{})}
	dtSlow := fx.downTrack(slow)
	if err := fx.f.AddSubscriber(dtSlow); err != nil {
		t.Fatal(err)
	}
	// The first group fills up to minGroupSize before the second opens.
	var sameGroup, otherGroup []*memContext
	for i := 1; i < minGroupSize+3; i++ {
		m := &memContext{id: fmt.Sprint("sub", i), ssrc: webrtc.SSRC(10 + i)}
		if err := fx.f.AddSubscriber(fx.downTrack(m)); err != nil {
			t.Fatal(err)
		}
		if i < minGroupSize {
			sameGroup = append(sameGroup, m)
		} else {
			otherGroup = append(otherGroup, m)
		}
	}
	const n = 400
	start := time.Now()
	for i := 0; i < n; i++ {
		fx.track.in <- rawRTP(t, 96, uint16(i), uint32(i*3000), i == 0, rtctest.CounterPayload(uint32(i), 100))
		if i%8 == 7 {
			// Let the other group's writer keep up with its 16-packet queue.
			for _, m := range otherGroup {
				poll.Until(t, "other group", func() bool { return m.count() == i+1 })
			}
		}
	}
	elapsed := time.Since(start)
	for _, m := range otherGroup {
		poll.Until(t, "other group", func() bool { return m.count() == n })
	}
	for _, m := range sameGroup {
		if m.count() > 17 {
			t.Errorf("%s, behind the blocked subscriber, got %d packets", m.id, m.count())
		}
	}
	s := dtSlow.Stats()
	if s.Dropped(DropQueueFull) < n-18 {
		t.Errorf("slow subscriber dropped %d for a full queue, want at least %d", s.Dropped(DropQueueFull), n-18)
	}
	if elapsed > poll.Timeout { // held up, it would wait for ever
		t.Errorf("publisher took %v for %d packets: the slow subscriber held it up", elapsed, n)
	}
	requests := fx.f.Stats().KeyframeRequests
	clk.Advance(time.Second) // past any throttle
	close(slow.block)
	// Once its queue drains, the blocked group asks for a keyframe.
	poll.Until(t, "keyframe request after drain", func() bool { return fx.f.Stats().KeyframeRequests > requests })
}

// countingBatcher counts the holds and releases of a fan-out writer.
type countingBatcher struct{ holds, releases atomic.Int32 }

func (b *countingBatcher) holdSends()    { b.holds.Add(1) }
func (b *countingBatcher) releaseSends() { b.releases.Add(1) }

// A write that panics stops that down-track alone: its owner is told,
// nothing more is sent to it, and the rest of its group goes on receiving.
// The writer's hold on the socket ends with the panic.
func TestPanickingWriteStopsOneDownTrack(t *testing.T) {
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 64, Writers: 1})
	batcher := new(countingBatcher)
	fx.f.sends = batcher // before AddSubscriber starts the writer
	bad := &memContext{id: "bad", ssrc: 1, panicAt: 3, codecs: []webrtc.RTPCodecParameters{vp8Codec}}
	failed := make(chan error, 1)
	dtBad, err := NewDownTrack(DownTrackConfig{ID: "bad", StreamID: "s", Codec: vp8Codec.RTPCodecCapability,
		OnFailure: func(err error) { failed <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer dtBad.Close()
	if _, err := dtBad.Bind(bad); err != nil {
		t.Fatal(err)
	}
	good := &memContext{id: "good", ssrc: 2}
	for _, dt := range []*DownTrack{dtBad, fx.downTrack(good)} {
		if err := fx.f.AddSubscriber(dt); err != nil {
			t.Fatal(err)
		}
	}
	const n = 20
	for i := 0; i < n; i++ {
		fx.track.in <- rawRTP(t, 96, uint16(i), uint32(i*3000), i == 0, rtctest.CounterPayload(uint32(i), 100))
	}
	select {
	case err := <-failed:
		if !errors.Is(err, ErrReadLoopPanic) {
			t.Errorf("OnFailure(%v), want ErrReadLoopPanic", err)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("OnFailure was not called")
	}
	// The packet whose write panicked is lost for the rest of the group
	// too; every later one arrives.
	poll.Until(t, "good subscriber", func() bool { return good.count() >= n-1 })
	if got := bad.count(); got != 2 {
		t.Errorf("panicking subscriber got %d writes, want the 2 before the panic", got)
	}
	poll.Until(t, "every hold released", func() bool { return batcher.releases.Load() == batcher.holds.Load() })
	if h := batcher.holds.Load(); h < n-1 {
		t.Errorf("%d holds for %d packets to a group of two", h, n)
	}
}

func TestKeyframeRequestsThrottled(t *testing.T) {
	clk := clock.NewManual(time.Unix(1, 0))
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{Clock: clk})
	if !fx.f.RequestKeyframe() {
		t.Fatal("first request not sent")
	}
	for i := 0; i < 5; i++ {
		clk.Advance(100 * time.Millisecond)
		if fx.f.RequestKeyframe() != (i == 4) {
			t.Errorf("request at +%dms: sent=%v", (i+1)*100, !(i == 4))
		}
	}
	if got := fx.rtcp.count(); got != 2 {
		t.Errorf("%d PLIs sent, want 2", got)
	}

	// Once a keyframe has answered the last request, the next may follow
	// after the shorter interval: joins one after another are not kept
	// waiting, and the publisher is asked at most once per keyframe.
	fx.track.in <- rawRTP(t, 96, 1, 3000, true, rtctest.CounterPayload(1, 40))
	poll.Until(t, "the keyframe read", func() bool { return fx.f.Stats().Packets == 1 })
	clk.Advance(50 * time.Millisecond)
	if fx.f.RequestKeyframe() {
		t.Error("request 50ms after an answered one was sent")
	}
	clk.Advance(50 * time.Millisecond)
	if !fx.f.RequestKeyframe() {
		t.Error("request 100ms after an answered one was not sent")
	}
	clk.Advance(100 * time.Millisecond)
	if fx.f.RequestKeyframe() {
		t.Error("request 100ms after an unanswered one was sent")
	}
	// Audio has no keyframes to ask for.
	op := newFixture(t, opusCodec)
	if op.f.RequestKeyframe() {
		t.Error("keyframe requested for audio")
	}
}

func TestNACKAnsweredFromCache(t *testing.T) {
	fx := newFixture(t, vp8Codec)
	sub := &memContext{id: "n", ssrc: 77, record: true, rtcp: make(chan []byte)}
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		fx.track.in <- rawRTP(t, 96, uint16(500+i), uint32(3000*i), i == 0, rtctest.CounterPayload(uint32(i), 30))
	}
	poll.Until(t, "20 packets", func() bool { return sub.count() == 20 })
	first := sub.sent()
	want := first[7]

	// One NACK for the 8th packet and one for a packet never sent, then a
	// PLI, all in one compound packet.
	nackPkt, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.TransportLayerNack{MediaSSRC: 77, Nacks: []rtcp.NackPair{{PacketID: want.hdr.SequenceNumber}}},
		&rtcp.TransportLayerNack{MediaSSRC: 77, Nacks: []rtcp.NackPair{{PacketID: want.hdr.SequenceNumber + 1000}}},
		&rtcp.PictureLossIndication{MediaSSRC: 77},
		&rtcp.PictureLossIndication{MediaSSRC: 12345}, // someone else's
	})
	if err != nil {
		t.Fatal(err)
	}
	sub.rtcp <- nackPkt
	poll.Until(t, "retransmission", func() bool { return sub.count() == 21 })
	got := sub.sent()[20]
	if got.hdr.SequenceNumber != want.hdr.SequenceNumber || got.hdr.Timestamp != want.hdr.Timestamp ||
		got.hdr.SSRC != want.hdr.SSRC || !bytes.Equal(got.payload, want.payload) {
		t.Errorf("retransmitted %+v, want %+v", got.hdr, want.hdr)
	}
	poll.Until(t, "stats", func() bool { return dt.Stats().PLIs == 1 })
	s := dt.Stats()
	if s.NACKs != 2 || s.Retransmits != 1 || s.NACKMisses != 1 {
		t.Errorf("stats %+v: want 2 NACKs, 1 retransmit, 1 miss", s)
	}

	// The resend limit: the packet NACKed twice more in one report, as
	// resent a moment ago, is not resent; NACKed again once the gap has
	// gone by, it is.
	again, err := rtcp.Marshal([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: 77, Nacks: []rtcp.NackPair{
		{PacketID: want.hdr.SequenceNumber}, {PacketID: want.hdr.SequenceNumber},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	sub.rtcp <- again
	poll.Until(t, "the NACKs read", func() bool { return dt.Stats().NACKs == 4 })
	if s := dt.Stats(); s.Retransmits != 1 || s.NACKSuppressed != 2 {
		t.Errorf("stats %+v: want 1 retransmit, 2 suppressed", s)
	}
	resent := time.Now()
	poll.Until(t, "the resend gap to go by", func() bool { return time.Since(resent) > minResendGap })
	sub.rtcp <- again
	poll.Until(t, "the NACKs read", func() bool { return dt.Stats().NACKs == 6 })
	if s := dt.Stats(); sub.count() != 22 || s.Retransmits != 2 || s.NACKSuppressed != 3 {
		t.Errorf("%d packets sent, stats %+v: want 22 sent, 2 retransmits, 3 suppressed", sub.count(), s)
	}
	close(sub.rtcp)
}

// panicTrack panics on its first read, as a bug in a read loop would.
type panicTrack struct{ *chanTrack }

func (p panicTrack) Read([]byte) (int, interceptor.Attributes, error) { panic("boom") }

func TestReadLoopPanicIsReported(t *testing.T) {
	failed := make(chan error, 1)
	f, err := NewForwarder(ForwarderConfig{
		Track:     panicTrack{newChanTrack(vp8Codec)},
		RTCP:      &rtcpSink{},
		OnFailure: func(err error) { failed <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		if !errors.Is(err, ErrReadLoopPanic) {
			t.Errorf("OnFailure(%v), want ErrReadLoopPanic", err)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("OnFailure not called")
	}
	<-f.Done()
	if !errors.Is(f.Err(), ErrReadLoopPanic) {
		t.Errorf("Err() = %v", f.Err())
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	fx := newFixture(t, vp8Codec)
	sub := &memContext{id: "x", ssrc: 1}
	if err := fx.f.AddSubscriber(fx.downTrack(sub)); err != nil {
		t.Fatal(err)
	}
	good := rawRTP(t, 96, 1, 1, true, rtctest.CounterPayload(1, 10))
	pad := append([]byte(nil), good...)
	pad[0] |= 0x20
	pad[len(pad)-1] = 200 // more padding than packet
	ext := append([]byte(nil), good[:12]...)
	ext[0] |= 0x10
	ext = binary.BigEndian.AppendUint32(ext, 0xbede00ff) // 255 words of extension, absent
	for _, bad := range [][]byte{{}, {0x80}, good[:11], pad, ext, rawRTP(t, 97, 2, 2, true, nil)} {
		fx.track.in <- bad
	}
	fx.track.in <- good
	poll.Until(t, "the good packet", func() bool { return sub.count() == 1 })
	s := fx.f.Stats()
	if s.Dropped(DropMalformed) != 5 || s.Dropped(DropPayloadType) != 1 || s.Packets != 1 {
		t.Errorf("stats %+v: want 5 malformed, 1 payload type, 1 packet", s)
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := NewForwarder(ForwarderConfig{}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("NewForwarder({}) = %v", err)
	}
	for _, cfg := range []DownTrackConfig{
		{},
		{ID: "a", StreamID: "b", Codec: webrtc.RTPCodecCapability{MimeType: "text/plain", ClockRate: 1}},
		{ID: "a", StreamID: "b", Codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}},
	} {
		if _, err := NewDownTrack(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewDownTrack(%+v) = %v", cfg, err)
		}
	}
	dt, err := NewDownTrack(DownTrackConfig{ID: "a", StreamID: "b", Codec: vp8Codec.RTPCodecCapability})
	if err != nil {
		t.Fatal(err)
	}
	defer dt.Close()
	if _, err := dt.Bind(&memContext{id: "c", codecs: []webrtc.RTPCodecParameters{opusCodec}}); !errors.Is(err, ErrCodecNotNegotiated) {
		t.Errorf("Bind without VP8 = %v", err)
	}
	if _, err := dt.Bind(&memContext{id: "c", codecs: []webrtc.RTPCodecParameters{vp8Codec}}); err != nil {
		t.Fatal(err)
	}
	if _, err := dt.Bind(&memContext{id: "d", codecs: []webrtc.RTPCodecParameters{vp8Codec}}); !errors.Is(err, ErrAlreadyBound) {
		t.Errorf("second Bind = %v", err)
	}
}

func TestMutedTrackIsNotForwarded(t *testing.T) {
	fx := newFixture(t, vp8Codec)
	sub := &memContext{id: "a", ssrc: 7, record: true}
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	send := func(from, n int) {
		for i := from; i < from+n; i++ {
			fx.track.in <- rawRTP(t, 96, uint16(i), uint32(3000*i), i == from, rtctest.CounterPayload(uint32(i), 40))
		}
	}
	send(0, 5)
	poll.Until(t, "5 packets before mute", func() bool { return sub.count() == 5 })
	plisBefore := fx.rtcp.count()

	fx.f.SetMuted(true)
	if !fx.f.Muted() {
		t.Fatal("Muted() = false after SetMuted(true)")
	}
	send(5, 5)
	poll.Until(t, "muted packets counted", func() bool { return fx.f.Stats().Dropped(DropMuted) == 5 })
	if sub.count() != 5 {
		t.Fatalf("a muted track forwarded %d packets", sub.count()-5)
	}

	fx.f.SetMuted(false)
	if fx.rtcp.count() != plisBefore+1 {
		t.Fatalf("unmuting video sent %d keyframe requests, want 1", fx.rtcp.count()-plisBefore)
	}
	send(10, 5)
	poll.Until(t, "packets after unmute", func() bool { return sub.count() == 10 })
}

// reportSink records the RTCP a down-track writes to its subscriber.
type reportSink struct {
	mu  sync.Mutex
	srs []*rtcp.SenderReport
}

func (r *reportSink) WriteRTCP(pkts []rtcp.Packet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range pkts {
		if sr, ok := p.(*rtcp.SenderReport); ok {
			r.srs = append(r.srs, sr)
		}
	}
	return nil
}

func (r *reportSink) reports() []*rtcp.SenderReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*rtcp.SenderReport(nil), r.srs...)
}

// A down-track's sender report counts what it sent and carries the RTP
// time of now on the subscriber's timeline; the fan-out writer sends one
// with the first packet, then one a SenderReportInterval.
func TestSenderReports(t *testing.T) {
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 64, Writers: 1})
	sink := new(reportSink)
	mc := &memContext{id: "s", ssrc: 77, record: true}
	dt, err := NewDownTrack(DownTrackConfig{ID: "s", StreamID: "s", Codec: vp8Codec.RTPCodecCapability, RTCP: sink})
	if err != nil {
		t.Fatal(err)
	}
	defer dt.Close()
	mc.codecs = []webrtc.RTPCodecParameters{vp8Codec}
	if _, err := dt.Bind(mc); err != nil {
		t.Fatal(err)
	}
	if dt.senderReport(time.Now()) != nil {
		t.Fatal("a sender report before anything was sent")
	}
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := 0; i < n; i++ {
		fx.track.in <- rawRTP(t, 96, uint16(100+i), uint32(i*3000), i == 0, rtctest.CounterPayload(uint32(i), 100+i))
	}
	poll.Until(t, "packets at the subscriber", func() bool { return mc.count() == n })
	poll.Until(t, "the first sender report", func() bool { return len(sink.reports()) > 0 })
	first := sink.reports()[0]
	sent := mc.sent()
	if first.SSRC != 77 || first.PacketCount != 1 || int(first.OctetCount) != len(sent[0].payload) {
		t.Errorf("first report %+v, want SSRC 77, 1 packet of %d bytes", first, len(sent[0].payload))
	}

	var octets int
	for _, p := range sent {
		octets += len(p.payload)
	}
	last := sent[n-1].hdr
	dt.wmu.Lock()
	lastSent := dt.w.lastSent
	dt.wmu.Unlock()
	at := lastSent.Add(500 * time.Millisecond)
	sr := dt.senderReport(at)
	if sr.SSRC != 77 || sr.PacketCount != n || int(sr.OctetCount) != octets {
		t.Errorf("report %+v, want SSRC 77, %d packets, %d octets", sr, n, octets)
	}
	if want := last.Timestamp + 45000; sr.RTPTime != want { // half a second at 90 kHz
		t.Errorf("RTP time %d, want %d (last sent %d + 0.5 s)", sr.RTPTime, want, last.Timestamp)
	}
	if got := time.Unix(int64(sr.NTPTime>>32)-2208988800, int64((sr.NTPTime&0xffffffff)*1e9>>32)); got.Sub(at).Abs() > time.Microsecond {
		t.Errorf("NTP time is %v, want %v", got, at)
	}

	// The next report waits for the interval.
	reports := len(sink.reports())
	fx.track.in <- rawRTP(t, 96, 100+n, n*3000, false, rtctest.CounterPayload(n, 100))
	poll.Until(t, "one more packet", func() bool { return mc.count() == n+1 })
	if got := len(sink.reports()); got != reports {
		t.Fatalf("%d reports after a packet within the interval, want %d", got, reports)
	}

	dt.Close()
	if dt.senderReport(time.Now()) != nil {
		t.Fatal("a sender report after Close")
	}
}

func TestRTPTicksWrap(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		hz   uint32
		want uint32
	}{
		{time.Second, 90000, 90000},
		{500 * time.Millisecond, 48000, 24000},
		{-time.Second, 90000, 1<<32 - 90000},
		{48 * time.Hour, 90000, uint32(uint64(48*3600*90000) % (1 << 32))},
	} {
		if got := rtpTicks(c.d, c.hz); got != c.want {
			t.Errorf("rtpTicks(%v, %d) = %d, want %d", c.d, c.hz, got, c.want)
		}
	}
}

// Until the subscriber's connection is up, pion drops what a down-track
// writes. A keyframe dropped that way must not start the stream: the
// subscriber would get only frames it cannot decode. Once the connection
// is up, the down-track catches up from that keyframe, still in the
// source's cache, instead of asking for a new one.
func TestDownTrackStartsOnceTheConnectionIsReady(t *testing.T) {
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 64, Writers: 1})
	sub := &memContext{id: "a", ssrc: 5, record: true}
	sub.notReady.Store(true)
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	if n := fx.rtcp.count(); n != 0 {
		t.Fatalf("%d keyframe requests for a subscriber that cannot receive yet", n)
	}
	seq := uint16(1)
	send := func(keyframe bool) {
		fx.track.in <- rawRTP(t, 96, seq, uint32(seq)*3000, keyframe, rtctest.CounterPayload(uint32(seq), 100))
		seq++
	}
	send(true) // lost: the connection is not up
	for i := 0; i < 5; i++ {
		send(false)
	}
	poll.Until(t, "the packets handled", func() bool {
		st := dt.Stats()
		return st.Drops[DropNotReady] == 1 && st.Drops[DropWaitKeyframe] == 5
	})
	if n := fx.rtcp.count(); n != 0 {
		t.Fatalf("%d keyframe requests before the connection was ready", n)
	}

	sub.notReady.Store(false)
	dt.TransportReady()
	if n := fx.rtcp.count(); n != 0 {
		t.Fatalf("%d keyframe requests with a fresh keyframe in the cache, want 0", n)
	}
	send(false) // catches up: packets 1 to 6 from the cache, then this one
	poll.Until(t, "the stream to start", func() bool { return sub.count() == 7 })
	sent := sub.sent()
	if !startsKeyframe(codecVP8, sent[0].payload) {
		t.Fatal("the subscriber's first packet is not a keyframe")
	}
	for i := 1; i < len(sent); i++ {
		if sent[i].hdr.SequenceNumber != sent[0].hdr.SequenceNumber+uint16(i) {
			t.Fatalf("packet %d has sequence number %d after %d", i, sent[i].hdr.SequenceNumber, sent[0].hdr.SequenceNumber)
		}
		if got, want := sent[i].hdr.Timestamp-sent[0].hdr.Timestamp, uint32(i)*3000; got != want {
			t.Fatalf("packet %d is %d ticks after the keyframe, want %d", i, got, want)
		}
	}
	if st := dt.Stats(); st.Packets != 7 || st.CatchUps != 1 {
		t.Fatalf("stats %+v: want 7 packets sent, 1 catch-up", st)
	}
	if n := fx.rtcp.count(); n != 0 {
		t.Fatalf("%d keyframe requests, want 0", n)
	}
}

// A keyframe older than maxCatchUpAge is not caught up from: the
// down-track asks for a new one and waits for it.
func TestDownTrackAsksWhenTheKeyframeIsOld(t *testing.T) {
	clk := clock.NewManual(time.Unix(1000, 0))
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 64, Writers: 1, Clock: clk})
	sub := &memContext{id: "a", ssrc: 5, record: true}
	sub.notReady.Store(true)
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	fx.track.in <- rawRTP(t, 96, 1, 3000, true, rtctest.CounterPayload(1, 100))
	poll.Until(t, "the keyframe lost", func() bool { return dt.Stats().Drops[DropNotReady] == 1 })
	clk.Advance(maxCatchUpAge + 1)
	sub.notReady.Store(false)
	dt.TransportReady()
	if n := fx.rtcp.count(); n != 1 {
		t.Fatalf("%d keyframe requests, want 1", n)
	}
	fx.track.in <- rawRTP(t, 96, 2, 6000, false, rtctest.CounterPayload(2, 100))
	poll.Until(t, "the delta dropped", func() bool { return dt.Stats().Drops[DropWaitKeyframe] == 1 })
	fx.track.in <- rawRTP(t, 96, 3, 9000, true, rtctest.CounterPayload(3, 100))
	poll.Until(t, "the new keyframe", func() bool { return sub.count() == 1 })
	if st := dt.Stats(); st.CatchUps != 0 {
		t.Fatalf("caught up from a stale keyframe: %+v", st)
	}
}

// A keyframe whose packets are no longer all cached is not caught up from.
func TestDownTrackCatchUpNeedsTheWholeRun(t *testing.T) {
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 16, Writers: 1})
	sub := &memContext{id: "a", ssrc: 5, record: true}
	sub.notReady.Store(true)
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	// 20 packets through a 16-slot cache: the keyframe is overwritten.
	for i := 1; i <= 20; i++ {
		fx.track.in <- rawRTP(t, 96, uint16(i), uint32(i)*3000, i == 1, rtctest.CounterPayload(uint32(i), 100))
	}
	poll.Until(t, "the packets handled", func() bool {
		st := dt.Stats()
		return st.Drops[DropNotReady]+st.Drops[DropWaitKeyframe] == 20
	})
	sub.notReady.Store(false)
	dt.TransportReady()
	fx.track.in <- rawRTP(t, 96, 21, 21*3000, false, rtctest.CounterPayload(21, 100))
	poll.Until(t, "the delta dropped", func() bool { return dt.Stats().Drops[DropWaitKeyframe] == 20 })
	if sub.count() != 0 || dt.Stats().CatchUps != 0 {
		t.Fatalf("sent %d packets without their keyframe", sub.count())
	}
	if fx.rtcp.count() == 0 {
		t.Fatal("no keyframe asked for")
	}
}
