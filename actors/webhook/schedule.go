package webhook

import (
	"context"
	"math/rand/v2"
	"net/url"
	"slices"
	"time"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// How the Deliverer keeps endpoints that do not answer from starving those
// that do. Attempts run in two pools. The active pool (Config.MaxConcurrent)
// is for endpoints that answer, and for the first attempt to one not yet
// heard from. An attempt that gets no response within Config.StallAfter
// leaves the active pool for the stalled pool (Config.MaxStalled), where it
// may wait out its full timeout; its endpoint is then stalled until it
// answers again: one attempt at a time, in the stalled pool only, after an
// endpoint-wide backoff. So a dead endpoint holds an active slot once, for
// StallAfter at most, and a full stalled pool cuts the attempt short (a
// failed attempt, retried) rather than let it keep its active slot. The
// attempts in flight never exceed MaxConcurrent + MaxStalled, whatever the
// number of endpoints.

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
	// The head's failed attempts so far, and when it may be tried again.
	attempts int
	retryAt  time.Time
}

// endpointState is what the scheduler knows of an endpoint's answers.
type endpointState int

const (
	// probing: not heard from yet; one attempt at a time, active pool.
	probing endpointState = iota
	// answering: its last attempt got a response; up to
	// Config.MaxPerEndpoint at a time, active pool.
	answering
	// stalled: its last attempt got no response, or one has waited past
	// StallAfter; one attempt at a time, stalled pool, after retryAt.
	stalled
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
	retryAt  time.Time // when stalled, no attempt before
}

// flight is an attempt in flight.
type flight struct {
	q       *queue
	started time.Time
	stalled bool // counted in the stalled pool, not the active one
	cut     bool // canceled for want of a stalled slot; still counted as active
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
	// Attempts in flight per pool; cut attempts count as active until
	// they end.
	active, stalled int
}

func newScheduler(cfg *Config) *scheduler {
	return &scheduler{
		cfg:       cfg,
		queues:    make(map[queueKey]*queue),
		endpoints: make(map[string]*endpoint),
		flights:   make(map[queueKey]*flight),
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

// merge brings the queues up to date with the outbox's heads. A queue with
// an attempt in flight is left to that attempt's result.
func (s *scheduler) merge(heads []*recordpb.WebhookEvent) {
	seen := make(map[queueKey]bool, len(heads))
	for _, h := range heads {
		k := queueKey{h.RoomId, h.Endpoint}
		seen[k] = true
		q := s.queues[k]
		if q == nil {
			q = &queue{key: k, ep: s.endpoint(origin(h.Endpoint))}
			q.ep.queues = append(q.ep.queues, q)
			s.queues[k] = q
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
			s.remove(q)
		}
	}
}

// endpoint returns the endpoint of origin o, new if unknown.
func (s *scheduler) endpoint(o string) *endpoint {
	ep := s.endpoints[o]
	if ep == nil {
		ep = &endpoint{origin: o}
		s.endpoints[o] = ep
		s.ring = append(s.ring, ep)
	}
	return ep
}

// remove forgets q, and its endpoint once it has no queue left.
func (s *scheduler) remove(q *queue) {
	delete(s.queues, q.key)
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
	delete(s.endpoints, ep.origin)
	if i := slices.Index(s.ring, ep); i >= 0 {
		s.ring = slices.Delete(s.ring, i, i+1)
		if s.turn > i {
			s.turn--
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
			if s.active >= s.cfg.MaxConcurrent && s.stalled >= s.cfg.MaxStalled {
				break
			}
			j := (s.turn + i) % n
			if q := s.nextQueue(s.ring[j], now); q != nil {
				ep := q.ep
				f := &flight{q: q, started: now, stalled: ep.state == stalled}
				if f.stalled {
					s.stalled++
				} else {
					s.active++
				}
				q.busy, q.stale = true, false
				ep.inFlight++
				s.flights[q.key] = f
				start(f)
				progress, last = true, j
			}
		}
		if last >= 0 {
			s.turn = (last + 1) % n
		}
	}
}

// nextQueue returns the queue ep is to try next, or nil if its state, the
// pools or its queues allow no attempt now.
func (s *scheduler) nextQueue(ep *endpoint, now time.Time) *queue {
	switch ep.state {
	case stalled:
		if ep.inFlight > 0 || ep.retryAt.After(now) || s.stalled >= s.cfg.MaxStalled {
			return nil
		}
	case probing:
		if ep.inFlight > 0 || s.active >= s.cfg.MaxConcurrent {
			return nil
		}
	case answering:
		if ep.inFlight >= s.cfg.MaxPerEndpoint || s.active >= s.cfg.MaxConcurrent {
			return nil
		}
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

// stallOverdue moves the active attempts that have waited StallAfter
// without a response to the stalled pool, or cuts them short when it is
// full, and marks their endpoints stalled.
func (s *scheduler) stallOverdue(now time.Time) {
	for _, f := range s.flights {
		if f.stalled || f.cut || now.Sub(f.started) < s.cfg.StallAfter {
			continue
		}
		f.q.ep.state = stalled
		if s.stalled < s.cfg.MaxStalled {
			f.stalled = true
			s.active--
			s.stalled++
			continue
		}
		f.cut = true
		f.cancel()
	}
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
		if ep.state == stalled && ep.inFlight == 0 {
			earliest(ep.retryAt)
		}
	}
	for _, f := range s.flights {
		if !f.stalled && !f.cut {
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
	if f.stalled {
		s.stalled--
	} else {
		s.active--
	}
	ep.inFlight--
	q.busy = false
	switch r.reach {
	case reachAnswered:
		ep.state, ep.failures, ep.retryAt = answering, 0, time.Time{}
	case reachSilent:
		ep.state = stalled
		ep.failures++
		ep.retryAt = now.Add(backoff(s.cfg, ep.failures))
	}
	switch {
	case r.storeErr:
		q.head = nil
		return true
	case r.retry:
		q.head, q.attempts = r.head, r.attempts
		q.retryAt = now.Add(retryWait(r.head, r.attempts))
	case r.head != nil:
		q.head, q.attempts, q.retryAt = r.head, 0, time.Time{}
	default:
		s.remove(q)
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
