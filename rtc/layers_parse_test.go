package rtc

import (
	"encoding/binary"
	"testing"

	"github.com/troupe-media/troupe/rtc/rtctest"
)

// vp8Key is the start of a VP8 keyframe of w x h after descriptor desc.
func vp8Key(desc []byte, w, h int) []byte {
	p := append([]byte(nil), desc...)
	p = append(p, 0x50, 0x2d, 0x01, 0x9d, 0x01, 0x2a)
	p = binary.LittleEndian.AppendUint16(p, uint16(w))
	p = binary.LittleEndian.AppendUint16(p, uint16(h))
	return append(p, 0x00, 0x00)
}

// resolutionCase is a payload and the picture size a parser should read
// from it (ok false: none).
type resolutionCase struct {
	name string
	p    []byte
	w, h int
	ok   bool
}

// checkResolutions runs the cases through read, a parser named name.
func checkResolutions(t *testing.T, name string, read func([]byte) (int, int, bool), tests []resolutionCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, h, ok := read(tt.p)
			if w != tt.w || h != tt.h || ok != tt.ok {
				t.Fatalf("%s = %d, %d, %v; want %d, %d, %v", name, w, h, ok, tt.w, tt.h, tt.ok)
			}
		})
	}
}

func TestVP8Resolution(t *testing.T) {
	tests := []resolutionCase{
		{"no extension", vp8Key([]byte{0x10}, 640, 360), 640, 360, true},
		{"picture id, TL0PICIDX, TID", vp8Key([]byte{0x90, 0xe0, 0x81, 0x02, 0x07, 0x40}, 1280, 720), 1280, 720, true},
		{"seven-bit picture id", vp8Key([]byte{0x90, 0x80, 0x05}, 320, 180), 320, 180, true},
		{"scale bits ignored", vp8Key([]byte{0x10}, 0xc000|640, 0x4000|480), 640, 480, true},
		{"a delta frame", append([]byte{0x10, 0x01}, vp8Key(nil, 640, 360)[1:]...), 0, 0, false},
		{"not the frame's first packet", vp8Key([]byte{0x00}, 640, 360), 0, 0, false},
		{"a later partition", vp8Key([]byte{0x11}, 640, 360), 0, 0, false},
		{"bad start code", func() []byte { p := vp8Key([]byte{0x10}, 640, 360); p[5] = 0; return p }(), 0, 0, false},
		{"cut short", vp8Key([]byte{0x10}, 640, 360)[:8], 0, 0, false},
		{"descriptor cut short", []byte{0x90, 0x80, 0x81}, 0, 0, false},
		{"zero width", vp8Key([]byte{0x10}, 0, 360), 0, 0, false},
	}
	checkResolutions(t, "vp8Resolution", vp8Resolution, tests)
}

// vp9KeySS is the start of a VP9 keyframe whose descriptor (after the
// first byte's flags and the given fields) carries a scalability
// structure with the sizes given, as pairs of width and height.
func vp9KeySS(flags byte, fields []byte, sizes ...int) []byte {
	p := append([]byte{flags}, fields...)
	p = append(p, byte(len(sizes)/2-1)<<5|0x10)
	for _, v := range sizes {
		p = binary.BigEndian.AppendUint16(p, uint16(v))
	}
	return append(p, 0x82, 0x49, 0x83) // the frame's first bytes
}

