package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"testing"
)

// gcPercent reads the collector's target without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestApplyGCPercent(t *testing.T) {
	before := gcPercent()
	for _, tc := range []struct {
		name    string
		percent int
		want    int
	}{
		{"zero leaves the runtime's target", 0, before},
		{"a percentage", 60, 60},
		{"off", gcPercentOff, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restore := applyGCPercent(tc.percent)
			if got := gcPercent(); got != tc.want {
				t.Errorf("target %d, want %d", got, tc.want)
			}
			restore()
			if got := gcPercent(); got != before {
				t.Errorf("restored to %d, want %d", got, before)
			}
		})
	}
}

// The trimmer gives memory back once, after a burst has ended: not during
// it, not after small allocations, not again while nothing is allocated.
func TestMemoryTrimmerTrimsAfterBursts(t *testing.T) {
	tr := newMemoryTrimmer(slog.New(slog.DiscardHandler))
	trims := 0
	tr.trim = func() { trims++ }
	tr.last = 0
	const mb = 1 << 20
	steps := []struct {
		allocated uint64 // cumulative
		trim      bool
	}{
		{30 * mb, false}, // a burst going on
		{60 * mb, false}, // still going on
		{60 * mb, true},  // over: trim
		{60 * mb, false}, // nothing since
		{61 * mb, false}, // a little, not worth it
		{62 * mb, false}, // still little in all
		{75 * mb, false}, // another burst
		{75 * mb, true},  // over
		{75 * mb, false}, // quiet
	}
	for i, s := range steps {
		before := trims
		got := tr.tick(s.allocated)
		if got != s.trim || (trims > before) != s.trim {
			t.Fatalf("step %d (%d MB): trimmed %v (%d trims), want %v", i, s.allocated/mb, got, trims, s.trim)
		}
		if got {
			tr.last = s.allocated // as the real trim's own reading would be
		}
	}
}

func TestMemoryTrimmerStops(t *testing.T) {
	tr := newMemoryTrimmer(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	wait := tr.start(ctx)
	cancel()
	wait() // returns: the goroutine has ended
}
