package rtc

import (
	"encoding/binary"

	"github.com/troupe-media/troupe/internal/h264"
)

// h264Resolution finds a sequence parameter set at the start of an H.264
// RTP payload (a single NAL unit, an aggregation packet, or the first
// fragment of one) and reads the picture size from it.
func h264Resolution(p []byte) (width, height int, ok bool) {
	if len(p) < 1 {
		return 0, 0, false
	}
	switch t := p[0] & 0x1f; t {
	case 7:
		return h264.SPSSize(p[1:])
	case 24: // STAP-A
		for i := 1; i+2 < len(p); {
			size := int(binary.BigEndian.Uint16(p[i:]))
			i += 2
			if size == 0 || i+size > len(p) {
				return 0, 0, false
			}
			if p[i]&0x1f == 7 {
				return h264.SPSSize(p[i+1 : i+size])
			}
			i += size
		}
	case 28: // FU-A: the start of a fragmented SPS holds its first fields
		if len(p) > 2 && p[1]&0x80 != 0 && p[1]&0x1f == 7 {
			return h264.SPSSize(p[2:])
		}
	}
	return 0, 0, false
}

// maxSPSDimension bounds the sizes an SPS may claim (h264.MaxDimension).
const maxSPSDimension = h264.MaxDimension
