package etcdstore

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// outboxPage is how many outbox keys OutboxHeads reads at a time.
const outboxPage = 256

// OutboxHeads returns the oldest pending delivery of every queue, in key
// order, all read at one revision. It reads the outbox's keys (not their
// values) a page at a time, keeps the first key of each queue, and skips
// the rest of the queue a page ends in; then it reads the heads' values.
// So many short queues cost a read per page, not per queue, and a long one
// a page at most.
func (s *Store) OutboxHeads(ctx context.Context) ([]*recordpb.WebhookEvent, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := s.k.p + prefixOutbox
	end := clientv3.GetPrefixRangeEnd(prefix)
	var keys []string
	var rev int64
	for from, last := prefix, ""; ; {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(outboxPage),
			clientv3.WithKeysOnly(), clientv3.WithRev(rev))
		if err != nil {
			return nil, fmt.Errorf("etcdstore: read outbox: %w", err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			queue, _, err := s.k.outboxParts(string(kv.Key))
			if err != nil {
				return nil, &persistence.CorruptError{Kind: persistence.KindOutbox, Key: string(kv.Key), Err: err}
			}
			if queue != last {
				keys, last = append(keys, string(kv.Key)), queue
			}
		}
		if !resp.More {
			break
		}
		from = clientv3.GetPrefixRangeEnd(last)
	}
	found, _, err := s.getMany(ctx, rev, keys)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: read outbox: %w", err)
	}
	heads := make([]*recordpb.WebhookEvent, 0, len(keys))
	for _, k := range keys {
		kv := found[k]
		if kv == nil {
			// Read at the revision its key was read at: not to be.
			return nil, fmt.Errorf("etcdstore: read outbox: %q missing at revision %d", k, rev)
		}
		e, _, err := s.decodeOutbox(kv)
		if err != nil {
			return nil, err
		}
		heads = append(heads, e)
	}
	return heads, nil
}

