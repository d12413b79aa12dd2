package persistence

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// The webhook outbox: Apply queues deliveries (Writes.Events) in the batch of
// the change they report; the deliverer reads the head of each queue, and
// acknowledges or fails it. A queue is one room's deliveries to one
// endpoint, so a dead endpoint holds up only its own queues.

// OutboxHeads returns the oldest pending delivery of every queue, in key
// order. It seeks from queue to queue, so its cost grows with the number of
// queues, not of pending deliveries.
func (s *Store) OutboxHeads(ctx context.Context) ([]*recordpb.WebhookEvent, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := []byte(prefixOutbox)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("persistence: read outbox: %w", err)
	}
	defer it.Close()
	var heads []*recordpb.WebhookEvent
	for valid := it.First(); valid; {
		key := it.Key()
		queue, seq, err := outboxKeyParts(key)
		if err != nil {
			return nil, corrupt(KindOutbox, key, err)
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("persistence: read outbox: %w", err)
		}
		e, err := decodeOutboxEntry(key, seq, val)
		if err != nil {
			return nil, err
		}
		heads = append(heads, e)
		if len(heads)%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		valid = it.SeekGE(prefixEnd(queue))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("persistence: read outbox: %w", err)
	}
	return heads, nil
}

// OutboxHead returns the oldest pending delivery from a room to an
// endpoint, or ErrNotFound if that queue is empty.
func (s *Store) OutboxHead(ctx context.Context, roomID, endpoint string) (*recordpb.WebhookEvent, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := outboxQueuePrefix(roomID, endpoint)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("persistence: read outbox: %w", err)
	}
	defer it.Close()
	if !it.First() {
		if err := it.Error(); err != nil {
			return nil, fmt.Errorf("persistence: read outbox: %w", err)
		}
		return nil, ErrNotFound
	}
	_, seq, err := outboxKeyParts(it.Key())
	if err != nil {
		return nil, corrupt(KindOutbox, it.Key(), err)
	}
	val, err := it.ValueAndErr()
	if err != nil {
		return nil, fmt.Errorf("persistence: read outbox: %w", err)
	}
	return decodeOutboxEntry(it.Key(), seq, val)
}

func decodeOutboxEntry(key []byte, seq uint64, val []byte) (*recordpb.WebhookEvent, error) {
	e, err := decodeWebhookEvent(val)
	if err != nil {
		return nil, corrupt(KindOutbox, key, err)
	}
	if e.Seq != seq {
		return nil, corrupt(KindOutbox, key, fmt.Errorf("holds sequence number %d", e.Seq))
	}
	return e, nil
}

// AckWebhookEvent removes a delivered event from the outbox. It returns
// ErrNotFound if the event is no longer pending. The removal is not synced:
// a crash may lose it, and the event is then delivered again with the same
// delivery id, which at-least-once delivery allows.
func (s *Store) AckWebhookEvent(ctx context.Context, e *recordpb.WebhookEvent) error {
	return s.settle(ctx, e, nil)
}

// FailWebhookEvent moves an event that could not be delivered from the
// outbox to the failed records, which ListWebhookDeliveries shows. e must
// carry failed_at (and should carry the attempt fields); its secret is not
// kept. Like AckWebhookEvent it returns ErrNotFound if the event is no
// longer pending, and is not synced.
func (s *Store) FailWebhookEvent(ctx context.Context, e *recordpb.WebhookEvent) error {
	failed, val, err := FailedRecord(e)
	if err != nil {
		return err
	}
	return s.settle(ctx, e, &keyValue{failedKey(failed, e.Id), val})
}

