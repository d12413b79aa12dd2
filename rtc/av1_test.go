package rtc

import (
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"testing"

	"github.com/pion/rtp/codecs"
	"github.com/pion/rtp/codecs/av1/obu"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
)

// The sequence headers in testdata/av1 are those of AV1 streams made by
// Debian 12's ffmpeg 5.1 of its test pattern, each cut from the stream
// as written there (the OBU header with obu_has_size_field set, the
// size, the payload):
//
//	ffmpeg -f lavfi -i testsrc2=size=320x180:rate=30 -frames:v 3 \
//	  -c:v libaom-av1 -usage realtime -cpu-used 8 -b:v 200k -f obu libaom-320x180.obu
//	ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -frames:v 3 \
//	  -c:v libsvtav1 -preset 12 -f obu libsvtav1-1280x720.obu
//	ffmpeg -f lavfi -i testsrc2=size=426x240:rate=30 -frames:v 3 \
//	  -c:v librav1e -speed 10 -f obu librav1e-426x240.obu
//	ffmpeg -f lavfi -i testsrc2=size=642x362:rate=30 -frames:v 1 \
//	  -c:v libaom-av1 -still-picture 1 -cpu-used 8 -f obu libaom-still-642x362.obu
//
// (libaom 3.6, SVT-AV1 1.4, rav1e 0.5). libaom's realtime mode is what
// browsers encode with; its still picture has a reduced header.
var av1Encoded = []struct {
	file string
	w, h int
}{
	{"libaom-320x180.obu", 320, 180},
	{"libsvtav1-1280x720.obu", 1280, 720},
	{"librav1e-426x240.obu", 426, 240},
	{"libaom-still-642x362.obu", 642, 362},
}

// av1SeqFile reads a sequence header OBU of testdata/av1.
func av1SeqFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "av1", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// av1Unsized returns o, a whole OBU with obu_has_size_field set, as the
// RTP format asks it sent: without its size field.
func av1Unsized(t testing.TB, o []byte) []byte {
	t.Helper()
	h, err := obu.ParseOBUHeader(o)
	if err != nil || !h.HasSizeField {
		t.Fatalf("OBU %x: %v, size field %v", o, err, err == nil && h.HasSizeField)
	}
	_, n, err := obu.ReadLeb128(o[h.Size():])
	if err != nil {
		t.Fatal(err)
	}
	h.HasSizeField = false
	return append(h.Marshal(), o[h.Size()+int(n):]...)
}

// av1Payload is an AV1 RTP payload: the aggregation header's flags (Z,
// Y, N), W = w, and the OBU elements, each after its length but the last
// when w is not 0.
func av1Payload(flags byte, w int, elems ...[]byte) []byte {
	p := []byte{flags | byte(w)<<4}
	for i, e := range elems {
		if w == 0 || i < len(elems)-1 {
			p = append(p, obu.WriteToLeb128(uint(len(e)))...)
		}
		p = append(p, e...)
	}
	return p
}

// The aggregation header's flags.
const (
	av1Z = 0x80 // the first element continues an OBU
	av1Y = 0x40 // the last element is continued
	av1N = 0x08 // the first packet of a coded video sequence
)

// av1Frame is an OBU_FRAME (type 6), without a size field: what follows
// a keyframe's sequence header.
var av1Frame = []byte{0x30, 0x10, 0x00, 0x0a, 0xb1, 0xe7}

// av1Point is an operating point of a hand-made sequence header.
type av1Point struct {
	idc          uint32 // operating_point_idc: the spatial layers' bits, then the temporal layers'
	level        uint32 // seq_level_idx: above 7, a seq_tier bit follows
	decoderModel bool   // operating_parameters_info, when the header has a decoder model
	initialDelay bool   // initial_display_delay_minus_1, when the header allows it
}

