package rtc

import (
	"testing"
	"time"
)

// TestRateMeterCounterRestarts: a counter read below the window's start
// (a down-track's new source, whose count starts from its own zero)
// starts a new window, the last rate standing, rather than read as the
// wrapped difference: an absurd rate that the allocator would take off,
// or add to, what it shares.
func TestRateMeterCounterRestarts(t *testing.T) {
	start := time.Unix(6_000_000, 0)
	var m rateMeter
	m.update(start, 1_000_000)
	m.update(start.Add(time.Second), 1_010_000)
	if m.rate != 80_000 {
		t.Fatalf("rate %d bps, want 80000", m.rate)
	}
	m.update(start.Add(2*time.Second), 3000) // another counter
	if m.rate != 80_000 {
		t.Fatalf("rate %d bps once the counter restarted, want the last, 80000", m.rate)
	}
	m.update(start.Add(3*time.Second), 8000)
	if m.rate != 40_000 {
		t.Fatalf("rate %d bps a second into the new counter, want 40000", m.rate)
	}
}
