package rtc

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A Forwarder splits its subscribers into groups, one per fan-out writer.
// Each writer is a goroutine that writes every packet of the track to the
// down-tracks of its group, one after the other. A packet therefore wakes
// at most one goroutine per group, not one per subscriber, and a large
// fan-out runs on as many cores as there are groups. A down-track stays in
// its group for as long as it subscribes, so its packets are written in
// order by one goroutine.
//
// The writers' queues are where packets wait when the writers fall behind;
// a full queue drops the packet for that group, never holds up the read
// loop. Writes to a subscriber go to the shared UDP socket and do not block
// one subscriber without the others, so a group shares one queue.

// DefaultFanoutQueueSize is the queue length of a fan-out writer with a
// zero ForwarderConfig.QueueSize: about a second of 1.2 Mbps video.
const DefaultFanoutQueueSize = 256

// SenderReportInterval is how often a fan-out writer sends each of its
// subscribers an RTCP sender report, which receivers need to keep audio and
// video in sync. The writer sends them after a packet, so a track that sends
// nothing reports nothing.
const SenderReportInterval = time.Second

// minGroupSize is how many subscribers a group takes before another group
// is opened: below it, the hand-off to a second writer costs more than the
// writes it would take over.
const minGroupSize = 8

// subscriberSet is an immutable snapshot of a Forwarder's down-tracks. The
// read loop loads it once per packet; changes replace it whole.
type subscriberSet struct {
	groups  [][]*DownTrack // one per writer, same index
	writers []*fanoutWriter
	n       int
}

// with returns a copy of s with dt added to the least loaded group, or to
// a new one when every open group has minGroupSize members.
func (s *subscriberSet) with(dt *DownTrack) (next *subscriberSet, group int) {
	best, empty := -1, -1
	for i, g := range s.groups {
		switch {
		case len(g) == 0:
			if empty < 0 {
				empty = i
			}
		case best < 0 || len(g) < len(s.groups[best]):
			best = i
		}
	}
	if empty >= 0 && (best < 0 || len(s.groups[best]) >= minGroupSize) {
		best = empty
	}
	next = s.clone()
	g := make([]*DownTrack, len(s.groups[best]), len(s.groups[best])+1)
	copy(g, s.groups[best])
	next.groups[best] = append(g, dt)
	next.n++
	return next, best
}

// without returns a copy of s without dt, and whether dt was there.
func (s *subscriberSet) without(dt *DownTrack) (*subscriberSet, bool) {
	for i, g := range s.groups {
		for j, d := range g {
			if d != dt {
				continue
			}
			next := s.clone()
			ng := make([]*DownTrack, 0, len(g)-1)
			ng = append(ng, g[:j]...)
			next.groups[i] = append(ng, g[j+1:]...)
			next.n--
			return next, true
		}
	}
	return s, false
}

func (s *subscriberSet) contains(dt *DownTrack) bool {
	for _, g := range s.groups {
		for _, d := range g {
			if d == dt {
				return true
			}
		}
	}
	return false
}

// all returns every down-track of s in a new slice.
func (s *subscriberSet) all() []*DownTrack {
	out := make([]*DownTrack, 0, s.n)
	for _, g := range s.groups {
		out = append(out, g...)
	}
	return out
}

func (s *subscriberSet) clone() *subscriberSet {
	return &subscriberSet{
		groups:  append([][]*DownTrack(nil), s.groups...),
		writers: append([]*fanoutWriter(nil), s.writers...),
		n:       s.n,
	}
}

// fanoutWriter writes one Forwarder's packets to one group of its
// subscribers.
type fanoutWriter struct {
	f        *Forwarder
	group    int
	queue    *ring
	sleeping atomic.Bool   // the writer waits on wake
	wake     chan struct{} // capacity 1
	done     chan struct{} // closed to stop the writer
	// wantKeyframe is set when a video packet was dropped for a full
	// queue; the writer asks the source for a keyframe once it drains.
	wantKeyframe atomic.Bool
	lastReport   time.Time // when the group's sender reports last went out
}

func newFanoutWriter(f *Forwarder, group, queueSize int) *fanoutWriter {
	return &fanoutWriter{
		f:     f,
		group: group,
		queue: newRing(queueSize),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
}

// push queues p for the writer; it never blocks. It reports false when the
// queue is full.
func (w *fanoutWriter) push(p *packet) bool {
	if !w.queue.push(p) {
		return false
	}
	// Wake the writer only if it sleeps: a busy writer costs no channel
	// operation per packet.
	if w.sleeping.Load() && w.sleeping.CompareAndSwap(true, false) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// run is the writer's goroutine. It ends when done is closed, releasing
// what is still queued.
func (w *fanoutWriter) run(wg *sync.WaitGroup) {
	defer wg.Done()
	defer func() {
		for p := w.queue.pop(); p != nil; p = w.queue.pop() {
			p.release()
		}
	}()
	for {
		w.drain()
		if w.wantKeyframe.Load() && w.wantKeyframe.CompareAndSwap(true, false) {
			w.f.RequestKeyframe()
		}
		w.sleeping.Store(true)
		// A packet pushed before sleeping was set saw no sleeper: look again.
		if !w.queue.empty() {
			w.sleeping.Store(false)
			continue
		}
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
	}
}

// sendBatcher lets a fan-out writer have the copies of one packet sent
// together: datagrams written between holdSends and releaseSends go to the
// kernel in one system call, at the release. The Engine's shared UDP port
// is one, on Linux.
type sendBatcher interface {
	holdSends()
	releaseSends()
}

// drain writes every queued packet to the group. A panic while writing to
// one down-track stops that down-track alone (its owner learns of it
// through OnFailure), and the writer goes on with the next packet.
func (w *fanoutWriter) drain() {
	var cur *DownTrack
	var p *packet
	var held sendBatcher
	defer func() {
		if held != nil {
			held.releaseSends()
		}
		if r := recover(); r != nil {
			if p != nil {
				p.release()
			}
			if cur != nil {
				cur.fail("writer", r)
			} else {
				w.f.log.Error("fan-out writer panic", "err", fmt.Errorf("%w: %v", ErrReadLoopPanic, r))
			}
		}
	}()
	for {
		if p = w.queue.pop(); p == nil {
			return
		}
		set := w.f.subs.Load()
		if w.group < len(set.groups) {
			g := set.groups[w.group]
			now := time.Now()
			// A group of one holds too: unheld, its datagram could join
			// another writer's batch and be overtaken by its next one.
			if w.f.sends != nil {
				held = w.f.sends
				held.holdSends()
			}
			for _, cur = range g {
				cur.send(p, now)
			}
			if now.Sub(w.lastReport) >= SenderReportInterval {
				w.lastReport = now
				for _, cur = range g {
					cur.sendReport(now)
				}
			}
			if held != nil {
				held.releaseSends()
				held = nil
			}
		}
		cur = nil
		p.release()
	}
}