// settle removes e from the outbox and, when failed is set, writes it.
func (s *Store) settle(ctx context.Context, e *recordpb.WebhookEvent, failed *keyValue) error {
	if e.GetRoomId() == "" || e.Endpoint == "" || e.Id == "" {
		return fmt.Errorf("%w: webhook event without id, room or endpoint", ErrInvalid)
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	// The room's outbox lock makes the check and the removal one step, so
	// that the pending count stays exact.
	unlock := s.locks.lock(outboxLock(e.RoomId))
	defer unlock()
	key := outboxKey(e.RoomId, e.Endpoint, e.Seq)
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("%w: webhook event %q is not pending", ErrNotFound, e.Id)
	}
	if err != nil {
		return fmt.Errorf("persistence: read outbox: %w", err)
	}
	stored, err := decodeWebhookEvent(v)
	closer.Close()
	if err == nil && stored.Id != e.Id {
		return fmt.Errorf("%w: webhook event %q is not pending", ErrNotFound, e.Id)
	}
	// An unreadable entry is removed all the same: the deliverer that read
	// it to settle it had a good copy.
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Delete(key, nil); err != nil {
		return fmt.Errorf("persistence: settle webhook event %q: %w", e.Id, err)
	}
	if failed != nil {
		if err := b.Set(failed.key, failed.val, nil); err != nil {
			return fmt.Errorf("persistence: settle webhook event %q: %w", e.Id, err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("persistence: settle webhook event %q: %w", e.Id, err)
	}
	if failed != nil {
		s.webhookCounts.add(-1, 1)
	} else {
		s.webhookCounts.add(-1, 0)
	}
	return nil
}

// DeliveryStatus selects the webhook deliveries ListWebhookDeliveries
// returns.
type DeliveryStatus int

const (
	// DeliveryPending selects deliveries still in the outbox.
	DeliveryPending DeliveryStatus = iota + 1
	// DeliveryFailed selects deliveries given up after their max age.
	DeliveryFailed
)

// DeliveryQuery selects a page of webhook deliveries.
type DeliveryQuery struct {
	// Status is required.
	Status DeliveryStatus
	// Limit is the most deliveries to return; zero or less means no limit.
	Limit int
	// Offset is how many deliveries to skip; less than zero means zero.
	Offset int
}

// DeliveryPage is one page of webhook deliveries.
type DeliveryPage struct {
	// Deliveries: pending ones grouped by queue (room, then endpoint) and
	// in delivery order within a queue; failed ones newest failure first,
	// then by id. Failed records carry no secret.
	Deliveries []*recordpb.WebhookEvent
	// Total is the number of deliveries with the status.
	Total int
}

// ListWebhookDeliveries returns a page of pending or failed deliveries, read
// from one consistent snapshot; Total comes from in-memory counts.
func (s *Store) ListWebhookDeliveries(ctx context.Context, q DeliveryQuery) (DeliveryPage, error) {
	var prefix []byte
	var kind KeyKind
	switch q.Status {
	case DeliveryPending:
		prefix, kind = []byte(prefixOutbox), KindOutbox
	case DeliveryFailed:
		prefix, kind = []byte(prefixWebhookFailed), KindFailed
	default:
		return DeliveryPage{}, fmt.Errorf("%w: delivery status %d", ErrInvalid, q.Status)
	}
	if err := s.enter(ctx); err != nil {
		return DeliveryPage{}, err
	}
	defer s.leave()
	pending, failed := s.webhookCounts.get()
	page := DeliveryPage{Total: pending}
	if q.Status == DeliveryFailed {
		page.Total = failed
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	err := scanPage(ctx, snap, prefix, q.Offset, q.Limit, func(key, val []byte) error {
		e, err := decodeWebhookEvent(val)
		if err != nil {
			return corrupt(kind, key, err)
		}
		page.Deliveries = append(page.Deliveries, e)
		return nil
	})
	if err != nil {
		return DeliveryPage{}, fmt.Errorf("persistence: list webhook deliveries: %w", err)
	}
	return page, nil
}

// WebhookBacklog returns how many deliveries are pending in the outbox and
// how many failed records are kept. It reads in-memory counts only, and
// still answers after Close.
func (s *Store) WebhookBacklog() (pending, failed int) {
	return s.webhookCounts.get()
}

// loadWebhookCounts counts the outbox entries and failed records (keys
// only), and finds the highest outbox sequence number in use.
func (s *Store) loadWebhookCounts() error {
	var pending, failed int
	var maxSeq uint64
	err := s.scanKeys([]byte(prefixOutbox), func(key []byte) error {
		_, seq, err := outboxKeyParts(key)
		if err != nil {
			return corrupt(KindOutbox, key, err)
		}
		maxSeq = max(maxSeq, seq)
		pending++
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence: count webhook outbox: %w", err)
	}
	err = s.scanKeys([]byte(prefixWebhookFailed), func([]byte) error {
		failed++
		return nil
	})
	if err != nil {
		return fmt.Errorf("persistence: count failed webhooks: %w", err)
	}
	s.outboxSeq.Store(maxSeq)
	s.webhookCounts.add(pending, failed)
	return nil
}

// scanKeys calls visit with every key of the prefix's range.
func (s *Store) scanKeys(prefix []byte, visit func(key []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if err := visit(it.Key()); err != nil {
			return err
		}
	}
	return it.Error()
}

// webhookCounts holds the numbers of pending and failed deliveries in
// memory, for listing totals and metrics.
type webhookCounts struct {
	mu      sync.Mutex
	pending int // guarded by mu
	failed  int // guarded by mu
}

func (c *webhookCounts) add(pending, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending += pending
	c.failed += failed
}

func (c *webhookCounts) get() (pending, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending, c.failed
}
