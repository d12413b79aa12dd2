package rtc

import (
	"slices"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

func TestAllocate(t *testing.T) {
	three := allocItem{rates: []uint64{150_000, 500_000, 1_500_000}}
	small := allocItem{rates: three.rates[:1]}
	stream := allocItem{rates: []uint64{800_000}, pinned: true}
	for _, tc := range []struct {
		name   string
		budget int64
		items  []allocItem
		want   []int
	}{
		{"everything fits", 5_000_000, []allocItem{three, three}, []int{2, 2}},
		{"first in priority goes up first", 2_100_000, []allocItem{three, three}, []int{2, 1}},
		{"each gets its lowest before any goes up", 400_000, []allocItem{three, three}, []int{0, 0}},
		{"lowest does not fit: paused", 100_000, []allocItem{three}, []int{-1}},
		{"a layer capped at its lowest is paused too", 100_000, []allocItem{small}, []int{-1}},
		{"the second is paused, the first keeps its lowest", 200_000, []allocItem{three, three}, []int{0, -1}},
		{"ceiling bounds the layer", 5_000_000, []allocItem{{rates: three.rates[:2]}}, []int{1}},
		{"unknown rates cost nothing", 0, []allocItem{{rates: []uint64{0, 0}}}, []int{1}},
		{"a stream is never paused, and is paid for first", 600_000, []allocItem{stream, three}, []int{0, -1}},
		{"a stream that fits leaves the rest", 1_500_000, []allocItem{stream, three}, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := allocate(tc.budget, tc.items, nil); !slices.Equal(got, tc.want) {
				t.Fatalf("allocate(%d) = %v, want %v", tc.budget, got, tc.want)
			}
		})
	}
}

// TestLayerGovernor runs the hysteresis rules step by step on a manual
// clock: each step advances the clock, then offers the governor what the
// estimate pays for (down, and up with the margin) under a ceiling.
func TestLayerGovernor(t *testing.T) {
	type step struct {
		after             time.Duration
		ceiling, down, up int
		want              int
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"down at once", []step{
			{0, 2, 2, 2, 2},
			{500 * time.Millisecond, 2, 0, 0, 0},
		}},
		{"up only after the hold", []step{
			{0, 2, 0, 0, 0},
			{time.Second, 2, 2, 2, 0},
			{2 * time.Second, 2, 2, 2, 0},
			{time.Second, 2, 2, 2, 2},
		}},
		{"a dip restarts the hold", []step{
			{0, 2, 0, 0, 0},
			{time.Second, 2, 1, 1, 0},
			{2 * time.Second, 2, 1, 0, 0},
			{time.Second, 2, 1, 1, 0},
			{2 * time.Second, 2, 1, 1, 0},
			{time.Second, 2, 1, 1, 1},
		}},
		{"the margin counts, not the bare fit", []step{
			{0, 2, 0, 0, 0},
			{10 * time.Second, 2, 2, 0, 0},
			{10 * time.Second, 2, 2, 0, 0},
		}},
		{"paused when the lowest does not fit, resumed after the hold", []step{
			{0, 2, -1, -1, -1},
			{time.Second, 2, 0, 0, -1},
			{3 * time.Second, 2, 0, 0, 0},
		}},
		{"a failed up doubles the hold", []step{
			{0, 2, 1, 1, 1},
			{0, 2, 2, 2, 1},
			{3 * time.Second, 2, 2, 2, 2},
			{2 * time.Second, 2, 1, 1, 1}, // down 2 s after the up: a flap
			{0, 2, 2, 2, 1},
			{3 * time.Second, 2, 2, 2, 1}, // 3 s no longer enough
			{3 * time.Second, 2, 2, 2, 2}, // 6 s is
		}},
		{"a higher ceiling is followed at once when not held down", []step{
			{0, 1, 1, 1, 1},
			{500 * time.Millisecond, 2, 2, 2, 2},
		}},
		{"a lower ceiling is followed at once", []step{
			{0, 2, 2, 2, 2},
			{500 * time.Millisecond, 0, 0, 0, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewManual(time.Unix(1_000_000, 0))
			g := newLayerGovernor(tc.steps[0].ceiling)
			for i, s := range tc.steps {
				clk.Advance(s.after)
				if got := g.step(clk.Now(), s.ceiling, s.down, s.up); got != s.want {
					t.Fatalf("step %d (%+v): layer %d, want %d", i, s, got, s.want)
				}
			}
		})
	}
}

