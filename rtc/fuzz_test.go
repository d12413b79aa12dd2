package rtc

import (
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// FuzzForward feeds arbitrary bytes to the forwarder's packet handler as a
// received packet, with a subscriber attached: it must never panic, and
// whatever it forwards must lie inside the packet.
func FuzzForward(f *testing.F) {
	f.Add(rawRTP(f, 96, 1, 1, true, []byte("hello")))
	f.Add(rawRTP(f, 111, 1, 1, false, []byte("opus")))
	f.Add([]byte{0xb0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0, 0x10, 0, 3})
	f.Add([]byte{0xa0, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9})
	f.Add([]byte{0x8f, 0x60})
	fw, err := NewForwarder(ForwarderConfig{Track: newChanTrack(vp8Codec), RTCP: &rtcpSink{}})
	if err != nil {
		f.Fatal(err)
	}
	defer fw.Close()
	dt, err := NewDownTrack(DownTrackConfig{ID: "f", StreamID: "f", Codec: vp8Codec.RTPCodecCapability})
	if err != nil {
		f.Fatal(err)
	}
	defer dt.Close()
	if _, err := dt.Bind(&memContext{id: "f", codecs: []webrtc.RTPCodecParameters{vp8Codec}}); err != nil {
		f.Fatal(err)
	}
	if err := fw.AddSubscriber(dt); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxPacketSize {
			b = b[:maxPacketSize]
		}
		var h rtpHeader
		if parseRTP(b, &h) == nil {
			if h.payloadStart > h.payloadEnd || h.payloadEnd > h.end || h.end != len(b) {
				t.Fatalf("bounds %+v for %d bytes", h, len(b))
			}
		}
		for _, kind := range []codecKind{codecVP8, codecVP9, codecH264, codecAV1} {
			startsKeyframe(kind, b)
		}
		p := getPacket()
		n := copy(p.buf[:], b)
		fw.forward(p, n)
	})
}

// FuzzWalkRTCP feeds arbitrary bytes as RTCP from a subscriber: no panic,
// and every valid NACK pion can parse is counted the same way.
func FuzzWalkRTCP(f *testing.F) {
	seed, _ := rtcp.Marshal([]rtcp.Packet{
		&rtcp.TransportLayerNack{MediaSSRC: 7, Nacks: []rtcp.NackPair{{PacketID: 10, LostPackets: 0x8001}}},
		&rtcp.PictureLossIndication{MediaSSRC: 7},
		&rtcp.FullIntraRequest{FIR: []rtcp.FIREntry{{SSRC: 7}}},
	})
	f.Add(seed)
	f.Add([]byte{0x81, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, b []byte) {
		var seqs int
		fb := rtcpFeedback{nack: func(uint16) { seqs++ }}
		n := walkRTCP(b, 7, &fb)
		if n != seqs {
			t.Fatalf("walkRTCP returned %d, reported %d", n, seqs)
		}
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		want := 0
		for _, p := range pkts {
			if nk, ok := p.(*rtcp.TransportLayerNack); ok && nk.MediaSSRC == 7 {
				for _, pair := range nk.Nacks {
					want += len(pair.PacketList())
				}
			}
		}
		if want != n {
			t.Fatalf("walkRTCP found %d NACKed packets, pion %d", n, want)
		}
	})
}
