package clock

import (
	"slices"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestManualRunsDueTimersInOrder(t *testing.T) {
	c := NewManual(epoch)
	var fired []string
	var at []time.Duration
	record := func(name string) func() {
		return func() {
			fired = append(fired, name)
			at = append(at, c.Now().Sub(epoch))
		}
	}
	c.AfterFunc(2*time.Second, record("2s"))
	c.AfterFunc(time.Second, record("1s first"))
	c.AfterFunc(time.Second, record("1s second"))
	stopped := c.AfterFunc(time.Second, record("stopped"))
	c.AfterFunc(3*time.Second, record("3s"))
	if !stopped.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}
	if stopped.Stop() {
		t.Fatal("a second Stop reported true")
	}
	if n := c.Pending(); n != 4 {
		t.Fatalf("Pending = %d, want 4", n)
	}
	if next, ok := c.Next(); !ok || !next.Equal(epoch.Add(time.Second)) {
		t.Fatalf("Next = %v, %v", next, ok)
	}

	c.Advance(2500 * time.Millisecond)
	want := []string{"1s first", "1s second", "2s"}
	wantAt := []time.Duration{time.Second, time.Second, 2 * time.Second}
	if !slices.Equal(fired, want) || !slices.Equal(at, wantAt) {
		t.Fatalf("fired %v at %v, want %v at %v", fired, at, want, wantAt)
	}
	if got := c.Now(); !got.Equal(epoch.Add(2500 * time.Millisecond)) {
		t.Fatalf("Now = %v after Advance", got)
	}
	if n := c.Pending(); n != 1 {
		t.Fatalf("Pending = %d, want 1", n)
	}
	c.Advance(500 * time.Millisecond) // due exactly at the end: runs
	if fired[len(fired)-1] != "3s" || c.Pending() != 0 {
		t.Fatalf("fired %v, %d pending", fired, c.Pending())
	}
	if _, ok := c.Next(); ok {
		t.Fatal("Next reported a timer with none armed")
	}
}

// A timer may arm another; one due within the same Advance runs in it, at
// its own time, and one armed for zero waits for the next Advance.
func TestManualTimerArmsTimer(t *testing.T) {
	c := NewManual(epoch)
	var fired []time.Duration
	c.AfterFunc(time.Second, func() {
		fired = append(fired, c.Now().Sub(epoch))
		c.AfterFunc(time.Second, func() { fired = append(fired, c.Now().Sub(epoch)) })
		c.AfterFunc(time.Hour, func() { t.Error("a timer due after the Advance ran") })
	})
	c.Advance(5 * time.Second)
	if !slices.Equal(fired, []time.Duration{time.Second, 2 * time.Second}) {
		t.Fatalf("fired at %v", fired)
	}
	ran := false
	c.AfterFunc(0, func() { ran = true })
	if ran {
		t.Fatal("a zero timer ran as it was armed")
	}
	c.Advance(0)
	if !ran {
		t.Fatal("a zero timer did not run at the next Advance")
	}
}

func TestManualNegativeAdvancePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Advance(-1) did not panic")
		}
	}()
	NewManual(epoch).Advance(-1)
}

// Timers armed, stopped and run from several goroutines: each runs at most
// once, a stopped one never, and every one is accounted for.
func TestManualConcurrent(t *testing.T) {
	c := NewManual(epoch)
	const n = 200
	var mu sync.Mutex
	ran := map[int]int{}
	stopped := map[int]bool{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				id := g*n + i
				tm := c.AfterFunc(time.Duration(i%7)*time.Millisecond, func() {
					mu.Lock()
					ran[id]++
					mu.Unlock()
				})
				if i%3 == 0 && tm.Stop() {
					mu.Lock()
					stopped[id] = true
					mu.Unlock()
				}
				c.Now()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range n {
			c.Advance(time.Millisecond)
		}
	}()
	wg.Wait()
	c.Advance(time.Second)
	mu.Lock()
	defer mu.Unlock()
	for id := range 4 * n {
		switch {
		case stopped[id] && ran[id] != 0:
			t.Fatalf("timer %d ran after Stop reported true", id)
		case !stopped[id] && ran[id] != 1:
			t.Fatalf("timer %d ran %d times", id, ran[id])
		}
	}
}

func TestSystem(t *testing.T) {
	var c Clock = System{}
	before := time.Now()
	if now := c.Now(); now.Before(before) {
		t.Fatalf("System.Now() = %v, before %v", now, before)
	}
	done := make(chan struct{})
	c.AfterFunc(0, func() { close(done) })
	<-done
	if !c.AfterFunc(time.Hour, func() { t.Error("a stopped timer ran") }).Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}
}
