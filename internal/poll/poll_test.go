package poll

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// fatalT records Fatalf and ends the goroutine, as testing.T does.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls Within on a fatalT in its own goroutine, and returns what it
// failed with ("" when it returned).
func run(t *testing.T, cond func() bool) string {
	f := &fatalT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Within(f, 0, "the thing", cond)
	}()
	<-done
	return f.msg
}

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	Until(t, "the third call", func() bool { return calls.Add(1) == 3 })
	if n := calls.Load(); n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

func TestWithinFailsNamingWhatItWaitedFor(t *testing.T) {
	if msg := run(t, func() bool { return false }); !strings.Contains(msg, "waiting for the thing") {
		t.Fatalf("failed with %q", msg)
	}
	if msg := run(t, func() bool { return true }); msg != "" {
		t.Fatalf("a condition that holds failed with %q", msg)
	}
}

func TestClosedReturnsOnceTheChannelIsClosed(t *testing.T) {
	ch := make(chan struct{})
	go close(ch)
	Closed(t, "the close", ch)
}

func TestClosedFailsNamingWhatItWaitedFor(t *testing.T) {
	f := &fatalT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ClosedWithin(f, 0, "the thing", make(chan struct{}))
	}()
	<-done
	if !strings.Contains(f.msg, "waiting for the thing") {
		t.Fatalf("failed with %q", f.msg)
	}
}
