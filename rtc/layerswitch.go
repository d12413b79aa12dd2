package rtc

import "time"

// Layer switching. A down-track of a Track receives one layer at a time.
// To move to another it subscribes to that layer too (pending), asks it
// for a keyframe, and goes on sending the layer it has until the keyframe
// arrives: the first packet of the new layer it sends is that keyframe's,
// so its subscriber never sees a delta frame it cannot decode, and never
// two layers at once. Then it leaves the old layer.

// SetTargetLayer sets the layer dt should receive, by index in its
// Track's layers (Track.Layers, lowest first), or LayerAuto for the
// highest active one. When the target is not active, dt gets the nearest
// active layer below it, else above. A bandwidth estimate, the size the
// subscriber renders or a room's quality cap set it; dt moves on the new
// layer's next keyframe, asked for at once.
func (dt *DownTrack) SetTargetLayer(layer int) {
	if layer < 0 {
		layer = LayerAuto
	}
	dt.targetLayer.Store(int32(layer))
	if t := dt.track.Load(); t != nil {
		t.reselect(dt)
	}
}

// SetMaxSize caps the layers dt may receive to those whose picture's
// smaller side (its height, for a landscape picture) is at most lines: a
// room's quality ("720p"), or the size a subscriber renders. A layer whose
// size is not known yet counts as fitting; when none fits, dt gets the
// lowest. Zero removes the cap.
func (dt *DownTrack) SetMaxSize(lines int) {
	dt.maxSize.Store(int32(max(lines, 0)))
	if t := dt.track.Load(); t != nil {
		t.reselect(dt)
	}
}

// LayerLimits is what a subscriber asks of a simulcast track's layers.
type LayerLimits struct {
	// MaxLines caps the layer's picture at this many lines on its smaller
	// side, as SetMaxSize does (the lower of the two caps holds); 0 for
	// none.
	MaxLines int
	// Width and Height are the size the subscriber shows the track at:
	// it needs no layer above the smallest that covers it. 0 for unknown.
	Width, Height int
}

// SetLimits sets what dt's subscriber asks of the layers; the zero value
// asks nothing.
func (dt *DownTrack) SetLimits(l LayerLimits) {
	if l == (LayerLimits{}) {
		dt.limits.Store(nil)
	} else {
		dt.limits.Store(&l)
	}
	if t := dt.track.Load(); t != nil {
		t.reselect(dt)
	}
}

// LayerStatus is where a down-track of a Track stands among its layers.
type LayerStatus struct {
	// Target is the layer asked for (SetTargetLayer), or LayerAuto.
	Target int
	// Current is the layer being sent, -1 for none; Next the layer dt
	// moves to on its next keyframe, -1 when it is not moving.
	Current, Next int
	// RID is the rid of the Current layer: "" for none, or for a layer
	// the publisher named no rid (a track sent as one stream).
	RID string
}

// Layer returns dt's place among its Track's layers; Current and Next are
// -1 when dt has no Track.
func (dt *DownTrack) Layer() LayerStatus {
	st := LayerStatus{Target: int(dt.targetLayer.Load()), Current: -1, Next: -1}
	t := dt.track.Load()
	if t == nil {
		return st
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st.Current = t.layerOf(dt.source.Load())
	st.Next = t.layerOf(dt.pending.Load())
	if st.Current >= 0 {
		st.RID = t.layers[st.Current].rid
	}
	return st
}

// beginSwitch has dt move to layer to on its next keyframe.
func (dt *DownTrack) beginSwitch(to *Forwarder) {
	if old := dt.pending.Swap(to); old != nil && old != to {
		old.leave(dt)
	}
	to.join(dt)
	if dt.ready.Load() && dt.bound.Load() != nil {
		to.RequestKeyframe()
	}
}

// cancelSwitch stops a move dt has not made yet.
func (dt *DownTrack) cancelSwitch() {
	if old := dt.pending.Swap(nil); old != nil {
		old.leave(dt)
	}
}

// switchLayer makes p, a packet of the layer dt moves to, the next of its
// stream if it starts a keyframe; other packets of that layer are not
// sent. It returns the layer dt leaves. wmu is held.
func (dt *DownTrack) switchLayer(p *packet, b *binding, now time.Time) (left *Forwarder) {
	if !p.keyframe {
		dt.ctr.drops[DropSwitchPending].Add(1)
		if dt.ready.Load() {
			p.src.RequestKeyframe() // throttled by the layer
		}
		return nil
	}
	// The pending layer may have been called off since p was queued.
	if !dt.pending.CompareAndSwap(p.src, nil) {
		return nil
	}
	w := &dt.w
	from := w.src // nil: dt's stream starts, or resumes, here
	nextTS := uint32(0)
	switch old := from; {
	case old == nil && w.rw.started:
		// Resumed after a pause: what went by is only time.
		nextTS = dt.elapsedTS()
	case old != nil && w.rw.started:
		last := old.lastFrame.Load()
		frameTS, frameMS := uint32(last>>32)+w.rw.tsOff, uint32(last)
		if last == 0 {
			frameTS, frameMS = w.rw.lastTS, unixMillis(w.lastSent.UnixNano())
		}
		nextTS = switchTS(w.rw.lastTS, frameTS, frameMS, p.arrival, dt.codec.ClockRate)
	}
	dt.startSource(p, nextTS)
	prev := dt.source.Swap(p.src)
	if from == nil {
		from = prev // a resumed stream moves from the layer it was paused on
	}
	if dt.write(p, b, now, true) && from != nil && from != p.src {
		dt.ctr.layerSwitches.Add(1)
		fw, fh := from.Resolution()
		tw, th := p.src.Resolution()
		switch {
		case fw == 0 || tw == 0 || fw*fh == tw*th:
		case tw*th > fw*fh:
			dt.ctr.layerSwitchesUp.Add(1)
		default:
			dt.ctr.layerSwitchesDown.Add(1)
		}
	}
	if prev != p.src {
		return prev
	}
	return nil
}

// join adds dt to f's subscribers without making f its source: dt is
// moving to f (see beginSwitch).
func (f *Forwarder) join(dt *DownTrack) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.joinLocked(dt)
	}
}

// joinLocked adds dt to f's subscribers, starting a writer for its group
// if it has none. f.mu is held.
func (f *Forwarder) joinLocked(dt *DownTrack) {
	if old := f.subs.Load(); !old.contains(dt) {
		next, g := old.with(dt)
		if next.writers[g] == nil && !f.writersDone {
			w := newFanoutWriter(f, g, f.queueSize)
			next.writers[g] = w
			f.writers.Add(1)
			go w.run(&f.writers)
		}
		f.subs.Store(next)
	}
}

// leave takes dt out of f's subscribers unless f is still its source or
// the layer it moves to: a switch back may have come in between.
func (f *Forwarder) leave(dt *DownTrack) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dt.source.Load() == f || dt.pending.Load() == f {
		return
	}
	if next, found := f.subs.Load().without(dt); found {
		f.subs.Store(next)
	}
}
