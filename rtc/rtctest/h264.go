package rtctest

import "math/bits"

// h264SPS returns a constrained baseline sequence parameter set NAL unit
// (ITU-T H.264 7.3.2.1.1) of pictures width x height, each a multiple of
// 2: macroblock counts rounded up, the rest cropped off at the right and
// bottom, as an encoder writes a 180-line picture (12 macroblock rows).
func h264SPS(width, height int) []byte {
	var w rbspWriter
	w.put(8, 66)   // profile_idc: baseline
	w.put(8, 0xc0) // constraint_set0 and 1: constrained baseline
	w.put(8, 31)   // level_idc 3.1
	w.ue(0)        // seq_parameter_set_id
	w.ue(0)        // log2_max_frame_num_minus4
	w.ue(2)        // pic_order_cnt_type: from frame_num, no POC fields
	w.ue(1)        // max_num_ref_frames
	w.put(1, 0)    // gaps_in_frame_num_value_allowed_flag
	mbW, mbH := (width+15)/16, (height+15)/16
	w.ue(uint32(mbW - 1))
	w.ue(uint32(mbH - 1))
	w.put(1, 1) // frame_mbs_only_flag
	w.put(1, 1) // direct_8x8_inference_flag
	// The crop offsets count pairs of pixels in 4:2:0.
	right, bottom := (mbW*16-width)/2, (mbH*16-height)/2
	if right != 0 || bottom != 0 {
		w.put(1, 1)
		w.ue(0)
		w.ue(uint32(right))
		w.ue(0)
		w.ue(uint32(bottom))
	} else {
		w.put(1, 0)
	}
	w.put(1, 0) // vui_parameters_present_flag
	return w.nal(0x67)
}

// h264PPS is the picture parameter set that goes with h264SPS: CAVLC, one
// slice group, one reference, deblocking control present.
var h264PPS = []byte{0x68, 0xce, 0x3c, 0x80}

// rbspWriter writes the bits of an H.264 raw byte sequence payload.
type rbspWriter struct {
	b []byte
	n int // bits written
}

func (w *rbspWriter) put(n int, v uint32) {
	for i := n - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (7 - w.n%8)
		w.n++
	}
}

// ue writes v as an unsigned Exp-Golomb code.
func (w *rbspWriter) ue(v uint32) {
	l := bits.Len32(v + 1)
	w.put(l-1, 0)
	w.put(l, v+1)
}

// nal ends the payload with its stop bit and returns it as a NAL unit of
// header hdr.
func (w *rbspWriter) nal(hdr byte) []byte {
	w.put(1, 1)
	return NALUnit(hdr, w.b)
}

// NALUnit returns the H.264 NAL unit of header hdr and payload rbsp, with
// the emulation prevention bytes a stream carries (a 3 after two zeros
// where a byte of 3 or less follows).
func NALUnit(hdr byte, rbsp []byte) []byte {
	out := []byte{hdr}
	zeros := 0
	for _, b := range rbsp {
		if zeros == 2 && b <= 3 {
			out, zeros = append(out, 3), 0
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}
