package rtc

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// An svcCodec writes the payload descriptor of one packet of a scalable
// stream: spatial layer sid and temporal layer tid of picture pic, the
// first (begin) or last (end) packet of that layer's frame. key marks a
// keyframe picture; tl0 counts the pictures of temporal layer 0.
type svcCodec struct {
	capability webrtc.RTPCodecCapability
	descriptor func(pic, tl0, sid, tid int, key, begin, end bool) []byte
	// layers reads a received payload's spatial and temporal layer.
	layers func(payload []byte) (sid, tid int)
}

// svcVP9 writes RFC 9628 descriptors in non-flexible mode, as libvpx's
// SVC encoder in a browser does: a 15-bit picture id, the layer indices
// and TL0PICIDX, the scalability structure on the keyframe's first
// packet, P clear on both layers of a keyframe picture (the upper one
// predicted from the lower alone: D set), Z on the top layer (nothing
// above refers to it).
var svcVP9 = svcCodec{
	capability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"},
	descriptor: func(pic, tl0, sid, tid int, key, begin, end bool) []byte {
		b0 := byte(0xa0) // I, L
		if !key {
			b0 |= 0x40 // P
		}
		if begin {
			b0 |= 0x08 // B
		}
		if end {
			b0 |= 0x04 // E
		}
		ss := key && sid == 0 && begin
		if ss {
			b0 |= 0x02 // V
		}
		if sid == 1 {
			b0 |= 0x01 // Z
		}
		id := uint16(pic) & 0x7fff
		idx := byte(tid<<5 | sid<<1)
		if sid > 0 {
			idx |= 0x01 // D: predicted from the layer below
		}
		d := []byte{b0, 0x80 | byte(id>>8), byte(id), idx, byte(tl0)}
		if ss {
			// N_S = 1 (two layers), Y: their sizes (320x180 and
			// 640x360), no picture group.
			d = append(d, 0x30, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68)
		}
		return d
	},
	layers: func(p []byte) (int, int) { return int(p[3]>>1) & 0x07, int(p[3] >> 5) },
}

// svcAV1 writes the AV1 RTP aggregation header and OBU headers with the
// extension that names each frame's layers. The keyframe's first packet
// sets N and carries a sequence header (av1SVCHeader: the top spatial
// layer 640x360) before the frame. A layer's frame
// spans two packets: the first ends with a fragment (Y) the second
// continues (Z). The layers are read from the OBU extension of a frame's
// first packet; a continuation has none, and reports -1.
var svcAV1 = svcCodec{
	capability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000},
	descriptor: func(pic, tl0, sid, tid int, key, begin, end bool) []byte {
		frame := []byte{0x34, byte(tid<<5 | sid<<3)} // OBU_FRAME with extension
		switch {
		case key && sid == 0 && begin:
			// W = 2: a sequence header with its length, then the frame.
			d := append([]byte{0x20 | 0x40 | 0x08, byte(len(av1SVCHeader))}, av1SVCHeader...)
			return append(d, frame...)
		case begin:
			return append([]byte{0x10 | 0x40}, frame...) // W = 1, Y
		}
		return []byte{0x10 | 0x80} // W = 1, Z
	},
	layers: func(p []byte) (int, int) {
		at := 1
		if p[0]&0x20 != 0 { // W = 2: past the sequence header
			at += 1 + int(p[1])
		}
		if p[0]&0x80 != 0 {
			return -1, -1
		}
		return int(p[at+1]>>3) & 0x03, int(p[at+1] >> 5)
	},
}

// TestLoopbackSVC: a pion publisher sends a scalable stream (two spatial
// layers and two temporal layers in one SSRC, as an SVC encoder does)
// through the server; the server forwards it whole. The Track has one
// layer and no rid. Two subscribers, one with a frame rate cap, a
// quality cap and a small rendered size, never switch, and each receives
// every packet from its first keyframe on: the publisher's payloads byte
// for byte, in order, with sequence numbers one apart, both spatial
// layers and both temporal layers, nothing dropped on the way.
func TestLoopbackSVC(t *testing.T) {
	for name, codec := range map[string]svcCodec{"VP9": svcVP9, "AV1": svcAV1} {
		t.Run(name, func(t *testing.T) { loopbackSVC(t, codec) })
	}
}

// svcPublisher sends a scalable stream on track: a picture every
// interval, each layer's frame in two packets, the base layer first; a
// keyframe first and when asked (wantKey, on a PLI). It keeps every
// payload sent.
type svcPublisher struct {
	codec   svcCodec
	track   *webrtc.TrackLocalStaticRTP
	wantKey atomic.Bool

	mu   sync.Mutex
	sent [][]byte
}

