// Package leaktest is how Troupe's tests check that they leave no goroutine
// behind: goleak, told once about the one goroutine the actor runtime
// leaves on purpose.
//
// Like internal/poll it sits outside the layers and knows nothing of
// Troupe; only tests import it.
package leaktest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// IgnoreActorThrottle leaves out protoactor-go's dead-letter log throttle:
// a goroutine that sleeps out its period (one second) after its actor
// system has stopped, and then ends by itself. A test that stops actors
// may still see it; the check at the end of the test binary sees it go.
func IgnoreActorThrottle() goleak.Option {
	return goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1")
}

// settle bounds how long a check waits for goroutines that are still
// winding down when the test ends (a closed peer connection's, a stopped
// server's) before it calls them leaked. goleak alone gives them about
// half a second, which a loaded machine may not: a bound on a failure,
// not a pause, since a clean test is checked at once.
const settle = 30 * time.Second

// Check fails t if, once the test and all its cleanups are done, a
// goroutine runs that did not run when Check was called. Call it first in
// the test, so that its check runs after every cleanup registered later.
func Check(t testing.TB) {
	t.Helper()
	check(t, settle)
}

// check is Check with goroutines given within to end.
func check(t testing.TB, within time.Duration) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent(), IgnoreActorThrottle()}
	t.Cleanup(func() {
		if err := find(within, opts...); err != nil {
			t.Error(err)
		}
	})
}

// find is goleak.Find, asked again until it finds no goroutine or within
// has passed; the error names the goroutines found last.
func find(within time.Duration, opts ...goleak.Option) error {
	deadline := time.Now().Add(within)
	for {
		// Find itself retries for a while before it reports.
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// VerifyTestMain runs m's tests and then fails the test binary if they left
// a goroutine behind.
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := find(settle, IgnoreActorThrottle()); err != nil {
			fmt.Fprintf(os.Stderr, "leaktest: goroutines left running after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
