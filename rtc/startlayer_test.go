package rtc

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/bwe"
)

// TestTrackStartLayer: a down-track in its start (bweStart) gets the
// highest layer whose measured rate fits its start budget, the lowest
// while the rates are not measured; the first bandwidth cap replaces it,
// and a down-track that has sent nothing yet moves to its new layer at
// once, with no switch to wait for.
func TestTrackStartLayer(t *testing.T) {
	fx := newSimulcastFixture(t)
	starting := func(budget int64) *DownTrack {
		t.Helper()
		dt, _ := fx.subscriberWith(func(dt *DownTrack) { dt.bweStart.Store(budget) })
		return dt
	}
	if dt := starting(1 << 40); headingTo(dt) != 0 {
		t.Fatalf("rates not measured: layer %+v, want the lowest", dt.Layer())
	}

	// About 600 bps, 10 kbps and 39 kbps (fx.frame's sizes).
	fx.tick(0, 1, 2)
	l := fx.track.Layers()
	if !(l[0].Bitrate < l[1].Bitrate && l[1].Bitrate < l[2].Bitrate) {
		t.Fatalf("layers %+v", l)
	}
	for _, c := range []struct {
		budget int64
		want   int
	}{
		{int64(l[1].Bitrate+l[2].Bitrate) / 2, 1},
		{int64(l[1].Bitrate), 1},
		{int64(l[1].Bitrate) - 1, 0},
		{1, 0},
		{int64(l[2].Bitrate), 2},
	} {
		if dt := starting(c.budget); headingTo(dt) != c.want {
			t.Fatalf("start budget %d bps: layer %+v, want %d", c.budget, dt.Layer(), c.want)
		}
	}

	dt := starting(1)
	if dt.Stats().Packets != 0 {
		t.Fatal("the down-track sent before the test fed a frame")
	}
	// The estimate caps it at the middle layer: its start is over.
	dt.setBandwidthCap(1, false)
	if st := dt.Layer(); st.Current != 1 || st.Next != -1 || dt.bweStart.Load() != 0 {
		t.Fatalf("capped at the middle layer having sent nothing: %+v, start %d; want it there at once", st, dt.bweStart.Load())
	}
	// No cap: its ceiling, again at once.
	dt.setBandwidthCap(LayerAuto, false)
	if st := dt.Layer(); st.Current != 2 || st.Next != -1 {
		t.Fatalf("uncapped having sent nothing: %+v, want the top layer at once", st)
	}
	// Once it has sent, a move waits for the new layer's keyframe.
	fx.frame(2, 100, true)
	poll.Until(t, "the top layer's keyframe sent", func() bool { return dt.Stats().Packets > 0 })
	dt.setBandwidthCap(0, false)
	if st := dt.Layer(); st.Current != 2 || st.Next != 0 {
		t.Fatalf("capped at the lowest after sending: %+v, want a switch to it pending", st)
	}
}

// TestTrackStartLayerNeverRises: a down-track's start layer is chosen
// from its layers' rates as it subscribes, and goes no higher while it
// starts: a publisher that slows for a moment (a busy machine, a still
// scene) makes its top layer look cheap, and a start that followed it up
// would send a poor link the top layer's keyframe before any feedback
// could say the link does not carry it. It goes down when its layer comes
// to cost more than its budget, and stays down.
func TestTrackStartLayerNeverRises(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.tick(0, 1, 2) // the layers' keyframes
	// interval feeds frames[i] frames of layer i in one check's interval.
	interval := func(frames ...int) {
		t.Helper()
		for i, n := range frames {
			for k := range n {
				fx.frame(i, fx.n+uint32(k), false)
			}
		}
		fx.n += 10
		fx.settle()
		fx.clk.Advance(DefaultLayerCheckInterval)
	}
	interval(2, 2, 2) // about 1.2 kbps, 20 kbps and 78 kbps
	l := fx.track.Layers()
	budget := int64(l[1].Bitrate+l[2].Bitrate) / 2
	dt, _ := fx.subscriberWith(func(dt *DownTrack) { dt.bweStart.Store(budget) })
	if headingTo(dt) != 1 || dt.startTarget() != 1 {
		t.Fatalf("start budget %d bps: layer %+v, want the middle one", budget, dt.Layer())
	}

	interval(2, 2, 1) // the top layer at half its rate: under the budget
	if l := fx.track.Layers(); int64(l[2].Bitrate) > budget {
		t.Fatalf("the top layer at %d bps, want it under the budget %d", l[2].Bitrate, budget)
	}
	if headingTo(dt) != 1 || dt.startTarget() != 1 {
		t.Fatalf("the top layer cheap for a moment: layer %+v, start %d; want the middle one", dt.Layer(), dt.startTarget())
	}

	interval(2, 6, 2) // the middle layer over the budget: down to the lowest
	if headingTo(dt) != 0 || dt.startTarget() != 0 {
		t.Fatalf("the middle layer over the budget: layer %+v, start %d; want the lowest", dt.Layer(), dt.startTarget())
	}
	interval(2, 2, 2) // and back under it: the start stays down
	if headingTo(dt) != 0 || dt.startTarget() != 0 {
		t.Fatalf("the middle layer under the budget again: layer %+v, start %d; want the lowest still", dt.Layer(), dt.startTarget())
	}
}