// av1SeqFields are the fields of a hand-made sequence header, as far as
// the picture size.
type av1SeqFields struct {
	profile uint32
	still   bool
	reduced bool
	level   uint32 // the reduced header's seq_level_idx
	// timing: timing_info, of a time scale of 90000 (0 with
	// zeroTimeScale, which the spec forbids); with equalTicks,
	// equal_picture_interval and ticksMinus1 as a uvlc (math.MaxUint32:
	// 32 zeros and a one, which carry no value).
	timing        bool
	zeroTimeScale bool
	equalTicks    bool
	ticksMinus1   uint32
	// decoderModel: decoder_model_info, of buffer delays delayBits long.
	decoderModel bool
	delayBits    int
	initialDelay bool // initial_display_delay_present_flag
	points       []av1Point
	// widthBits and heightBits: frame_width_bits_minus_1 + 1 and
	// frame_height_bits_minus_1 + 1; 0: the fewest that hold the size.
	widthBits, heightBits int
	w, h                  int
}

// av1L2T2 are the operating points of two spatial layers of two temporal
// layers each, the whole stream first.
var av1L2T2 = []av1Point{{idc: 0x303, level: 12}, {idc: 0x301, level: 8}, {idc: 0x103, level: 5}, {idc: 0x101, level: 0}}

// av1SVCHeader is the sequence header of an L2T2 stream whose top
// spatial layer is 640x360, which TestLoopbackSVC's AV1 keyframes carry.
var av1SVCHeader = av1SeqFields{points: av1L2T2, w: 640, h: 360}.obu()

// obu returns the sequence header OBU, without a size field.
func (f av1SeqFields) obu() []byte {
	var s spsWriter
	flag := func(b bool) uint32 {
		if b {
			return 1
		}
		return 0
	}
	s.u(3, f.profile)
	s.u(1, flag(f.still))
	s.u(1, flag(f.reduced))
	if f.reduced {
		s.u(5, f.level)
	} else {
		s.u(1, flag(f.timing))
		if f.timing {
			s.u(32, 3000) // num_units_in_display_tick
			if f.zeroTimeScale {
				s.u(32, 0)
			} else {
				s.u(32, 90000)
			}
			s.u(1, flag(f.equalTicks))
			if f.equalTicks {
				if f.ticksMinus1 == math.MaxUint32 {
					s.u(32, 0)
					s.u(1, 1)
				} else {
					s.ue(f.ticksMinus1) // uvlc is Exp-Golomb below 2^32-1
				}
			}
			s.u(1, flag(f.decoderModel))
			if f.decoderModel {
				s.u(5, uint32(f.delayBits-1))
				s.u(32, 1000) // num_units_in_decoding_tick
				s.u(5, 31)    // buffer_removal_time_length_minus_1
				s.u(5, 9)     // frame_presentation_time_length_minus_1
			}
		}
		s.u(1, flag(f.initialDelay))
		s.u(5, uint32(len(f.points)-1))
		for _, p := range f.points {
			s.u(12, p.idc)
			s.u(5, p.level)
			if p.level > 7 {
				s.u(1, 1) // seq_tier
			}
			if f.decoderModel {
				s.u(1, flag(p.decoderModel))
				if p.decoderModel {
					s.u(f.delayBits, uint32(1<<(f.delayBits-1)|5)) // decoder_buffer_delay
					s.u(f.delayBits, uint32(1<<(f.delayBits-1)|3)) // encoder_buffer_delay
					s.u(1, 1)                                      // low_delay_mode_flag
				}
			}
			if f.initialDelay {
				s.u(1, flag(p.initialDelay))
				if p.initialDelay {
					s.u(4, 9)
				}
			}
		}
	}
	wb, hb := f.widthBits, f.heightBits
	if wb == 0 {
		wb = max(bits.Len(uint(f.w-1)), 1)
	}
	if hb == 0 {
		hb = max(bits.Len(uint(f.h-1)), 1)
	}
	s.u(4, uint32(wb-1))
	s.u(4, uint32(hb-1))
	s.u(wb, uint32(f.w-1))
	s.u(hb, uint32(f.h-1))
	// What follows, which the size does not need: no frame ids, 64x64
	// superblocks, and so on, then the trailing bits.
	s.u(7, 0x2a)
	return append([]byte{0x08}, s.trailed()...)
}

