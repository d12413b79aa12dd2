package rtc

// Sink receives every packet a Forwarder forwards, on its read loop, after
// the packet cache and the mute check: a recording is one. WriteRTP must not
// block and must not keep b (the forwarder's pooled buffer) after it
// returns; it copies what it needs.
type Sink interface {
	WriteRTP(b []byte)
}

// SetSink makes s the forwarder's sink, in place of any other; nil clears
// it. The read loop sees the change at its next packet, without a lock;
// once SetSink(nil) has returned, s gets at most the packet being forwarded
// at that moment. A SenderReportSink gets the last sender report at once.
func (f *Forwarder) SetSink(s Sink) {
	if s == nil {
		f.sink.Store(nil)
		return
	}
	f.sink.Store(&s)
	f.giveSenderReport(s)
}

// SSRC is the SSRC of the track the forwarder reads, as first received.
func (f *Forwarder) SSRC() uint32 { return f.ssrc }

// TopLayer returns the forwarder of the track's highest layer that is
// arriving (of a plain track, its one forwarder), or nil when no layer has
// been added. A recording writes this layer: the best the publisher sends.
func (t *Track) TopLayer() *Forwarder {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.layers) - 1; i >= 0; i-- {
		if t.layers[i].active() {
			return t.layers[i].fwd
		}
	}
	if n := len(t.layers); n > 0 {
		return t.layers[n-1].fwd
	}
	return nil
}
