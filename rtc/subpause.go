package rtc

import "sync/atomic"

// A subscriber may pause a track it receives but does not show (a tile
// scrolled out of view): nothing of it is sent until it resumes, its
// layers count as unwanted (the publisher may stop encoding them), and
// its bandwidth estimate leaves it out. It resumes on a keyframe, its
// stream continuous.

// SetPaused pauses or resumes sending dt to its subscriber, at the
// subscriber's request. It reports whether that changed anything.
func (dt *DownTrack) SetPaused(paused bool) bool {
	if paused {
		if dt.paused.Swap(true) {
			return false
		}
	} else if !dt.resume(&dt.paused) {
		return false
	}
	if t := dt.track.Load(); t != nil {
		t.reselect(dt) // its layers are wanted again, or no longer
	}
	return true
}

// Paused reports whether dt's subscriber paused it (SetPaused).
func (dt *DownTrack) Paused() bool { return dt.paused.Load() }

// resume clears pause, one of dt's pause flags, and reports whether it
// was set. dt's next packet then starts a picture: the frames in between
// were not sent, and the one after them cannot be decoded without them.
// The flag is cleared under wmu with the stream's source, so that no send
// finds the pause lifted and the paused source still current (it would
// write a delta frame). It asks the source for a keyframe, unless one went
// by lately to start from.
func (dt *DownTrack) resume(pause *atomic.Bool) bool {
	dt.wmu.Lock()
	was := pause.Swap(false)
	if was {
		dt.w.src = nil
	}
	dt.wmu.Unlock()
	if !was {
		return false
	}
	if src := dt.source.Load(); src != nil && dt.ready.Load() {
		dt.askKeyframe(src)
	}
	return true
}

// SetSourcePaused pauses or resumes the source of id for the client
// (DownTrack.SetPaused). It reports whether that changed anything, and
// false for ok when the Peer does not send that source.
func (p *Peer) SetSourcePaused(id string, paused bool) (changed, ok bool) {
	s, ok := p.sendOf(id)
	if !ok {
		return false, false
	}
	return s.dt.SetPaused(paused), true
}

// SourceStreamID returns the stream id the client receives the source of
// id in (the publisher's), or "" when the Peer does not send it.
func (p *Peer) SourceStreamID(id string) string {
	if s, ok := p.sendOf(id); ok {
		return s.dt.StreamID()
	}
	return ""
}