func TestAV1Resolution(t *testing.T) {
	aom := av1SeqFile(t, "libaom-320x180.obu")
	svt := av1SeqFile(t, "libsvtav1-1280x720.obu")
	rav1e := av1SeqFile(t, "librav1e-426x240.obu")
	still := av1SeqFile(t, "libaom-still-642x362.obu")
	// A temporal unit as an encoder writes it (a temporal delimiter, the
	// sequence header, the frame, each with its size), packetized by pion.
	unit := append([]byte{0x12, 0x00}, aom...)
	unit = append(unit, 0x32, byte(len(av1Frame)-1))
	unit = append(unit, av1Frame[1:]...)
	pion := (&codecs.AV1Payloader{}).Payload(1200, unit)
	if len(pion) != 1 {
		t.Fatalf("pion made %d packets of %x", len(pion), unit)
	}
	withExtension := append([]byte{0x0c, 0x00}, av1Unsized(t, svt)[1:]...)
	metadata := []byte{0x28, 0x01, 0x02, 0x03}
	delays := []av1Point{{level: 9, decoderModel: true, initialDelay: true}, {level: 4}, {level: 13, decoderModel: true}}
	tests := []resolutionCase{
		// The encoders' headers in the packets senders make of them.
		{"libaom realtime, as libwebrtc sends it (W=2)", av1Payload(av1N, 2, av1Unsized(t, aom), av1Frame), 320, 180, true},
		{"libsvtav1, every element's length (W=0)", av1Payload(av1N, 0, av1Unsized(t, svt), av1Frame), 1280, 720, true},
		{"librav1e, the OBU's size field kept", av1Payload(av1N, 1, rav1e), 426, 240, true},
		{"libaom still picture: a reduced header", av1Payload(av1N, 1, av1Unsized(t, still)), 642, 362, true},
		{"pion's packetizer", pion[0], 320, 180, true},
		{"after a metadata OBU (W=3)", av1Payload(av1N, 3, metadata, av1Unsized(t, aom), av1Frame), 320, 180, true},
		{"with an OBU extension", av1Payload(av1N, 2, withExtension, av1Frame), 1280, 720, true},
		{"after the end of a continued OBU (Z)", av1Payload(av1Z, 2, av1Frame[2:], aom), 320, 180, true},
		// Hand-made headers for the branches the encoders did not take.
		{"one operating point with a tier", av1Payload(av1N, 1, av1SeqFields{points: []av1Point{{level: 8}}, w: 640, h: 480}.obu()), 640, 480, true},
		{"four operating points (L2T2)", av1Payload(av1N, 1, av1SeqFields{points: av1L2T2, w: 640, h: 360}.obu()), 640, 360, true},
		{"timing info", av1Payload(av1N, 1, av1SeqFields{timing: true, points: av1L2T2, w: 1920, h: 1080}.obu()), 1920, 1080, true},
		{"equal picture interval", av1Payload(av1N, 1, av1SeqFields{timing: true, equalTicks: true, ticksMinus1: 2999, points: av1L2T2, w: 1920, h: 1080}.obu()), 1920, 1080, true},
		{"picture interval of 32 leading zeros", av1Payload(av1N, 1, av1SeqFields{timing: true, equalTicks: true, ticksMinus1: math.MaxUint32, points: av1L2T2, w: 1280, h: 720}.obu()), 1280, 720, true},
		{"decoder model and initial display delays", av1Payload(av1N, 1, av1SeqFields{profile: 1, timing: true, equalTicks: true, ticksMinus1: 1, decoderModel: true, delayBits: 20, initialDelay: true, points: delays, w: 3840, h: 2160}.obu()), 3840, 2160, true},
		{"decoder model without delays on its points", av1Payload(av1N, 1, av1SeqFields{timing: true, decoderModel: true, delayBits: 32, points: av1L2T2, w: 854, h: 480}.obu()), 854, 480, true},
		{"initial display delays alone", av1Payload(av1N, 1, av1SeqFields{initialDelay: true, points: delays, w: 1280, h: 720}.obu()), 1280, 720, true},
		{"reduced still picture", av1Payload(av1N, 1, av1SeqFields{profile: 2, still: true, reduced: true, level: 31, w: 4096, h: 2304}.obu()), 4096, 2304, true},
		{"16-bit sizes", av1Payload(av1N, 1, av1SeqFields{points: av1L2T2, w: 65536, h: 65536}.obu()), 65536, 65536, true},
		{"one pixel, in wider fields", av1Payload(av1N, 1, av1SeqFields{points: av1L2T2, widthBits: 16, heightBits: 11, w: 1, h: 1}.obu()), 1, 1, true},
		// No whole sequence header, or a damaged one.
		{"a delta frame", av1Payload(0, 1, av1Frame), 0, 0, false},
		{"a sequence header continued in the next packet (Y)", av1Payload(av1N|av1Y, 2, av1Frame, aom[:6]), 0, 0, false},
		{"the end of a sequence header (Z)", av1Payload(av1Z, 2, aom[4:], av1Frame), 0, 0, false},
		{"the whole sequence header flagged as continued", av1Payload(av1N|av1Y, 1, aom), 0, 0, false},
		{"a continuation that reads as a sequence header (Z)", av1Payload(av1Z, 2, aom, av1Frame), 0, 0, false},
		{"an element longer than the packet", av1Payload(av1N, 0, aom)[:10], 0, 0, false},
		{"a length beyond any packet", append([]byte{av1N, 0xff, 0xff, 0xff, 0xff, 0x1f}, aom...), 0, 0, false},
		{"a length of nine bytes", append([]byte{av1N, 0x8d, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, aom...), 0, 0, false},
		{"the forbidden bit", av1Payload(av1N, 1, append([]byte{0x88}, aom[1:]...)), 0, 0, false},
		{"an obu_size beyond the element", av1Payload(av1N, 1, aom[:10]), 0, 0, false},
		{"an obu_size that ends before the sizes", av1Payload(av1N, 1, append([]byte{0x0a, 0x03}, aom[2:]...)), 0, 0, false},
		{"an OBU extension cut off", av1Payload(av1N, 1, []byte{0x0c}), 0, 0, false},
		{"an empty element", av1Payload(av1N, 0, nil, aom), 0, 0, false},
		{"a reduced header of no still picture", av1Payload(av1N, 1, av1SeqFields{reduced: true, level: 8, w: 640, h: 360}.obu()), 0, 0, false},
		{"a reserved profile", av1Payload(av1N, 1, av1SeqFields{profile: 3, points: av1L2T2, w: 640, h: 360}.obu()), 0, 0, false},
		{"a time scale of zero", av1Payload(av1N, 1, av1SeqFields{timing: true, zeroTimeScale: true, points: av1L2T2, w: 640, h: 360}.obu()), 0, 0, false},
		// Four points end at bit 82 of the payload, one at bit 29, its
		// width (10 bits) at 47.
		{"cut in the operating points", av1Payload(av1N, 1, av1SeqFields{points: av1L2T2, w: 640, h: 360}.obu()[:1+8]), 0, 0, false},
		{"cut in the width", av1Payload(av1N, 1, av1SeqFields{points: []av1Point{{}}, w: 640, h: 360}.obu()[:1+5]), 0, 0, false},
		{"cut in the height", av1Payload(av1N, 1, av1SeqFields{points: []av1Point{{}}, w: 640, h: 360}.obu()[:1+6]), 0, 0, false},
		{"the aggregation header alone", []byte{av1N | 0x10}, 0, 0, false},
		{"empty", nil, 0, 0, false},
	}
	checkResolutions(t, "av1Resolution", av1Resolution, tests)
}

// TestAV1ResolutionCut reads each encoder's sequence header cut at every
// byte: with its size field, no cut reads; without, a cut reads the
// whole header's size or nothing.
func TestAV1ResolutionCut(t *testing.T) {
	for _, enc := range av1Encoded {
		seq := av1SeqFile(t, enc.file)
		unsized := av1Unsized(t, seq)
		for n := range len(seq) {
			if w, h, ok := av1Resolution(av1Payload(av1N, 1, seq[:n])); ok {
				t.Fatalf("%s cut to %d bytes read as %dx%d", enc.file, n, w, h)
			}
		}
		for n := range len(unsized) + 1 {
			if w, h, ok := av1Resolution(av1Payload(av1N, 1, unsized[:n])); ok && (w != enc.w || h != enc.h) {
				t.Fatalf("%s cut to %d bytes read as %dx%d, want %dx%d", enc.file, n, w, h, enc.w, enc.h)
			}
		}
		if w, h, ok := av1Resolution(av1Payload(av1N, 1, seq)); !ok || w != enc.w || h != enc.h {
			t.Fatalf("%s read as %dx%d, %v; want %dx%d", enc.file, w, h, ok, enc.w, enc.h)
		}
	}
}

// TestAV1ResolutionAllocates nothing: it runs on a keyframe's first
// packet, on the read loop.
func TestAV1ResolutionAllocates(t *testing.T) {
	p := av1Payload(av1N, 3, []byte{0x28, 0x01}, av1Unsized(t, av1SeqFile(t, "libaom-320x180.obu")), av1Frame)
	if n := testing.AllocsPerRun(100, func() {
		if _, _, ok := av1Resolution(p); !ok {
			t.Fatal("no size")
		}
	}); n != 0 {
		t.Fatalf("%v allocations a read", n)
	}
}

// maxAV1Dimension bounds the sizes a sequence header may give: 16 bits
// of max_frame_width_minus_1 or max_frame_height_minus_1.
const maxAV1Dimension = 1 << 16

// FuzzAV1Resolution feeds arbitrary payloads to av1Resolution: no panic,
// sizes inside what a sequence header can say, and the same answer
// whatever the N bit, which only av1Resolution's caller reads.
func FuzzAV1Resolution(f *testing.F) {
	for _, enc := range av1Encoded {
		seq := av1SeqFile(f, enc.file)
		f.Add(av1Payload(av1N, 1, seq))
		f.Add(av1Payload(av1N, 0, av1Unsized(f, seq), av1Frame))
	}
	f.Add(av1Payload(av1N, 1, av1SeqFields{timing: true, equalTicks: true, decoderModel: true, delayBits: 10, initialDelay: true,
		points: []av1Point{{level: 9, decoderModel: true, initialDelay: true}, {level: 3}}, w: 1280, h: 720}.obu()))
	f.Add(av1Payload(av1Z|av1Y, 3, av1Frame, []byte{0x0c, 0x00, 0x00}, av1Frame))
	f.Fuzz(func(t *testing.T, p []byte) {
		w, h, ok := av1Resolution(p)
		if ok && (w < 1 || h < 1 || w > maxAV1Dimension || h > maxAV1Dimension) {
			t.Fatalf("AV1 size %dx%d", w, h)
		}
		if !ok && (w != 0 || h != 0) {
			t.Fatalf("no size, yet %dx%d", w, h)
		}
		if len(p) > 0 {
			q := append([]byte(nil), p...)
			q[0] ^= av1N
			if w2, h2, ok2 := av1Resolution(q); w2 != w || h2 != h || ok2 != ok {
				t.Fatalf("%dx%d %v with N flipped, %dx%d %v without", w2, h2, ok2, w, h, ok)
			}
		}
	})
}

// TestForwarderReadsAV1Size: an AV1 Forwarder takes the picture size
// from the sequence header of a keyframe's first packet (N set), keeps it
// over a keyframe whose sequence header is split across packets, and
// follows a new one, as an encoder that scales its pictures sends.
func TestForwarderReadsAV1Size(t *testing.T) {
	av1 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, PayloadType: 45}
	in := newChanTrack(av1)
	fwd, err := NewForwarder(ForwarderConfig{Track: in, RTCP: &rtcpSink{}, CacheSlots: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fwd.Close() })
	aom := av1Unsized(t, av1SeqFile(t, "libaom-320x180.obu"))
	svt := av1Unsized(t, av1SeqFile(t, "libsvtav1-1280x720.obu"))
	var seq uint16
	send := func(payload []byte) {
		t.Helper()
		b := rawRTP(t, uint8(av1.PayloadType), seq, uint32(seq)*3000, false, payload)
		seq++
		in.in <- b
		poll.Until(t, "the forwarder to read the packet", func() bool { return fwd.Stats().Packets == uint64(seq) })
	}
	size := func(wantW, wantH int) {
		t.Helper()
		if w, h := fwd.Resolution(); w != wantW || h != wantH {
			t.Fatalf("size %dx%d, want %dx%d", w, h, wantW, wantH)
		}
	}
	send(av1Payload(0, 2, svt, av1Frame)) // N clear: no keyframe's start
	size(0, 0)
	send(av1Payload(av1N, 2, aom, av1Frame))
	size(320, 180)
	send(av1Payload(av1N|av1Y, 1, svt[:5]))
	send(av1Payload(av1Z, 2, svt[5:], av1Frame))
	size(320, 180)
	send(av1Payload(av1N, 2, svt, av1Frame))
	size(1280, 720)
}