// OutboxHead returns the oldest pending delivery from a room to an
// endpoint, or persistence.ErrNotFound if that queue is empty.
func (s *Store) OutboxHead(ctx context.Context, roomID, endpoint string) (*recordpb.WebhookEvent, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	resp, err := s.cli.Get(ctx, s.k.queue(roomID, endpoint), clientv3.WithPrefix(), clientv3.WithLimit(1))
	if err != nil {
		return nil, fmt.Errorf("etcdstore: read outbox: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, persistence.ErrNotFound
	}
	e, _, err := s.decodeOutbox(resp.Kvs[0])
	return e, err
}

// decodeOutbox decodes an outbox entry and returns it with its queue's
// prefix.
func (s *Store) decodeOutbox(kv *mvccpb.KeyValue) (*recordpb.WebhookEvent, string, error) {
	key := string(kv.Key)
	queue, seq, err := s.k.outboxParts(key)
	if err != nil {
		return nil, "", &persistence.CorruptError{Kind: persistence.KindOutbox, Key: key, Err: err}
	}
	e, err := persistence.DecodeWebhookEvent(kv.Value)
	if err == nil && e.Seq != seq {
		err = fmt.Errorf("holds sequence number %d", e.Seq)
	}
	if err != nil {
		return nil, "", &persistence.CorruptError{Kind: persistence.KindOutbox, Key: key, Err: err}
	}
	return e, queue, nil
}

// AckWebhookEvent removes a delivered event from the outbox, or returns
// persistence.ErrNotFound if it is not pending. A cluster node removes it
// only while it holds the room's delivery claim, or returns ErrNotClaimed.
func (s *Store) AckWebhookEvent(ctx context.Context, e *recordpb.WebhookEvent) error {
	return s.settle(ctx, e, nil)
}

// FailWebhookEvent moves an event given up on from the outbox to the failed
// records, in one transaction, fenced as AckWebhookEvent is.
func (s *Store) FailWebhookEvent(ctx context.Context, e *recordpb.WebhookEvent) error {
	if err := checkSettled(e); err != nil {
		return err
	}
	failedAt, val, err := persistence.FailedRecord(e)
	if err != nil {
		return err
	}
	return s.settle(ctx, e, &keyVal{s.k.failed(failedAt, e.Id), string(val)})
}

func checkSettled(e *recordpb.WebhookEvent) error {
	if e.GetRoomId() == "" || e.Endpoint == "" || e.Id == "" {
		return fmt.Errorf("%w: webhook event without id, room or endpoint", persistence.ErrInvalid)
	}
	return nil
}

// settle removes e from the outbox and, when failed is set, writes it, on
// condition that the entry read is still there: a concurrent settle of the
// same event leaves this one ErrNotFound. A cluster node settles only while
// it holds the room's delivery claim (see delivery.go), or returns
// ErrNotClaimed.
func (s *Store) settle(ctx context.Context, e *recordpb.WebhookEvent, failed *keyVal) error {
	if err := checkSettled(e); err != nil {
		return err
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	claim := s.k.deliveryClaim(e.RoomId)
	var fence []clientv3.Cmp
	var l *Lease
	if s.node != "" {
		var err error
		if l, err = s.liveLease(); err != nil {
			return fmt.Errorf("%w: %w", ErrNotClaimed, err)
		}
		fence = s.owns(claim, l)
	}
	key := s.k.outbox(e.RoomId, e.Endpoint, e.Seq)
	notPending := fmt.Errorf("%w: webhook event %q is not pending", persistence.ErrNotFound, e.Id)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("etcdstore: read outbox: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return notPending
	}
	// An unreadable entry is removed all the same: the deliverer that read
	// it to settle it had a good copy.
	if stored, err := persistence.DecodeWebhookEvent(resp.Kvs[0].Value); err == nil && stored.Id != e.Id {
		return notPending
	}
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	if failed != nil {
		ops = append(ops, clientv3.OpPut(failed.key, failed.val, clientv3.WithPrevKV()))
	}
	txn, err := s.cli.Txn(ctx).
		If(append(fence, clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision))...).
		Then(ops...).
		Else(clientv3.OpGet(claim)).
		Commit()
	if err != nil {
		return fmt.Errorf("etcdstore: settle webhook event %q: %w", e.Id, err)
	}
	if !txn.Succeeded {
		if kvs := txn.Responses[0].GetResponseRange().Kvs; l != nil && (len(kvs) == 0 || !s.holds(kvs[0], l)) {
			return fmt.Errorf("%w: room %q, webhook event %q", ErrNotClaimed, e.RoomId, e.Id)
		}
		return notPending
	}
	newFailed := 0
	if failed != nil && txn.Responses[1].GetResponsePut().PrevKv == nil {
		newFailed = 1 // not a failed record written again
	}
	s.backlog.wrote(txn.Header.Revision, -1, newFailed)
	return nil
}

// ListWebhookDeliveries returns a page of pending or failed deliveries, with
// Total counted by etcd in the same read.
func (s *Store) ListWebhookDeliveries(ctx context.Context, q persistence.DeliveryQuery) (persistence.DeliveryPage, error) {
	var prefix string
	var kind persistence.KeyKind
	switch q.Status {
	case persistence.DeliveryPending:
		prefix, kind = s.k.p+prefixOutbox, persistence.KindOutbox
	case persistence.DeliveryFailed:
		prefix, kind = s.k.p+prefixFailed, persistence.KindFailed
	default:
		return persistence.DeliveryPage{}, fmt.Errorf("%w: delivery status %d", persistence.ErrInvalid, q.Status)
	}
	if err := s.enter(ctx); err != nil {
		return persistence.DeliveryPage{}, err
	}
	defer s.leave()
	kvs, total, err := s.rangePage(ctx, prefix, q.Offset, q.Limit)
	if err != nil {
		return persistence.DeliveryPage{}, fmt.Errorf("etcdstore: list webhook deliveries: %w", err)
	}
	page := persistence.DeliveryPage{Total: total}
	for _, kv := range kvs {
		e, err := persistence.DecodeWebhookEvent(kv.Value)
		if err != nil {
			return persistence.DeliveryPage{}, &persistence.CorruptError{Kind: kind, Key: string(kv.Key), Err: err}
		}
		page.Deliveries = append(page.Deliveries, e)
	}
	return page, nil
}
