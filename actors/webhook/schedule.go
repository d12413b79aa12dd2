package webhook

import (
	"context"
	"math/rand/v2"
	"net/url"
	"slices"
	"time"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// How the Deliverer keeps endpoints that do not answer from holding up
// those that do. Attempts run in two pools. The answering pool
// (Config.MaxConcurrent) is only for endpoints whose last attempt got a
// response, up to Config.MaxPerEndpoint each. The probing pool
// (Config.MaxProbing) is for the others, one attempt per endpoint: a new
// endpoint's first, and a silent endpoint's next, after an endpoint-wide
// backoff. An attempt that gets no response within Config.StallAfter
// marks its endpoint silent; in the answering pool it moves to the probing
// pool, or is cut short (a failed attempt, retried later) when that pool is
// full; in the probing pool it is cut short only when another endpoint is
// waiting for a probing slot, so that the slots go round. So endpoints
// that answer never wait for those that do not, new endpoints take turns
// at StallAfter's pace at worst, and at most MaxConcurrent + MaxProbing
// attempts are ever in flight, whatever the number of endpoints.

// queueKey names an outbox queue: one room's deliveries to one endpoint.
type queueKey struct{ room, endpoint string }

// queue is the scheduler's view of one outbox queue.
type queue struct {
	key  queueKey
	ep   *endpoint
	head *recordpb.WebhookEvent
	busy bool // an attempt from it is in flight
	// stale: the outbox was read while busy, so the worker's own read of
	// the next head may predate a delivery queued since.
	stale bool
	// dropped: its room's claim went while it was busy; it goes when its
	// attempt ends.
	dropped bool
	// The head's failed attempts so far, and when it may be tried again.
	attempts int
	retryAt  time.Time
}

// endpointState is what the scheduler knows of an endpoint's answers.
type endpointState int

const (
	// unknown: not heard from yet.
	unknown endpointState = iota
	// answering: its last attempt got a response.
	answering
	// silent: its last attempt got no response, or one has waited past
	// StallAfter; no attempt before retryAt.
	silent
)

// endpoint is the scheduler's view of one origin (scheme, host and port)
// and its queues.
type endpoint struct {
	origin   string
	queues   []*queue // they take turns, from next
	next     int
	inFlight int
	state    endpointState
	failures int       // consecutive attempts without a response
	retryAt  time.Time // when silent, no attempt before
	// idleSince is when its last queue emptied; zero while it has queues
	// or attempts (and is in the ring).
	idleSince time.Time
}

// idleMemory is how long what is known of an endpoint without pending
// deliveries is kept: an endpoint that answered takes no probing slot for
// its next event, and one that went silent keeps its backoff.
const idleMemory = 15 * time.Minute

// flight is an attempt in flight.
type flight struct {
	q       *queue
	started time.Time
	probe   bool // counted in the probing pool, not the answering one
	cut     bool // canceled; counted in its pool until it ends
	cancel  context.CancelFunc
}

// scheduler is Run's state. Only Run's goroutine uses it.
type scheduler struct {
	cfg       *Config
	queues    map[queueKey]*queue
	endpoints map[string]*endpoint
	ring      []*endpoint // endpoints take turns in this order, from turn
	turn      int
	flights   map[queueKey]*flight
	// Attempts in flight per pool, cut ones included until they end.
	answering, probing int
	// rooms counts the queues of each room; emptied lists the rooms left
	// without queues since takeEmptied, whose claims may go.
	rooms   map[string]int
	emptied []string
}

func newScheduler(cfg *Config) *scheduler {
	return &scheduler{
		cfg:       cfg,
		queues:    make(map[queueKey]*queue),
		endpoints: make(map[string]*endpoint),
		flights:   make(map[queueKey]*flight),
		rooms:     make(map[string]int),
	}
}

// origin is the part of an endpoint URL that endpoints are told apart by.
func origin(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint
	}
	return u.Scheme + "://" + u.Host
}