// TestAllocatorStartWithoutEstimate: a down-track whose connection never
// gets an estimate keeps its start layer, the checks every
// bweStartCheckInterval, until it has sent for bweStartWait; then it gets
// its ceiling, and the checks go back to bweCheckInterval.
func TestAllocatorStartWithoutEstimate(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.tick(0, 1, 2) // the layers' rates measured, f's above the start budget below
	l := fx.track.Layers()
	clk := clock.NewManual(time.Unix(2_000_000, 0))
	a := newAllocator(nil, clk, nil) // no estimator: no estimate ever
	t.Cleanup(a.close)
	a.add(&DownTrack{kind: webrtc.RTPCodecTypeAudio}) // not started: only video starts
	dt, _ := fx.subscriberWith(func(dt *DownTrack) {
		a.add(dt)
		dt.bweStart.Store(int64(l[1].Bitrate)) // as if the estimate were this
	})
	step := func() time.Time {
		t.Helper()
		if clk.Pending() != 1 {
			t.Fatalf("%d checks scheduled, want 1", clk.Pending())
		}
		clk.Advance(bweStartCheckInterval)
		return clk.Now()
	}
	for range 5 { // no media yet: the start holds, the checks come often
		step()
		if headingTo(dt) != 1 || a.lastCheck != clk.Now() {
			t.Fatalf("before media: layer %+v, last check %v at %v", dt.Layer(), a.lastCheck, clk.Now())
		}
	}
	fx.frame(1, 100, true)
	poll.Until(t, "the middle layer's keyframe sent", func() bool { return dt.Stats().Packets > 0 })
	sending := step()
	for now := step(); now.Sub(sending) < bweStartWait; now = step() {
		if headingTo(dt) != 1 || dt.bweStart.Load() == 0 {
			t.Fatalf("%v into its media: layer %+v, start %d; want its start layer", now.Sub(sending), dt.Layer(), dt.bweStart.Load())
		}
	}
	if headingTo(dt) != 2 || dt.bweStart.Load() != 0 {
		t.Fatalf("%v without an estimate: layer %+v, start %d; want its ceiling", bweStartWait, dt.Layer(), dt.bweStart.Load())
	}
	last := a.lastCheck
	clk.Advance(bweStartCheckInterval)
	if a.lastCheck != last {
		t.Fatal("checks still every start interval after the start")
	}
	clk.Advance(bweCheckInterval - bweStartCheckInterval)
	if a.lastCheck == last {
		t.Fatal("no check after the start's interval")
	}
}

// TestAllocatorStartOnStaleCheck: a track added to a connection that has
// an estimate starts on what the estimate leaves, and a check with no new
// feedback (stale: nothing goes down on it) keeps it there rather than
// lift it to its ceiling.
func TestAllocatorStartOnStaleCheck(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.tick(0, 1, 2) // about 600 bps, 10 kbps and 39 kbps
	l := fx.track.Layers()
	// An estimate between the middle and the top layers' rates, from
	// one feedback that never changes.
	est, st := &estimator{}, new(sendState)
	st.est.Init(bwe.Config{Initial: int(l[1].Bitrate+l[2].Bitrate) / 2, Min: 1, Max: bweMaxBitrate})
	est.send.Store(st)
	est.feedbacks.Store(1)
	clk := clock.NewManual(time.Unix(3_000_000, 0))
	a := newAllocator(est, clk, nil)
	t.Cleanup(a.close)
	first, _ := fx.subscriberWith(a.add)
	clk.Advance(bweStartCheckInterval) // the feedback is new: not stale
	if src := est.feedbackCount(); a.lastFeedbacks != src {
		t.Fatalf("feedbacks seen %d, want %d", a.lastFeedbacks, src)
	}
	if headingTo(first) != 1 {
		t.Fatalf("the first track: layer %+v, want the middle one the estimate pays for", first.Layer())
	}
	second, _ := fx.subscriberWith(a.add)
	if headingTo(second) != 1 {
		t.Fatalf("the second track starts on layer %+v, want the middle one", second.Layer())
	}
	clk.Advance(bweStartCheckInterval) // no feedback since: stale
	if headingTo(second) != 1 || second.bweStart.Load() != 0 {
		t.Fatalf("after a stale check the second track has layer %+v, start %d; want the middle one, capped", second.Layer(), second.bweStart.Load())
	}
}

