package rtc

// This file gives a Track one sink (a recording) that takes its highest
// layer that arrives, and follows it: a higher layer that starts, or the
// one it takes stopping, moves the sink to the highest active layer then,
// which is asked for a keyframe. The sink sees another SSRC and starts the
// new stream on that keyframe, so that what it writes stays one stream.

// SetSink makes a sink that newSink returns take the track's highest
// active layer (of a plain track, its one stream), and keeps it on the
// highest as layers start and stop; nil removes it. Each layer the sink
// moves to gets a sink of its own from newSink, so that two layers' read
// loops (for a moment, as it moves) never call one sink at once.
func (t *Track) SetSink(newSink func() Sink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sinkLayer != nil {
		t.sinkLayer.SetSink(nil)
		t.sinkLayer = nil
	}
	t.newSink = newSink
	t.placeSinkLocked()
}

// SinkLayer returns the layer the sink takes now, or nil.
func (t *Track) SinkLayer() *Forwarder {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sinkLayer
}

// placeSinkLocked moves the sink to the highest active layer (the highest
// layer when none is active) if it takes another. t.mu is held.
func (t *Track) placeSinkLocked() {
	if t.newSink == nil {
		return
	}
	var top *Forwarder
	for i := len(t.layers) - 1; i >= 0 && top == nil; i-- {
		if t.layers[i].active() {
			top = t.layers[i].fwd
		}
	}
	if top == nil && len(t.layers) > 0 && t.sinkLayer == nil {
		top = t.layers[len(t.layers)-1].fwd
	}
	if top == nil || top == t.sinkLayer {
		return
	}
	moved := t.sinkLayer != nil
	if moved {
		t.sinkLayer.SetSink(nil)
	}
	top.SetSink(t.newSink())
	t.sinkLayer = top
	if moved {
		top.RequestKeyframe()
		t.log.Debug("sink moved to another layer", "ssrc", top.SSRC())
	}
}
