package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
)

// Idempotency records expire by etcd leases rather than by a pruning loop
// on every node: a record is put under a lease that ends at or after its
// expiry. One lease per record would cost a grant per put and one lease
// object each, so records share leases by expiry bucket: a lease is granted
// for each bucket of bucketWidth that records expire in, and records expiring
// in the bucket are put under it. A record so outlives its expiry by less
// than one bucket; GetIdempotent checks the expiry itself.

// GetIdempotent returns the response recorded under scope and key, or
// persistence.ErrNotFound if there is none or it is older than the TTL.
func (s *Store) GetIdempotent(ctx context.Context, scope, key string) (*persistence.IdempotentResponse, error) {
	if key == "" {
		return nil, persistence.ErrNotFound
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	k := s.k.idem(scope, key)
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: get idempotency record: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, persistence.ErrNotFound
	}
	r, err := persistence.DecodeIdempotent(resp.Kvs[0].Value)
	if err != nil {
		return nil, &persistence.CorruptError{Kind: persistence.KindIdempotency, Key: k, Err: err}
	}
	if s.now().Sub(r.CreatedAt) > s.idemTTL {
		return nil, persistence.ErrNotFound
	}
	return r, nil
}

// PutIdempotent records a response under scope and key, replacing any
// earlier one. A record that is expired already replaces the earlier one by
// deleting it: it would never be read.
func (s *Store) PutIdempotent(ctx context.Context, scope, key string, r persistence.IdempotentResponse) error {
	now := s.now()
	r, v, err := persistence.EncodeIdempotent(key, r, now)
	if err != nil {
		return err
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	k := s.k.idem(scope, key)
	expires := r.CreatedAt.Add(s.idemTTL)
	if !expires.After(now) {
		if _, err := s.cli.Delete(ctx, k); err != nil {
			return fmt.Errorf("etcdstore: put idempotency record: %w", err)
		}
		return nil
	}
	// A cached lease may have been revoked by an operator: a second try
	// grants a new one.
	for try := 0; ; try++ {
		lease, err := s.leases.get(ctx, s.cli, expires, now, s.bucketWidth())
		if err != nil {
			return fmt.Errorf("etcdstore: put idempotency record: %w", err)
		}
		_, err = s.cli.Put(ctx, k, string(v), clientv3.WithLease(lease))
		if errors.Is(err, errLeaseNotFound) && try == 0 {
			s.leases.forget(lease)
			continue
		}
		if err != nil {
			return fmt.Errorf("etcdstore: put idempotency record: %w", err)
		}
		return nil
	}
}

// bucketWidth is a sixteenth of the TTL, and at least a second (etcd's
// lease granularity).
func (s *Store) bucketWidth() time.Duration { return max(s.idemTTL/16, time.Second) }

// idemLeases holds the leases of the expiry buckets in use.
type idemLeases struct {
	mu sync.Mutex
	m  map[int64]clientv3.LeaseID // guarded by mu: bucket end (Unix s) -> lease
}

// get returns the lease of the bucket that expires falls in, granting it if
// needed.
func (c *idemLeases) get(ctx context.Context, cli *clientv3.Client, expires, now time.Time, width time.Duration) (clientv3.LeaseID, error) {
	w := int64(width / time.Second)
	end := (expires.Unix()/w + 1) * w // the bucket's end, after expires
	c.mu.Lock()
	defer c.mu.Unlock()
	for b := range c.m {
		if b < now.Unix() {
			delete(c.m, b) // ended: etcd has let its lease go
		}
	}
	if id, ok := c.m[end]; ok {
		return id, nil
	}
	ttl := end - now.Unix() + 1
	g, err := cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	if c.m == nil {
		c.m = make(map[int64]clientv3.LeaseID)
	}
	c.m[end] = g.ID
	return g.ID, nil
}

func (c *idemLeases) forget(id clientv3.LeaseID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for b, l := range c.m {
		if l == id {
			delete(c.m, b)
		}
	}
}