// merge brings the queues up to date with the outbox's heads, read at
// now. A queue with an attempt in flight is left to that attempt's result.
func (s *scheduler) merge(heads []*recordpb.WebhookEvent, now time.Time) {
	seen := make(map[queueKey]bool, len(heads))
	for _, h := range heads {
		k := queueKey{h.RoomId, h.Endpoint}
		seen[k] = true
		q := s.queues[k]
		if q == nil {
			q = &queue{key: k, ep: s.endpoint(origin(h.Endpoint))}
			q.ep.queues = append(q.ep.queues, q)
			s.queues[k] = q
			s.rooms[k.room]++
		}
		if q.busy {
			q.stale = true
			continue
		}
		if q.head == nil || q.head.Id != h.Id {
			q.head, q.attempts, q.retryAt = h, 0, time.Time{}
		}
	}
	for k, q := range s.queues {
		if !seen[k] && !q.busy {
			s.remove(q, now)
		}
	}
	for o, ep := range s.endpoints {
		if !ep.idleSince.IsZero() && now.Sub(ep.idleSince) > idleMemory {
			delete(s.endpoints, o)
		}
	}
}

// endpoint returns the endpoint of origin o, in the ring.
func (s *scheduler) endpoint(o string) *endpoint {
	ep := s.endpoints[o]
	if ep == nil {
		ep = &endpoint{origin: o}
		s.endpoints[o] = ep
		s.ring = append(s.ring, ep)
	} else if !ep.idleSince.IsZero() {
		ep.idleSince = time.Time{}
		s.ring = append(s.ring, ep)
	}
	return ep
}

// remove forgets q. An endpoint left without queues leaves the ring, idle.
func (s *scheduler) remove(q *queue, now time.Time) {
	delete(s.queues, q.key)
	if s.rooms[q.key.room]--; s.rooms[q.key.room] == 0 {
		delete(s.rooms, q.key.room)
		s.emptied = append(s.emptied, q.key.room)
	}
	ep := q.ep
	if i := slices.Index(ep.queues, q); i >= 0 {
		ep.queues = slices.Delete(ep.queues, i, i+1)
		if ep.next > i {
			ep.next--
		}
	}
	if len(ep.queues) > 0 || ep.inFlight > 0 {
		return
	}
	ep.idleSince, ep.next = now, 0
	if i := slices.Index(s.ring, ep); i >= 0 {
		s.ring = slices.Delete(s.ring, i, i+1)
		if s.turn > i {
			s.turn--
		}
	}
}

// takeEmptied returns the rooms left without queues since the last call.
func (s *scheduler) takeEmptied() []string {
	e := s.emptied
	s.emptied = nil
	return e
}

// drop forgets the queues of rooms whose claims this node lost. Those with
// an attempt in flight go when it ends, whatever its result.
func (s *scheduler) drop(rooms map[string]bool, now time.Time) {
	for _, q := range s.queues {
		if !rooms[q.key.room] {
			continue
		}
		if q.busy {
			q.dropped, q.stale = true, false
		} else {
			s.remove(q, now)
		}
	}
}

// dispatch starts every attempt the pools and the endpoints' states allow,
// the endpoints taking one attempt each per round, then their queues in
// turn, so that no endpoint or room is passed over.
func (s *scheduler) dispatch(now time.Time, start func(*flight)) {
	for progress := true; progress; {
		progress = false
		n := len(s.ring)
		last := -1
		for i := range n {
			if s.answering >= s.cfg.MaxConcurrent && s.probing >= s.cfg.MaxProbing {
				break
			}
			j := (s.turn + i) % n
			q := s.nextQueue(s.ring[j], now)
			if q == nil {
				continue
			}
			f := &flight{q: q, started: now, probe: q.ep.state != answering}
			if f.probe {
				s.probing++
			} else {
				s.answering++
			}
			q.busy, q.stale = true, false
			q.ep.inFlight++
			s.flights[q.key] = f
			start(f)
			progress, last = true, j
		}
		if last >= 0 {
			s.turn = (last + 1) % n
		}
	}
}

// nextQueue returns the queue ep is to try next, or nil if its state, the
// pools or its queues allow no attempt now.
func (s *scheduler) nextQueue(ep *endpoint, now time.Time) *queue {
	if !s.mayStart(ep, now) {
		return nil
	}
	n := len(ep.queues)
	for i := range n {
		j := (ep.next + i) % n
		q := ep.queues[j]
		if !q.busy && q.head != nil && !q.retryAt.After(now) {
			ep.next = (j + 1) % n
			return q
		}
	}
	return nil
}

// mayStart reports whether ep's state and its pool allow it an attempt now.
func (s *scheduler) mayStart(ep *endpoint, now time.Time) bool {
	if ep.state == answering {
		return ep.inFlight < s.cfg.MaxPerEndpoint && s.answering < s.cfg.MaxConcurrent
	}
	return ep.inFlight == 0 && !ep.retryAt.After(now) && s.probing < s.cfg.MaxProbing
}