// TestLayerGovernorForgetsFlaps checks that the hold comes back to its
// base after a long calm.
func TestLayerGovernorForgetsFlaps(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_000_000, 0))
	g := newLayerGovernor(2)
	g.step(clk.Now(), 2, 1, 1)
	for range 3 { // three failed ups
		g.step(clk.Now(), 2, 2, 2)
		clk.Advance(g.hold)
		if g.step(clk.Now(), 2, 2, 2) != 2 {
			t.Fatal("no up after the hold")
		}
		clk.Advance(time.Second)
		g.step(clk.Now(), 2, 1, 1)
	}
	if g.hold <= bweUpHold {
		t.Fatalf("hold %v after three flaps, want more than %v", g.hold, bweUpHold)
	}
	clk.Advance(bweMaxUpHold)
	g.step(clk.Now(), 2, 1, 1)
	if g.hold != bweUpHold {
		t.Fatalf("hold %v after a calm of %v, want %v", g.hold, bweMaxUpHold, bweUpHold)
	}
}

// The allocator checks only while it has down-tracks, and not after
// close.
func TestAllocatorChecksWhileNeeded(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_000_000, 0))
	a := newAllocator(nil, clk, nil)
	dt, err := NewDownTrack(DownTrackConfig{ID: "TR_v", StreamID: "PA_p", Codec: rtctest.VP8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dt.Close() })
	if clk.Pending() != 0 {
		t.Fatal("checks before any down-track")
	}
	a.add(dt)
	for range 3 {
		if clk.Pending() != 1 {
			t.Fatalf("%d checks scheduled with a down-track, want 1", clk.Pending())
		}
		clk.Advance(bweCheckInterval)
	}
	if _, src := a.Estimate(); src != EstimateNone {
		t.Fatalf("estimate from %q without an estimator", src)
	}
	if c, paused := dt.bandwidthCap(); c != LayerAuto || paused {
		t.Fatalf("cap %d, paused %v without an estimate", c, paused)
	}
	a.remove(dt)
	clk.Advance(bweCheckInterval)
	if clk.Pending() != 0 {
		t.Fatal("checks go on without down-tracks")
	}
	a.add(dt)
	if clk.Pending() != 1 {
		t.Fatal("no check after a down-track came back")
	}
	a.close()
	if clk.Pending() != 0 {
		t.Fatal("checks go on after close")
	}
}

// TestPeakRatesDecayByTime: a layer's peak fades by the time since it was
// reached, not by the number of checks: a second of the start's 100 ms
// checks forgets what a second of 500 ms checks does, and a rate above
// the peak replaces it.
func TestPeakRatesDecayByTime(t *testing.T) {
	const peak = 1_000_000
	fade := func(interval time.Duration) uint64 {
		p := peakRates(nil, []uint64{peak}, 0)
		for range time.Second / interval {
			p = peakRates(p, []uint64{0}, interval)
		}
		return p[0]
	}
	slow, fast := fade(bweCheckInterval), fade(bweStartCheckInterval)
	want := uint64(peak * (1 - bwePeakDecay))
	for _, got := range []uint64{slow, fast} {
		if got+100 < want || got > want+100 { // each step rounds down
			t.Fatalf("a second after a %d bps peak: %d bps at 500 ms checks, %d at 100 ms; want about %d", peak, slow, fast, want)
		}
	}
	if p := peakRates([]uint64{peak}, []uint64{2 * peak}, bweStartCheckInterval); p[0] != 2*peak {
		t.Fatalf("a rate above the peak: peak %d, want %d", p[0], 2*peak)
	}
}

// TestRateMeterWindow: a rate is measured over at least bweRateWindow,
// so that a keyframe's burst between two of the start's checks does not
// read as the stream's rate.
func TestRateMeterWindow(t *testing.T) {
	start := time.Unix(6_000_000, 0)
	var m rateMeter
	m.update(start, 1000)
	// A 50 kB keyframe in the first 100 ms, then 5 kB each 100 ms.
	b := uint64(1000 + 50_000)
	m.update(start.Add(bweStartCheckInterval), b)
	if m.rate != 0 {
		t.Fatalf("rate %d bps after %v, want none yet", m.rate, bweStartCheckInterval)
	}
	for i := 2; i <= 5; i++ {
		b += 5000
		m.update(start.Add(time.Duration(i)*bweStartCheckInterval), b)
	}
	if want := uint64(70_000 * 8 * 2); m.rate != want {
		t.Fatalf("rate %d bps over %v, want %d", m.rate, bweRateWindow, want)
	}
	b += 5000
	m.update(start.Add(6*bweStartCheckInterval), b)
	if want := uint64(70_000 * 8 * 2); m.rate != want {
		t.Fatalf("rate %d bps 100 ms into the next window, want the last window's %d", m.rate, want)
	}
}
