package rtc

// Padding from publishers.
//
// A browser's congestion control pads its stream to probe its uplink;
// without RTX negotiated (Troupe offers none) the padding goes on the
// media's own stream: RTP packets with no payload. Firefox pads its top
// simulcast layer that way for as long as it sends it, hundreds of packets
// a second. Forwarded, they would cost every subscriber of that layer about
// half as much again as the media, for nothing, and count in the layer's
// rate. So a video Forwarder takes them out of the stream, and numbers the
// packets after them down, so that subscribers see no gap to NACK and the
// packet cache holds the stream as they see it. A packet that comes late
// (reordered, or a retransmission the server asked for) is numbered down by
// the padding dropped before it, as the drops remembered tell; one older
// than the drops remembered, when more were dropped, cannot be placed and
// is dropped.

// padDropsKept is how many of the last padding drops a Forwarder
// remembers to place late packets: at Firefox's few hundred a second,
// most of a second.
const padDropsKept = 256

// paddingGap is a video Forwarder's record of the padding taken out of
// its stream. Its read loop alone uses it.
type paddingGap struct {
	on    bool   // high is set
	high  uint16 // the newest sequence number seen
	shift uint16 // padding packets dropped so far, modulo 2^16
	drops [padDropsKept]uint16
	n     uint64 // drops so far; drops[i%padDropsKept] is the i-th
}

// take decides on a packet numbered seq, padding only or not: dropped, or
// numbered out in the stream without the padding.
func (g *paddingGap) take(seq uint16, padding bool) (out uint16, drop bool) {
	if !g.on || int16(seq-g.high) > 0 {
		g.on, g.high = true, seq
		if padding {
			g.drops[g.n%padDropsKept] = seq
			g.n++
			g.shift++
			return 0, true
		}
		return seq - g.shift, false
	}
	if padding {
		return 0, true
	}
	if g.n > padDropsKept {
		if oldest := g.drops[g.n%padDropsKept]; int16(oldest-seq) > 0 {
			return 0, true // some padding before it was forgotten
		}
	}
	after := uint16(0) // the drops after seq, not to count
	for i := range min(g.n, padDropsKept) {
		if int16(g.drops[i]-seq) > 0 {
			after++
		}
	}
	return seq - (g.shift - after), false
}
