package mediaload

import (
	"math"
	"testing"
	"time"

	"github.com/troupe-media/troupe/bench/scenarios"
)

// One subscriber's window, packet by packet: the layers, the switches
// judged by keyframe and gap, the times from the cut and its end, and
// the loss within each layer's run.
func TestAnalyzeSwitches(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	samples := []layerSample{
		{at: at(-5), layer: 0, seq: 1, bytes: 1000}, // before the window
		{at: at(0), layer: 2, seq: 10, bytes: 1000},
		{at: at(100), layer: 2, seq: 11, bytes: 1000},
		{at: at(200), layer: 2, seq: 13, bytes: 1000, afterGap: true}, // 12 lost
		{at: at(220), layer: -1, seq: 14},                             // a probe
		// The cut comes at 250: down on a keyframe at 400.
		{at: at(400), layer: 1, seq: 15, bytes: 500, keyStart: true},
		{at: at(500), layer: 1, seq: 16, bytes: 500},
		// A delta frame of layer 2 with nothing lost before it: bad.
		{at: at(600), layer: 2, seq: 17, bytes: 1000},
		// Back to 1 after a gap: its keyframe may have been dropped on
		// the link, so not judged.
		{at: at(700), layer: 1, seq: 19, bytes: 500, afterGap: true},
		// The cut ends at 800: layer 2 again at 1100.
		{at: at(1100), layer: 2, seq: 20, bytes: 1000, keyStart: true},
		{at: at(2500), layer: 2, seq: 21, bytes: 1000}, // after the window
	}
	f := analyze(samples, 3, t0, at(2000), cutTimes{cut: at(250), end: at(800)})
	if f.switches != 4 || f.bad != 1 {
		t.Errorf("%d switches, %d bad: want 4 and 1", f.switches, f.bad)
	}
	if !f.wasAbove || !f.wentDown || f.down != 150*time.Millisecond || !f.cameBack || f.up != 300*time.Millisecond {
		t.Errorf("down %v (%v, %v), up %v (%v): want 150ms and 300ms", f.down, f.wasAbove, f.wentDown, f.up, f.cameBack)
	}
	if f.layerBytes[0] != 0 || f.layerBytes[1] != 1500 || f.layerBytes[2] != 5000 || f.last != 2 || !f.video {
		t.Errorf("bytes by layer %v, last %d", f.layerBytes, f.last)
	}
	// Sequence numbers 10..20 but 12 and 18; 8 of the camera's packets.
	if f.expected != 11 || f.received != 9 || f.packets != 8 {
		t.Errorf("expected %d, received %d, %d packets: want 11, 9 and 8", f.expected, f.received, f.packets)
	}
	// 6500 bytes in 2 s; 2500 of them in the 0.55 s between the cut and
	// its end.
	if f.kbps != 26 || math.Abs(f.cutKbps-2500*8/1000/0.55) > 1e-9 {
		t.Errorf("%.2f kbps, %.2f while cut", f.kbps, f.cutKbps)
	}

	c := classStep(scenarios.Class{Name: "cut", Cut: &scenarios.Cut{At: time.Second, CapKbps: 300, End: 2 * time.Second}},
		[]string{"q", "h", "f"}, []subscriberFigures{f, {layerBytes: make([]int64, 3), last: -1}}, 1, 0)
	if c.Subscribers != 2 || c.NoVideo != 1 || c.Layers != "h+f" || c.EndLayers != "f" || c.Switches != 4 || c.BadSwitches != 1 {
		t.Errorf("class: %+v", c)
	}
	if c.SwitchDownMaxMs != 150 || c.SwitchUpMaxMs != 300 || c.NotDown != 0 || c.NotUp != 0 || c.CutKbps != 300 || c.Pauses != 1 {
		t.Errorf("class switches: %+v", c)
	}
	// A move down after the cut's end is not the cut's.
	late := analyze([]layerSample{
		{at: at(0), layer: 2, seq: 1, bytes: 1000},
		{at: at(900), layer: 1, seq: 2, bytes: 500, keyStart: true},
	}, 3, t0, at(2000), cutTimes{cut: at(250), end: at(800)})
	if late.wentDown || !late.wasAbove || late.cutKbps != 0 {
		t.Errorf("a move down after the cut counted: %+v", late)
	}
	// One that stayed on its layer through the cut did not come back up.
	stayed := f
	stayed.wentDown, stayed.cameBack = false, true
	c = classStep(scenarios.Class{Name: "cut", Cut: &scenarios.Cut{At: time.Second, CapKbps: 300, End: 2 * time.Second}},
		[]string{"q", "h", "f"}, []subscriberFigures{stayed}, 0, 0)
	if c.NotDown != 1 || c.SwitchDownMaxMs != 0 || c.SwitchUpMaxMs != 0 || c.NotUp != 0 {
		t.Errorf("a subscriber that stayed up: %+v", c)
	}
}

