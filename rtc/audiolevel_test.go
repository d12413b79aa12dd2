package rtc

import (
	"bytes"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

func TestLevelMeter(t *testing.T) {
	var m levelMeter
	if l := unpackLevel(0); l.DBov != 127 || l.Updates != 0 {
		t.Fatalf("nothing noted: %+v", l)
	}
	// The first packet sets the level.
	l := unpackLevel(m.note(30))
	if l.DBov != 30 || l.Voice != 0 || l.VoiceKnown || l.Updates != 1 {
		t.Fatalf("first packet: %+v", l)
	}
	// A louder voice moves it most of the way within a few hundred ms
	// of 20 ms packets, and all the way in a second.
	for i := 0; i < 10; i++ {
		l = unpackLevel(m.note(0x80 | 10))
	}
	if l.DBov > 18 || l.DBov < 10 || !l.VoiceKnown || l.Voice < 0.6 || l.Updates != 11 {
		t.Fatalf("after 10 voiced packets at -10 dBov: %+v", l)
	}
	for i := 0; i < 40; i++ {
		l = unpackLevel(m.note(0x80 | 10))
	}
	if math.Abs(l.DBov-10) > 0.1 || l.Voice < 0.97 {
		t.Fatalf("after 50: %+v", l)
	}
	// Silence without the voice bit brings it down; the bit stays known.
	for i := 0; i < 50; i++ {
		l = unpackLevel(m.note(127))
	}
	if l.DBov < 126 || l.Voice > 0.03 || !l.VoiceKnown {
		t.Fatalf("after silence: %+v", l)
	}
	if got := (AudioLevel{DBov: 20}).Linear(); math.Abs(got-0.1) > 1e-9 {
		t.Fatalf("linear of -20 dBov is %v, want 0.1", got)
	}
}

// audioLevelPacket is an Opus packet carrying an audio level (and, for
// the down-track tests, an orientation) under the given ids.
func audioLevelPacket(t testing.TB, seq uint16, levelID, level uint8) []byte {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 1234}, Payload: rtctest.CounterPayload(uint32(seq), 40)}
	if err := p.Header.SetExtension(1, []byte("0")); err != nil { // a mid, not forwarded
		t.Fatal(err)
	}
	if err := p.Header.SetExtension(levelID, []byte{level}); err != nil {
		t.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A forwarder reads the audio level under the publisher's id, meters it,
// and each subscriber gets it under its own id, or not at all when it did
// not negotiate it; a muted track's level does not move.
func TestForwarderAudioLevel(t *testing.T) {
	fx := newFixtureWith(t, opusCodec, ForwarderConfig{CacheSlots: 64, HeaderExtensions: []webrtc.RTPHeaderExtensionParameter{
		{URI: "urn:ietf:params:rtp-hdrext:sdes:mid", ID: 1},
		{URI: AudioLevelURI, ID: 10},
	}})
	with := &memContext{id: "with", ssrc: 5, record: true, exts: []webrtc.RTPHeaderExtensionParameter{{URI: AudioLevelURI, ID: 3}}}
	without := &memContext{id: "without", ssrc: 6, record: true}
	for _, s := range []*memContext{with, without} {
		if err := fx.f.AddSubscriber(fx.downTrack(s)); err != nil {
			t.Fatal(err)
		}
	}
	if l := fx.f.AudioLevel(); l.Updates != 0 || l.DBov != 127 {
		t.Fatalf("before any packet: %+v", l)
	}
	for i := 0; i < 20; i++ {
		fx.track.in <- audioLevelPacket(t, uint16(100+i), 10, 0x80|25)
	}
	poll.Until(t, "20 packets to each", func() bool { return with.count() == 20 && without.count() == 20 })
	l := fx.f.AudioLevel()
	if l.Updates != 20 || math.Abs(l.DBov-25) > 0.01 || !l.VoiceKnown || l.Voice < 0.99 {
		t.Fatalf("after 20 packets at -25 dBov, voiced: %+v", l)
	}
	for k, p := range with.sent() {
		if got := p.hdr.GetExtension(3); !bytes.Equal(got, []byte{0x80 | 25}) {
			t.Fatalf("packet %d: audio level under the subscriber's id 3: %x", k, got)
		}
		if p.hdr.GetExtension(10) != nil || p.hdr.GetExtension(1) != nil {
			t.Fatalf("packet %d: the publisher's elements went through: %v", k, p.hdr.Extensions)
		}
	}
	for k, p := range without.sent() {
		if p.hdr.Extension || len(p.hdr.Extensions) != 0 {
			t.Fatalf("packet %d to a subscriber without the extension: %v", k, p.hdr.Extensions)
		}
	}

	fx.f.SetMuted(true)
	for i := 0; i < 5; i++ {
		fx.track.in <- audioLevelPacket(t, uint16(120+i), 10, 0x80|5)
	}
	poll.Until(t, "the muted packets read", func() bool { return fx.f.Stats().Packets == 25 })
	if got := fx.f.AudioLevel(); got != l {
		t.Fatalf("a muted track's level moved: %+v, was %+v", got, l)
	}
}

// A video track's orientation reaches the subscriber under its id, on the
// packets that carry it, and on the keyframe a late subscriber catches
// up from.
func TestForwarderVideoOrientation(t *testing.T) {
	// A stopped clock: the keyframe stays recent enough to catch up from
	// however slowly the test runs.
	fx := newFixtureWith(t, vp8Codec, ForwarderConfig{CacheSlots: 64, Clock: clock.NewManual(time.Unix(1000, 0)), HeaderExtensions: []webrtc.RTPHeaderExtensionParameter{
		{URI: VideoOrientationURI, ID: 13},
	}})
	sub := &memContext{id: "v", ssrc: 5, record: true, exts: []webrtc.RTPHeaderExtensionParameter{{URI: VideoOrientationURI, ID: 4}}}
	if err := fx.f.AddSubscriber(fx.downTrack(sub)); err != nil {
		t.Fatal(err)
	}
	pkt := func(seq uint16, key bool, cvo int) []byte {
		b := rawRTP(t, 96, seq, uint32(seq)*3000, key, rtctest.CounterPayload(uint32(seq), 30))
		if cvo < 0 {
			return b
		}
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if err := p.Header.SetExtension(13, []byte{byte(cvo)}); err != nil {
			t.Fatal(err)
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// A keyframe rotated 90 degrees (CVO 1), a packet without, one at 180.
	fx.track.in <- pkt(1, true, 1)
	fx.track.in <- pkt(2, false, -1)
	fx.track.in <- pkt(3, false, 2)
	poll.Until(t, "3 packets", func() bool { return sub.count() == 3 })
	got := sub.sent()
	want := [][]byte{{1}, nil, {2}}
	for k, p := range got {
		if e := p.hdr.GetExtension(4); !bytes.Equal(e, want[k]) {
			t.Fatalf("packet %d: orientation %x, want %x", k, e, want[k])
		}
	}
	// A subscriber that comes now starts from the cached keyframe, with
	// its orientation.
	late := &memContext{id: "late", ssrc: 6, record: true, exts: []webrtc.RTPHeaderExtensionParameter{{URI: VideoOrientationURI, ID: 7}}}
	dt := fx.downTrack(late)
	dt.TransportReady()
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	fx.track.in <- pkt(4, false, -1)
	poll.Until(t, "the catch-up", func() bool { return late.count() == 4 })
	if e := late.sent()[0].hdr.GetExtension(7); !bytes.Equal(e, []byte{1}) {
		t.Fatalf("caught-up keyframe: orientation %x, want 01", e)
	}
}

// The forwarding path with extensions to read and write still allocates
// nothing per packet.
func TestForwardWithExtensionsAllocations(t *testing.T) {
	fx := newFixtureWith(t, opusCodec, ForwarderConfig{CacheSlots: 64, HeaderExtensions: []webrtc.RTPHeaderExtensionParameter{
		{URI: AudioLevelURI, ID: 10},
	}})
	sub := &memContext{id: "a", ssrc: 5, exts: []webrtc.RTPHeaderExtensionParameter{{URI: AudioLevelURI, ID: 3}}}
	if err := fx.f.AddSubscriber(fx.downTrack(sub)); err != nil {
		t.Fatal(err)
	}
	pkt := audioLevelPacket(t, 1, 10, 40)
	sent := 0
	forwardOne := func() {
		p := getPacket()
		pkt[2], pkt[3] = byte(sent>>8), byte(sent)
		fx.f.forward(p, copy(p.buf[:], pkt))
		sent++
		for sub.count() < sent { // the writer runs on its own goroutine
			runtime.Gosched()
		}
	}
	for i := 0; i < 100; i++ {
		forwardOne()
	}
	if allocs := testing.AllocsPerRun(200, forwardOne); allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
}
