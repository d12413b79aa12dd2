package rtc

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// vp9Descriptor writes a VP9 payload descriptor: flags (I, L and F are
// set from the other arguments), a picture id of 7 or 15 bits when pic >=
// 0, and with layers the layer indices (temporal layer 0, spatial layer
// sid) and, unless flexible, TL0PICIDX.
func vp9Descriptor(flags byte, pic int, pic15, layers, flexible bool, sid int, tl0 uint8) []byte {
	b := []byte{flags}
	if pic >= 0 {
		b[0] |= vp9I
		if pic15 {
			b = binary.BigEndian.AppendUint16(b, 0x8000|uint16(pic)&0x7fff)
		} else {
			b = append(b, byte(pic)&0x7f)
		}
	}
	if flexible {
		b[0] |= vp9F
	}
	if layers {
		b[0] |= vp9L
		b = append(b, byte(sid<<1))
		if !flexible {
			b = append(b, tl0)
		}
	}
	return b
}

// vp9FrameFlags are the flags of packet part (0 or 1) of a frame sent in
// two packets: P unless key, B on the first and E on the last.
func vp9FrameFlags(key bool, part int) byte {
	flags := byte(0x04) // E
	if part == 0 {
		flags = vp9B
	}
	if !key {
		flags |= vp9P
	}
	return flags
}

func TestParseVP9Desc(t *testing.T) {
	tests := []struct {
		name string
		p    []byte
		ok   bool
		want vp9Desc // flags are the packet's first byte
		key  bool
	}{
		{name: "empty", p: nil},
		{name: "flags alone", p: []byte{0x0c, 0xaa}, ok: true, want: vp9Desc{restAt: 1}, key: true},
		{name: "7-bit picture id", p: []byte{0xcc, 0x12, 0xaa}, ok: true,
			want: vp9Desc{picIDs: picIDs{picAt: 1, picID: 0x12}, restAt: 2}},
		{name: "15-bit picture id", p: []byte{0x8c, 0xa3, 0x45, 0xaa}, ok: true,
			want: vp9Desc{picIDs: picIDs{picAt: 1, pic15: true, picID: 0x2345}, restAt: 3}, key: true},
		{name: "15-bit picture id, layers, TL0PICIDX", p: []byte{0xaa, 0xff, 0xff, 0x20, 0x07, 0x00}, ok: true,
			want: vp9Desc{picIDs: picIDs{picAt: 1, pic15: true, picID: 0x7fff, tl0At: 4, tl0: 7}, layerAt: 3, restAt: 5}, key: true},
		{name: "7-bit picture id, layers, TL0PICIDX, upper spatial layer", p: []byte{0xa8, 0x7f, 0x03, 0xff, 0x00}, ok: true,
			want: vp9Desc{picIDs: picIDs{picAt: 1, picID: 0x7f, tl0At: 3, tl0: 0xff}, layerAt: 2, restAt: 4}},
		{name: "layers without a picture id", p: []byte{0x28, 0x00, 0x09}, ok: true,
			want: vp9Desc{picIDs: picIDs{tl0At: 2, tl0: 9}, layerAt: 1, restAt: 3}, key: true},
		{name: "flexible mode: no TL0PICIDX", p: []byte{0xf8, 0x81, 0x00, 0x00, 0x02, 0xaa}, ok: true,
			want: vp9Desc{picIDs: picIDs{picAt: 1, pic15: true, picID: 0x100}, layerAt: 3, restAt: 4}},
		{name: "flexible mode without layers", p: []byte{0x98, 0x05}, ok: true,
			want: vp9Desc{picIDs: picIDs{picAt: 1, picID: 5}, restAt: 2}, key: true},
		{name: "picture id missing", p: []byte{0x88}},
		{name: "15-bit picture id cut short", p: []byte{0x88, 0x81}},
		{name: "layer indices missing", p: []byte{0xa8, 0x12}},
		{name: "TL0PICIDX missing", p: []byte{0xa8, 0x81, 0x23, 0x00}},
		{name: "flexible layer indices missing", p: []byte{0xb8, 0x81, 0x23}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d vp9Desc
			ok := parseVP9Desc(tt.p, &d)
			if ok != tt.ok {
				t.Fatalf("parseVP9Desc(%x) = %v, want %v", tt.p, ok, tt.ok)
			}
			if !ok {
				if d != (vp9Desc{}) {
					t.Fatalf("a refused descriptor left %+v", d)
				}
				if vp9Keyframe(tt.p) {
					t.Fatal("a refused descriptor is taken for a keyframe")
				}
				return
			}
			tt.want.flags = tt.p[0]
			if d != tt.want {
				t.Fatalf("parsed %+v, want %+v", d, tt.want)
			}
			if got := vp9Keyframe(tt.p); got != tt.key {
				t.Fatalf("vp9Keyframe = %v, want %v", got, tt.key)
			}
			var ids picIDs
			if !readPicIDs(codecVP9, tt.p, &ids) || ids != tt.want.picIDs {
				t.Fatalf("readPicIDs found %+v, want %+v", ids, tt.want.picIDs)
			}
		})
	}
}

