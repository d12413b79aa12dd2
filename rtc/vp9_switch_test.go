package rtc

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
)

var vp9Codec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"},
	PayloadType:        98,
}

// vp9Layer is one VP9 simulcast layer of TestTrackVP9SwitchContinuesPictureIDs,
// fed by the test: its own sequence numbers, timestamps, picture ids and
// TL0PICIDX.
type vp9Layer struct {
	in  *layerTrack
	fwd *Forwarder
	seq uint16
	ts  uint32
	pic uint16
	tl0 uint8
	fed uint64
}

// frame sends one frame in two packets, the first a keyframe's (with a
// scalability structure of one layer) if key; the last payload byte
// names the layer, i.
func (l *vp9Layer) frame(t *testing.T, i int, key bool) {
	t.Helper()
	for part := range 2 {
		flags := vp9FrameFlags(key, part)
		if key && part == 0 {
			flags |= vp9V
		}
		payload := vp9Descriptor(flags, int(l.pic), true, true, false, 0, l.tl0)
		if key && part == 0 {
			payload = append(payload, 0x10) // N_S = 0, Y: the size
			payload = binary.BigEndian.AppendUint16(payload, uint16(320<<i))
			payload = binary.BigEndian.AppendUint16(payload, uint16(180<<i))
		}
		payload = append(payload, 0x82, 0x49, 0x83, byte('0'+i))
		b := rawRTP(t, uint8(vp9Codec.PayloadType), l.seq, l.ts, false, payload)
		if part == 1 {
			b[1] |= 0x80 // marker: the frame ends
		}
		l.seq++
		l.fed++
		l.in.in <- b
	}
	l.pic = (l.pic + 1) & 0x7fff
	l.tl0++
	l.ts += 3000
}

// TestTrackVP9SwitchContinuesPictureIDs: a subscriber of a VP9 track in
// two simulcast layers moves from the top layer to the low one, whose
// picture ids are behind the top's: the low layer's keyframe goes out one
// picture after the last one sent, and so on, with TL0PICIDX likewise;
// a NACK for a packet after the switch brings it back as it was first
// sent, ids rewritten.
func TestTrackVP9SwitchContinuesPictureIDs(t *testing.T) {
	plis := &pliLog{}
	var layers []*vp9Layer
	var track *Track
	for i, rid := range []string{"q", "f"} {
		l := &vp9Layer{
			in:  &layerTrack{chanTrack: newChanTrack(vp9Codec), ssrc: webrtc.SSRC(layerSSRC(i))},
			seq: uint16(1000 + 30000*i), ts: uint32(i) * 0x40000000,
			// The top layer's picture ids are far ahead of the low
			// one's, its TL0PICIDX behind.
			pic: uint16(7 + 0x7ff0*i), tl0: uint8(200 - 100*i),
		}
		f, err := NewForwarder(ForwarderConfig{Track: l.in, RTCP: plis, CacheSlots: 64})
		if err != nil {
			t.Fatal(err)
		}
		l.fwd = f
		layers = append(layers, l)
		if i == 0 {
			track, err = NewTrack(TrackConfig{Layer: f, RID: rid, Clock: clock.NewManual(time.Unix(1000, 0))})
		} else {
			err = track.AddLayer(f, rid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := track.Close(); err != nil {
			t.Error(err)
		}
	})
	sink := &memContext{id: "sub", ssrc: 4242, record: true, codecs: []webrtc.RTPCodecParameters{vp9Codec}, rtcp: make(chan []byte)}
	dt, err := NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: vp9Codec.RTPCodecCapability})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dt.Close() })
	defer close(sink.rtcp)
	if _, err := dt.Bind(sink); err != nil {
		t.Fatal(err)
	}
	dt.TransportReady()
	if err := track.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	if st := dt.Layer(); st.Current != 1 {
		t.Fatalf("a new subscriber is at %+v, want the top layer", st)
	}

	low, top := layers[0], layers[1]
	top.frame(t, 1, true)
	top.frame(t, 1, false)
	low.frame(t, 0, false) // to nobody
	poll.Until(t, "the top layer's two frames", func() bool { return sink.count() == 4 })
	dt.SetTargetLayer(0)
	low.frame(t, 0, false) // a delta frame of the new layer: not sent
	top.frame(t, 1, false) // the old layer goes on meanwhile
	poll.Until(t, "the old layer until the keyframe", func() bool { return sink.count() == 6 })
	low.frame(t, 0, true)
	poll.Until(t, "the new layer's keyframe", func() bool { return sink.count() == 8 })
	top.frame(t, 1, false) // to nobody now
	low.frame(t, 0, false)
	low.frame(t, 0, false)
	poll.Until(t, "the new layer's next frames", func() bool { return sink.count() == 12 })

	sent := sink.sent()
	var prev vp9Desc
	for i, p := range sent {
		var d vp9Desc
		if !parseVP9Desc(p.payload, &d) || d.picAt == 0 || !d.pic15 || d.tl0At == 0 {
			t.Fatalf("packet %d: descriptor %x", i, p.payload)
		}
		wantLayer := 1
		if i >= 6 {
			wantLayer = 0
		}
		if l := layerOfPacket(p); l != wantLayer {
			t.Fatalf("packet %d is of layer %d, want %d", i, l, wantLayer)
		}
		switch {
		case i == 0:
			if d.picID != 0x7ff7 || d.tl0 != 100 {
				t.Fatalf("the stream starts at picture %d, TL0PICIDX %d: not the publisher's", d.picID, d.tl0)
			}
		case i%2 == 1:
			if d.picID != prev.picID || d.tl0 != prev.tl0 {
				t.Fatalf("packet %d: picture %d, TL0PICIDX %d in a frame of %d, %d", i, d.picID, d.tl0, prev.picID, prev.tl0)
			}
		default:
			if d.picID != (prev.picID+1)&0x7fff || d.tl0 != prev.tl0+1 {
				t.Fatalf("packet %d: picture %d, TL0PICIDX %d after %d, %d", i, d.picID, d.tl0, prev.picID, prev.tl0)
			}
		}
		if i == 6 && !vp9Keyframe(p.payload) {
			t.Fatalf("the low layer starts on %x, not its keyframe", p.payload)
		}
		prev = d
	}

	// One NACK for the low layer's keyframe and a packet after it: both
	// come back as they were sent, picture ids rewritten.
	resend := []sentPacket{sent[6], sent[9]}
	var pairs []rtcp.NackPair
	for _, p := range resend {
		pairs = append(pairs, rtcp.NackPair{PacketID: p.hdr.SequenceNumber})
	}
	nack, err := rtcp.Marshal([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: 4242, Nacks: pairs}})
	if err != nil {
		t.Fatal(err)
	}
	sink.rtcp <- nack
	poll.Until(t, "the retransmissions", func() bool { return sink.count() == len(sent)+len(resend) })
	for k, again := range sink.sent()[len(sent):] {
		want := resend[k]
		if again.hdr.SequenceNumber != want.hdr.SequenceNumber || again.hdr.Timestamp != want.hdr.Timestamp || !bytes.Equal(again.payload, want.payload) {
			t.Errorf("resent as %d %x, first sent as %d %x", again.hdr.SequenceNumber, again.payload, want.hdr.SequenceNumber, want.payload)
		}
	}
}
