package rtc

import (
	"sync/atomic"
	"time"
)

// The frame rate cap. A VP8 publisher may send its frames in temporal
// layers (a browser does for simulcast): each frame names its layer (TID)
// in the payload descriptor, and a frame of layer k refers only to
// frames of layers up to k, so dropping every frame above a layer leaves
// a stream that decodes, at a lower frame rate. Typically layer 0 has a
// quarter of the frames, layer 1 another quarter and layer 2 the half
// left.
//
// A Forwarder measures the frame rate of each layer from the stream
// itself (temporalRates: the frames that start in each second of RTP
// time), and a down-track with a cap (SetMaxFrameRate: a room's fps)
// forwards the layers whose frames, with those of the layers below, come
// at no more than the cap (with a margin for the measure's jitter), and
// at least layer 0. It moves down at the next frame, and up to the next
// layer at a frame of that layer marked layer sync (Y: it refers to
// layer 0 alone) or at a keyframe. Until a second of the stream has been
// measured, every layer goes.
//
// What it drops it takes out of the subscriber's stream: the sequence
// numbers after a dropped packet, and the picture ids after a dropped
// frame, move down by one, so that the subscriber sees neither lost
// packets nor lost pictures (TL0PICIDX needs nothing: layer 0 is never
// dropped). A packet that comes late, after packets that followed it
// were sent, is placed by the drops made since (temporalFilter.drops).
// NACKs are answered through a map of the sequence numbers sent since
// the first drop (nackMap).
//
// H.264, as browsers send it, has no temporal layers: the cap does not
// apply to it, nor to VP8 sent without layer indices.

// maxTID is the highest temporal layer index a VP8 descriptor can carry.
const maxTID = 3

// fpsMargin is how far above the cap a set of layers may be measured and
// still fit, in percent: a 30 fps stream measures 29 to 31, and layers
// double the rate at each step, so the margin never admits a step too
// many.
const fpsMargin = 115

// temporalRates measures the frame rates of a VP8 stream's temporal
// layers. observe runs on the Forwarder's read loop alone; rates is read
// by the fan-out writers.
type temporalRates struct {
	open   bool
	from   uint32 // the RTP time the window started at
	counts [maxTID + 1]uint32
	// rates holds, for each layer k, the rate of the frames of layers 0
	// to k in sixteenths of a frame per second, in bits 16k to 16k+15;
	// 0 for a layer absent from the last window. Zero before a whole
	// window was measured.
	rates atomic.Uint64
}

// observe counts the frame a packet starts, stamped ts on a clock of
// clockRate Hz, and publishes the rates once a second of RTP time has
// gone by. A jump of the timestamps (backwards, or over five seconds)
// starts the window again.
func (r *temporalRates) observe(d *vp8Desc, ts, clockRate uint32) {
	if d.tidAt == 0 || !d.start || clockRate == 0 {
		return
	}
	span := ts - r.from
	switch {
	case !r.open || int32(span) < 0 || span > 5*clockRate:
		r.open, r.from, r.counts = true, ts, [maxTID + 1]uint32{}
	case span >= clockRate:
		var packed, cum uint64
		for k, n := range r.counts {
			cum += uint64(n)
			if n > 0 {
				packed |= min(cum*16*uint64(clockRate)/uint64(span), 0xffff) << (16 * k)
			}
		}
		r.rates.Store(packed)
		r.from, r.counts = ts, [maxTID + 1]uint32{}
	}
	r.counts[d.tid]++
}

// allowed returns the highest temporal layer a subscriber capped at fps
// may have: the highest whose frames, with those of the layers below,
// were measured at no more than fps (and the margin); 0 when even layer
// 0's are more; maxTID before anything was measured.
func (r *temporalRates) allowed(fps int32) uint8 {
	v := r.rates.Load()
	if v == 0 {
		return maxTID
	}
	limit := uint64(fps) * 16 * fpsMargin / 100
	best := uint8(0)
	for k := uint8(0); k <= maxTID; k++ {
		c := v >> (16 * k) & 0xffff
		if c == 0 {
			continue // no such layer
		}
		if c > limit {
			break
		}
		best = k
	}
	return best
}