// FuzzParseVP9Desc: any bytes parse without a panic; what a parse finds
// lies inside the packet, agrees with the keyframe and size readers, and
// a rewrite of its picture id and TL0PICIDX reads back as written,
// leaving every other byte as it was.
func FuzzParseVP9Desc(f *testing.F) {
	f.Add([]byte{0xaa, 0xff, 0xff, 0x20, 0x07, 0x10, 0x02, 0x80, 0x01, 0x68}, uint16(3), uint8(1))
	f.Add([]byte{0xf8, 0x81, 0x00, 0x00, 0x02}, uint16(0x7fff), uint8(0))
	f.Add([]byte{0xcc, 0x12}, uint16(200), uint8(255))
	f.Add([]byte{0xa8, 0x81}, uint16(1), uint8(1))
	f.Fuzz(func(t *testing.T, p []byte, picOff uint16, tl0Off uint8) {
		var d vp9Desc
		if !parseVP9Desc(p, &d) {
			if vp9Keyframe(p) {
				t.Fatalf("%x: a keyframe whose descriptor does not parse", p)
			}
			if _, _, ok := vp9Resolution(p); ok {
				t.Fatalf("%x: a size from a descriptor that does not parse", p)
			}
			return
		}
		end := int(d.picAt) + 1
		if d.pic15 {
			end++
		}
		if int(d.restAt) > len(p) || int(d.tl0At) >= max(len(p), 1) || int(d.layerAt) >= max(len(p), 1) || (d.picAt != 0 && end > len(p)) {
			t.Fatalf("%x: fields out of the packet: %+v", p, d)
		}
		if d.flags&vp9I != 0 && d.picAt == 0 || d.flags&vp9L != 0 && d.layerAt == 0 ||
			(d.tl0At != 0) != (d.flags&vp9L != 0 && d.flags&vp9F == 0) {
			t.Fatalf("%x: fields %+v disagree with the flags", p, d)
		}
		q := bytes.Clone(p)
		d.patch(q, picOff, tl0Off)
		var e vp9Desc
		if !parseVP9Desc(q, &e) {
			t.Fatalf("%x rewritten as %x no longer parses", p, q)
		}
		want := d
		if d.picAt != 0 {
			want.picID = (d.picID + picOff) & d.picMask()
		}
		if d.tl0At != 0 {
			want.tl0 = d.tl0 + tl0Off
		}
		if e != want {
			t.Fatalf("%x rewritten as %x reads %+v, want %+v", p, q, e, want)
		}
		for i := range p {
			inPic := d.picAt != 0 && i >= int(d.picAt) && i < end
			if p[i] != q[i] && !inPic && (d.tl0At == 0 || i != int(d.tl0At)) {
				t.Fatalf("%x rewritten as %x: byte %d changed", p, q, i)
			}
		}
	})
}

// vp9Source is a simulcast layer as the rewriter tests feed it: frames
// of two packets, the first a keyframe, picture ids and TL0PICIDX from
// pic and tl0 on (each frame in temporal layer 0), sequence numbers and
// timestamps of its own.
type vp9Source struct {
	pic      int // -1: no picture id
	pic15    bool
	flexible bool // no TL0PICIDX
	tl0      uint8
	seq      uint16
	ts       uint32
	frames   int
}

// packets returns the layer's packets.
func (s vp9Source) packets() []*packet {
	var out []*packet
	for f := range s.frames {
		for part := range 2 {
			flags := vp9FrameFlags(f == 0, part)
			pic := s.pic
			if pic >= 0 {
				pic += f
			}
			payload := vp9Descriptor(flags, pic, s.pic15, true, s.flexible, 0, s.tl0+uint8(f))
			payload = append(payload, 0x82, 0x49, byte(f), byte(part))
			p := &packet{}
			p.h.seq, p.h.timestamp, p.h.marker = s.seq+uint16(2*f+part), s.ts+uint32(3000*f), part == 1
			n := copy(p.buf[12:], payload)
			p.h.payloadStart, p.h.payloadEnd, p.h.end = 12, 12+n, 12+n
			p.keyframe = p.readDescriptor(codecVP9)
			out = append(out, p)
		}
	}
	return out
}