// A stream's sequence numbers as read: in order, after a loss, a late
// retransmission, across the wrap; the first of a stream follows nothing
// known.
func TestSeqTracker(t *testing.T) {
	var st seqTracker
	type want struct {
		ext       int64
		late, gap bool
	}
	steps := []struct {
		seq  uint16
		want want
	}{
		{65533, want{0, false, true}}, // the stream's first
		{65534, want{1, false, false}},
		{0, want{3, false, true}},     // 65535 lost, across the wrap
		{65535, want{2, true, false}}, // its retransmission
		{1, want{4, false, false}},    // follows the highest, not the late one
		{1, want{4, true, false}},     // a duplicate
	}
	for i, s := range steps {
		ext, late, gap := st.next(s.seq)
		if got := (want{ext, late, gap}); got != s.want {
			t.Fatalf("step %d (seq %d): %+v, want %+v", i, s.seq, got, s.want)
		}
	}
}

// Switches that only the reading makes: a late retransmission of the
// layer left is no switch, and a reconnection's track whose first packet
// was lost, or whose packets interleave with the old track's last ones,
// does not make a switch bad.
func TestAnalyzeSwitchesLateAndAcrossStreams(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	f := analyze([]layerSample{
		{at: at(0), layer: 2, seq: 10, bytes: 1000},
		{at: at(10), layer: 1, seq: 11, bytes: 500, keyStart: true},
		{at: at(20), layer: 2, seq: 9, bytes: 1000, late: true}, // resent
		{at: at(30), layer: 1, seq: 12, bytes: 500},
	}, 3, t0, at(1000), cutTimes{})
	if f.switches != 1 || f.bad != 0 || f.layerBytes[2] != 2000 || f.packets != 4 {
		t.Errorf("late retransmission: %d switches, %d bad, bytes %v, %d packets; want 1, 0, 2000 of layer 2, 4",
			f.switches, f.bad, f.layerBytes, f.packets)
	}
	f = analyze([]layerSample{
		{at: at(0), layer: 2, seq: 10, bytes: 1000},
		{at: at(10), layer: 2, seq: 11, bytes: 1000},
		// A new track: its keyframe's first packet lost on the link.
		{at: at(20), layer: 1, seq: 0, bytes: 500, afterGap: true, stream: 1},
		// The old track's last packet, read after the new one's first.
		{at: at(25), layer: 2, seq: 12, bytes: 1000},
		{at: at(30), layer: 1, seq: 1, bytes: 500, stream: 1},
		// Within the new track, a delta frame of another layer is bad.
		{at: at(40), layer: 0, seq: 2, bytes: 200, stream: 1},
	}, 3, t0, at(1000), cutTimes{})
	if f.switches != 4 || f.bad != 1 {
		t.Errorf("across tracks: %d switches, %d bad; want 4 and 1", f.switches, f.bad)
	}
}
