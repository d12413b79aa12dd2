package rtc

import (
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
)

// TestTrackResumesOnPendingLayer pauses a subscriber of the top layer,
// moves its target to the lowest while it is paused, and resumes it: the
// stream goes on with the lowest layer's keyframe, its sequence numbers
// continuous and its timestamp moved on by no more than the time that
// went by, as after any pause (not restarted from zero); the move counts
// as a layer switch.
func TestTrackResumesOnPendingLayer(t *testing.T) {
	fx := newSimulcastFixture(t)
	dt, sink := fx.subscriber()
	before := time.Now()
	fx.frame(2, 0, true)
	fx.frame(2, 1, false)
	poll.Until(t, "the top layer's two frames", func() bool { return sink.count() == 4 })

	dt.SetPaused(true)
	dt.SetTargetLayer(0)
	if st := dt.Layer(); st.Current != 2 || st.Next != 0 {
		t.Fatalf("moving while paused: %+v", st)
	}
	fx.frame(2, 2, false) // paused: nothing goes out
	fx.frame(0, 2, true)
	fx.settle()
	if n := sink.count(); n != 4 {
		t.Fatalf("%d packets sent while paused, want 4 from before", n)
	}

	dt.SetPaused(false)
	fx.frame(0, 3, true)
	poll.Until(t, "the lowest layer's keyframe after the resume", func() bool { return sink.count() == 6 })
	elapsed := time.Since(before)

	sent := sink.sent()
	if l := layerOfPacket(sent[4]); l != 0 || !vp8Keyframe(sent[4].payload) {
		t.Fatalf("the first packet after the resume is of layer %d, keyframe %v", l, vp8Keyframe(sent[4].payload))
	}
	last, next := sent[3].hdr, sent[4].hdr
	if next.SequenceNumber != last.SequenceNumber+1 {
		t.Fatalf("sequence number %d after %d", next.SequenceNumber, last.SequenceNumber)
	}
	step := next.Timestamp - last.Timestamp
	if int32(step) <= 0 || step > rtpTicks(elapsed, vp8Codec.ClockRate)+1 {
		t.Fatalf("the timestamp moved %d ticks over the pause, want 1 to %d (%v went by)",
			int32(step), rtpTicks(elapsed, vp8Codec.ClockRate)+1, elapsed)
	}
	if st := dt.Layer(); st.Current != 0 || st.Next != -1 {
		t.Fatalf("after the resume: %+v", st)
	}
	if st := dt.Stats(); st.LayerSwitches != 1 {
		t.Fatalf("%d layer switches counted, want the one made on the resume", st.LayerSwitches)
	}
}
