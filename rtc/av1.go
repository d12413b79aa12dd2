package rtc

// av1Resolution finds a sequence header OBU whole in an AV1 RTP payload
// (the AV1 RTP payload format, section 4: an aggregation header, then OBU
// elements) and reads from it the largest frame the coded video sequence
// holds: for an SVC stream the top spatial layer's, the picture a
// subscriber of the whole stream decodes. An encoder that scales its
// pictures down within a sequence, under the same header, is read at its
// largest until it sends another. A keyframe's first packet carries the
// sequence header first (N set). A sequence header split across packets
// is not read: the next keyframe's may come whole.
func av1Resolution(p []byte) (width, height int, ok bool) {
	if len(p) < 2 {
		return 0, 0, false
	}
	agg := p[0]
	z, y := agg&0x80 != 0, agg&0x40 != 0
	count := int(agg>>4) & 0x03 // W: the number of elements, or 0
	rest := p[1:]
	for n := 1; len(rest) > 0; n++ {
		var elem []byte
		if n == count {
			// W set: the last element has no length field and takes the rest.
			elem, rest = rest, nil
		} else {
			size, k, ok := readLEB128(rest)
			if !ok || size > uint64(len(rest)-k) {
				return 0, 0, false
			}
			elem, rest = rest[k:k+int(size)], rest[k+int(size):]
		}
		// Z: the first element continues an OBU of the packet before;
		// Y: the last one is continued in the next packet. Neither holds
		// an OBU's beginning and end both.
		if (n == 1 && z) || (len(rest) == 0 && y) {
			continue
		}
		obu, isSeq, ok := av1SequenceHeader(elem)
		if !ok {
			return 0, 0, false
		}
		if isSeq {
			return av1MaxFrameSize(obu)
		}
	}
	return 0, 0, false
}

// av1SequenceHeader reads the OBU header of elem, a whole OBU (AV1
// bitstream section 5.3.2), and returns its payload when it is a sequence
// header (obu_type 1). ok is false for a damaged header: the forbidden
// bit set, or an obu_size beyond the element.
func av1SequenceHeader(elem []byte) (payload []byte, isSeq, ok bool) {
	if len(elem) < 1 || elem[0]&0x80 != 0 {
		return nil, false, false
	}
	h := elem[0]
	if (h>>3)&0x0f != 1 {
		return nil, false, true
	}
	at := 1
	if h&0x04 != 0 { // obu_extension_flag: temporal and spatial ids
		at++
	}
	if len(elem) < at {
		return nil, false, false
	}
	payload = elem[at:]
	// obu_has_size_field: the RTP format asks senders to leave it out,
	// but an OBU that has it is valid, and its size bounds the payload.
	if h&0x02 != 0 {
		size, k, ok := readLEB128(payload)
		if !ok || size > uint64(len(payload)-k) {
			return nil, false, false
		}
		payload = payload[k : k+int(size)]
	}
	return payload, true, true
}

// av1MaxFrameSize reads a sequence header OBU's payload (AV1 bitstream
// section 5.5) as far as max_frame_width_minus_1 and
// max_frame_height_minus_1.
func av1MaxFrameSize(b []byte) (width, height int, ok bool) {
	r := av1BitReader{b: b}
	if r.f(3) > 2 { // seq_profile: 3 to 7 are reserved
		return 0, 0, false
	}
	still := r.f(1) == 1
	if r.f(1) == 1 { // reduced_still_picture_header, of still pictures only
		if !still {
			return 0, 0, false
		}
		r.f(5) // seq_level_idx[0]
	} else {
		decoderModel := false
		var delayBits int
		if r.f(1) == 1 { // timing_info_present_flag: timing_info()
			// num_units_in_display_tick and time_scale, both
			// required to be above zero.
			if r.f(32) == 0 || r.f(32) == 0 {
				return 0, 0, false
			}
			if r.f(1) == 1 { // equal_picture_interval
				r.uvlc() // num_ticks_per_picture_minus_1
			}
			if r.f(1) == 1 { // decoder_model_info_present_flag: decoder_model_info()
				decoderModel = true
				delayBits = int(r.f(5)) + 1 // buffer_delay_length_minus_1
				r.f(32)                     // num_units_in_decoding_tick
				r.f(5)                      // buffer_removal_time_length_minus_1
				r.f(5)                      // frame_presentation_time_length_minus_1
			}
		}
		initialDelay := r.f(1) == 1 // initial_display_delay_present_flag
		points := int(r.f(5)) + 1   // operating_points_cnt_minus_1
		for range points {
			r.f(12)         // operating_point_idc
			if r.f(5) > 7 { // seq_level_idx
				r.f(1) // seq_tier
			}
			if decoderModel && r.f(1) == 1 { // decoder_model_present_for_this_op: operating_parameters_info()
				r.f(delayBits) // decoder_buffer_delay
				r.f(delayBits) // encoder_buffer_delay
				r.f(1)         // low_delay_mode_flag
			}
			if initialDelay && r.f(1) == 1 { // initial_display_delay_present_for_this_op
				r.f(4) // initial_display_delay_minus_1
			}
		}
	}
	widthBits := int(r.f(4)) + 1  // frame_width_bits_minus_1
	heightBits := int(r.f(4)) + 1 // frame_height_bits_minus_1
	w := int(r.f(widthBits)) + 1
	h := int(r.f(heightBits)) + 1
	if r.err {
		return 0, 0, false
	}
	return w, h, true
}

// readLEB128 reads an unsigned LEB128 number (AV1 bitstream section
// 4.10.5) of at most 8 bytes. n is the bytes it took. The spec bounds the
// value to 2^32-1, which no packet's length comes near: the callers
// compare it with what is left.
func readLEB128(b []byte) (v uint64, n int, ok bool) {
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
	}
	return 0, 0, false
}

// av1BitReader reads the fields of an AV1 OBU, most significant bit
// first. Unlike H.264's RBSP (internal/h264) an OBU has no emulation
// prevention bytes to drop. Reading past the end sets err and returns
// zeros.
type av1BitReader struct {
	b   []byte
	pos int // bits read
	err bool
}

// f reads an n-bit unsigned number, n at most 32 (section 4.10.2).
func (r *av1BitReader) f(n int) uint32 {
	if r.err || r.pos+n > 8*len(r.b) {
		r.err = true
		return 0
	}
	var v uint32
	for ; n > 0; n-- {
		v = v<<1 | uint32(r.b[r.pos>>3]>>(7-r.pos&7))&1
		r.pos++
	}
	return v
}

// uvlc reads past a variable length unsigned number (section 4.10.3): a
// run of zeros, a one, and as many bits as there were zeros, which 32
// zeros or more leave out.
func (r *av1BitReader) uvlc() {
	zeros := 0
	for r.f(1) == 0 {
		if r.err {
			return
		}
		zeros++
	}
	if zeros < 32 {
		r.f(zeros)
	}
}