// TestRewriterVP9AcrossSwitches moves a subscriber's stream from layer
// to layer, each numbering its pictures on its own, and checks every
// packet out: the first layer's picture ids and TL0PICIDX as they came,
// then each new layer's keyframe one picture after the last one sent,
// whether its own ids are ahead, behind or about to wrap; the ids keep
// the width each packet has and wrap at it, and nothing but the ids
// changes.
func TestRewriterVP9AcrossSwitches(t *testing.T) {
	tests := []struct {
		name    string
		sources []vp9Source
	}{
		{"a layer behind the one before", []vp9Source{
			{pic: 5000, pic15: true, tl0: 40, seq: 100, ts: 9000, frames: 3},
			{pic: 12, pic15: true, tl0: 3, seq: 40000, ts: 0x70000000, frames: 3},
		}},
		{"a layer ahead, then back", []vp9Source{
			{pic: 10, pic15: true, tl0: 1, seq: 65530, ts: 1, frames: 3},
			{pic: 30000, pic15: true, tl0: 200, seq: 7, ts: 0xfffff000, frames: 3},
			{pic: 11, pic15: true, tl0: 2, seq: 3, ts: 4000, frames: 2},
		}},
		{"15-bit ids wrap", []vp9Source{
			{pic: 0x7ffd, pic15: true, tl0: 254, seq: 1, ts: 1, frames: 2},
			{pic: 300, pic15: true, tl0: 9, seq: 500, ts: 77, frames: 3},
		}},
		{"7-bit ids wrap", []vp9Source{
			{pic: 125, tl0: 5, seq: 1, ts: 1, frames: 2},
			{pic: 60, tl0: 100, seq: 500, ts: 77, frames: 3},
		}},
		{"from 15-bit ids to 7-bit and back", []vp9Source{
			{pic: 1000, pic15: true, tl0: 5, seq: 1, ts: 1, frames: 2},
			{pic: 3, tl0: 100, seq: 500, ts: 77, frames: 2},
			{pic: 20000, pic15: true, tl0: 0, seq: 900, ts: 5, frames: 2},
		}},
		{"flexible mode: picture ids alone", []vp9Source{
			{pic: 4000, pic15: true, flexible: true, seq: 1, ts: 1, frames: 2},
			{pic: 7, pic15: true, flexible: true, seq: 500, ts: 77, frames: 2},
		}},
		{"no picture ids: TL0PICIDX alone", []vp9Source{
			{pic: -1, tl0: 90, seq: 1, ts: 1, frames: 2},
			{pic: -1, tl0: 7, seq: 500, ts: 77, frames: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r rewriter
			var prev vp9Desc
			first := true
			for k, src := range tt.sources {
				for i, p := range src.packets() {
					if i == 0 {
						if !p.keyframe {
							t.Fatalf("layer %d starts on a packet not taken for a keyframe", k)
						}
						r.begin(p, r.lastTS+3000)
					}
					r.next(p)
					out := bytes.Clone(p.payload())
					if r.rewritesPayload(p) {
						p.pic().patch(out, r.picOff, r.tl0Off)
					}
					var d vp9Desc
					if !parseVP9Desc(out, &d) {
						t.Fatalf("layer %d packet %d: the rewritten descriptor %x does not parse", k, i, out)
					}
					in := &p.vp9
					if d.flags != in.flags || d.pic15 != in.pic15 || d.restAt != in.restAt {
						t.Fatalf("layer %d packet %d: descriptor %x rewritten as %x", k, i, p.payload(), out)
					}
					if !bytes.Equal(out[d.restAt:], p.payload()[in.restAt:]) {
						t.Fatalf("layer %d packet %d: the rewrite touched the frame", k, i)
					}
					switch {
					case first:
						if d.picIDs != in.picIDs {
							t.Fatalf("the first layer's ids %+v went out as %+v", in.picIDs, d.picIDs)
						}
						first = false
					case i%2 == 1: // the frame's second packet: the first's ids
						if d.picID != prev.picID || d.tl0 != prev.tl0 {
							t.Fatalf("layer %d packet %d: picture %d, TL0PICIDX %d in a frame of %d, %d", k, i, d.picID, d.tl0, prev.picID, prev.tl0)
						}
					default: // a new frame
						if want := (prev.picID + 1) & d.picMask(); d.picAt != 0 && d.picID != want {
							t.Fatalf("layer %d packet %d: picture id %d after %d, want %d", k, i, d.picID, prev.picID, want)
						}
						if want := prev.tl0 + 1; d.tl0At != 0 && d.tl0 != want {
							t.Fatalf("layer %d packet %d: TL0PICIDX %d after %d, want %d", k, i, d.tl0, prev.tl0, want)
						}
					}
					prev = d
				}
			}
		})
	}
}

// TestVP9RewriteAllocations: reading a VP9 packet's descriptor, moving
// the rewriter on and patching the copy sent allocate nothing.
func TestVP9RewriteAllocations(t *testing.T) {
	pkts := vp9Source{pic: 100, pic15: true, tl0: 1, seq: 1, ts: 1, frames: 4}.packets()
	r := rewriter{started: true, lastPic: 9000, picSeen: true, lastTL0: 50, tl0Seen: true}
	r.begin(pkts[0], 3000)
	out := make([]byte, maxPacketSize)
	rewrote, i := 0, 0
	a := testing.AllocsPerRun(500, func() {
		p := pkts[i%len(pkts)]
		i++
		p.keyframe = p.readDescriptor(codecVP9)
		r.next(p)
		if r.rewritesPayload(p) {
			p.pic().patch(out[:copy(out, p.payload())], r.picOff, r.tl0Off)
			rewrote++
		}
	})
	if rewrote == 0 {
		t.Fatal("nothing was rewritten")
	}
	if a != 0 {
		t.Fatalf("%.2f allocations per packet, want 0", a)
	}
}
