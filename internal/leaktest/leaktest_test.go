package leaktest

import (
	"testing"
	"time"
)

// recorder is a testing.TB that keeps what the check reports and runs its
// cleanups when told.
type recorder struct {
	testing.TB
	cleanups []func()
	errors   int
}

func (r *recorder) Helper()               {}
func (r *recorder) Cleanup(f func())      { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Error(...any)          { r.errors++ }
func (r *recorder) Errorf(string, ...any) { r.errors++ }

func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// block starts a goroutine that runs until the returned stop is called;
// stop waits for it to end.
func block() (stop func()) {
	release, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		<-release
	}()
	return func() {
		close(release)
		<-done
	}
}

// A goroutine started after Check and still running at the end is a leak;
// one stopped by a cleanup registered later is not.
func TestCheck(t *testing.T) {
	leaked := &recorder{TB: t}
	// A short bound: the goroutine below stays until the check is over.
	check(leaked, 100*time.Millisecond)
	stop := block()
	leaked.runCleanups()
	stop()
	if leaked.errors == 0 {
		t.Error("a goroutine left running was not reported")
	}

	clean := &recorder{TB: t}
	Check(clean)
	clean.Cleanup(block())
	clean.runCleanups()
	if clean.errors != 0 {
		t.Errorf("%d leaks reported for a goroutine its cleanup stopped", clean.errors)
	}
}

// A goroutine still winding down when the test ends is given time to end:
// goleak alone would call one that takes a second a leak.
func TestCheckWaitsForWindingDown(t *testing.T) {
	r := &recorder{TB: t}
	Check(r)
	go time.Sleep(time.Second) // the work of a goroutine that ends by itself
	r.runCleanups()
	if r.errors != 0 {
		t.Errorf("%d leaks reported for a goroutine that ended a second after the test", r.errors)
	}
}
