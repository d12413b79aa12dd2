package rtctest

// TemporalPattern is the temporal layer (TID) of each frame of a VP8
// stream in three temporal layers, four frames at a time, as libvpx
// orders them: layer 0 a quarter of the frames, layer 1 another quarter,
// layer 2 the half left.
var TemporalPattern = [4]uint8{0, 2, 1, 2}

// TemporalDescriptor returns the VP8 payload descriptor (RFC 7741) of a
// packet of frame n of such a stream: the 15-bit picture id 1000+n, the
// TL0PICIDX n/4 (it counts layer 0's frames), the frame's layer, and the
// layer sync bit on the first frame of each upper layer after a layer 0
// one (it refers to layer 0 alone). start marks a frame's first packet.
func TemporalDescriptor(n int, start bool) []byte {
	tid := TemporalPattern[n%4]
	b0 := byte(0x80) // X
	if start {
		b0 |= 0x10 // S, partition 0
	}
	pic := uint16(1000+n) & 0x7fff
	tidY := tid << 6
	if tid != 0 && n%4 <= 2 {
		tidY |= 0x20
	}
	// I, L and T; the 15-bit picture id; TL0PICIDX; TID, Y, KEYIDX 0.
	return []byte{b0, 0xe0, 0x80 | byte(pic>>8), byte(pic), byte(n / 4), tidY}
}
