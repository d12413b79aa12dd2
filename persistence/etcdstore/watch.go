package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
)

// Takeover: a node that dies (or is cut off from etcd for longer than its
// lease's TTL) leaves its rooms without an owner once etcd expires its
// lease, which deletes their owner keys. A room with nobody in it can wait
// for its next request, which any node claims; a room with a session in
// progress cannot: its members' records are open and its session's timers
// ran on the lost node. WatchLostRooms finds those rooms and has this node
// try to take each over; the claim's transaction picks one node, whose
// fenced write closes what the lost node left.
//
// A room's owner key deleted by Release (an idle room passivated) goes
// while its lease still lives: the watch leaves it alone. One deleted with
// its lease gone is a lost node's, or a stopping node's (which leaves its
// rooms to its lease's revocation so that they are taken over alike).

// LostRoomsConfig configures WatchLostRooms. Its zero value is valid.
type LostRoomsConfig struct {
	// Jitter: a room found lost is first tried after a random time below
	// Jitter (from when it was found), so that the nodes watching do not
	// all reach etcd for it at the same instant (one claim wins either
	// way), and the rooms of a lost node spread over the nodes. Zero means
	// 200ms.
	Jitter time.Duration
	// Workers is how many rooms the node takes over at once. Zero means 8.
	Workers int
	// Attempts bounds the attempts at one room whose takeover fails (etcd
	// unreachable, the room's record unreadable). Zero means 5.
	Attempts int
	// RetryPause is the wait before another attempt at a room, and before
	// the watch starts again after etcd ended it. Zero means 1s.
	RetryPause time.Duration
}

const (
	defaultTakeoverJitter   = 200 * time.Millisecond
	defaultTakeoverWorkers  = 8
	defaultTakeoverAttempts = 5
	defaultTakeoverPause    = time.Second
	// lookupTimeout bounds each read the watch makes, so that an etcd
	// that stops answering (paused, cut off) ends in a fresh scan once it
	// answers again rather than in a read that waits for ever.
	lookupTimeout = 10 * time.Second
)

// WatchLostRooms calls takeOver for every room that has a session in
// progress and no owner: first those it finds now (a cluster started again
// after every node stopped, or a node lost while no node watched), then
// each whose owner key goes with its node's lease, until ctx ends or the
// Store closes; it returns ctx's error or persistence.ErrClosed. For each
// room it waits for this node to hold a lease, checks that the room still
// has no owner and still a session in progress, and claims it; if this
// node won it, takeOver starts it here. takeOver returns nil once the room
// is served; an error is retried after cfg.RetryPause, up to cfg.Attempts.
//
// The watch starts again, from a fresh scan, whenever etcd ends it (its
// revision compacted, the member lost its leader, etcd unreachable for a
// while), so no lost room is missed.
func (s *Store) WatchLostRooms(ctx context.Context, cfg LostRoomsConfig, takeOver func(ctx context.Context, roomID string) error) error {
	if s.node == "" {
		return ErrNotNode
	}
	if cfg.Jitter < 0 || cfg.Workers < 0 || cfg.Attempts < 0 || cfg.RetryPause < 0 {
		return fmt.Errorf("%w: negative value in etcdstore.LostRoomsConfig", persistence.ErrInvalid)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.bg, cancel) // Close ends the watch
	defer stop()
	w := &lostRooms{s: s, takeOver: takeOver, ready: make(chan struct{}, 1), queued: make(map[string]bool),
		jitter:   cmp(cfg.Jitter, defaultTakeoverJitter),
		attempts: cmp(cfg.Attempts, defaultTakeoverAttempts),
		pause:    cmp(cfg.RetryPause, defaultTakeoverPause),
	}
	var wg sync.WaitGroup
	for range cmp(cfg.Workers, defaultTakeoverWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.work(ctx)
		}()
	}
	w.watch(ctx)
	cancel()
	wg.Wait()
	if s.bg.Err() != nil {
		return persistence.ErrClosed
	}
	return parent.Err()
}

// lostRooms is one run of WatchLostRooms: the watch feeds the queue, the
// workers drain it.
type lostRooms struct {
	s        *Store
	takeOver func(ctx context.Context, roomID string) error
	jitter   time.Duration
	attempts int
	pause    time.Duration

	ready  chan struct{} // a room was queued
	mu     sync.Mutex
	queued map[string]bool // guarded by mu: queued or being taken over
	order  []lostRoom      // guarded by mu: the queue
}