// TestTrackOrdersAV1LayersBySize: a Track of three AV1 layers whose rids
// lie about their sizes (q is the largest) lists them by the sizes their
// keyframes' sequence headers give, lowest first.
func TestTrackOrdersAV1LayersBySize(t *testing.T) {
	av1 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, PayloadType: 45}
	rids := []string{"q", "h", "f"}
	files := []string{"libsvtav1-1280x720.obu", "libaom-320x180.obu", "librav1e-426x240.obu"}
	var track *Track
	var layers []*Forwarder
	for i, rid := range rids {
		in := &layerTrack{chanTrack: newChanTrack(av1), ssrc: webrtc.SSRC(layerSSRC(i))}
		fwd, err := NewForwarder(ForwarderConfig{Track: in, RTCP: &pliLog{}, CacheSlots: 64})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fwd.Close() }) // the Track's Close closes it first, when there is one
		layers = append(layers, fwd)
		if track == nil {
			track, err = NewTrack(TrackConfig{Layer: fwd, RID: rid})
			if err == nil {
				t.Cleanup(func() { _ = track.Close() })
			}
		} else {
			err = track.AddLayer(fwd, rid)
		}
		if err != nil {
			t.Fatal(err)
		}
		in.in <- rawRTP(t, uint8(av1.PayloadType), 1, 0, false, av1Payload(av1N, 2, av1Unsized(t, av1SeqFile(t, files[i])), av1Frame))
	}
	poll.Until(t, "every layer's keyframe read", func() bool {
		for _, fwd := range layers {
			if fwd.Stats().Packets != 1 {
				return false
			}
		}
		return true
	})
	got := track.Layers()
	want := []LayerInfo{{RID: "h", Width: 320, Height: 180}, {RID: "f", Width: 426, Height: 240}, {RID: "q", Width: 1280, Height: 720}}
	if len(got) != len(want) {
		t.Fatalf("the layers %+v, want %+v by size", got, want)
	}
	for i, l := range got {
		if l.RID != want[i].RID || l.Width != want[i].Width || l.Height != want[i].Height {
			t.Fatalf("the layers %+v, want %+v by size", got, want)
		}
	}
}
