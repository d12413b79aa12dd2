package rtc

import "encoding/binary"

// vp8Desc locates, in a VP8 payload, the fields of the payload descriptor
// (RFC 7741 section 4.2) that a down-track rewrites when it moves from one
// simulcast layer to another, or drops the frames of a temporal layer:
// each layer numbers its pictures on its own, and a receiver takes a jump
// in picture id for lost frames.
type vp8Desc struct {
	picIDs
	hdrAt   uint8 // offset of the VP8 payload header
	hasHead bool  // the descriptor is whole and a payload byte follows it
	// tidAt is the offset of the TID/Y/KEYIDX byte when it carries a
	// temporal layer index (T set), else 0; tid is that index and sync
	// its Y bit: the frame refers to no frame of its own layer or above
	// (temporal.go).
	tidAt uint8
	tid   uint8
	sync  bool
	// start: the packet starts a frame (S set, partition 0).
	start bool
}

// parseVP8Desc reads p's payload descriptor. It reports false when p is
// too short for the descriptor it announces.
func parseVP8Desc(p []byte, d *vp8Desc) bool {
	*d = vp8Desc{}
	if len(p) < 1 {
		return false
	}
	d.start = p[0]&0x10 != 0 && p[0]&0x07 == 0
	i := 1
	if p[0]&0x80 != 0 { // X: extension byte
		if len(p) <= i {
			return false
		}
		x := p[i]
		i++
		if x&0x80 != 0 { // I: picture id, 7 or 15 bits
			var ok bool
			if i, ok = d.readPicID(p, i); !ok {
				return false
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			if len(p) <= i {
				return false
			}
			d.tl0At = uint8(i)
			d.tl0 = p[i]
			i++
		}
		if x&0x30 != 0 { // T or K: TID/KEYIDX byte
			if len(p) <= i {
				return false
			}
			if x&0x20 != 0 { // T: TID and Y are meaningful
				d.tidAt, d.tid, d.sync = uint8(i), p[i]>>6, p[i]&0x20 != 0
			}
			i++
		}
	}
	d.hdrAt = uint8(i)
	d.hasHead = len(p) > i
	return true
}

// vp8Resolution reads the width and height of a key frame from the first
// packet of the frame (RFC 6386 section 9.1: a three-byte frame tag, the
// start code 9d 01 2a, then 14-bit width and height, each with a 2-bit
// scale that only tells the decoder how to upscale).
func vp8Resolution(p []byte) (width, height int, ok bool) {
	var d vp8Desc
	if !parseVP8Desc(p, &d) || !d.hasHead || p[0]&0x10 == 0 || p[0]&0x07 != 0 {
		return 0, 0, false
	}
	h := p[d.hdrAt:]
	if len(h) < 10 || h[0]&0x01 != 0 || h[3] != 0x9d || h[4] != 0x01 || h[5] != 0x2a {
		return 0, 0, false
	}
	width = int(binary.LittleEndian.Uint16(h[6:]) & 0x3fff)
	height = int(binary.LittleEndian.Uint16(h[8:]) & 0x3fff)
	if width == 0 || height == 0 {
		return 0, 0, false
	}
	return width, height, true
}
