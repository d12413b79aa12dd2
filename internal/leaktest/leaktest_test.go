package leaktest

import (
	"testing"
)

// recorder is a testing.TB that keeps what the check reports.
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

// A goroutine started after Check and still running at the end is a leak;
// one stopped by a cleanup registered later is not.
func TestCheck(t *testing.T) {
	leaked := &recorder{TB: t}
	Check(leaked)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-stop
	}()
	leaked.runCleanups()
	if leaked.errors == 0 {
		t.Error("a goroutine left running was not reported")
	}
	close(stop)
	<-done

	clean := &recorder{TB: t}
	Check(clean)
	stop2 := make(chan struct{})
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		<-stop2
	}()
	clean.Cleanup(func() { close(stop2); <-done2 })
	clean.runCleanups()
	if clean.errors != 0 {
		t.Errorf("%d leaks reported for a goroutine its cleanup stopped", clean.errors)
	}
}
