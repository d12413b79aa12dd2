package rtc

import (
	"bytes"
	"encoding/binary"
	"fmt"
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
func (l *vp9Layer) frame(tb testing.TB, i int, key bool) {
	tb.Helper()
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
		b := rawRTP(tb, uint8(vp9Codec.PayloadType), l.seq, l.ts, false, payload)
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

// vp9Track is a Track of two VP9 simulcast layers fed by the test, the
// top layer's picture ids far ahead of the low one's and its TL0PICIDX
// behind, and a subscriber of the Track, on the top layer.
type vp9Track struct {
	clk      *clock.Manual // the layers' and the Track's
	track    *Track
	low, top *vp9Layer
	dt       *DownTrack
	sink     *memContext
}

// newVP9Track makes a vp9Track whose subscriber records what it is sent
// if record, and reads the NACKs sent on sink.rtcp.
func newVP9Track(tb testing.TB, record bool) *vp9Track {
	tb.Helper()
	plis := &pliLog{}
	vt := &vp9Track{clk: clock.NewManual(time.Unix(1000, 0))}
	for i, rid := range []string{"q", "f"} {
		l := &vp9Layer{
			in:  &layerTrack{chanTrack: newChanTrack(vp9Codec), ssrc: webrtc.SSRC(layerSSRC(i))},
			seq: uint16(1000 + 30000*i), ts: uint32(i) * 0x40000000,
			pic: uint16(7 + 0x7ff0*i), tl0: uint8(200 - 100*i),
		}
		f, err := NewForwarder(ForwarderConfig{Track: l.in, RTCP: plis, CacheSlots: 64, Clock: vt.clk})
		if err != nil {
			tb.Fatal(err)
		}
		l.fwd = f
		if i == 0 {
			vt.low = l
			vt.track, err = NewTrack(TrackConfig{Layer: f, RID: rid, Clock: vt.clk})
		} else {
			vt.top = l
			err = vt.track.AddLayer(f, rid)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() {
		if err := vt.track.Close(); err != nil {
			tb.Error(err)
		}
	})
	vt.sink = &memContext{id: "sub", ssrc: 4242, record: record, codecs: []webrtc.RTPCodecParameters{vp9Codec}, rtcp: make(chan []byte)}
	dt, err := NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: vp9Codec.RTPCodecCapability})
	if err != nil {
		tb.Fatal(err)
	}
	vt.dt = dt
	tb.Cleanup(func() { _ = dt.Close() })
	if _, err := dt.Bind(vt.sink); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { close(vt.sink.rtcp) })
	dt.TransportReady()
	if err := vt.track.AddSubscriber(dt); err != nil {
		tb.Fatal(err)
	}
	if st := dt.Layer(); st.Current != 1 {
		tb.Fatalf("a new subscriber is at %+v, want the top layer", st)
	}
	return vt
}

