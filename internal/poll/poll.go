package poll

import (
	"testing"
	"time"
)

// Timeout is how long Until waits before it fails the test.
const Timeout = 30 * time.Second

// maxInterval bounds the pause between two checks: short enough that a
// condition that came true is seen soon, long enough that one that makes
// an HTTP request or walks a list does not keep a core busy.
const maxInterval = 20 * time.Millisecond

// Until calls cond until it returns true, and fails t (t.Fatalf, so call it
// from the test's goroutine) naming what it waited for if cond is still
// false after Timeout.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Timeout, what, cond)
}

// Within is Until with a deadline of d, for the rare wait that may take
// longer than Timeout when it succeeds (a browser loading a page).
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	interval := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		// The pause between checks, not a synchronisation: cond decides.
		time.Sleep(interval)
		interval = min(2*interval, maxInterval)
	}
}

// Closed waits until ch is closed (or yields a value), as a Done channel
// is, and fails t as Until does, naming what it waited for, if it has not
// after Timeout. Nothing is polled: a channel says itself when it is done.
func Closed(t testing.TB, what string, ch <-chan struct{}) {
	t.Helper()
	ClosedWithin(t, Timeout, what, ch)
}

// ClosedWithin is Closed with a deadline of d.
func ClosedWithin(t testing.TB, d time.Duration, what string, ch <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}
