package rtc

import (
	"encoding/binary"
	"math/rand/v2"
)

// rewriter turns the sequence numbers, timestamps and VP8 picture ids of
// whichever source feeds a down-track into one stream of the
// subscriber's. Each source (a simulcast layer, a republished track)
// numbers its packets and pictures and stamps its frames on its own; at
// the first packet taken from a source the rewriter sets offsets that
// continue the stream from what was sent last, and keeps them for as long
// as that source feeds it.
type rewriter struct {
	started bool
	seqOff  uint16
	tsOff   uint32
	picOff  uint16 // added to a VP8 picture id, modulo its width
	tl0Off  uint8  // added to a VP8 TL0PICIDX
	// The highest sequence number sent and its timestamp; the last
	// picture id and TL0PICIDX sent, when seen.
	lastSeq          uint16
	lastTS           uint32
	lastPic          uint16
	lastTL0          uint8
	picSeen, tl0Seen bool
}

// begin continues the stream with p, the first packet from a new source,
// stamped nextTS in the subscriber's stream. The first source of all
// starts at random values, as RFC 3550 asks, and keeps its picture ids.
func (r *rewriter) begin(p *packet, nextTS uint32) {
	nextSeq := r.lastSeq + 1
	if !r.started {
		nextSeq = uint16(rand.Uint32())
		nextTS = rand.Uint32()
		r.started = true
	}
	r.seqOff = nextSeq - p.h.seq
	r.tsOff = nextTS - p.h.timestamp
	r.lastSeq = nextSeq - 1
	r.lastTS = nextTS
	r.picOff, r.tl0Off = 0, 0
	if p.vp8.picAt != 0 && r.picSeen {
		r.picOff = r.lastPic + 1 - p.vp8.picID
	}
	if p.vp8.tl0At != 0 && r.tl0Seen {
		r.tl0Off = r.lastTL0 + 1 - p.vp8.tl0
	}
}

// next returns p's sequence number and timestamp in the subscriber's
// stream, and notes how far the stream has gone.
func (r *rewriter) next(p *packet) (seq uint16, ts uint32) {
	seq = p.h.seq + r.seqOff
	ts = p.h.timestamp + r.tsOff
	if int16(seq-r.lastSeq) > 0 {
		r.lastSeq, r.lastTS = seq, ts
	}
	if p.vp8.picAt != 0 {
		r.lastPic = (p.vp8.picID + r.picOff) & p.vp8.picMask()
		r.picSeen = true
	}
	if p.vp8.tl0At != 0 {
		r.lastTL0 = p.vp8.tl0 + r.tl0Off
		r.tl0Seen = true
	}
	return seq, ts
}

// rewritesPayload reports whether p's payload differs in the subscriber's
// stream: a VP8 descriptor whose picture id or TL0PICIDX moves.
func (r *rewriter) rewritesPayload(p *packet) bool {
	return (p.vp8.picAt != 0 && r.picOff != 0) || (p.vp8.tl0At != 0 && r.tl0Off != 0)
}

// patchVP8 writes the subscriber's picture id and TL0PICIDX into payload,
// a copy of a VP8 payload whose descriptor is d, with offsets picOff and
// tl0Off.
func patchVP8(payload []byte, d *vp8Desc, picOff uint16, tl0Off uint8) {
	if d.picAt != 0 {
		pic := (d.picID + picOff) & d.picMask()
		if d.pic15 {
			binary.BigEndian.PutUint16(payload[d.picAt:], 0x8000|pic)
		} else {
			payload[d.picAt] = byte(pic)
		}
	}
	if d.tl0At != 0 {
		payload[d.tl0At] = d.tl0 + tl0Off
	}
}

// switchTS is the timestamp, in the subscriber's stream, of a keyframe
// that starts a new layer: the clock of the layer being left, read at its
// last frame (its timestamp in the subscriber's stream and its arrival,
// in milliseconds), moved on by the time from that frame's arrival to the
// keyframe's. Layers of one camera carry the same frames at the same
// moments, so the keyframe lands where the old layer's frame of the same
// moment would have. It is never at or before lastTS, the last one sent:
// a receiver takes packets of one timestamp for one frame.
func switchTS(lastTS, frameTS uint32, frameMS, keyMS uint32, clockRate uint32) uint32 {
	elapsed := int64(int32(keyMS - frameMS)) // milliseconds, either way
	ts := frameTS + uint32(elapsed*int64(clockRate)/1000)
	if int32(ts-lastTS) <= 0 {
		ts = lastTS + 1
	}
	return ts
}