func TestVP9Resolution(t *testing.T) {
	tests := []resolutionCase{
		{"one layer", vp9KeySS(0x0a, nil, 640, 360), 640, 360, true},
		{"15-bit picture id", vp9KeySS(0x8a, []byte{0x81, 0x23}, 1280, 720), 1280, 720, true},
		{"7-bit picture id, layers, TL0PICIDX", vp9KeySS(0xaa, []byte{0x12, 0x00, 0x07}, 320, 180), 320, 180, true},
		{"flexible mode: no TL0PICIDX", vp9KeySS(0xba, []byte{0x12, 0x00}, 320, 180), 320, 180, true},
		{"two spatial layers: the larger", vp9KeySS(0x8a, []byte{0x05}, 320, 180, 640, 360), 640, 360, true},
		{"three layers", vp9KeySS(0x0a, nil, 320, 180, 640, 360, 1280, 720), 1280, 720, true},
		{"no structure (V clear)", vp9KeySS(0x08, nil, 640, 360), 0, 0, false},
		{"structure without sizes (Y clear)", []byte{0x0a, 0x08, 0x00}, 0, 0, false},
		{"inter-predicted (P set)", vp9KeySS(0x4a, nil, 640, 360), 0, 0, false},
		{"not the frame's start (B clear)", vp9KeySS(0x02, nil, 640, 360), 0, 0, false},
		{"sizes cut short", vp9KeySS(0x0a, nil, 320, 180, 640, 360)[:7], 0, 0, false},
		{"zero height", vp9KeySS(0x0a, nil, 640, 0), 0, 0, false},
		{"descriptor cut short", []byte{0x8a, 0x81}, 0, 0, false},
		{"empty", nil, 0, 0, false},
	}
	checkResolutions(t, "vp9Resolution", vp9Resolution, tests)
}

// spsWriter writes the fields of an H.264 sequence parameter set, or of
// an AV1 sequence header (av1_test.go).
type spsWriter struct {
	bits []bool
}

func (s *spsWriter) u(n int, v uint32) {
	for i := n - 1; i >= 0; i-- {
		s.bits = append(s.bits, v>>i&1 == 1)
	}
}

func (s *spsWriter) ue(v uint32) {
	n := 0
	for x := v + 1; x > 1; x >>= 1 {
		n++
	}
	s.u(n, 0)
	s.u(n+1, v+1)
}

func (s *spsWriter) se(v int32) {
	if v > 0 {
		s.ue(uint32(2*v - 1))
	} else {
		s.ue(uint32(-2 * v))
	}
}

// nal returns the SPS NAL unit: header, RBSP with its stop bit, and the
// emulation prevention bytes a stream carries.
func (s *spsWriter) nal() []byte {
	return rtctest.NALUnit(0x67, s.trailed())
}

// trailed returns the bits written, then a one and the zeros to a byte's
// end: H.264's RBSP stop bit, and AV1's trailing bits.
func (s *spsWriter) trailed() []byte {
	s.u(1, 1)
	for len(s.bits)%8 != 0 {
		s.u(1, 0)
	}
	var out []byte
	for i := 0; i < len(s.bits); i += 8 {
		var b byte
		for j := 0; j < 8; j++ {
			if s.bits[i+j] {
				b |= 0x80 >> j
			}
		}
		out = append(out, b)
	}
	return out
}

type spsFields struct {
	profile            uint32
	chroma             uint32
	scaling            bool
	pocType            uint32
	wMBs, hMaps        uint32
	frameMBsOnly       bool
	crop               [4]uint32 // left, right, top, bottom
	spsID, maxFrameNum uint32
}

