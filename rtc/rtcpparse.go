package rtc

import "encoding/binary"

// RTCP packet types and feedback formats read from subscribers (RFC 4585,
// RFC 5104).
const (
	rtcpSR      = 200
	rtcpRR      = 201
	rtcpRTPFB   = 205
	rtcpPSFB    = 206
	fmtNACK     = 1
	fmtPLI      = 1
	fmtFIR      = 4
	rtcpHdrSize = 4
)

// rtcpFeedback is what a down-track acts on in a compound RTCP packet.
type rtcpFeedback struct {
	pli, fir int
	// nacks receives each lost sequence number as it is parsed, so that
	// no slice is built for them.
	nack func(seq uint16)
	// report is the last reception report block about mediaSSRC (from a
	// receiver or a sender report), valid when hasReport is set.
	report    receptionReport
	hasReport bool
}

// receptionReport is the part of an RFC 3550 report block the operators'
// metrics use.
type receptionReport struct {
	fractionLost uint8  // lost since the last report, in 1/256
	jitter       uint32 // interarrival jitter, in RTP timestamp units
	lsr, dlsr    uint32 // last SR's middle NTP bits, and the delay since, in 1/65536 s
}

// Report block layout (RFC 3550 section 6.4.1).
const (
	rtcpReportBlockSize = 24
	rtcpSRHeaderSize    = 28 // header, SSRC, NTP, RTP time, counts
	rtcpRRHeaderSize    = 8  // header, SSRC
)

// findReport looks through the count report blocks in blocks for the one
// about ssrc.
func findReport(blocks []byte, count uint8, ssrc uint32, fb *rtcpFeedback) {
	for i := uint8(0); i < count && len(blocks) >= rtcpReportBlockSize; i++ {
		blk := blocks[:rtcpReportBlockSize]
		blocks = blocks[rtcpReportBlockSize:]
		if binary.BigEndian.Uint32(blk) != ssrc {
			continue
		}
		fb.report = receptionReport{
			fractionLost: blk[4],
			jitter:       binary.BigEndian.Uint32(blk[12:]),
			lsr:          binary.BigEndian.Uint32(blk[16:]),
			dlsr:         binary.BigEndian.Uint32(blk[20:]),
		}
		fb.hasReport = true
	}
}

// nextRTCP splits the first packet off compound RTCP packet b; ok is
// false at its end or at a malformed packet.
func nextRTCP(b []byte) (pkt, rest []byte, ok bool) {
	if len(b) < rtcpHdrSize || b[0]>>6 != 2 {
		return nil, nil, false
	}
	size := rtcpHdrSize + 4*int(binary.BigEndian.Uint16(b[2:]))
	if size > len(b) {
		return nil, nil, false
	}
	return b[:size], b[size:], true
}

// walkRTCP goes through a compound RTCP packet and reports the keyframe
// requests, NACKed sequence numbers and reception reports addressed to
// mediaSSRC. It allocates
// nothing and stops at the first malformed packet, keeping what it has read
// so far; it returns the number of NACKed sequence numbers reported.
func walkRTCP(b []byte, mediaSSRC uint32, fb *rtcpFeedback) (nacked int) {
	for {
		pkt, rest, ok := nextRTCP(b)
		if !ok {
			return nacked
		}
		b = rest
		count := pkt[0] & 0x1f
		pt := pkt[1]
		switch {
		case pt == rtcpRR && len(pkt) >= rtcpRRHeaderSize:
			findReport(pkt[rtcpRRHeaderSize:], count, mediaSSRC, fb)
			continue
		case pt == rtcpSR && len(pkt) >= rtcpSRHeaderSize:
			findReport(pkt[rtcpSRHeaderSize:], count, mediaSSRC, fb)
			continue
		}
		// Feedback messages: sender SSRC, media SSRC, then the FCI.
		if (pt != rtcpRTPFB && pt != rtcpPSFB) || len(pkt) < 12 {
			continue
		}
		media := binary.BigEndian.Uint32(pkt[8:])
		fci := pkt[12:]
		switch {
		case pt == rtcpRTPFB && count == fmtNACK && media == mediaSSRC:
			for ; len(fci) >= 4; fci = fci[4:] {
				pid := binary.BigEndian.Uint16(fci)
				blp := binary.BigEndian.Uint16(fci[2:])
				nacked++
				if fb.nack != nil {
					fb.nack(pid)
				}
				for i := uint16(0); i < 16; i++ {
					if blp&(1<<i) != 0 {
						nacked++
						if fb.nack != nil {
							fb.nack(pid + i + 1)
						}
					}
				}
			}
		case pt == rtcpPSFB && count == fmtPLI && media == mediaSSRC:
			fb.pli++
		case pt == rtcpPSFB && count == fmtFIR:
			// The media SSRC of a FIR is unused; each FCI entry names the
			// SSRC asked for (RFC 5104 section 4.3.1).
			for ; len(fci) >= 8; fci = fci[8:] {
				if binary.BigEndian.Uint32(fci) == mediaSSRC {
					fb.fir++
					break
				}
			}
		}
	}
}
