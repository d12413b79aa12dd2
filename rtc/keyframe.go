package rtc

import (
	"encoding/binary"
	"strings"

	"github.com/pion/webrtc/v4"
)

// codecKind tells the forwarder how to find keyframes in a codec's payload.
type codecKind uint8

const (
	codecOther codecKind = iota // audio and unknown codecs: every packet decodes
	codecVP8
	codecVP9
	codecH264
	codecAV1
)

func codecKindOf(mimeType string) codecKind {
	switch {
	case strings.EqualFold(mimeType, webrtc.MimeTypeVP8):
		return codecVP8
	case strings.EqualFold(mimeType, webrtc.MimeTypeVP9):
		return codecVP9
	case strings.EqualFold(mimeType, webrtc.MimeTypeH264):
		return codecH264
	case strings.EqualFold(mimeType, webrtc.MimeTypeAV1):
		return codecAV1
	}
	return codecOther
}

// startsKeyframe reports whether payload is the first packet of a frame a
// decoder can start from. A down-track that joins or changes source waits
// for one, since the frames before it cannot be decoded anyway.
func startsKeyframe(kind codecKind, payload []byte) bool {
	switch kind {
	case codecVP8:
		return vp8Keyframe(payload)
	case codecVP9:
		return vp9Keyframe(payload)
	case codecH264:
		return h264Keyframe(payload)
	case codecAV1:
		// The AV1 RTP payload format's N bit marks the first packet of a
		// coded video sequence, which starts with a key frame and its
		// sequence header (av1Resolution reads it).
		return len(payload) > 0 && payload[0]&0x08 != 0
	}
	return true
}

// vp8Keyframe reads the payload descriptor of RFC 7741 section 4.2, then the
// P bit of the VP8 frame header, which is 0 for a key frame.
func vp8Keyframe(p []byte) bool {
	var d vp8Desc
	return parseVP8Desc(p, &d) && d.keyframe(p)
}

// keyframe reports whether p, the VP8 payload d was parsed from, starts
// a key frame: the forwarder parses each packet's descriptor once.
func (d *vp8Desc) keyframe(p []byte) bool {
	if !d.hasHead {
		return false
	}
	start, pid := p[0]&0x10 != 0, p[0]&0x07
	return start && pid == 0 && p[d.hdrAt]&0x01 == 0
}

// vp9Keyframe reads the payload descriptor of RFC 9628: a packet that begins
// a frame (B) that is not inter-predicted (P clear) in spatial layer 0.
func vp9Keyframe(p []byte) bool {
	var d vp9Desc
	return parseVP9Desc(p, &d) && d.keyframe(p)
}

// vp9Resolution reads the picture size a VP9 keyframe's first packet
// carries in its payload descriptor's scalability structure (RFC 9628
// section 4.2.1: V set, then N_S, Y and, with Y, the width and height of
// each spatial layer): the largest layer's, the picture a subscriber of
// the whole stream decodes. libwebrtc sends the structure on every
// keyframe, with one layer when it sends no SVC.
func vp9Resolution(p []byte) (width, height int, ok bool) {
	var d vp9Desc
	if !parseVP9Desc(p, &d) || !d.startsKey() || d.flags&vp9V == 0 { // no V: no scalability structure
		return 0, 0, false
	}
	// F with P would list reference indices here; P is clear on a keyframe.
	i := int(d.restAt)
	if len(p) <= i {
		return 0, 0, false
	}
	ss := p[i]
	if ss&0x10 == 0 { // Y clear: no sizes
		return 0, 0, false
	}
	layers := int(ss>>5) + 1
	sizes := p[i+1:]
	if len(sizes) < 4*layers {
		return 0, 0, false
	}
	for l := range layers {
		w := int(binary.BigEndian.Uint16(sizes[4*l:]))
		h := int(binary.BigEndian.Uint16(sizes[4*l+2:]))
		if w == 0 || h == 0 {
			return 0, 0, false
		}
		if w*h > width*height {
			width, height = w, h
		}
	}
	return width, height, true
}

// h264Keyframe looks for an IDR slice or a sequence parameter set at the
// start of the packet (RFC 6184: single NAL unit, STAP-A, or the first
// fragment of an FU-A).
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; {
	case t == 5 || t == 7:
		return true
	case t == 24: // STAP-A: 16-bit sizes, each followed by a NAL unit
		for i := 1; i+2 < len(p); {
			size := int(binary.BigEndian.Uint16(p[i:]))
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if nt := p[i] & 0x1f; nt == 5 || nt == 7 {
				return true
			}
			i += size
		}
	case t == 28: // FU-A: start bit and the fragmented NAL's type
		return len(p) > 1 && p[1]&0x80 != 0 && (p[1]&0x1f == 5 || p[1]&0x1f == 7)
	}
	return false
}
