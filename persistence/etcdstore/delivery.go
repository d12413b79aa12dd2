package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
)

// Delivery claims: every node of a cluster reads the one webhook outbox, and
// one node at a time delivers a room's queues: the node whose id the room's
// delivery claim holds, under that node's lease. A claim is created only if
// absent, by whichever node finds the room's queues unclaimed: in the normal
// case the room's owner, which is told of the events it queues; for a room
// that stopped or whose owner died, any node. It goes when the node has
// emptied the room's queues (Release), or with the node's lease, so that a
// dead node's queues are taken up by another node where the outbox says:
// the nodes watch the claims and the node records, and look again when a
// claim they were refused goes or a node leaves (see Freed). A
// node's AckWebhookEvent and FailWebhookEvent are fenced on the claim: a
// node that lost it settles nothing, and the next holder finds the head as
// it was.

// prefixDeliveryClaim holds the claims: P hookclaim/<room id>, the node id
// under its lease.
const prefixDeliveryClaim = "hookclaim/"

func (k keys) deliveryClaim(room string) string { return k.p + prefixDeliveryClaim + room }

// ErrNotClaimed is returned by a cluster node's AckWebhookEvent and
// FailWebhookEvent for an event of a room whose delivery claim this node
// does not hold under its live lease: it settled nothing.
var ErrNotClaimed = errors.New("etcdstore: webhook deliveries of the room not claimed by this node")

// DeliveryClaims hands out the right to deliver a room's webhook queues to
// one cluster node at a time. Its methods are those webhook.Deliverer calls.
type DeliveryClaims struct {
	s     *Store
	freed chan struct{} // one pending signal; see Freed

	mu sync.Mutex
	// refused: the rooms this node was refused at its last Claim, whose
	// claims going is signalled on freed.
	refused map[string]bool // guarded by mu
	// reading counts the Claims in flight; while there are any, gone keeps
	// the revision at which each room's claim went, so that a claim gone
	// after a Claim's read but seen before it names its refused rooms still
	// counts.
	reading int              // guarded by mu
	gone    map[string]int64 // guarded by mu
}

// DeliveryClaims returns the delivery claims of this cluster node (the Store
// must have a Config.NodeID), and starts the watch that tells it when
// claims go, from etcd's current revision until the Store closes.
func (s *Store) DeliveryClaims(ctx context.Context) (*DeliveryClaims, error) {
	if s.node == "" {
		return nil, ErrNotNode
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	// The watch starts from a revision read now, not from whenever etcd
	// sets it up: every removal after this call is seen.
	resp, err := s.cli.Get(ctx, s.k.layout(), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: read revision: %w", err)
	}
	c := &DeliveryClaims{s: s, freed: make(chan struct{}, 1), gone: make(map[string]int64)}
	s.wg.Add(1)
	go c.watch(resp.Header.Revision + 1)
	return c, nil
}

// Claim returns, of rooms, those whose queues this node is to deliver: the
// rooms whose claims it holds under its live lease, and those no node had
// claimed, which it claims now. lost is closed when these claims are lost:
// they all live under the node's lease, and go with it. A room another node
// holds is left out; Freed tells when that claim goes. It returns
// ErrNoLease when the node holds no lease, and ErrNotNode for a Store
// without a node id.
func (c *DeliveryClaims) Claim(ctx context.Context, rooms []string) (held []string, lost <-chan struct{}, err error) {
	s := c.s
	l, err := s.enterAsNode(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer s.leave()
	c.mu.Lock()
	c.reading++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.reading--; c.reading == 0 {
			clear(c.gone)
		}
		c.mu.Unlock()
	}()

	keys := make([]string, len(rooms))
	for i, r := range rooms {
		if r == "" {
			return nil, nil, fmt.Errorf("%w: delivery claim of an empty room id", persistence.ErrInvalid)
		}
		keys[i] = s.k.deliveryClaim(r)
	}
	found, rev, err := s.getMany(ctx, 0, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("etcdstore: read delivery claims: %w", err)
	}
	var absent []string
	for _, k := range keys {
		if found[k] == nil {
			absent = append(absent, k)
		}
	}
	if err := c.create(ctx, absent, l, found); err != nil {
		return nil, nil, err
	}
	refused := make(map[string]bool)
	for i, r := range rooms {
		if kv := found[keys[i]]; kv != nil && s.holds(kv, l) {
			held = append(held, r)
		} else {
			refused[r] = true
		}
	}
	c.mu.Lock()
	c.refused = refused
	for r := range refused {
		if c.gone[r] > rev {
			c.signal()
			break
		}
	}
	c.mu.Unlock()
	return held, l.Done(), nil
}

// claimBatch is how many claims one transaction creates or releases: each
// is a transaction of its own nested in it, and etcd counts the nested
// operations against its limit of 128 per transaction.
const claimBatch = 32

// create claims for this node, under l, the rooms of keys that no node has
// claimed, each on its own condition, in one transaction per claimBatch;
// it sets found[key] to the claim each room has then, this node's or the
// one another node made first.
func (c *DeliveryClaims) create(ctx context.Context, keys []string, l *Lease, found map[string]*mvccpb.KeyValue) error {
	s := c.s
	for len(keys) > 0 {
		batch := keys[:min(len(keys), claimBatch)]
		keys = keys[len(batch):]
		ops := make([]clientv3.Op, len(batch))
		for i, k := range batch {
			ops[i] = clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)},
				[]clientv3.Op{clientv3.OpPut(k, s.node, clientv3.WithLease(l.id))},
				[]clientv3.Op{clientv3.OpGet(k)})
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		switch {
		case errors.Is(err, errLeaseNotFound):
			return ErrNoLease
		case err != nil:
			return fmt.Errorf("etcdstore: claim deliveries: %w", err)
		}
		for i, k := range batch {
			r := resp.Responses[i].GetResponseTxn()
			if r.Succeeded {
				found[k] = &mvccpb.KeyValue{Key: []byte(k), Value: []byte(s.node), Lease: int64(l.id)}
			} else if kvs := r.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
				found[k] = kvs[0]
			}
		}
	}
	return nil
}