// TestAllocatorStartHeldBelowItsCeiling: a start layer under the ceiling
// is held there by its budget, a guess; an estimate that pays for more
// (the initial estimate itself, before it has learnt anything of the
// link, and a slowed publisher's top layer looks cheap) moves it up as it
// moves a layer it held down, after the hold, not at once as a new
// ceiling: that would send a poor link the top layer's keyframe on its
// first feedback.
func TestAllocatorStartHeldBelowItsCeiling(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.tick(0, 1, 2) // about 600 bps, 10 kbps and 39 kbps
	l := fx.track.Layers()
	est, st := &estimator{}, new(sendState)
	st.est.Init(bwe.Config{Initial: 2 * int(l[2].Bitrate), Min: 1, Max: bweMaxBitrate}) // the top layer with its margin
	est.send.Store(st)
	clk := clock.NewManual(time.Unix(6_000_000, 0))
	a := newAllocator(est, clk, nil)
	t.Cleanup(a.close)
	dt, _ := fx.subscriberWith(func(dt *DownTrack) {
		a.add(dt)
		dt.bweStart.Store(int64(l[1].Bitrate)) // as if the start's budget paid for the middle layer
	})
	if headingTo(dt) != 1 {
		t.Fatalf("start: layer %+v, want the middle one", dt.Layer())
	}
	// Each check with new feedback, so that none is stale.
	check := func() {
		est.feedbacks.Add(1)
		clk.Advance(bweStartCheckInterval)
	}
	check()
	first := clk.Now()
	if headingTo(dt) != 1 || dt.bweStart.Load() != 0 {
		t.Fatalf("the first estimate: layer %+v, start %d; want the middle one, capped", dt.Layer(), dt.bweStart.Load())
	}
	for check(); clk.Now().Sub(first) < bweUpHold; check() {
		if headingTo(dt) != 1 {
			t.Fatalf("%v into the estimate: layer %+v, want the middle one until the hold has passed", clk.Now().Sub(first), dt.Layer())
		}
	}
	if headingTo(dt) != 2 {
		t.Fatalf("the hold passed: layer %+v, want the top one", dt.Layer())
	}
}

// TestAllocatorStartChecksEnd: the start's frequent checks are not held
// by a video down-track that sends nothing: one its subscriber paused
// has none, and one that never sends (a silent camera) has them for
// bweStartChecksFor after it was added, then the checks come every
// bweCheckInterval.
func TestAllocatorStartChecksEnd(t *testing.T) {
	fx := newSimulcastFixture(t)
	// nextCheck advances clk by a start interval, then the rest of a
	// check interval, and reports which of the two brought a check.
	nextCheck := func(a *allocator, clk *clock.Manual) time.Duration {
		t.Helper()
		if clk.Pending() != 1 {
			t.Fatalf("%d checks scheduled, want 1", clk.Pending())
		}
		last := a.lastCheck
		clk.Advance(bweStartCheckInterval)
		if a.lastCheck != last {
			return bweStartCheckInterval
		}
		clk.Advance(bweCheckInterval - bweStartCheckInterval)
		if a.lastCheck == last {
			t.Fatalf("no check %v after the last", bweCheckInterval)
		}
		return bweCheckInterval
	}

	t.Run("paused by its subscriber", func(t *testing.T) {
		clk := clock.NewManual(time.Unix(4_000_000, 0))
		a := newAllocator(nil, clk, nil)
		t.Cleanup(a.close)
		fx.subscriberWith(func(dt *DownTrack) {
			dt.SetPaused(true)
			a.add(dt)
		})
		clk.Advance(bweStartCheckInterval) // the first check, scheduled by add
		for i := range 4 {
			if got := nextCheck(a, clk); got != bweCheckInterval {
				t.Fatalf("check %d came %v after the last, want %v", i, got, bweCheckInterval)
			}
		}
	})

	t.Run("silent", func(t *testing.T) {
		clk := clock.NewManual(time.Unix(5_000_000, 0))
		a := newAllocator(nil, clk, nil)
		t.Cleanup(a.close)
		var added time.Time
		dt, _ := fx.subscriberWith(func(dt *DownTrack) {
			added = clk.Now()
			a.add(dt)
		})
		for clk.Now().Sub(added) < bweStartChecksFor {
			if got := nextCheck(a, clk); got != bweStartCheckInterval {
				t.Fatalf("%v after the add: check came %v after the last, want %v", clk.Now().Sub(added), got, bweStartCheckInterval)
			}
		}
		for i := range 4 {
			if got := nextCheck(a, clk); got != bweCheckInterval {
				t.Fatalf("check %d past the start's checks came %v after the last, want %v", i, got, bweCheckInterval)
			}
		}
		if dt.Stats().Packets != 0 || dt.bweStart.Load() == 0 || headingTo(dt) != 0 {
			t.Fatalf("silent down-track: %d packets, start %d, layer %+v; want its start layer kept", dt.Stats().Packets, dt.bweStart.Load(), dt.Layer())
		}
	})
}

