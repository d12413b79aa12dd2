package bwe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrMalformedFeedback: a transport-cc feedback that is not what the
// format says (draft-holmer-rmcat-transport-wide-cc-extensions-01): too
// short for its header, its chunks or its deltas. It changes nothing.
var ErrMalformedFeedback = errors.New("bwe: malformed transport-cc feedback")

// Ack is what a feedback report says of one packet sent.
type Ack struct {
	// Seq is the packet's transport-wide sequence number.
	Seq uint16
	// Received: the packet arrived, at Arrival on the receiver's clock
	// (the report's reference time and the deltas up to the packet; the
	// reference time wraps every 2^24 × 64 ms).
	Received bool
	Arrival  time.Duration
}

const (
	// referenceUnit is the unit of a report's reference time, deltaUnit
	// that of its arrival deltas.
	referenceUnit = 64 * time.Millisecond
	deltaUnit     = 250 * time.Microsecond
	// The RTCP header of a transport-cc feedback: version 2, format 15,
	// packet type 205; then the two SSRCs and the feedback's own fields.
	feedbackFixed    = 20
	feedbackType     = 205
	feedbackFormat   = 15
	symbolNotRecv    = 0
	symbolSmallDelta = 1
	symbolLargeDelta = 2
)

// ParseFeedback appends to dst what the transport-cc feedback b (one
// RTCP packet, header included) says of each packet it reports, in
// sequence order, and returns it. It reads the packet where it lies and
// allocates nothing once dst has room. A packet that is not a
// transport-cc feedback, or is cut short, is refused whole
// (ErrMalformedFeedback, dst as it was).
func ParseFeedback(b []byte, dst []Ack) ([]Ack, error) {
	start := len(dst)
	fail := func(what string) ([]Ack, error) {
		return dst[:start], fmt.Errorf("%w: %s", ErrMalformedFeedback, what)
	}
	if len(b) < feedbackFixed || b[0]>>6 != 2 || b[0]&0x1f != feedbackFormat || b[1] != feedbackType {
		return fail("not a transport-cc feedback")
	}
	size := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
	if size < feedbackFixed || size > len(b) {
		return fail("its length overruns the packet")
	}
	end := size
	if b[0]&0x20 != 0 { // padding: its count is the last byte
		pad := int(b[size-1])
		if pad == 0 || pad > size-feedbackFixed {
			return fail("bad padding")
		}
		end -= pad
	}
	seq := binary.BigEndian.Uint16(b[12:14])
	count := int(binary.BigEndian.Uint16(b[14:16]))
	ref := time.Duration(uint32(b[16])<<16|uint32(b[17])<<8|uint32(b[18])) * referenceUnit
	// The chunks: each packet's symbol, kept in Arrival until the
	// deltas are read.
	pos := feedbackFixed
	add := func(sym uint16) {
		dst = append(dst, Ack{Seq: seq, Received: sym == symbolSmallDelta || sym == symbolLargeDelta, Arrival: time.Duration(sym)})
		seq++
		count--
	}
	for count > 0 {
		if pos+2 > end {
			return fail("its chunks end before its packets")
		}
		chunk := binary.BigEndian.Uint16(b[pos:])
		pos += 2
		switch {
		case chunk&0x8000 == 0: // run length
			sym := chunk >> 13 & 0x3
			for range min(int(chunk&0x1fff), count) {
				add(sym)
			}
		case chunk&0x4000 == 0: // fourteen one-bit symbols
			for i := 13; i >= 0 && count > 0; i-- {
				add(chunk >> i & 0x1)
			}
		default: // seven two-bit symbols
			for i := 12; i >= 0 && count > 0; i -= 2 {
				add(chunk >> i & 0x3)
			}
		}
	}
	// The deltas, in the packets' order.
	at := ref
	for i := start; i < len(dst); i++ {
		a := &dst[i]
		if !a.Received {
			a.Arrival = 0
			continue
		}
		var d time.Duration
		if a.Arrival == symbolSmallDelta {
			if pos+1 > end {
				return fail("its deltas end before its packets")
			}
			d = time.Duration(b[pos]) * deltaUnit
			pos++
		} else {
			if pos+2 > end {
				return fail("its deltas end before its packets")
			}
			d = time.Duration(int16(binary.BigEndian.Uint16(b[pos:]))) * deltaUnit
			pos += 2
		}
		at += d
		a.Arrival = at
	}
	return dst, nil
}
