package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
)

// Ownership: a cluster node (Config.NodeID) holds one etcd lease, and owns a
// room while the room's owner key holds its node id under that lease. The
// key is created only if absent (Claim), so a room has one owner at a time;
// it goes away with Release, or with the lease when the node stops renewing
// it (dead, or cut off from etcd for longer than the lease's TTL). Every room
// write of a node compares the owner keys of the rooms it touches against
// the node's id and lease in the write's own transaction (see Apply), so a
// node that lost a room, even one that has not noticed yet, writes nothing
// to it.

var errLeaseNotFound = rpctypes.ErrLeaseNotFound

// ErrLeaseLost is a Lease's Err after etcd let it go: it expired (the node
// could not renew it within its TTL) or it was revoked.
var ErrLeaseLost = errors.New("etcdstore: lease lost")

// Lease is a node's hold on its rooms, from Register until it is lost.
type Lease struct {
	id   clientv3.LeaseID
	done chan struct{}

	mu  sync.Mutex
	err error // guarded by mu; set once, before done is closed
}

// ID returns the etcd lease id.
func (l *Lease) ID() int64 { return int64(l.id) }

// Done is closed when the lease is lost (Err is ErrLeaseLost) or the Store
// closed (Err is persistence.ErrClosed). From then on the node owns no room:
// it closes its rooms at once, and may Register again.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err returns nil while the lease is held, then why it is not.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *Lease) end(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
	close(l.done)
}

func (l *Lease) live() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// Register makes the node hold a lease of Config.LeaseTTL, kept alive until
// Close or until etcd lets it go, which Lease.Done reports. While the
// current lease is held, Register returns it; once it is lost, Register
// grants a new one. Rooms are owned under one lease: those claimed under a
// lost lease must be claimed again under the new one.
func (s *Store) Register(ctx context.Context) (*Lease, error) {
	if s.node == "" {
		return nil, ErrNotNode
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	s.registerMu.Lock()
	defer s.registerMu.Unlock()
	if l, err := s.liveLease(); err == nil {
		return l, nil
	}
	g, err := s.cli.Grant(ctx, s.leaseTTL)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: grant lease: %w", err)
	}
	// The lease's own key goes with the lease, in the revision that deletes
	// its owner keys: the lost-room watch reads it at a deletion's revision
	// to tell a room released by a live node from one lost with its lease.
	if _, err := s.cli.Put(ctx, s.k.lease(int64(g.ID)), s.node, clientv3.WithLease(g.ID)); err != nil {
		return nil, errors.Join(fmt.Errorf("etcdstore: mark lease: %w", err), s.revoke(g.ID))
	}
	kctx, cancel := context.WithCancel(s.bg)
	ch, err := s.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		cancel()
		return nil, errors.Join(fmt.Errorf("etcdstore: keep lease alive: %w", err), s.revoke(g.ID))
	}
	l := &Lease{id: g.ID, done: make(chan struct{})}
	s.wg.Add(1)
	go s.keepAlive(l, ch, cancel)
	s.leaseMu.Lock()
	s.lease = l
	if s.registered != nil {
		close(s.registered)
		s.registered = nil
	}
	s.leaseMu.Unlock()
	s.log.Info("registered", "node", s.node, "lease", int64(g.ID), "ttl_s", g.TTL)
	return l, nil
}

// keepAlive drains the client's keep-alive responses; the client closes the
// channel when the lease is gone (expired, revoked, or no response within
// its TTL) or when Close cancels it.
func (s *Store) keepAlive(l *Lease, ch <-chan *clientv3.LeaseKeepAliveResponse, cancel context.CancelFunc) {
	defer s.wg.Done()
	defer cancel()
	for range ch {
	}
	if s.bg.Err() != nil {
		l.end(persistence.ErrClosed)
		return
	}
	s.log.Warn("lease lost", "node", s.node, "lease", int64(l.id))
	l.end(ErrLeaseLost)
}

func (s *Store) revoke(id clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(s.bg, closeTimeout)
	defer cancel()
	if _, err := s.cli.Revoke(ctx, id); err != nil && !errors.Is(err, errLeaseNotFound) {
		return fmt.Errorf("etcdstore: revoke lease: %w", err)
	}
	return nil
}