// TestAllocatorStaleCheckAfterCeilingFell: a track on its top layer whose
// ceiling then falls (its subscriber asks for the lowest layer) is held where
// the ceiling allows on a check with no new feedback, not on the layer it
// had: a stale check once kept the old layer, above the layers it still
// costs, and the probe's sum of their costs read past them and panicked
// on the allocator's timer.
func TestAllocatorStaleCheckAfterCeilingFell(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.tick(0, 1, 2)
	l := fx.track.Layers()
	// An estimate above every layer, from one feedback that never changes.
	est, st := &estimator{}, new(sendState)
	st.est.Init(bwe.Config{Initial: int(l[0].Bitrate+l[1].Bitrate+l[2].Bitrate) * 4, Min: 1, Max: bweMaxBitrate})
	est.send.Store(st)
	est.feedbacks.Store(1)
	clk := clock.NewManual(time.Unix(5_000_000, 0))
	a := newAllocator(est, clk, nil)
	t.Cleanup(a.close)
	// A second track, kept below its ceiling, so that the probe is
	// looked for on every check.
	fx.subscriberWith(func(dt *DownTrack) {
		dt.SetTargetLayer(0)
		a.add(dt)
	})
	dt, _ := fx.subscriberWith(a.add)
	clk.Advance(bweStartCheckInterval) // the feedback is new: not stale
	if headingTo(dt) != 2 {
		t.Fatalf("layer %+v, want the top one the estimate pays for", dt.Layer())
	}
	dt.SetTargetLayer(0)               // its ceiling: the lowest layer
	clk.Advance(bweStartCheckInterval) // no feedback since: stale
	if got := headingTo(dt); got != 0 {
		t.Fatalf("after its ceiling fell and a stale check: layer %d, want 0", got)
	}
}

// TestAllocatorCheckPanicFailsThePeer: a panic on the allocator's timer
// (here its owner's handler's, told of a pause) is recovered and reported
// as a FailureEvent, so that it ends the connection, not the server; the
// checks stop.
func TestAllocatorCheckPanicFailsThePeer(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.tick(0, 1, 2)
	// An estimate below the lowest layer: the track is paused.
	est, st := &estimator{}, new(sendState)
	st.est.Init(bwe.Config{Initial: 1, Min: 1, Max: bweMaxBitrate})
	est.send.Store(st)
	est.feedbacks.Store(1)
	clk := clock.NewManual(time.Unix(7_000_000, 0))
	a := newAllocator(est, clk, nil)
	t.Cleanup(a.close)
	var failures []error
	a.setNotify(func(ev PeerEvent) {
		switch ev := ev.(type) {
		case TrackPausedEvent:
			panic("the owner's handler")
		case FailureEvent:
			failures = append(failures, ev.Err)
		}
	})
	fx.subscriberWith(a.add)
	clk.Advance(bweStartCheckInterval)
	if len(failures) != 1 || !errors.Is(failures[0], ErrReadLoopPanic) {
		t.Fatalf("failures reported: %v, want one panic", failures)
	}
	if n := clk.Pending(); n != 0 {
		t.Fatalf("%d timers left after the failure, want none", n)
	}
}
