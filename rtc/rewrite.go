package rtc

import (
	"encoding/binary"
	"math/rand/v2"
)

// rewriter turns the sequence numbers, timestamps, and VP8 and VP9
// picture ids and TL0PICIDX of whichever source feeds a down-track into
// one stream of the subscriber's. Each source (a simulcast layer, a
// republished track) numbers its packets and pictures and stamps its
// frames on its own; at the first packet taken from a source the
// rewriter sets offsets that continue the stream from what was sent
// last, and keeps them for as long as that source feeds it.
type rewriter struct {
	started bool
	seqOff  uint16
	tsOff   uint32
	picOff  uint16 // added to a VP8 or VP9 picture id, modulo its width
	tl0Off  uint8  // added to a VP8 or VP9 TL0PICIDX
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
	d := p.pic()
	if d.picAt != 0 && r.picSeen {
		r.picOff = r.lastPic + 1 - d.picID
	}
	if d.tl0At != 0 && r.tl0Seen {
		r.tl0Off = r.lastTL0 + 1 - d.tl0
	}
}

// startEmpty starts the stream before its first packet, at random values
// as begin would, for padding sent ahead of any media; the first source
// then continues from the padding.
func (r *rewriter) startEmpty() {
	r.lastSeq = uint16(rand.Uint32())
	r.lastTS = rand.Uint32()
	r.started = true
}

// next returns p's sequence number and timestamp in the subscriber's
// stream, and notes how far the stream has gone.
func (r *rewriter) next(p *packet) (seq uint16, ts uint32) {
	seq = p.h.seq + r.seqOff
	ts = p.h.timestamp + r.tsOff
	if int16(seq-r.lastSeq) > 0 {
		r.lastSeq, r.lastTS = seq, ts
	}
	d := p.pic()
	if d.picAt != 0 {
		r.lastPic = (d.picID + r.picOff) & d.picMask()
		r.picSeen = true
	}
	if d.tl0At != 0 {
		r.lastTL0 = d.tl0 + r.tl0Off
		r.tl0Seen = true
	}
	return seq, ts
}

// rewritesPayload reports whether p's payload differs in the subscriber's
// stream: a VP8 or VP9 descriptor whose picture id or TL0PICIDX moves.
func (r *rewriter) rewritesPayload(p *packet) bool {
	d := p.pic()
	return (d.picAt != 0 && r.picOff != 0) || (d.tl0At != 0 && r.tl0Off != 0)
}

// picIDs locates a payload descriptor's picture id and TL0PICIDX, which
// VP8 (RFC 7741 section 4.2) and VP9 (RFC 9628 section 4.2) lay out
// alike: the id in one byte, or two when the first has its high bit (M)
// set, and TL0PICIDX in one byte. Each simulcast layer numbers its
// pictures on its own, and a receiver orders frames by picture id, so a
// down-track moves them into one sequence when it changes source.
type picIDs struct {
	picAt uint8 // offset of the picture id's first byte; 0 when absent
	pic15 bool  // the picture id has 15 bits (M set), else 7
	tl0At uint8 // offset of TL0PICIDX; 0 when absent
	picID uint16
	tl0   uint8
}

// picMask is the range of a picture id of the descriptor's width.
func (d *picIDs) picMask() uint16 {
	if d.pic15 {
		return 0x7fff
	}
	return 0x7f
}

// readPicID reads the picture id at p[i:], of 7 or 15 bits as its first
// bit (M) says, and returns the offset after it; false when p ends first.
func (d *picIDs) readPicID(p []byte, i int) (int, bool) {
	if len(p) <= i {
		return i, false
	}
	d.picAt = uint8(i)
	if p[i]&0x80 == 0 {
		d.picID = uint16(p[i])
		return i + 1, true
	}
	if len(p) <= i+1 {
		return i, false
	}
	d.pic15 = true
	d.picID = binary.BigEndian.Uint16(p[i:]) & 0x7fff
	return i + 2, true
}

// readPicIDs parses the picture id and TL0PICIDX of payload, of a codec
// of kind, into d. It reports false, d zero, for a codec without them or
// a descriptor cut short.
func readPicIDs(kind codecKind, payload []byte, d *picIDs) bool {
	*d = picIDs{}
	switch kind {
	case codecVP8:
		var v vp8Desc
		if parseVP8Desc(payload, &v) {
			*d = v.picIDs
			return true
		}
	case codecVP9:
		var v vp9Desc
		if parseVP9Desc(payload, &v) {
			*d = v.picIDs
			return true
		}
	}
	return false
}

// patch writes the subscriber's picture id and TL0PICIDX into payload, a
// copy of the payload d was parsed from, with offsets picOff and tl0Off.
// The id keeps its width: it wraps at 7 or 15 bits as the publisher's did.
func (d *picIDs) patch(payload []byte, picOff uint16, tl0Off uint8) {
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