// FrameRates returns the measured frame rate, in frames per second, of
// the frames of temporal layers 0 to k for each k, 0 for a layer the
// stream does not have; all zeros before a second was measured, or for a
// stream without temporal layers.
func (f *Forwarder) FrameRates() [maxTID + 1]float64 {
	var out [maxTID + 1]float64
	v := f.tl.rates.Load()
	for k := range out {
		out[k] = float64(v>>(16*k)&0xffff) / 16
	}
	return out
}

// SetMaxFrameRate caps the frame rate dt forwards of VP8 sent in temporal
// layers, in frames per second (a room's fps); 0 removes the cap.
func (dt *DownTrack) SetMaxFrameRate(fps int) {
	dt.maxFPS.Store(int32(max(fps, 0)))
}

// SetMaxFrameRate caps the frame rate of the VP8 temporal layers every
// down-track sends, and those to come (DownTrack.SetMaxFrameRate): a
// room's fps.
func (p *Peer) SetMaxFrameRate(fps int) {
	p.maxFPS = fps
	for _, s := range p.allSends() {
		s.dt.SetMaxFrameRate(fps)
	}
}

// temporalFilter is a down-track's part of the cap: which layers it
// forwards, and the drops it made from its current source. It lives
// under the down-track's wmu.
type temporalFilter struct {
	on  bool  // cur is set: the current source has started
	cur uint8 // the highest layer forwarded
	// high is the newest sequence number of the source seen, and what
	// became of it: dropped, in picture highPic, ending a frame.
	high                  uint16
	highDropped, highMark bool
	highPic               uint16
	// lastDropPic is the picture of the last drop that moved the picture
	// ids down.
	lastDropPic uint16
	dropPicSet  bool
	drops       [64]tempDrop // the last drops, oldest overwritten first
	nDrops      uint64       // drops made from this source
}

// tempDrop is one dropped packet of the current source: its sequence
// number, and whether it moved the picture ids down (the first packet of
// a dropped picture seen).
type tempDrop struct {
	seq    uint16
	picDec bool
}

// reset forgets the drops of the last source: p, a keyframe, starts a new
// one.
func (f *temporalFilter) reset() { *f = temporalFilter{} }

// filter decides whether dt forwards p, a VP8 packet with a temporal
// layer index, and how: it returns drop, or what to add to the
// rewriter's offsets to place a packet that came late. wmu is held.
func (dt *DownTrack) filter(p *packet, started bool) (drop bool, seqAdj, picAdj uint16) {
	f := &dt.w.tl
	d := &p.vp8
	if started {
		f.reset()
	}
	allowed := uint8(maxTID)
	if fps := dt.maxFPS.Load(); fps > 0 {
		allowed = p.src.tl.allowed(fps)
	}
	newest := !f.on || int16(p.h.seq-f.high) > 0
	if !newest {
		return dt.late(p)
	}
	if d.start {
		switch {
		case !f.on || p.keyframe:
			f.cur = allowed
		case allowed < f.cur:
			f.cur = allowed
		case allowed > f.cur && d.tid == f.cur+1 && d.sync:
			f.cur++
		}
	}
	f.on = true
	gap := p.h.seq - f.high - 1
	prevDropped, prevPic, prevMark := f.highDropped, f.highPic, f.highMark
	f.high, f.highPic, f.highMark = p.h.seq, d.picID, p.h.marker
	f.highDropped = d.tid > f.cur
	if !f.highDropped {
		return false, 0, 0
	}
	// Drop p, and the packets missing before it when they belong to its
	// frame (they follow a packet of the same dropped picture, or the end
	// of a frame while p does not start one): they will be dropped too if
	// they come. A longer run missing is a loss, not a reordering.
	n := uint16(1)
	if gap > 0 && gap < uint16(len(f.drops)) && ((prevDropped && prevPic == d.picID) || (prevMark && !d.start)) {
		n += gap
	}
	picDec := d.picAt != 0 && (!f.dropPicSet || f.lastDropPic != d.picID)
	if picDec {
		f.lastDropPic, f.dropPicSet = d.picID, true
		dt.w.rw.picOff--
	}
	dt.w.rw.seqOff -= n
	for i := uint16(0); i < n; i++ {
		f.drops[f.nDrops%uint64(len(f.drops))] = tempDrop{seq: p.h.seq - n + 1 + i, picDec: picDec && i == n-1}
		f.nDrops++
	}
	dt.mapSent()
	dt.ctr.drops[DropTemporalLayer].Add(1)
	return true, 0, 0
}

