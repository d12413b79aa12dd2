package clock

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Manual is a Clock for tests: its time moves only by Advance, and the
// timers that fall due run then, in the goroutine that advances it, in
// order of their due time (of arming, for equal ones). A timer armed for
// zero or less runs at the next Advance, not at once. Its methods are safe
// for concurrent use.
type Manual struct {
	mu     sync.Mutex // guards the following
	now    time.Time
	seq    uint64         // arming order, to break ties
	timers []*manualTimer // armed, earliest first
}

type manualTimer struct {
	c   *Manual
	at  time.Time
	seq uint64
	f   func()
}

// NewManual returns a Manual clock reading start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now returns the clock's time.
func (c *Manual) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms a timer due d from now.
func (c *Manual) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, at: c.now.Add(d), seq: c.seq, f: f}
	i, _ := slices.BinarySearchFunc(c.timers, t, before)
	c.timers = slices.Insert(c.timers, i, t)
	return t
}

// before orders timers by due time, then by arming.
func before(a, b *manualTimer) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// Stop disarms t.
func (t *manualTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.timers, t)
	if i < 0 {
		return false
	}
	c.timers = slices.Delete(c.timers, i, i+1)
	return true
}

// Advance moves the clock d forward, running every timer due by then. Each
// runs with the clock at its due time, without the clock's lock held, so it
// may read the clock and arm or stop timers (one armed due by the end runs
// in this Advance too); it must not call Advance. Time never goes back: a
// negative d panics.
func (c *Manual) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: Advance by a negative duration")
	}
	c.mu.Lock()
	end := c.now.Add(d)
	for len(c.timers) > 0 && !c.timers[0].at.After(end) {
		t := c.timers[0]
		c.timers = slices.Delete(c.timers, 0, 1)
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// Pending returns how many timers are armed.
func (c *Manual) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next returns when the earliest armed timer is due; false when none is.
func (c *Manual) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	return c.timers[0].at, true
}