func (s *svcPublisher) payloads() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// run sends pictures until ctx ends.
func (s *svcPublisher) run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	s.wantKey.Store(true)
	var seq uint16
	var n uint32
	tl0, sinceKey := -1, 0
	for pic := 0; ; pic++ {
		key := s.wantKey.Swap(false)
		if key {
			sinceKey = 0
		}
		// Two temporal layers, from each keyframe on: 0, 1, 0, 1...
		tid := sinceKey % 2
		sinceKey++
		if tid == 0 {
			tl0++
		}
		for sid := range 2 {
			for part := range 2 {
				payload := s.codec.descriptor(pic, tl0, sid, tid, key, part == 0, part == 1)
				// The body: which packet this is, and some of the frame.
				payload = binary.BigEndian.AppendUint32(payload, n)
				n++
				payload = append(payload, bytes.Repeat([]byte{byte(pic)}, 200+100*sid)...)
				pkt := &rtp.Packet{
					Header:  rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(pic) * 3000, Marker: sid == 1 && part == 1},
					Payload: payload,
				}
				seq++
				if err := s.track.WriteRTP(pkt); err != nil {
					return err
				}
				s.mu.Lock()
				s.sent = append(s.sent, payload)
				s.mu.Unlock()
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		}
	}
}

func loopbackSVC(t *testing.T, codec svcCodec) {
	engine, api, ctx, wg := loopbackRig(t)

	pub := newPeerOwner(t, engine, api)
	local, err := webrtc.NewTrackLocalStaticRTP(codec.capability, "camera", "PA_pub")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := pub.client.AddTrack(local)
	if err != nil {
		t.Fatal(err)
	}
	camera := &svcPublisher{codec: codec, track: local}
	wg.Go(func() { rtctest.ServeKeyframeRequests(sender, func() { camera.wantKey.Store(true) }) })
	pub.clientOffer()
	pub.waitConnected()
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	sending := make(chan struct{})
	wg.Go(func() {
		defer close(sending)
		if err := camera.run(sendCtx, 20*time.Millisecond); err != nil {
			t.Errorf("publish: %v", err)
		}
	})

	ev, fwd := nextForwarder(t, pub, engine, nil)
	if !strings.EqualFold(fwd.Codec().MimeType, codec.capability.MimeType) {
		t.Fatalf("the server received %s, want %s", fwd.Codec().MimeType, codec.capability.MimeType)
	}
	track, err := NewTrack(TrackConfig{Layer: fwd, RID: ev.Track.RID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = track.Close() })

	// One subscriber as it comes, one with every cap a subscriber or its
	// room sets: a frame rate (which VP8 temporal layers would meet), a
	// quality and a small rendered size (which would pick a simulcast
	// layer). None applies inside an SVC stream.
	cfg := PeerConfig{Engine: engine, Mode: PeerSignaling}
	subs := []*svcSubscriber{{name: "plain"}, {name: "capped"}}
	_, subs[0].dt, subs[0].rec = subscribeLoopback(t, cfg, api, track, wg)
	_, subs[1].dt, subs[1].rec = subscribeLoopbackThen(t, cfg, api, track, wg, func(dt *DownTrack) {
		dt.SetMaxFrameRate(5)
		dt.SetMaxSize(180)
		dt.SetLimits(LayerLimits{MaxLines: 90, Width: 160, Height: 90})
	})
	for _, sub := range subs {
		poll.Until(t, "a second of the stream at the "+sub.name+" subscriber", func() bool { return len(sub.rec.get()) >= 200 })
		sub.start(t, codec, camera.payloads())
	}
	// Every packet sent so far from there must come. The stream goes on
	// meanwhile, so that a packet lost on the way is missed by the next
	// one and resent (NACK).
	for _, sub := range subs {
		poll.Until(t, "every packet sent from the first keyframe at the "+sub.name+" subscriber", sub.hasAll)
	}
	stopSending()
	<-sending
	for _, sub := range subs {
		sub.check(t, codec, camera.payloads())
	}

	l := track.Layers()
	if len(l) != 1 || l[0].RID != "" || l[0].SSRC != fwd.ssrc {
		t.Fatalf("the track's layers are %+v, want one, without a rid", l)
	}
	// A VP9 keyframe's scalability structure, an AV1 keyframe's sequence
	// header, gives the picture's size: the largest spatial layer's.
	if l[0].Width != 640 || l[0].Height != 360 {
		t.Fatalf("the track's size %dx%d, want the top spatial layer's 640x360", l[0].Width, l[0].Height)
	}
}

