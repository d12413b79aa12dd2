// Package h264 reads what Troupe needs of H.264 parameter sets.
package h264

// MaxDimension bounds the sizes an SPS may claim: H.264's highest level
// allows 8192x4320; a larger figure is a damaged parameter set.
const MaxDimension = 16384

// SPSSize reads the width and height of the pictures an SPS describes
// (ITU-T H.264 section 7.3.2.1.1), its NAL header removed: the macroblock
// counts, less the cropping window. Emulation prevention bytes are dropped
// as it reads.
func SPSSize(b []byte) (width, height int, ok bool) {
	r := bitReader{b: b}
	profile := r.bits(8)
	r.bits(16) // constraint flags, level
	r.ue()     // seq_parameter_set_id
	chroma := uint32(1)
	separatePlanes := false
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = r.ue()
		if chroma > 3 {
			return 0, 0, false
		}
		if chroma == 3 {
			separatePlanes = r.bits(1) == 1
		}
		r.ue()              // bit_depth_luma_minus8
		r.ue()              // bit_depth_chroma_minus8
		r.bits(1)           // qpprime_y_zero_transform_bypass_flag
		if r.bits(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := 0; i < lists; i++ {
				if r.bits(1) == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					r.skipScalingList(size)
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bits(1) // delta_pic_order_always_zero_flag
		r.se()    // offset_for_non_ref_pic
		r.se()    // offset_for_top_to_bottom_field
		n := r.ue()
		if n > 255 {
			return 0, 0, false
		}
		for i := uint32(0); i < n; i++ {
			r.se()
		}
	}
	r.ue()    // max_num_ref_frames
	r.bits(1) // gaps_in_frame_num_value_allowed_flag
	wMBs := r.ue() + 1
	hMaps := r.ue() + 1
	frameMBsOnly := r.bits(1)
	if frameMBsOnly == 0 {
		r.bits(1) // mb_adaptive_frame_field_flag
	}
	r.bits(1) // direct_8x8_inference_flag
	var cl, cr, ct, cb uint32
	if r.bits(1) == 1 {
		cl, cr, ct, cb = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err || wMBs > MaxDimension/16 || hMaps > MaxDimension/16 {
		return 0, 0, false
	}
	// The crop unit is in chroma samples (section 7.4.2.1.1, Table 6-1).
	cropX, cropY := uint32(1), 2-frameMBsOnly
	if chroma != 0 && !separatePlanes {
		subW, subH := uint32(2), uint32(2) // 4:2:0
		switch chroma {
		case 2:
			subH = 1
		case 3:
			subW, subH = 1, 1
		}
		cropX, cropY = subW, subH*(2-frameMBsOnly)
	}
	w := wMBs * 16
	h := (2 - frameMBsOnly) * hMaps * 16
	if cl > w || cr > w || ct > h || cb > h {
		return 0, 0, false
	}
	cw, ch := cropX*(cl+cr), cropY*(ct+cb)
	if cw >= w || ch >= h {
		return 0, 0, false
	}
	return int(w - cw), int(h - ch), true
}

// bitReader reads an H.264 RBSP from its NAL unit bytes, dropping the
// emulation prevention bytes (00 00 03) as it goes. Reading past the end
// sets err and returns zeros.
type bitReader struct {
	b     []byte
	i     int  // next byte
	cur   byte // the byte being read
	left  int  // bits left in cur
	zeros int  // zero bytes just read, for emulation prevention
	err   bool
}

func (r *bitReader) bit() uint32 {
	if r.left == 0 {
		for {
			if r.i >= len(r.b) {
				r.err = true
				return 0
			}
			c := r.b[r.i]
			r.i++
			if r.zeros >= 2 && c == 3 {
				r.zeros = 0
				continue
			}
			if c == 0 {
				r.zeros++
			} else {
				r.zeros = 0
			}
			r.cur, r.left = c, 8
			break
		}
	}
	r.left--
	return uint32(r.cur>>r.left) & 1
}

func (r *bitReader) bits(n int) uint32 {
	var v uint32
	for ; n > 0; n-- {
		v = v<<1 | r.bit()
	}
	return v
}

// ue reads an unsigned Exp-Golomb code; longer than 32 bits is an error.
func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.bit() == 0 {
		if r.err || zeros == 31 {
			r.err = true
			return 0
		}
		zeros++
	}
	return (1<<zeros - 1) + r.bits(zeros)
}

// se reads a signed Exp-Golomb code.
func (r *bitReader) se() int32 {
	v := r.ue()
	if v&1 == 1 {
		return int32(v/2 + 1)
	}
	return -int32(v / 2)
}

// skipScalingList reads past a scaling_list() of size entries (section
// 7.3.2.1.1.1).
func (r *bitReader) skipScalingList(size int) {
	last, next := int32(8), int32(8)
	for j := 0; j < size && !r.err; j++ {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}
