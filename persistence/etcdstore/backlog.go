package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WebhookBacklog must answer without I/O, and in a cluster the outbox
// changes under every node: a Store counts the outbox and the failed
// records at New and then follows their range with a watch, so that its
// counts catch up with every node's writes. Its own writes are counted as
// soon as they commit (WebhookBacklog right after an ack shows it), and the
// watch skips the revisions so counted, so that nothing counts twice.
type backlog struct {
	mu      sync.Mutex
	pending int                // guarded by mu
	failed  int                // guarded by mu
	rev     int64              // guarded by mu: every change up to rev is counted
	own     map[int64]struct{} // guarded by mu: own writes after rev, counted already
	// advanced is closed, and replaced, whenever rev grows: what waits for
	// the counts to catch up with a revision waits on it.
	advanced chan struct{} // guarded by mu
}

// setRevLocked moves rev forward and wakes those waiting for it.
func (b *backlog) setRevLocked(rev int64) {
	if rev <= b.rev {
		return
	}
	b.rev = rev
	if b.advanced != nil {
		close(b.advanced)
		b.advanced = nil
	}
}

// caughtUp returns whether the counts include every change up to rev, and
// if not, a channel closed when they have moved on.
func (b *backlog) caughtUp(rev int64) (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rev >= rev {
		return true, nil
	}
	if b.advanced == nil {
		b.advanced = make(chan struct{})
	}
	return false, b.advanced
}

// reset sets the counts read at rev.
func (b *backlog) reset(rev int64, pending, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending, b.failed = pending, failed
	b.setRevLocked(rev)
	// Own writes up to rev are in the counts; the watch from rev+1 will
	// report those after it.
	clear(b.own)
}

// wrote counts a write of this Store committed at rev, unless the watch
// has counted it already.
func (b *backlog) wrote(rev int64, pending, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rev <= b.rev {
		return
	}
	b.pending += pending
	b.failed += failed
	if b.own == nil {
		b.own = make(map[int64]struct{})
	}
	b.own[rev] = struct{}{}
}

// observe counts the changes the watch reports at rev, unless this Store
// made and counted them.
func (b *backlog) observe(rev int64, pending, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.own[rev]; ok {
		delete(b.own, rev)
	} else {
		b.pending += pending
		b.failed += failed
	}
	b.setRevLocked(rev)
}

func (b *backlog) get() (pending, failed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending, b.failed
}

// WebhookBacklog returns how many deliveries are pending and how many
// failed records are kept. It reads in-memory counts, exact for this
// Store's own writes and following other nodes' through a watch; it still
// answers after Close, with the counts at Close.
func (s *Store) WebhookBacklog() (pending, failed int) { return s.backlog.get() }

// countBacklog counts the outbox and the failed records at one revision
// (keys counted by etcd, none transferred) and resets the counts to them.
func (s *Store) countBacklog(ctx context.Context) (int64, error) {
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.k.p+prefixOutbox, clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(s.k.p+prefixFailed, clientv3.WithPrefix(), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("etcdstore: count webhook backlog: %w", err)
	}
	rev := resp.Header.Revision
	s.backlog.reset(rev,
		int(resp.Responses[0].GetResponseRange().Count),
		int(resp.Responses[1].GetResponseRange().Count))
	return rev, nil
}

// backlogRetry is how long the watch waits before counting again after
// etcd failed it: a pause that keeps an unreachable etcd from being polled
// in a tight loop.
const backlogRetry = time.Second

// watchBacklog follows the outbox and the failed records from rev+1 until
// Close. When the watch cannot go on (its revision compacted away, or etcd
// ended it), it counts again and watches from there.
func (s *Store) watchBacklog(rev int64) {
	defer s.wg.Done()
	for {
		err := s.followBacklog(rev)
		if s.bg.Err() != nil {
			return
		}
		s.log.Warn("webhook backlog watch ended; counting again", "err", err)
		for {
			if rev, err = s.countBacklog(s.bg); err == nil {
				break
			}
			if s.bg.Err() != nil {
				return
			}
			s.log.Warn("counting the webhook backlog", "err", err)
			if !s.pause(s.bg, backlogRetry) {
				return
			}
		}
	}
}

var errWatchClosed = errors.New("watch closed")

// followBacklog applies the watch's events to the counts until the watch
// ends, and returns why.
func (s *Store) followBacklog(rev int64) error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.bg))
	defer cancel()
	outbox, failed := s.k.p+prefixOutbox, s.k.p+prefixFailed
	for resp := range s.cli.Watch(ctx, s.k.p+prefixWebhook, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return err
		}
		// One transaction's changes share a revision: they are counted, or
		// skipped as this Store's own, together.
		var at int64
		var dp, df int
		for _, ev := range resp.Events {
			if r := ev.Kv.ModRevision; r != at {
				if at != 0 {
					s.backlog.observe(at, dp, df)
				}
				at, dp, df = r, 0, 0
			}
			d := 0
			switch {
			case ev.Type == clientv3.EventTypeDelete:
				d = -1
			case ev.IsCreate():
				d = 1
			}
			key := string(ev.Kv.Key)
			switch {
			case strings.HasPrefix(key, outbox):
				dp += d
			case strings.HasPrefix(key, failed):
				df += d
			}
		}
		if at != 0 {
			s.backlog.observe(at, dp, df)
		}
	}
	return errWatchClosed
}
