package recorder

import (
	"encoding/binary"

	"github.com/pion/rtp/codecs"
)

// depacketizer builds one track's frames from its packets, in sequence.
type depacketizer struct {
	codec   codec
	inFrame bool
	ts      uint32
	key     bool
	buf     []byte
	vp8     codecs.VP8Packet
	vp9     codecs.VP9Packet
	h264    codecs.H264Packet
}

func newDepacketizer(c codec) depacketizer {
	return depacketizer{codec: c, h264: codecs.H264Packet{IsAVC: true}}
}

// drop drops the frame being built; it reports whether there was one.
func (d *depacketizer) drop() bool {
	had := d.inFrame
	d.inFrame = false
	d.buf = d.buf[:0]
	return had
}

// reset drops the frame being built and any fragmented NAL unit in
// progress, after a loss.
func (d *depacketizer) reset() bool {
	if d.codec == codecH264 {
		d.h264 = codecs.H264Packet{IsAVC: true}
	}
	return d.drop()
}

// depacketize adds a packet that left the reorder buffer to its frame.
func (w *writer) depacketize(ts *trackState, b *pktBuf) {
	d := &ts.dp
	ts.arrival = b.arrival
	payload := b.payload()
	if len(payload) == 0 {
		return // padding: it only holds a sequence number
	}
	if d.codec == codecOpus {
		w.frame(ts, b.ts, true, payload)
		return
	}
	if d.inFrame && b.ts != d.ts {
		// A new timestamp with no loss in between: the frame is whole even
		// though its last packet did not carry the marker.
		w.endFrame(ts)
	}
	var (
		data  []byte
		start bool
		err   error
	)
	switch d.codec {
	case codecVP8:
		data, err = d.vp8.Unmarshal(payload)
		start = err == nil && d.vp8.S == 1 && d.vp8.PID == 0
	case codecVP9:
		// Unmarshal leaves the fields a packet does not carry (its layer
		// indices) as the last packet had them.
		d.vp9 = codecs.VP9Packet{}
		data, err = d.vp9.Unmarshal(payload)
		start = err == nil && d.vp9.B && d.vp9.SID == 0
		if err == nil && d.vp9.SID > 0 {
			// An upper spatial layer: WebM would need the layers of a
			// picture joined in a superframe; the base layer decodes alone
			// and is what is kept.
			data = nil
		}
	case codecH264:
		data, err = d.h264.Unmarshal(payload)
		start = !d.inFrame
	}
	if err != nil {
		w.r.stats.malformed.Add(1)
		w.lost(ts)
		return
	}
	if start {
		d.drop()
		d.inFrame, d.ts = true, b.ts
		switch d.codec {
		case codecVP8:
			d.key = len(data) > 0 && data[0]&0x01 == 0
		case codecVP9:
			d.key = !d.vp9.P
		}
	} else if !d.inFrame {
		// The middle of a frame whose start is gone.
		w.lost(ts)
		return
	}
	d.buf = append(d.buf, data...)
	if b.marker {
		w.endFrame(ts)
	}
}

func (w *writer) endFrame(ts *trackState) {
	d := &ts.dp
	d.inFrame = false
	if len(d.buf) == 0 {
		return
	}
	key := d.key
	switch d.codec {
	case codecVP8:
		if key {
			ts.vp8Size(d.buf)
		}
	case codecVP9:
		if key {
			ts.vp9Size(d.buf)
		}
	case codecH264:
		key = ts.scanH264(d.buf)
	}
	w.frame(ts, d.ts, key, d.buf)
	d.buf = d.buf[:0]
}

// vp8Size reads the picture size from a VP8 keyframe's header (RFC 6386
// 9.1): a 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and
// height.
func (ts *trackState) vp8Size(f []byte) {
	if len(f) < 10 || f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a {
		return
	}
	ts.width = int(binary.LittleEndian.Uint16(f[6:]) & 0x3fff)
	ts.height = int(binary.LittleEndian.Uint16(f[8:]) & 0x3fff)
}

// vp9Size reads the picture size from a VP9 keyframe's uncompressed
// header (VP9 bitstream specification 6.2): frame marker, profile,
// show_existing_frame, frame type, show_frame, error_resilient_mode, the
// sync code, the color config, then the width and height less one, 16
// bits each. Players need it in the file's track (browsers refuse a video
// track without it).
func (ts *trackState) vp9Size(f []byte) {
	b := bitReader{data: f}
	if b.read(2) != 2 { // frame_marker
		return
	}
	profile := b.read(1) | b.read(1)<<1
	if profile == 3 {
		b.read(1)
	}
	if b.read(1) == 1 || b.read(1) != 0 { // show_existing_frame, frame_type (0: key)
		return
	}
	b.read(2) // show_frame, error_resilient_mode
	if b.read(24) != 0x498342 {
		return
	}
	if profile >= 2 {
		b.read(1) // ten_or_twelve_bit
	}
	if cs := b.read(3); cs != 7 { // not sRGB
		b.read(1) // color_range
		if profile == 1 || profile == 3 {
			b.read(3) // subsampling_x, subsampling_y, reserved_zero
		}
	} else if profile == 1 || profile == 3 {
		b.read(1)
	}
	w, h := b.read(16)+1, b.read(16)+1
	if !b.short {
		ts.width, ts.height = int(w), int(h)
	}
}

// bitReader reads big-endian bit fields; reading past the end sets short.
type bitReader struct {
	data  []byte
	pos   int // in bits
	short bool
}

func (b *bitReader) read(n int) uint32 {
	var v uint32
	for range n {
		if b.pos >= 8*len(b.data) {
			b.short = true
			return 0
		}
		v = v<<1 | uint32(b.data[b.pos/8]>>(7-b.pos%8)&1)
		b.pos++
	}
	return v
}

// scanH264 walks an access unit's length-prefixed NAL units: it keeps the
// latest SPS and PPS (for the file's avcC) and reports whether the unit
// is an IDR picture that can be decoded, that is, one with both known.
func (ts *trackState) scanH264(au []byte) bool {
	idr := false
	for len(au) >= 4 {
		n := int(binary.BigEndian.Uint32(au))
		au = au[4:]
		if n <= 0 || n > len(au) {
			return false
		}
		nal := au[:n]
		au = au[n:]
		switch nal[0] & 0x1f {
		case 5:
			idr = true
		case 7:
			if len(nal) >= 4 {
				ts.sps = append(ts.sps[:0], nal...)
				if w, h, ok := h264Size(nal); ok {
					ts.width, ts.height = w, h
				}
			}
		case 8:
			ts.pps = append(ts.pps[:0], nal...)
		}
	}
	return idr && len(ts.sps) > 0 && len(ts.pps) > 0
}