// enterAsNode starts an operation of this cluster node under its live
// lease, which it returns; on success the caller calls s.leave.
func (s *Store) enterAsNode(ctx context.Context) (*Lease, error) {
	if s.node == "" {
		return nil, ErrNotNode
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	l, err := s.liveLease()
	if err != nil {
		s.leave()
		return nil, err
	}
	return l, nil
}

// holds reports whether kv is a claim (or owner key) of this node under l.
func (s *Store) holds(kv *mvccpb.KeyValue, l *Lease) bool {
	return string(kv.Value) == s.node && kv.Lease == int64(l.id)
}

// Release gives up this node's claims on rooms, so that the node that next
// finds events of one of them takes it at once: each on condition that this
// node holds it, in one transaction per claimBatch. A claim this node does
// not hold (anymore) is left as it is.
func (c *DeliveryClaims) Release(ctx context.Context, rooms []string) error {
	s := c.s
	l, err := s.enterAsNode(ctx)
	if errors.Is(err, ErrNoLease) {
		return nil // the claims went with the lease
	}
	if err != nil {
		return err
	}
	defer s.leave()
	for len(rooms) > 0 {
		batch := rooms[:min(len(rooms), claimBatch)]
		rooms = rooms[len(batch):]
		ops := make([]clientv3.Op, len(batch))
		for i, r := range batch {
			key := s.k.deliveryClaim(r)
			ops[i] = clientv3.OpTxn(s.owns(key, l), []clientv3.Op{clientv3.OpDelete(key)}, nil)
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("etcdstore: release deliveries of rooms %q: %w", batch, err)
		}
	}
	return nil
}

// Freed has a value when the claim of a room this node was refused at its
// last Claim has gone (released, or its node's lease ended), or when a node
// left the cluster (its node record went with its lease, and its claims
// with it): time to read the outbox and Claim again. Signals merge while
// one is pending.
func (c *DeliveryClaims) Freed() <-chan struct{} { return c.freed }

func (c *DeliveryClaims) signal() {
	select {
	case c.freed <- struct{}{}:
	default:
	}
}

// claimWatchRetry is the pause before the watch of the claims starts again
// after etcd ended it.
const claimWatchRetry = time.Second

// watch follows the removals of claims and node records from revision next
// until the Store closes, starting again where it stopped when etcd ends
// it.
func (c *DeliveryClaims) watch(next int64) {
	s := c.s
	defer s.wg.Done()
	for {
		var err error
		next, err = c.follow(next)
		if s.bg.Err() != nil {
			return
		}
		s.log.Warn("delivery claim watch ended; watching again", "err", err)
		if !s.pause(s.bg, claimWatchRetry) {
			return
		}
	}
}

// pause waits d, and reports false if ctx ended or the Store closed
// meanwhile.
func (s *Store) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-s.bg.Done():
		return false
	case <-t.C:
		return true
	}
}

// follow watches from revision next until a watch ends, and returns where
// to start again and why it ended. A claim's removal is signalled if its
// room was refused; a node record's always, since the node's claims went
// with it.
func (c *DeliveryClaims) follow(next int64) (int64, error) {
	s := c.s
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.bg))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithRev(next)}
	claimPrefix := s.k.p + prefixDeliveryClaim
	claims := s.cli.Watch(ctx, claimPrefix, opts...)
	nodes := s.cli.Watch(ctx, s.k.nodes(), opts...)
	// Where each watch has got to: they start again from the earlier.
	at := [2]int64{next, next}
	restart := func() int64 { return min(at[0], at[1]) }
	for {
		var resp clientv3.WatchResponse
		var ok bool
		w := 0
		select {
		case resp, ok = <-claims:
		case resp, ok = <-nodes:
			w = 1
		}
		if !ok {
			return restart(), errWatchClosed
		}
		if resp.CompactRevision != 0 {
			// Removals before it are lost to the watch: look again to be
			// sure.
			at[w] = resp.CompactRevision
			c.signal()
		}
		if err := resp.Err(); err != nil {
			return restart(), err
		}
		if w == 1 {
			if len(resp.Events) > 0 {
				c.signal()
			}
		} else {
			c.removed(resp.Events, claimPrefix)
		}
		at[w] = max(at[w], resp.Header.Revision+1)
	}
}

// removed signals the removal of a refused room's claim, and keeps the
// revision of each removal while a Claim reads.
func (c *DeliveryClaims) removed(evs []*clientv3.Event, prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evs {
		room := strings.TrimPrefix(string(ev.Kv.Key), prefix)
		if c.refused[room] {
			// Once per refusal: a holder releasing the room again and
			// again wakes this node only when it was refused again.
			delete(c.refused, room)
			c.signal()
		}
		if c.reading > 0 {
			c.gone[room] = max(c.gone[room], ev.Kv.ModRevision)
		}
	}
}