// liveLease returns the node's lease, or ErrNoLease if it holds none.
func (s *Store) liveLease() (*Lease, error) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.lease == nil || !s.lease.live() {
		return nil, ErrNoLease
	}
	return s.lease, nil
}

// waitLease returns the node's live lease, waiting for Register to grant
// one if it holds none, until ctx ends or the Store closes.
func (s *Store) waitLease(ctx context.Context) (*Lease, error) {
	for {
		s.leaseMu.Lock()
		if l := s.lease; l != nil && l.live() {
			s.leaseMu.Unlock()
			return l, nil
		}
		if s.registered == nil {
			s.registered = make(chan struct{})
		}
		ch := s.registered
		s.leaseMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.bg.Done():
			return nil, persistence.ErrClosed
		}
	}
}

// Claim makes this node the owner of a room if no node owns it. It returns
// nil if this node owns the room (now or already), a *NotOwnerError naming
// the owner if another node does, and ErrNoLease if this node holds no
// lease. A room claimed under a lease this node has lost stays owned by
// the old lease until etcd expires it.
func (s *Store) Claim(ctx context.Context, roomID string) error {
	if s.node == "" {
		return ErrNotNode
	}
	if roomID == "" {
		return fmt.Errorf("%w: claim of an empty room id", persistence.ErrInvalid)
	}
	resp, l, err := s.ownerTxn(ctx, "claim", roomID,
		func(key string, _ *Lease) []clientv3.Cmp {
			return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
		},
		func(key string, l *Lease) clientv3.Op { return clientv3.OpPut(key, s.node, clientv3.WithLease(l.id)) })
	switch {
	case errors.Is(err, errLeaseNotFound):
		// Gone before its keep-alive noticed.
		return ErrNoLease
	case err != nil:
		return err
	case resp.Succeeded:
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) == s.node && kvs[0].Lease == int64(l.id) {
		return nil
	}
	return notOwner(roomID, kvs)
}

// Release gives up this node's ownership of a room, so that another node
// can claim it at once. It returns a *NotOwnerError if this node does not
// own the room under its current lease, and ErrNoLease if it holds none.
func (s *Store) Release(ctx context.Context, roomID string) error {
	if s.node == "" {
		return ErrNotNode
	}
	resp, _, err := s.ownerTxn(ctx, "release", roomID,
		s.owns,
		func(key string, _ *Lease) clientv3.Op { return clientv3.OpDelete(key) })
	switch {
	case err != nil:
		return err
	case resp.Succeeded:
		return nil
	}
	return notOwner(roomID, resp.Responses[0].GetResponseRange().Kvs)
}

// ownerTxn runs one transaction on roomID's owner key under this node's
// live lease: then if cond holds, else a read of the key (for the caller
// to name the owner).
func (s *Store) ownerTxn(ctx context.Context, what, roomID string, cond func(key string, l *Lease) []clientv3.Cmp, then func(key string, l *Lease) clientv3.Op) (*clientv3.TxnResponse, *Lease, error) {
	if err := s.enter(ctx); err != nil {
		return nil, nil, err
	}
	defer s.leave()
	l, err := s.liveLease()
	if err != nil {
		return nil, nil, err
	}
	key := s.k.owner(roomID)
	resp, err := s.cli.Txn(ctx).If(cond(key, l)...).Then(then(key, l)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, nil, fmt.Errorf("etcdstore: %s room %q: %w", what, roomID, err)
	}
	return resp, l, nil
}

// Owner returns the node that owns a room, or "" if none does.
func (s *Store) Owner(ctx context.Context, roomID string) (string, error) {
	if err := s.enter(ctx); err != nil {
		return "", err
	}
	defer s.leave()
	resp, err := s.cli.Get(ctx, s.k.owner(roomID))
	if err != nil {
		return "", fmt.Errorf("etcdstore: read owner of room %q: %w", roomID, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// owns is the fence: the comparisons that hold while this node owns the
// room of the owner key under lease l.
func (s *Store) owns(ownerKey string, l *Lease) []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(ownerKey), "=", s.node),
		clientv3.Compare(clientv3.LeaseValue(ownerKey), "=", l.id),
	}
}

func notOwner(roomID string, kvs []*mvccpb.KeyValue) error {
	e := &NotOwnerError{RoomID: roomID}
	if len(kvs) == 1 {
		e.Owner = string(kvs[0].Value)
	}
	return e
}