// late decides for p, a packet older than one already seen: dropped if it
// is one the drops counted, else placed where it would have been had it
// come in order, by the drops made since. One older than every drop
// remembered cannot be placed, and is dropped. wmu is held.
func (dt *DownTrack) late(p *packet) (drop bool, seqAdj, picAdj uint16) {
	f := &dt.w.tl
	n := min(f.nDrops, uint64(len(f.drops)))
	oldest := true
	for i := uint64(0); i < n; i++ {
		e := f.drops[i]
		switch diff := int16(e.seq - p.h.seq); {
		case diff == 0:
			dt.ctr.drops[DropTemporalLayer].Add(1)
			return true, 0, 0
		case diff > 0:
			seqAdj++
			if e.picDec {
				picAdj++
			}
		default:
			oldest = false
		}
	}
	if p.vp8.tidAt != 0 && p.vp8.tid > f.cur || (oldest && f.nDrops > uint64(len(f.drops))) {
		// A frame of a dropped layer whose place was kept, or too old
		// to place: the subscriber takes it for lost.
		dt.ctr.drops[DropTemporalLayer].Add(1)
		return true, 0, 0
	}
	return false, seqAdj, picAdj
}

// writeLayered writes p, a VP8 packet with a temporal layer index,
// unless the cap drops it. wmu is held.
func (dt *DownTrack) writeLayered(p *packet, b *binding, now time.Time, started bool) bool {
	drop, seqAdj, picAdj := dt.filter(p, started)
	if drop {
		return false
	}
	rw := &dt.w.rw
	rw.seqOff += seqAdj
	rw.picOff += picAdj
	ok := dt.writeOut(p, b, now, started)
	rw.seqOff -= seqAdj
	rw.picOff -= picAdj
	return ok
}

// nackMap maps the sequence numbers a down-track sent, since its first
// temporal drop, to the source's and the picture id offset they were
// sent with: the offsets of the source no longer say. Each slot holds
// the subscriber's sequence number in bits 32-47, the source's in bits
// 16-31 and the picture offset in bits 0-15, and bit 48 set.
type nackMap struct {
	first uint16 // the first sequence number mapped
	slots [DefaultVideoCacheSlots]atomic.Uint64
}

const nackMapped = 1 << 48

// mapSent starts mapping what dt sends (see nackMap), once: the map is
// made at the first drop, not per packet. wmu is held.
func (dt *DownTrack) mapSent() {
	if dt.nacks.Load() == nil {
		dt.nacks.Store(&nackMap{first: dt.w.rw.lastSeq + 1})
	}
}

// noteSent records that the subscriber's seq carried the source's srcSeq
// with picture offset picOff, if dt maps what it sends.
func (dt *DownTrack) noteSent(seq, srcSeq, picOff uint16) {
	if m := dt.nacks.Load(); m != nil {
		m.slots[seq%uint16(len(m.slots))].Store(nackMapped | uint64(seq)<<32 | uint64(srcSeq)<<16 | uint64(picOff))
	}
}

// nackSource returns the source's sequence number and the picture offset
// of the packet the subscriber knows as seq, given m, the offsets the
// current source started with: mapped reports false when dt maps nothing
// (m holds), and found false when seq was sent after the first drop but
// is no longer in the map.
func (dt *DownTrack) nackSource(seq uint16, m *seqMapping) (srcSeq, picOff uint16, found bool) {
	nm := dt.nacks.Load()
	if nm == nil || (int16(seq-nm.first) < 0 && int16(nm.first-m.firstOut) > 0) {
		return seq - m.seqOff, m.picOff, true
	}
	v := nm.slots[seq%uint16(len(nm.slots))].Load()
	if v&nackMapped == 0 || uint16(v>>32) != seq {
		return 0, 0, false
	}
	return uint16(v >> 16), uint16(v), true
}
