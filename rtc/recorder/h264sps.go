package recorder

// h264Size reads the picture size from an H.264 sequence parameter set
// (ITU-T H.264 7.3.2.1.1), cropping applied; ok is false for one it cannot
// read. nal is the NAL unit with its header byte.
func h264Size(nal []byte) (w, h int, ok bool) {
	if len(nal) < 4 {
		return 0, 0, false
	}
	// Drop the emulation prevention bytes (00 00 03 -> 00 00).
	rbsp := make([]byte, 0, len(nal))
	zeros := 0
	for _, c := range nal[1:] {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		rbsp = append(rbsp, c)
	}
	b := bitReader{data: rbsp}
	profile := b.read(8)
	b.read(16) // constraint flags, level
	b.ue()     // seq_parameter_set_id
	chroma := uint32(1)
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = b.ue()
		if chroma == 3 {
			b.read(1) // separate_colour_plane_flag
		}
		b.ue()              // bit_depth_luma_minus8
		b.ue()              // bit_depth_chroma_minus8
		b.read(1)           // qpprime_y_zero_transform_bypass_flag
		if b.read(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if chroma == 3 {
				lists = 12
			}
			for i := range lists {
				if b.read(1) == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					last, next := int32(8), int32(8)
					for range size {
						if next != 0 {
							next = (last + b.se() + 256) % 256
						}
						if next != 0 {
							last = next
						}
					}
				}
			}
		}
	}
	b.ue()          // log2_max_frame_num_minus4
	switch b.ue() { // pic_order_cnt_type
	case 0:
		b.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		b.read(1) // delta_pic_order_always_zero_flag
		b.se()    // offset_for_non_ref_pic
		b.se()    // offset_for_top_to_bottom_field
		for n := b.ue(); n > 0 && !b.short; n-- {
			b.se()
		}
	}
	b.ue()    // max_num_ref_frames
	b.read(1) // gaps_in_frame_num_value_allowed_flag
	mbW, mapH := b.ue()+1, b.ue()+1
	frameMbsOnly := b.read(1)
	if frameMbsOnly == 0 {
		b.read(1) // mb_adaptive_frame_field_flag
	}
	b.read(1) // direct_8x8_inference_flag
	var left, right, top, bottom uint32
	if b.read(1) == 1 { // frame_cropping_flag
		left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
	}
	if b.short || mbW > 1024 || mapH > 1024 {
		return 0, 0, false
	}
	cropX, cropY := uint32(1), 2-frameMbsOnly
	if chroma == 1 || chroma == 2 {
		cropX = 2
	}
	if chroma == 1 {
		cropY *= 2
	}
	width := int(mbW*16) - int((left+right)*cropX)
	height := int((2-frameMbsOnly)*mapH*16) - int((top+bottom)*cropY)
	if width <= 0 || height <= 0 {
		return 0, 0, false
	}
	return width, height, true
}

// ue reads an unsigned Exp-Golomb code.
func (b *bitReader) ue() uint32 {
	zeros := 0
	for b.read(1) == 0 {
		if b.short || zeros == 31 {
			b.short = true
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + b.read(zeros)
}

// se reads a signed Exp-Golomb code.
func (b *bitReader) se() int32 {
	v := b.ue()
	if v&1 == 1 {
		return int32((v + 1) / 2) //nolint:gosec // < 2^31
	}
	return -int32(v / 2) //nolint:gosec // < 2^31
}