// lostRoom is a room in the queue, with the time of its first attempt:
// its jitter runs from when it was found, so that the rooms of one lost
// node, found together, wait it out together rather than one after another.
type lostRoom struct {
	id  string
	due time.Time
}

// add queues rooms not queued already.
func (w *lostRooms) add(ids ...string) {
	now := time.Now()
	w.mu.Lock()
	for _, id := range ids {
		if !w.queued[id] {
			w.queued[id] = true
			w.order = append(w.order, lostRoom{id: id, due: now.Add(rand.N(w.jitter))})
		}
	}
	w.mu.Unlock()
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

func (w *lostRooms) next() (lostRoom, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.order) == 0 {
		return lostRoom{}, false
	}
	r := w.order[0]
	w.order = w.order[1:]
	if len(w.order) > 0 {
		select { // another worker may take the next one
		case w.ready <- struct{}{}:
		default:
		}
	}
	return r, true
}

func (w *lostRooms) done(id string) {
	w.mu.Lock()
	delete(w.queued, id)
	w.mu.Unlock()
}

// watch scans for lost rooms, then follows the owner keys from the scan's
// revision, and starts again after a pause whenever the watch ends, until
// ctx does.
func (w *lostRooms) watch(ctx context.Context) {
	for ctx.Err() == nil {
		rev, ids, err := w.s.scanLostRooms(ctx)
		if err == nil {
			w.add(ids...)
			err = w.follow(ctx, rev)
		}
		if ctx.Err() != nil || w.s.bg.Err() != nil {
			return // ended, or the Store closed (its cancel of ctx may trail)
		}
		w.s.log.Warn("watch of lost rooms ended; scanning again", "err", err)
		if !w.wait(ctx, w.pause) {
			return
		}
	}
}

// wait pauses for d, or less if ctx ends; it returns false if it did.
func (w *lostRooms) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// follow queues the rooms whose owner keys go with their lease, from
// revision rev+1 until the watch or ctx ends, and returns why.
func (w *lostRooms) follow(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	prefix := w.s.k.p + prefixOwner
	ch := w.s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1),
		clientv3.WithFilterPut(), clientv3.WithPrevKV())
	for resp := range ch {
		if err := resp.Err(); err != nil {
			return err
		}
		// A lease's keys go in one revision: each lease is looked up once
		// per revision.
		type leaseAt struct{ lease, rev int64 }
		gone := map[leaseAt]bool{}
		var lost []string
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypeDelete {
				continue
			}
			id, ok := strings.CutPrefix(string(ev.Kv.Key), prefix)
			if !ok || id == "" {
				continue
			}
			if ev.PrevKv == nil {
				lost = append(lost, id) // no way to tell: the worker's check decides
				continue
			}
			at := leaseAt{ev.PrevKv.Lease, ev.Kv.ModRevision}
			dead, seen := gone[at]
			if !seen {
				var err error
				if dead, err = w.s.leaseGoneAt(ctx, at.lease, at.rev); err != nil {
					return err
				}
				gone[at] = dead
			}
			if dead {
				lost = append(lost, id)
			}
		}
		if len(lost) > 0 {
			w.s.log.Info("rooms lost with their node's lease", "rooms", len(lost))
			w.add(lost...)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errWatchClosed
}

// work takes queued rooms over until ctx ends.
func (w *lostRooms) work(ctx context.Context) {
	for {
		r, ok := w.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-w.ready:
				continue
			}
		}
		w.room(ctx, r)
		w.done(r.id)
		if ctx.Err() != nil {
			return
		}
	}
}