// TestTrackVP9SwitchContinuesPictureIDs: a subscriber of a VP9 track in
// two simulcast layers moves from the top layer to the low one, whose
// picture ids are behind the top's: the low layer's keyframe goes out one
// picture after the last one sent, and so on, with TL0PICIDX likewise;
// a NACK for a packet after the switch brings it back as it was first
// sent, ids rewritten.
func TestTrackVP9SwitchContinuesPictureIDs(t *testing.T) {
	vt := newVP9Track(t, true)
	low, top, dt, sink := vt.low, vt.top, vt.dt, vt.sink
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
	checkVP9IDs(t, sent, 0x7ff7, 100)
	for i, p := range sent {
		wantLayer := 1
		if i >= 6 {
			wantLayer = 0
		}
		if l := layerOfPacket(p); l != wantLayer {
			t.Fatalf("packet %d is of layer %d, want %d", i, l, wantLayer)
		}
	}
	if !vp9Keyframe(sent[6].payload) {
		t.Fatalf("the low layer starts on %x, not its keyframe", sent[6].payload)
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

// checkVP9IDs fails unless sent, frames of two packets, carry one VP9
// stream's ids from firstPic and firstTL0 on: 15-bit picture ids and
// TL0PICIDX one up at each frame, the same within one.
func checkVP9IDs(t *testing.T, sent []sentPacket, firstPic uint16, firstTL0 uint8) {
	t.Helper()
	var prev vp9Desc
	for i, p := range sent {
		var d vp9Desc
		if !parseVP9Desc(p.payload, &d) || d.picAt == 0 || !d.pic15 || d.tl0At == 0 {
			t.Fatalf("packet %d: descriptor %x", i, p.payload)
		}
		switch {
		case i == 0:
			if d.picID != firstPic || d.tl0 != firstTL0 {
				t.Fatalf("the stream starts at picture %d, TL0PICIDX %d, want the publisher's %d, %d", d.picID, d.tl0, firstPic, firstTL0)
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
		prev = d
	}
}

// TestTrackVP9ResumeContinuesPictureIDs: a subscriber that pauses a VP9
// track and resumes it starts again on a keyframe whose picture id and
// TL0PICIDX follow the last ones it was sent, as its sequence numbers
// do: the source's last keyframe, caught up from its packet cache, whose
// own ids are behind them, or a new one, whose ids are ahead.
func TestTrackVP9ResumeContinuesPictureIDs(t *testing.T) {
	for _, catchUp := range []bool{true, false} {
		t.Run(fmt.Sprintf("catch up %v", catchUp), func(t *testing.T) {
			vt := newVP9Track(t, true)
			top, dt, sink := vt.top, vt.dt, vt.sink
			top.frame(t, 1, true)
			top.frame(t, 1, false)
			poll.Until(t, "the first two frames", func() bool { return sink.count() == 4 })
			dt.SetPaused(true)
			top.frame(t, 1, false)
			top.frame(t, 1, false)
			poll.Until(t, "the frames while paused", func() bool { return dt.Stats().Dropped(DropPaused) == 4 })
			want := 4 + 2*4 + 2 // the keyframe and the three frames after it again, then the next
			if !catchUp {
				vt.clk.Advance(2 * maxCatchUpAge) // the keyframe is too old to start from
				want = 4 + 2*2
			}
			dt.SetPaused(false)
			top.frame(t, 1, false)
			if !catchUp {
				// Not sent: the stream starts again on a new keyframe.
				poll.Until(t, "a delta frame after the pause", func() bool { return dt.Stats().Dropped(DropWaitKeyframe) == 2 })
				top.frame(t, 1, true)
				top.frame(t, 1, false)
			}
			poll.Until(t, "the frames after the pause", func() bool { return sink.count() == want })
			sent := sink.sent()
			checkVP9IDs(t, sent, 0x7ff7, 100)
			if !vp9Keyframe(sent[4].payload) {
				t.Fatalf("the stream resumes on %x, not a keyframe", sent[4].payload)
			}
			for i := 1; i < len(sent); i++ {
				if sent[i].hdr.SequenceNumber != sent[i-1].hdr.SequenceNumber+1 {
					t.Fatalf("packet %d: sequence number %d after %d", i, sent[i].hdr.SequenceNumber, sent[i-1].hdr.SequenceNumber)
				}
			}
		})
	}
}

// TestTrackVP9KeepsIDsUntilDelivered: a VP9 keyframe written before the
// subscriber's connection could take it (pion drops it) is not one the
// subscriber saw, so the keyframe its stream then starts on keeps the
// publisher's picture id and TL0PICIDX, as a stream's first source does:
// an SVC stream goes out as sent.
func TestTrackVP9KeepsIDsUntilDelivered(t *testing.T) {
	vt := newVP9Track(t, true)
	top, dt, sink := vt.top, vt.dt, vt.sink
	sink.notReady.Store(true)
	top.frame(t, 1, true)
	// Its first packet, then again from the cache at its second.
	poll.Until(t, "the keyframe dropped twice", func() bool {
		st := dt.Stats()
		return st.Dropped(DropNotReady) == 2 && st.Dropped(DropWaitKeyframe) == 1
	})
	sink.notReady.Store(false)
	top.frame(t, 1, false) // starts from the cached keyframe
	poll.Until(t, "the keyframe and the frame after it", func() bool { return sink.count() == 4 })
	sent := sink.sent()
	checkVP9IDs(t, sent, 0x7ff7, 100)
	if !vp9Keyframe(sent[0].payload) {
		t.Fatalf("the stream starts on %x, not the keyframe", sent[0].payload)
	}
}

// FuzzVP9SwitchedSend sends arbitrary payloads of the layer a subscriber
// has moved to, whose picture ids and TL0PICIDX it rewrites, through the
// subscriber's send path: whatever a payload says, the rewrite stays
// inside it and nothing panics.
func FuzzVP9SwitchedSend(f *testing.F) {
	f.Add([]byte{0xe4, 0x80, 0x10, 0x00, 0x05, 0x82}) // a delta frame's last packet
	f.Add([]byte{0xaa, 0x7f, 0x00, 0xff, 0x10, 0x01, 0x40, 0x00, 0xb4})
	f.Add([]byte{0xe4, 0x80, 0x10, 0x00, 0x05}) // the descriptor alone
	f.Add([]byte{0xc4, 0x12})                   // a 7-bit id, no layers
	f.Add([]byte{0xf8, 0x81})
	f.Add([]byte{0xa8})
	vt := newVP9Track(f, false)
	vt.top.frame(f, 1, true)
	poll.Until(f, "the top layer's keyframe", func() bool { return vt.sink.count() == 2 })
	vt.dt.SetTargetLayer(0)
	vt.low.frame(f, 0, true)
	poll.Until(f, "the low layer's keyframe", func() bool { return vt.sink.count() == 4 && vt.dt.Layer().Current == 0 })
	vt.dt.wmu.Lock()
	picOff, tl0Off := vt.dt.w.rw.picOff, vt.dt.w.rw.tl0Off
	vt.dt.wmu.Unlock()
	if picOff == 0 || tl0Off == 0 {
		f.Fatalf("the low layer's ids are not rewritten (offsets %d, %d)", picOff, tl0Off)
	}
	hdr := rawRTP(f, uint8(vp9Codec.PayloadType), 0, 0, false, nil)
	seq := vt.low.seq
	f.Fuzz(func(t *testing.T, payload []byte) {
		p := getPacket()
		defer func() {
			p.src = nil
			packetPool.Put(p)
		}()
		n := copy(p.buf[:], hdr)
		binary.BigEndian.PutUint16(p.buf[2:], seq)
		seq++
		n += copy(p.buf[n:], payload)
		if err := parseRTP(p.buf[:n], &p.h); err != nil {
			t.Fatal(err)
		}
		p.keyframe = p.readDescriptor(codecVP9)
		p.src = vt.low.fwd
		vt.dt.send(p, time.Now())
	})
}
