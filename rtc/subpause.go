package rtc

// A subscriber may pause a track it receives but does not show (a tile
// scrolled out of view): nothing of it is sent until it resumes, its
// layers count as unwanted (the publisher may stop encoding them), and
// its bandwidth estimate leaves it out. It resumes on a keyframe, its
// stream continuous.

// SetPaused pauses or resumes sending dt to its subscriber, at the
// subscriber's request. It reports whether that changed anything.
func (dt *DownTrack) SetPaused(paused bool) bool {
	if dt.paused.Swap(paused) == paused {
		return false
	}
	if !paused {
		dt.restartOnKeyframe()
	}
	if t := dt.track.Load(); t != nil {
		t.reselect(dt) // its layers are wanted again, or no longer
	}
	return true
}

// Paused reports whether dt's subscriber paused it (SetPaused).
func (dt *DownTrack) Paused() bool { return dt.paused.Load() }

// restartOnKeyframe has dt's next packet start a picture, after a pause:
// the frames in between were not sent, and the one after them cannot be
// decoded without them. It asks the source for a keyframe, unless one
// went by lately to start from.
func (dt *DownTrack) restartOnKeyframe() {
	dt.wmu.Lock()
	dt.w.src = nil
	dt.wmu.Unlock()
	if src := dt.source.Load(); src != nil && dt.ready.Load() {
		dt.askKeyframe(src)
	}
}

// SetSourcePaused pauses or resumes the source of id for the client
// (DownTrack.SetPaused). It reports whether that changed anything, and
// false for ok when the Peer does not send that source.
func (p *Peer) SetSourcePaused(id string, paused bool) (changed, ok bool) {
	s, ok := p.sends[id]
	if !ok {
		return false, false
	}
	return s.dt.SetPaused(paused), true
}

// SourceStreamID returns the stream id the client receives the source of
// id in (the publisher's), or "" when the Peer does not send it.
func (p *Peer) SourceStreamID(id string) string {
	if s, ok := p.sends[id]; ok {
		return s.dt.StreamID()
	}
	return ""
}
