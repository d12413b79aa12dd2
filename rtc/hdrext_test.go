package rtc

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// extPacket is an RTP packet with the given header extension elements
// (id, payload) in the profile of rtp's SetExtension, and a short payload.
func extPacket(t testing.TB, profile uint16, elems ...any) []byte {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 7, Timestamp: 9, SSRC: 1234}, Payload: []byte{1, 2, 3}}
	if profile != 0 {
		p.Header.Extension = true
		p.Header.ExtensionProfile = profile
	}
	for i := 0; i < len(elems); i += 2 {
		if err := p.Header.SetExtension(uint8(elems[i].(int)), elems[i+1].([]byte)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadExtensions(t *testing.T) {
	ids := extIDs{audioLevel: 3, orientation: 9}
	cases := []struct {
		name string
		pkt  []byte
		want hdrExts
	}{
		{"none", extPacket(t, 0), hdrExts{}},
		{"one-byte, both", extPacket(t, extProfileOneByte, 1, []byte{0xaa, 0xbb}, 3, []byte{0x85}, 9, []byte{3}),
			hdrExts{audioLevel: 0x85, orientation: 3, has: hasAudioLevel | hasOrientation}},
		{"one-byte, other ids only", extPacket(t, extProfileOneByte, 1, []byte{0x85}, 2, []byte{3}), hdrExts{}},
		{"two-byte, both", extPacket(t, extProfileTwoByte, 3, []byte{0x30}, 9, []byte{1}, 200, make([]byte, 40)),
			hdrExts{audioLevel: 0x30, orientation: 1, has: hasAudioLevel | hasOrientation}},
		{"two-byte, not one byte long", extPacket(t, extProfileTwoByte, 3, []byte{0x30, 0}), hdrExts{}},
		{"unknown profile", extPacket(t, 0x1234, 0, []byte{0x31, 0x30, 0, 0}), hdrExts{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h rtpHeader
			if err := parseRTP(c.pkt, &h); err != nil {
				t.Fatal(err)
			}
			got := hdrExts{has: 0xff} // every field is set
			readExtensions(c.pkt, &h, ids, &got)
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			if !bytes.Equal(c.pkt[h.payloadStart:h.payloadEnd], []byte{1, 2, 3}) {
				t.Fatalf("payload %x", c.pkt[h.payloadStart:h.payloadEnd])
			}
		})
	}
	// A packet read with no ids wanted reads nothing.
	pkt := extPacket(t, extProfileOneByte, 3, []byte{0x85})
	var h rtpHeader
	if err := parseRTP(pkt, &h); err != nil {
		t.Fatal(err)
	}
	got := hdrExts{has: 1}
	readExtensions(pkt, &h, extIDs{}, &got)
	if got != (hdrExts{}) {
		t.Fatalf("no ids: got %+v", got)
	}
}

func TestExtIDsOf(t *testing.T) {
	got := extIDsOf([]webrtc.RTPHeaderExtensionParameter{
		{URI: "urn:ietf:params:rtp-hdrext:sdes:mid", ID: 1},
		{URI: AudioLevelURI, ID: 4},
		{URI: VideoOrientationURI, ID: 12},
		{URI: AudioLevelURI, ID: 300}, // out of range: ignored
	})
	if want := (extIDs{audioLevel: 4, orientation: 12}); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// apply writes the elements under the subscriber's ids, leaves out what
// the subscriber did not negotiate, and leaves room for the elements an
// interceptor adds, all without allocating.
func TestExtWriterApply(t *testing.T) {
	var w extWriter
	var h rtp.Header
	x := hdrExts{audioLevel: 0x9f, orientation: 2, has: hasAudioLevel | hasOrientation}
	w.apply(&h, extIDs{audioLevel: 5, orientation: 14}, &x)
	if !h.Extension || h.ExtensionProfile != extProfileOneByte {
		t.Fatalf("extension %v profile %#x", h.Extension, h.ExtensionProfile)
	}
	if got := h.GetExtension(5); !bytes.Equal(got, []byte{0x9f}) {
		t.Fatalf("audio level %x", got)
	}
	if got := h.GetExtension(14); !bytes.Equal(got, []byte{2}) {
		t.Fatalf("orientation %x", got)
	}

	// The subscriber took only the orientation, under an id the one-byte
	// form cannot carry: nothing is written, and the header from the
	// packet before is gone.
	w.apply(&h, extIDs{audioLevel: 0, orientation: 20}, &x)
	if h.Extension || len(h.Extensions) != 0 {
		t.Fatalf("extension %v with %d elements, want none", h.Extension, len(h.Extensions))
	}

	twcc := []byte{0, 1}
	allocs := testing.AllocsPerRun(100, func() {
		w.apply(&h, extIDs{audioLevel: 5, orientation: 6}, &x)
		// What the transport-cc writer adds after them.
		if err := h.SetExtension(7, twcc); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per apply, want none", allocs)
	}
	if len(h.Extensions) != 3 || !bytes.Equal(h.GetExtension(7), twcc) {
		t.Fatalf("elements %d, transport-cc %x", len(h.Extensions), h.GetExtension(7))
	}
}

// FuzzReadExtensions: the in-place reader never panics and, on every
// packet pion parses, finds what pion finds under the same ids.
func FuzzReadExtensions(f *testing.F) {
	f.Add(extPacket(f, extProfileOneByte, 1, []byte{0xaa, 0xbb}, 3, []byte{0x85}, 9, []byte{3}), uint8(3), uint8(9))
	f.Add(extPacket(f, extProfileTwoByte, 3, []byte{0x30}, 9, []byte{1}, 200, make([]byte, 40)), uint8(3), uint8(9))
	f.Add(extPacket(f, extProfileOneByte, 3, []byte{0x85}), uint8(3), uint8(0))
	f.Add([]byte{0x90, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x30, 0x85, 0xf0, 0x90}, uint8(3), uint8(9))
	f.Fuzz(func(t *testing.T, b []byte, audio, orient uint8) {
		ids := extIDs{audioLevel: audio, orientation: orient}
		var h rtpHeader
		if parseRTP(b, &h) != nil {
			return
		}
		if h.extStart > h.extEnd || h.extEnd > h.payloadStart {
			t.Fatalf("extension [%d, %d) beyond the header, payload at %d", h.extStart, h.extEnd, h.payloadStart)
		}
		var got hdrExts
		readExtensions(b, &h, ids, &got)
		var p rtp.Packet
		if p.Unmarshal(b) != nil || (h.extProfile != extProfileOneByte && h.extProfile != extProfileTwoByte) {
			return // pion knows the two-byte profile without app bits only
		}
		// Both take the first element of an id; the reader only one
		// that is one byte long.
		first := func(id uint8) (byte, bool) {
			if v := p.Header.GetExtension(id); id != 0 && len(v) == 1 {
				return v[0], true
			}
			return 0, false
		}
		wa, okA := first(audio)
		wo, okO := first(orient)
		if audio == orient {
			okO = false // one element, taken as the audio level
		}
		if (got.has&hasAudioLevel != 0) != okA || (okA && got.audioLevel != wa) {
			t.Fatalf("audio level under %d: got %+v, pion %x %v", audio, got, wa, okA)
		}
		if (got.has&hasOrientation != 0) != okO || (okO && got.orientation != wo) {
			t.Fatalf("orientation under %d: got %+v, pion %x %v", orient, got, wo, okO)
		}
	})
}

// BenchmarkReadExtensions is the per-packet cost of finding the audio
// level and orientation among a browser's usual elements.
func BenchmarkReadExtensions(b *testing.B) {
	pkt := extPacket(b, extProfileOneByte, 1, []byte("0"), 3, []byte{0x85}, 4, []byte{0, 1}, 2, []byte{1, 2, 3})
	var h rtpHeader
	ids := extIDs{audioLevel: 3, orientation: 9}
	var x hdrExts
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if err := parseRTP(pkt, &h); err != nil {
			b.Fatal(err)
		}
		readExtensions(pkt, &h, ids, &x)
	}
	if x.has&hasAudioLevel == 0 {
		b.Fatal("no audio level found")
	}
}
