package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// IdempotentResponse is the response the HTTP layer sent for a request that
// carried an Idempotency-Key, kept so that a retry gets the same answer.
type IdempotentResponse struct {
	// Fingerprint is a hash of the request (method, path, body) that
	// produced the response, so that a key reused for another request is
	// told apart from a retry.
	Fingerprint string
	Status      int
	ContentType string
	Body        []byte
	// Headers are the response's headers that a retry gets again
	// (Location, ETag...), in the order they were sent; nil in a record
	// written before records kept them.
	Headers []Header
	// CreatedAt is when the response was made; the record expires
	// Config.IdempotencyTTL later. Zero means now, set by PutIdempotent.
	CreatedAt time.Time
}

// Header is one header of an IdempotentResponse, by its canonical name.
type Header struct {
	Name, Value string
}

// GetIdempotent returns the response recorded under scope and key. It
// returns ErrNotFound if there is none or if it is older than
// Config.IdempotencyTTL.
func (s *Store) GetIdempotent(ctx context.Context, scope, key string) (*IdempotentResponse, error) {
	if key == "" {
		return nil, ErrNotFound
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	k := idempotencyKey(scope, key)
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("persistence: get idempotency record: %w", err)
	}
	defer closer.Close()
	r, err := decodeIdempotent(v)
	if err != nil {
		return nil, corrupt(KindIdempotency, k, err)
	}
	if s.expired(r.CreatedAt, s.clock.Now()) {
		return nil, ErrNotFound
	}
	return r, nil
}

// PutIdempotent records a response under scope and key, replacing any
// earlier one, synced before it returns. The key must not be empty.
func (s *Store) PutIdempotent(ctx context.Context, scope, key string, r IdempotentResponse) error {
	_, v, err := EncodeIdempotent(key, r, s.clock.Now())
	if err != nil {
		return err
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	s.idemMu.RLock()
	defer s.idemMu.RUnlock()
	if err := s.db.Set(idempotencyKey(scope, key), v, pebble.Sync); err != nil {
		return fmt.Errorf("persistence: put idempotency record: %w", err)
	}
	return nil
}

// checkIdempotent checks a record that PutIdempotent is given, and sets a
// zero CreatedAt to now.
func checkIdempotent(key string, r IdempotentResponse, now time.Time) (IdempotentResponse, error) {
	if key == "" {
		return r, fmt.Errorf("%w: empty idempotency key", ErrInvalid)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.CreatedAt.Before(minCreated) || r.CreatedAt.After(maxCreated) {
		return r, fmt.Errorf("%w: idempotency record time %v out of range", ErrInvalid, r.CreatedAt)
	}
	if r.Status < 0 {
		return r, fmt.Errorf("%w: negative status %d", ErrInvalid, r.Status)
	}
	for _, h := range r.Headers {
		if h.Name == "" {
			return r, fmt.Errorf("%w: a header without a name", ErrInvalid)
		}
	}
	return r, nil
}

func (s *Store) expired(created, now time.Time) bool {
	return now.Sub(created) > s.idemTTL
}

// pruneInterval is how often expired idempotency records are deleted: often
// enough that they never pile up for long past their TTL.
func (s *Store) pruneInterval() time.Duration {
	return min(s.idemTTL, time.Hour)
}

// pruneLoop deletes expired idempotency records at Open and then
// pruneInterval after each prune, until Close.
func (s *Store) pruneLoop() {
	defer close(s.pruneDone)
	due := make(chan struct{}, 1) // one timer at a time: its send never blocks
	for {
		n, err := s.pruneIdempotent(context.Background(), s.clock.Now())
		switch {
		case errors.Is(err, ErrClosed):
			return
		case err != nil:
			s.log.Error("pruning idempotency records", "err", err)
		case n > 0:
			s.log.Debug("pruned idempotency records", "count", n)
		}
		t := s.clock.AfterFunc(s.pruneInterval(), func() { due <- struct{}{} })
		select {
		case <-s.stopPrune:
			t.Stop()
			return
		case <-due:
		}
	}
}

// pruneBatch bounds how many deletions one prune commit holds.
const pruneBatch = 1024

// pruneIdempotent deletes the idempotency records that expired at now and
// returns how many. Unreadable records are left for an operator to see.
func (s *Store) pruneIdempotent(ctx context.Context, now time.Time) (int, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.leave()
	prefix := []byte(prefixIdempotency)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, fmt.Errorf("persistence: prune idempotency records: %w", err)
	}
	defer it.Close()
	pruned := 0
	var expired [][]byte
	for valid := it.First(); valid; valid = it.Next() {
		created, err := idempotentCreatedAt(it.Value())
		if err != nil {
			s.log.Warn("unreadable idempotency record", "err", corrupt(KindIdempotency, it.Key(), err))
			continue
		}
		if !s.expired(created, now) {
			continue
		}
		expired = append(expired, append([]byte(nil), it.Key()...))
		if len(expired) == pruneBatch {
			n, err := s.deleteExpired(expired, now)
			pruned += n
			if err != nil {
				return pruned, err
			}
			expired = expired[:0]
		}
		if err := ctx.Err(); err != nil {
			return pruned, err
		}
	}
	if err := it.Error(); err != nil {
		return pruned, fmt.Errorf("persistence: prune idempotency records: %w", err)
	}
	n, err := s.deleteExpired(expired, now)
	return pruned + n, err
}

// deleteExpired deletes those of keys that are still expired. It excludes
// PutIdempotent meanwhile, so that a record written again after the scan
// is not deleted. The batch is not synced: a prune lost in a crash is
// simply done again.
func (s *Store) deleteExpired(keys [][]byte, now time.Time) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	s.idemMu.Lock()
	defer s.idemMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	for _, k := range keys {
		v, closer, err := s.db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("persistence: prune idempotency records: %w", err)
		}
		created, err := idempotentCreatedAt(v)
		closer.Close()
		if err != nil || !s.expired(created, now) {
			continue
		}
		if err := b.Delete(k, nil); err != nil {
			return 0, fmt.Errorf("persistence: prune idempotency records: %w", err)
		}
	}
	n := int(b.Count())
	if n == 0 {
		return 0, nil
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, fmt.Errorf("persistence: prune idempotency records: %w", err)
	}
	return n, nil
}