func (f spsFields) nal() []byte {
	var s spsWriter
	s.u(8, f.profile)
	s.u(8, 0)
	s.u(8, 40)
	s.ue(f.spsID)
	if f.profile == 100 || f.profile == 244 {
		s.ue(f.chroma)
		if f.chroma == 3 {
			s.u(1, 0)
		}
		s.ue(0)
		s.ue(0)
		s.u(1, 0)
		if f.scaling {
			s.u(1, 1)
			for i := 0; i < 8; i++ {
				s.u(1, 1) // every list present, each of deltas that change it
				size := 16
				if i >= 6 {
					size = 64
				}
				for j := 0; j < size; j++ {
					s.se(int32(j%5) - 2)
				}
			}
		} else {
			s.u(1, 0)
		}
	}
	s.ue(f.maxFrameNum)
	s.ue(f.pocType)
	switch f.pocType {
	case 0:
		s.ue(2)
	case 1:
		s.u(1, 0)
		s.se(-3)
		s.se(7)
		s.ue(2)
		s.se(1)
		s.se(-1)
	}
	s.ue(1)
	s.u(1, 0)
	s.ue(f.wMBs - 1)
	s.ue(f.hMaps - 1)
	if f.frameMBsOnly {
		s.u(1, 1)
	} else {
		s.u(1, 0)
		s.u(1, 0)
	}
	s.u(1, 1)
	if f.crop != [4]uint32{} {
		s.u(1, 1)
		for _, c := range f.crop {
			s.ue(c)
		}
	} else {
		s.u(1, 0)
	}
	s.u(1, 0) // no VUI
	return s.nal()
}

func TestH264Resolution(t *testing.T) {
	// A baseline 640x480 SPS as a camera sends it.
	camera := []byte{0x67, 0x42, 0xc0, 0x1f, 0x1a, 0x32, 0x35, 0x01, 0x40, 0x7a, 0x40, 0x3c, 0x22, 0x11, 0xa8}
	hd := spsFields{profile: 100, chroma: 1, wMBs: 120, hMaps: 68, frameMBsOnly: true, crop: [4]uint32{0, 0, 0, 4}}.nal()
	stapA := func(nals ...[]byte) []byte {
		p := []byte{24}
		for _, n := range nals {
			p = binary.BigEndian.AppendUint16(p, uint16(len(n)))
			p = append(p, n...)
		}
		return p
	}
	tests := []resolutionCase{
		{"baseline, single NAL unit", camera, 640, 480, true},
		{"high 1080p, cropped", hd, 1920, 1080, true},
		{"in STAP-A after another NAL unit", stapA([]byte{0x09, 0xf0}, hd, []byte{0x68, 0xce, 0x38, 0x80}), 1920, 1080, true},
		{"first FU-A fragment", append([]byte{0x7c, 0x87}, hd[1:12]...), 1920, 1080, true},
		{"scaling lists", spsFields{profile: 100, chroma: 1, scaling: true, wMBs: 80, hMaps: 45, frameMBsOnly: true}.nal(), 1280, 720, true},
		{"interlaced, cropped by field pairs", spsFields{profile: 100, chroma: 1, wMBs: 120, hMaps: 34, crop: [4]uint32{0, 0, 0, 2}}.nal(), 1920, 1080, true},
		{"4:4:4 crop units", spsFields{profile: 244, chroma: 3, wMBs: 20, hMaps: 12, frameMBsOnly: true, crop: [4]uint32{1, 3, 2, 6}}.nal(), 316, 184, true},
		{"monochrome", spsFields{profile: 100, chroma: 0, wMBs: 10, hMaps: 10, frameMBsOnly: true, crop: [4]uint32{0, 0, 0, 3}}.nal(), 160, 157, true},
		{"picture order count type 1", spsFields{profile: 66, pocType: 1, wMBs: 20, hMaps: 15, frameMBsOnly: true}.nal(), 320, 240, true},
		{"emulation prevention in the fields", spsFields{profile: 66, spsID: 0, maxFrameNum: 0, pocType: 2, wMBs: 1, hMaps: 1, frameMBsOnly: true}.nal(), 16, 16, true},
		{"cut short", hd[:6], 0, 0, false},
		{"crop larger than the picture", spsFields{profile: 66, pocType: 2, wMBs: 2, hMaps: 2, frameMBsOnly: true, crop: [4]uint32{9, 9, 0, 0}}.nal(), 0, 0, false},
		{"an IDR slice, no SPS", []byte{0x65, 0x88, 0x84}, 0, 0, false},
		{"a later FU-A fragment", append([]byte{0x7c, 0x07}, hd[1:12]...), 0, 0, false},
		{"STAP-A with a bad size", []byte{24, 0x00, 0x40, 0x67}, 0, 0, false},
		{"empty", nil, 0, 0, false},
	}
	checkResolutions(t, "h264Resolution", h264Resolution, tests)
}

