package rtc

import "encoding/binary"

// rtpHeader holds the fields of an RTP header the forwarder needs. It is
// parsed in place from the received bytes, without allocation, once per
// packet however many subscribers the packet goes to.
type rtpHeader struct {
	marker      bool
	padding     bool
	payloadType uint8
	seq         uint16
	timestamp   uint32
	ssrc        uint32
	// payloadStart and payloadEnd bound the payload; payloadEnd excludes
	// the padding, end is the whole packet including it.
	payloadStart int
	payloadEnd   int
	end          int
	// extProfile is the header extension's profile (0xBEDE for RFC 8285's
	// one-byte elements, 0x100X for its two-byte ones); extStart and
	// extEnd bound its elements, equal when there are none.
	extProfile       uint16
	extStart, extEnd int
}

// parseRTP fills h from b, which must hold one whole RTP packet (RFC 3550
// section 5.1). CSRCs are skipped over, and so is the header extension,
// whose place is noted: the few elements Troupe reads or forwards are
// found in it by readExtensions (hdrext.go), since their ids are
// negotiated per peer connection.
func parseRTP(b []byte, h *rtpHeader) error {
	if len(b) < 12 {
		return errShortPacket
	}
	if b[0]>>6 != 2 {
		return errBadVersion
	}
	h.padding = b[0]&0x20 != 0
	h.marker = b[1]&0x80 != 0
	h.payloadType = b[1] & 0x7f
	h.seq = binary.BigEndian.Uint16(b[2:])
	h.timestamp = binary.BigEndian.Uint32(b[4:])
	h.ssrc = binary.BigEndian.Uint32(b[8:])
	off := 12 + 4*int(b[0]&0x0f)
	h.extProfile, h.extStart, h.extEnd = 0, 0, 0
	if b[0]&0x10 != 0 {
		if len(b) < off+4 {
			return errShortPacket
		}
		h.extProfile = binary.BigEndian.Uint16(b[off:])
		h.extStart = off + 4
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
		h.extEnd = off
	}
	if len(b) < off {
		return errShortPacket
	}
	end := len(b)
	if h.padding {
		pad := int(b[len(b)-1])
		if pad == 0 || pad > len(b)-off {
			return errBadPadding
		}
		end -= pad
	}
	h.payloadStart, h.payloadEnd, h.end = off, end, len(b)
	return nil
}
