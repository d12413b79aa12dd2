package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// gcPercentOff is the --gc-percent value that turns the collector off but
// for a memory limit (GOMEMLIMIT), as GOGC=off does.
const gcPercentOff = -1

// applyGCPercent sets the collector's target from --gc-percent and returns
// a function that restores the previous one. Zero leaves the runtime's
// target alone: GOGC if the environment sets it, else Go's 100.
func applyGCPercent(percent int) (restore func()) {
	if percent == 0 {
		return func() {}
	}
	prev := debug.SetGCPercent(percent)
	return func() { debug.SetGCPercent(prev) }
}

// Forwarding media allocates nothing: once people have joined, a server
// that only forwards allocates too little to start another collection. The
// garbage of the last joins (SDP, DTLS handshakes, signaling), as much again
// as the live heap, would then stay resident, and so would the goroutine
// stacks the handshakes grew, until the runtime's forced collection every
// two minutes, after which its scavenger still keeps heap up to the
// collector's goal. The trimmer collects and returns that memory to the
// system once a burst of allocation has ended, so that a server's memory
// follows what its connections hold. A server whose joins never pause is
// left to the collector's pacing.
const (
	trimInterval = 2 * time.Second
	// trimQuiet is the most a trimInterval may allocate for the burst
	// behind it to count as over.
	trimQuiet = 1 << 20
	// trimMinBurst is the least allocated since the last trim worth a
	// collection and giving memory back.
	trimMinBurst = 8 << 20
)

// memoryTrimmer returns the memory of allocation bursts to the system once
// they are over (see trimInterval).
type memoryTrimmer struct {
	log     *slog.Logger
	sample  []metrics.Sample
	last    uint64 // cumulative heap allocation at the previous tick
	pending uint64 // allocated since the last trim
	trim    func() // debug.FreeOSMemory, replaced in tests
}

func newMemoryTrimmer(log *slog.Logger) *memoryTrimmer {
	t := &memoryTrimmer{
		log:    log,
		sample: []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}},
		trim:   debug.FreeOSMemory,
	}
	t.last = t.allocated()
	return t
}

func (t *memoryTrimmer) allocated() uint64 {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return t.sample[0].Value.Uint64()
}

// tick looks at what was allocated since the previous tick, given the
// cumulative figure now, and trims if a burst has just ended. It reports
// whether it trimmed.
func (t *memoryTrimmer) tick(now uint64) bool {
	delta := now - t.last
	t.last = now
	t.pending += delta
	if delta > trimQuiet || t.pending < trimMinBurst {
		return false
	}
	start := time.Now()
	t.trim()
	t.log.Debug("returned memory after an allocation burst", "allocated_mb", t.pending>>20, "took", time.Since(start))
	t.pending = 0
	t.last = t.allocated() // the trim's own allocations are not a burst
	return true
}

// start runs the trimmer until ctx ends; the returned function waits for it.
func (t *memoryTrimmer) start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(trimInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				t.tick(t.allocated())
			}
		}
	}()
	return wg.Wait
}