// svcSubscriber is what a subscriber of TestLoopbackSVC received.
type svcSubscriber struct {
	name string
	dt   *DownTrack
	rec  *recording
	// first is the index among the publisher's packets of the first one
	// the subscriber received, which it received as seq0; n counts the
	// packets sent from there when the test looked.
	first int
	seq0  uint16
	n     int
}

// start notes where the subscriber's stream began among sent, all the
// publisher has sent so far: on a keyframe.
func (s *svcSubscriber) start(t *testing.T, codec svcCodec, sent [][]byte) {
	t.Helper()
	// The stream's first packet, which may have come late, resent.
	all := s.rec.get()
	got := all[0]
	for _, p := range all {
		if int16(p.hdr.SequenceNumber-got.hdr.SequenceNumber) < 0 {
			got = p
		}
	}
	s.first = slices.IndexFunc(sent, func(b []byte) bool { return bytes.Equal(b, got.payload) })
	if s.first < 0 {
		t.Fatalf("%s: the first packet %x... is none the publisher sent", s.name, svcHead(got.payload))
	}
	if !startsKeyframe(codecKindOf(codec.capability.MimeType), got.payload) {
		t.Fatalf("%s: the stream starts on %x..., not a keyframe", s.name, svcHead(got.payload))
	}
	s.seq0, s.n = got.hdr.SequenceNumber, len(sent)-s.first
}

// bySeq returns the packets received by their place in the stream, as
// their sequence numbers say: a resent packet comes late.
func (s *svcSubscriber) bySeq() map[int]sentPacket {
	m := make(map[int]sentPacket)
	for _, p := range s.rec.get() {
		m[int(p.hdr.SequenceNumber-s.seq0)] = p
	}
	return m
}

// hasAll reports whether the first n packets of the stream came.
func (s *svcSubscriber) hasAll() bool {
	m := s.bySeq()
	for i := range s.n {
		if _, ok := m[i]; !ok {
			return false
		}
	}
	return true
}

// check fails unless each packet received is the one the publisher sent
// at its place (sent is all it sent), the first n in one SSRC with a new
// timestamp after each marker and every layer among them, and the
// down-track stayed on the Track's one layer, dropping nothing for a
// choice of layers.
func (s *svcSubscriber) check(t *testing.T, codec svcCodec, sent [][]byte) {
	t.Helper()
	sent = sent[s.first:]
	for _, p := range s.rec.get() {
		off := int(p.hdr.SequenceNumber - s.seq0)
		if off >= len(sent) || !bytes.Equal(p.payload, sent[off]) {
			t.Fatalf("%s: sequence number %d (packet %d of the stream): payload %x... is not what the publisher sent there", s.name, p.hdr.SequenceNumber, off, svcHead(p.payload))
		}
	}
	byOffset := s.bySeq()
	seen := make(map[[2]int]int)
	for i := range s.n {
		p := byOffset[i]
		if p.hdr.SSRC != byOffset[0].hdr.SSRC {
			t.Fatalf("%s: packet %d: SSRC %d after %d", s.name, i, p.hdr.SSRC, byOffset[0].hdr.SSRC)
		}
		if i > 0 {
			q := byOffset[i-1]
			if newPic := p.hdr.Timestamp != q.hdr.Timestamp; newPic != q.hdr.Marker {
				t.Fatalf("%s: packet %d: a new timestamp (%v) where the last picture ended (%v)", s.name, i, newPic, q.hdr.Marker)
			}
		}
		if sid, tid := codec.layers(p.payload); sid >= 0 {
			seen[[2]int{sid, tid}]++
		}
	}
	for _, l := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
		if seen[l] == 0 {
			t.Fatalf("%s: no frame of spatial layer %d, temporal layer %d received; frames by layers: %v", s.name, l[0], l[1], seen)
		}
	}
	if st := s.dt.Layer(); st.Current != 0 || st.Next != -1 {
		t.Fatalf("%s: the down-track is at %+v, want the one layer", s.name, st)
	}
	st := s.dt.Stats()
	if st.LayerSwitches != 0 {
		t.Fatalf("%s: the down-track switched layers %d times", s.name, st.LayerSwitches)
	}
	for _, r := range []DropReason{DropTemporalLayer, DropSwitchPending, DropBandwidth, DropPaused, DropStaleSource} {
		if n := st.Dropped(r); n != 0 {
			t.Fatalf("%s: %d packets dropped: %v", s.name, n, r)
		}
	}
}

// svcHead is the start of a payload, its descriptor and counter, for a
// failure's message.
func svcHead(b []byte) []byte { return b[:min(len(b), 16)] }