// room makes the attempts at one lost room, the first once it is due.
func (w *lostRooms) room(ctx context.Context, r lostRoom) {
	id := r.id
	if !w.wait(ctx, time.Until(r.due)) {
		return
	}
	claimed := false
	for attempt := 1; ; attempt++ {
		if _, err := w.s.waitLease(ctx); err != nil {
			return
		}
		var err error
		if !claimed {
			if claimed, err = w.claim(ctx, id); err == nil && !claimed {
				return // another node took it, or it has nothing to take over
			}
		}
		if claimed {
			w.s.log.Info("taking over a room of a lost node", "room", id, "node", w.s.node)
			if err = w.takeOver(ctx, id); err == nil {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if attempt >= w.attempts {
			w.s.log.Error("gave up taking over a room of a lost node; its next request will", "room", id, "attempts", attempt, "err", err)
			return
		}
		w.s.log.Warn("take over a room of a lost node", "room", id, "attempt", attempt, "err", err)
		if !w.wait(ctx, w.pause+rand.N(w.jitter)) {
			return
		}
	}
}

// claim makes this node the owner of lost room id, if it is still lost:
// the claim's transaction picks one of the nodes that try. It is made here,
// not left to takeOver, so that the room is this node's to start: a claim
// through placement could hand it to a node that knows nothing of it.
func (w *lostRooms) claim(ctx context.Context, id string) (bool, error) {
	lost, err := w.s.roomLost(ctx, id)
	if err != nil || !lost {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	err = w.s.Claim(ctx, id)
	var ne *NotOwnerError
	switch {
	case errors.As(err, &ne) && ne.Owner != w.s.node:
		return false, nil // another node won
	case err != nil:
		return false, err // no lease, or one lost and not yet expired: later
	}
	return true, nil
}

// enterLookup starts one of the watch's reads, bounded by lookupTimeout;
// on success the caller calls done when it has finished.
func (s *Store) enterLookup(ctx context.Context) (_ context.Context, done func(), _ error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	if err := s.enter(ctx); err != nil {
		cancel()
		return nil, nil, err
	}
	return ctx, func() { s.leave(); cancel() }, nil
}

// scanLostRooms returns the rooms that have a session in progress and no
// owner, and the revision from which a watch of the owner keys misses
// none that lose their owner later.
func (s *Store) scanLostRooms(ctx context.Context) (int64, []string, error) {
	lctx, done, err := s.enterLookup(ctx)
	if err != nil {
		return 0, nil, err
	}
	resp, err := s.cli.Get(lctx, s.k.p+prefixOwner, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	done()
	if err != nil {
		return 0, nil, fmt.Errorf("etcdstore: read room owners: %w", err)
	}
	owned := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		owned[strings.TrimPrefix(string(kv.Key), s.k.p+prefixOwner)] = true
	}
	// Read after the owners: a room that loses its owner in between is in
	// the watch from the owners' revision on.
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	sessions, err := s.InProgressSessions(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("etcdstore: find sessions in progress: %w", err)
	}
	var lost []string
	for _, ses := range sessions {
		if !owned[ses.RoomId] {
			owned[ses.RoomId] = true // once
			lost = append(lost, ses.RoomId)
		}
	}
	return resp.Header.Revision, lost, nil
}

// roomLost reports whether room id has no owner and a session in progress,
// read at one revision.
func (s *Store) roomLost(ctx context.Context, id string) (bool, error) {
	ctx, done, err := s.enterLookup(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.owner(id), clientv3.WithCountOnly()),
		clientv3.OpGet(s.k.room(id)),
	).Commit()
	if err != nil {
		return false, fmt.Errorf("etcdstore: read owner and room %q: %w", id, err)
	}
	if resp.Responses[0].GetResponseRange().Count > 0 {
		return false, nil
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return false, nil // deleted
	}
	r, err := roomRecords.decodeKV(kvs[0], id)
	if err != nil {
		return false, err
	}
	return r.ActiveSessionId != "", nil
}

// leaseGoneAt reports whether lease id had ended by revision rev, the
// revision that deleted one of its owner keys: whether the key went with
// the lease or was released by its live node. Asking etcd about the lease
// now would not tell: a node may release a room and then die. The lease's
// own key answers, read as of rev; where that revision is compacted away,
// or the lease has no such key, the lease's state now decides.
func (s *Store) leaseGoneAt(ctx context.Context, id, rev int64) (bool, error) {
	key := s.k.lease(id)
	alive, err := s.getAt(ctx, key, rev)
	switch {
	case err == nil && alive:
		return false, nil
	case err == nil && rev > 1:
		// Gone by rev: rev took it if it was there just before.
		var before bool
		if before, err = s.getAt(ctx, key, rev-1); err == nil && before {
			return true, nil
		}
	}
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return false, err
	}
	return s.leaseGone(ctx, id)
}

// getAt reports whether key existed at revision rev.
func (s *Store) getAt(ctx context.Context, key string, rev int64) (bool, error) {
	lctx, done, err := s.enterLookup(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	resp, err := s.cli.Get(lctx, key, clientv3.WithRev(rev), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("etcdstore: read %s at revision %d: %w", key, rev, err)
	}
	return resp.Count > 0, nil
}

// leaseGone reports whether etcd no longer holds lease id: it expired or
// was revoked.
func (s *Store) leaseGone(ctx context.Context, id int64) (bool, error) {
	ctx, done, err := s.enterLookup(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	resp, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(id))
	switch {
	case errors.Is(err, errLeaseNotFound):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("etcdstore: look up lease %x: %w", id, err)
	}
	return resp.TTL < 0, nil // -1: no such lease
}
