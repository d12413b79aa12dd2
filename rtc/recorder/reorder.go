package recorder

const (
	// ringSize bounds the packets one track holds while it waits on a
	// gap: over a second of video at a high bitrate. A packet further
	// ahead than that ends the wait at once.
	ringSize = 1024
	ringMask = ringSize - 1
	// maxNACK bounds the sequence numbers asked for at once; a longer
	// gap is an outage that retransmission will not repair.
	maxNACK = 128
)

// reorder holds one track's packets until they can leave in sequence.
type reorder struct {
	ring    [ringSize]*pktBuf
	started bool
	ssrc    uint32
	next    uint16 // the next sequence number to leave
	high    uint16 // the highest sequence number seen
	count   int    // packets held
}

// onPacket puts b in its place and lets out what is in sequence.
func (w *writer) onPacket(ts *trackState, b *pktBuf) {
	ro := &ts.ro
	if ro.started && b.ssrc != ro.ssrc {
		// Another stream (a layer switch, a restarted publisher): its
		// numbering and timing start afresh, from a keyframe.
		w.flushReorder(ts)
		ro.started = false
		ts.restartTiming()
		w.lost(ts)
		if sr := ts.nextSR; sr.ssrc == b.ssrc {
			// The new stream's report came before it: it is on the
			// publisher's clock from its first packet.
			w.onSenderReport(ts, sr.ntp, sr.rtpTime, sr.at)
		}
		ts.nextSR = senderReport{}
	}
	if !ro.started {
		ro.started, ro.ssrc, ro.next, ro.high = true, b.ssrc, b.seq, b.seq-1
	}
	d := int16(b.seq - ro.next)
	if d <= -ringSize {
		// Far behind anything a retransmission could bring: the stream
		// was restarted under the same SSRC.
		w.flushReorder(ts)
		ro.next, ro.high = b.seq, b.seq-1
		ts.restartTiming()
		w.lost(ts)
		d = 0
	}
	if d < 0 {
		w.r.stats.late.Add(1)
		pktPool.Put(b)
		return
	}
	if int(d) >= ringSize {
		// Too far ahead to wait for what is missing: let out what is held
		// and start again from b.
		w.flushReorder(ts)
		lostN := uint64(b.seq - ro.next)
		w.r.stats.lost.Add(lostN)
		ro.next, ro.high = b.seq, b.seq-1
		w.lost(ts)
	}
	slot := &ro.ring[b.seq&ringMask]
	if *slot != nil {
		w.r.stats.late.Add(1)
		pktPool.Put(b)
		return
	}
	*slot = b
	ro.count++
	if ahead := int16(b.seq - ro.high); ahead > 0 {
		if ahead > 1 {
			w.requestNACK(ts, ro.high+1, b.seq)
		}
		ro.high = b.seq
	}
	w.drain(ts)
}

// drain lets out the packets in sequence; a gap held for MaxReorder since
// the first packet after it came is given up on.
func (w *writer) drain(ts *trackState) {
	ro := &ts.ro
	for ro.count > 0 {
		if ro.ring[ro.next&ringMask] != nil {
			w.release(ts, ro.pop())
			continue
		}
		// A gap: find the first packet after it.
		n := uint16(1)
		for ro.ring[(ro.next+n)&ringMask] == nil {
			n++
		}
		after := ro.ring[(ro.next+n)&ringMask]
		if w.now.Sub(after.arrival) < w.r.cfg.MaxReorder {
			return
		}
		w.r.stats.lost.Add(uint64(n))
		ro.next += n
		w.lost(ts)
	}
}

// flushReorder lets out everything held, counting the gaps as lost.
func (w *writer) flushReorder(ts *trackState) {
	ro := &ts.ro
	for ro.count > 0 {
		if b := ro.pop(); b != nil {
			w.release(ts, b)
		} else {
			w.r.stats.lost.Add(1)
			w.lost(ts)
		}
	}
}

// pop takes the packet due next out of the ring (nil: it is missing).
func (ro *reorder) pop() *pktBuf {
	slot := &ro.ring[ro.next&ringMask]
	b := *slot
	if b != nil {
		*slot = nil
		ro.count--
	}
	ro.next++
	return b
}

// release hands a packet in sequence to the depacketizer and its buffer
// back to the pool.
func (w *writer) release(ts *trackState, b *pktBuf) {
	w.depacketize(ts, b)
	pktPool.Put(b)
}

// lost is told of a gap: the frame being built is dropped, and a video
// track waits for (and asks for) a keyframe.
func (w *writer) lost(ts *trackState) {
	if ts.dp.reset() {
		w.r.stats.framesDropped.Add(1)
	}
	if ts.codec.video() && !ts.waitKey {
		ts.waitKey = true
		w.requestKeyframe(ts)
	}
}