// FuzzLayerParsers feeds arbitrary payloads to the parsers of a layer's
// keyframes and descriptors: no panic, sizes inside H.264's, VP8's and
// VP9's bounds, and a rewritten VP8 descriptor that reads back as written.
func FuzzLayerParsers(f *testing.F) {
	f.Add(vp8Key([]byte{0x90, 0xe0, 0x81, 0x02, 0x07, 0x40}, 1280, 720))
	f.Add([]byte{0x67, 0x42, 0xc0, 0x1f, 0x1a, 0x32, 0x35, 0x01, 0x40, 0x7a, 0x40, 0x3c, 0x22, 0x11, 0xa8})
	f.Add(spsFields{profile: 100, chroma: 1, scaling: true, wMBs: 80, hMaps: 45, frameMBsOnly: true}.nal())
	f.Add([]byte{24, 0x00, 0x03, 0x67, 0x00, 0x00})
	f.Add([]byte{0x7c, 0x87, 0x64, 0x00})
	f.Add(rtctest.TemporalDescriptor(1, true))
	f.Add(rtctest.TemporalDescriptor(6, false))
	f.Add(vp9KeySS(0xaa, []byte{0x12, 0x00, 0x07}, 320, 180, 640, 360))
	f.Fuzz(func(t *testing.T, p []byte) {
		if w, h, ok := vp9Resolution(p); ok && (w <= 0 || h <= 0 || w > 0xffff || h > 0xffff) {
			t.Fatalf("VP9 size %dx%d", w, h)
		}
		if w, h, ok := vp8Resolution(p); ok && (w <= 0 || h <= 0 || w > 0x3fff || h > 0x3fff) {
			t.Fatalf("VP8 size %dx%d", w, h)
		}
		if w, h, ok := h264Resolution(p); ok && (w <= 0 || h <= 0 || w > maxSPSDimension || h > 2*maxSPSDimension) {
			t.Fatalf("H.264 size %dx%d", w, h)
		}
		var d vp8Desc
		if !parseVP8Desc(p, &d) {
			return
		}
		if int(d.hdrAt) > len(p) || int(d.picAt) >= len(p) || int(d.tl0At) >= len(p) || int(d.tidAt) >= len(p) {
			t.Fatalf("descriptor %+v beyond %d bytes", d, len(p))
		}
		if d.tidAt != 0 && (d.tid != p[d.tidAt]>>6 || d.tid > maxTID || d.sync != (p[d.tidAt]&0x20 != 0) || p[0]&0x80 == 0 || p[1]&0x20 == 0) {
			t.Fatalf("TID %d sync %v read from %x", d.tid, d.sync, p)
		}
		q := append([]byte(nil), p...)
		d.patch(q, 0x1234, 0x56)
		var e vp8Desc
		if !parseVP8Desc(q, &e) {
			t.Fatalf("the patched descriptor %x does not parse", q)
		}
		if d.picAt != 0 && e.picID != (d.picID+0x1234)&d.picMask() {
			t.Fatalf("picture id %d, want %d", e.picID, (d.picID+0x1234)&d.picMask())
		}
		if d.tl0At != 0 && e.tl0 != d.tl0+0x56 {
			t.Fatalf("TL0PICIDX %d", e.tl0)
		}
		if e.tidAt != d.tidAt || e.tid != d.tid || e.sync != d.sync || e.start != d.start {
			t.Fatalf("the patch changed the layer: %+v, then %+v", d, e)
		}
		if e.hdrAt != d.hdrAt || string(q[d.hdrAt:]) != string(p[d.hdrAt:]) {
			t.Fatal("the patch changed what follows the descriptor")
		}
	})
}