// stallOverdue deals with the attempts that have waited StallAfter without
// a response: it marks their endpoints silent, moves those of the
// answering pool to the probing pool or cuts them short when it is full,
// and cuts short the oldest overdue probes while other endpoints wait for
// a probing slot.
func (s *scheduler) stallOverdue(now time.Time) {
	var overdueProbes []*flight
	for _, f := range s.flights {
		if f.cut || now.Sub(f.started) < s.cfg.StallAfter {
			continue
		}
		f.q.ep.state = silent
		switch {
		case f.probe:
			overdueProbes = append(overdueProbes, f)
		case s.probing < s.cfg.MaxProbing:
			f.probe = true
			s.answering--
			s.probing++
		default:
			f.cut = true
			f.cancel()
		}
	}
	if len(overdueProbes) == 0 {
		return
	}
	waiting := 0
	for _, ep := range s.ring {
		if ep.state != answering && ep.inFlight == 0 && !ep.retryAt.After(now) && s.hasReady(ep, now) {
			waiting++
		}
	}
	// Slots that are free or already being freed serve waiters first.
	waiting -= s.cfg.MaxProbing - s.probing
	for _, f := range s.flights {
		if f.probe && f.cut {
			waiting--
		}
	}
	if waiting <= 0 {
		return
	}
	slices.SortFunc(overdueProbes, func(a, b *flight) int { return a.started.Compare(b.started) })
	for _, f := range overdueProbes[:min(waiting, len(overdueProbes))] {
		f.cut = true
		f.cancel()
	}
}

// hasReady reports whether one of ep's queues has a head to try now.
func (s *scheduler) hasReady(ep *endpoint, now time.Time) bool {
	return slices.ContainsFunc(ep.queues, func(q *queue) bool {
		return !q.busy && q.head != nil && !q.retryAt.After(now)
	})
}

// wake returns when the scheduler next has something to do without a
// result or a notification: a backoff ends, or an attempt is due to
// stall. Zero means never.
func (s *scheduler) wake(now time.Time) time.Time {
	var wake time.Time
	earliest := func(t time.Time) {
		if t.After(now) && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	for _, q := range s.queues {
		if !q.busy && q.head != nil {
			earliest(q.retryAt)
		}
	}
	for _, ep := range s.ring {
		if ep.state == silent && ep.inFlight == 0 {
			earliest(ep.retryAt)
		}
	}
	for _, f := range s.flights {
		if !f.cut {
			earliest(f.started.Add(s.cfg.StallAfter))
		}
	}
	return wake
}

// reach is what an attempt learnt of its endpoint.
type reach int

const (
	reachNothing  reach = iota // no request made: shutdown, a refused address, a bad record
	reachAnswered              // a response, whatever its status
	reachSilent                // no response: a timeout, a refused or reset connection
)

// finish records an attempt's result. It reports whether the outbox must
// be read again.
func (s *scheduler) finish(r result, now time.Time, retryWait func(*recordpb.WebhookEvent, int) time.Duration) (rescan bool) {
	f := s.flights[r.key]
	delete(s.flights, r.key)
	f.cancel()
	q, ep := f.q, f.q.ep
	if f.probe {
		s.probing--
	} else {
		s.answering--
	}
	ep.inFlight--
	q.busy = false
	switch r.reach {
	case reachAnswered:
		ep.state, ep.failures, ep.retryAt = answering, 0, time.Time{}
	case reachSilent:
		ep.state = silent
		ep.failures++
		ep.retryAt = now.Add(backoff(s.cfg, ep.failures))
	}
	switch {
	case q.dropped:
		s.remove(q, now)
		// Read while busy: its room was claimed again since.
		return q.stale
	case r.storeErr:
		q.head = nil
		return true
	case r.retry:
		q.head, q.attempts = r.head, r.attempts
		q.retryAt = now.Add(retryWait(r.head, r.attempts))
	case r.head != nil:
		q.head, q.attempts, q.retryAt = r.head, 0, time.Time{}
	default:
		s.remove(q, now)
		// A delivery queued while the worker read may have been
		// announced then, and missed by both reads.
		return q.stale
	}
	return false
}

// backoff is the wait after the n-th failure in a row, doubling from
// InitialBackoff up to MaxBackoff, jittered to between half and all of it
// so that what failed together does not retry together.
func backoff(cfg *Config, n int) time.Duration {
	wait := cfg.InitialBackoff
	for i := 1; i < n && wait < cfg.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, cfg.MaxBackoff)
	return wait/2 + rand.N(wait/2+1)
}
