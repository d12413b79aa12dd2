// Package leaktest is how Troupe's tests check that they leave no goroutine
// behind: goleak, told once about the one goroutine the actor runtime
// leaves on purpose.
//
// Like internal/poll it sits outside the layers and knows nothing of
// Troupe; only tests import it.
package leaktest

import (
	"testing"

	"go.uber.org/goleak"
)

// IgnoreActorThrottle leaves out protoactor-go's dead-letter log throttle:
// a goroutine that sleeps out its period (one second) after its actor
// system has stopped, and then ends by itself. A test that stops actors
// may still see it; the check at the end of the test binary sees it go.
func IgnoreActorThrottle() goleak.Option {
	return goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1")
}

// Check fails t if, once the test and all its cleanups are done, a
// goroutine runs that did not run when Check was called. Call it first in
// the test, so that its check runs after every cleanup registered later.
func Check(t testing.TB) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent(), IgnoreActorThrottle()}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// VerifyTestMain runs m's tests and then fails the test binary if they left
// a goroutine behind.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m, IgnoreActorThrottle())
}
