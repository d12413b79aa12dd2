package clock

import "time"

// Clock gives the time and runs timers.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once d has passed, unless the returned Timer is
	// stopped first. System calls it in its own goroutine; Manual in the
	// goroutine that advances the clock.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a scheduled call that can be cancelled.
type Timer interface {
	// Stop cancels the call; it reports whether it did (false: it ran, or
	// was stopped before).
	Stop() bool
}

// System is the real time. Its zero value is ready to use.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (System) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
