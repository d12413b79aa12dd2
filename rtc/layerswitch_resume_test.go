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

// TestDownTrackResumeStartsOnKeyframe pauses and resumes a subscriber of
// a layer again and again while the layer streams: each time, the stream
// goes on after the resume, and its first packet starts a keyframe (a
// fresh one or the last one, caught up), never the delta frame that came
// next, which the frames skipped over the pause would be needed to
// decode. The pauses fall wherever the sender is, mid-frame included.
func TestDownTrackResumeStartsOnKeyframe(t *testing.T) {
	fx := newSimulcastFixture(t)
	dt, sink := fx.subscriber()
	fx.frame(2, 0, true)
	poll.Until(t, "the first keyframe", func() bool { return sink.count() == 2 })
	// The layer streams until the test ends, a keyframe every 8 frames.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for n := uint32(1); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			fx.frame(2, n, n%8 == 0)
		}
	}()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			<-done
		}
	}
	t.Cleanup(halt) // before the fixture's: the track closes after
	// count is how many packets went out, a send begun before a pause
	// included: it ends before the count.
	count := func() int {
		dt.wmu.Lock()
		defer dt.wmu.Unlock()
		return sink.count()
	}
	const rounds = 30
	var resumedAt []int // the packets sent before each resume
	for range rounds {
		dt.SetPaused(true)
		n := count()
		resumedAt = append(resumedAt, n)
		dt.SetPaused(false)
		poll.Until(t, "packets after the resume", func() bool { return count() > n })
	}
	dt.SetPaused(true)
	dt.wmu.Lock() // a send begun before the pause ends first
	sent := sink.sent()
	dt.wmu.Unlock()
	halt()
	for k, n := range resumedAt {
		end := len(sent) // the round's packets end at the next pause
		if k+1 < len(resumedAt) {
			end = resumedAt[k+1]
		}
		if n >= end {
			t.Fatalf("resume %d sent nothing (%d packets before it, %d before the next pause)", k, n, end)
		}
		if !vp8Keyframe(sent[n].payload) {
			t.Fatalf("packet %d of %d, the first after resume %d, starts a delta frame", n, len(sent), k)
		}
	}
}
