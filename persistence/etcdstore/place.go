package etcdstore

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
)

// Placement: the node that activates a room no node owns chooses where it
// runs (the least loaded node, by the records) and makes that node its
// owner right away, under the chosen node's lease, in the same kind of
// create-if-absent transaction as Claim. The chosen node finds the room
// already its own when the call reaches it, so a forwarded call is never
// placed again, and two nodes placing the same room at once agree: the
// first transaction wins and the other reads its owner.

// ErrNodeGone is Place's error when the chosen node's lease is no longer
// held: its record was stale. The room is left unowned.
var ErrNodeGone = errors.New("etcdstore: the chosen node holds no lease")

// Place makes node to the owner of a room if no node owns it, under the
// lease of to's record (Nodes). It returns the room's owner after the call:
// to.ID, or the node that owned the room already. Placing a room on this
// node is Claim. A room owned by this node under a lease it has lost
// returns a *NotOwnerError, as Claim does.
func (s *Store) Place(ctx context.Context, roomID string, to NodeInfo) (string, error) {
	if s.node == "" {
		return "", ErrNotNode
	}
	if roomID == "" || to.ID == "" {
		return "", fmt.Errorf("%w: place room %q on node %q", persistence.ErrInvalid, roomID, to.ID)
	}
	if to.ID == s.node {
		err := s.Claim(ctx, roomID)
		var ne *NotOwnerError
		if errors.As(err, &ne) && ne.Owner != s.node {
			return ne.Owner, nil
		}
		if err != nil {
			return "", err
		}
		return s.node, nil
	}
	if to.Lease == 0 {
		return "", fmt.Errorf("%w: node %s: its record names no lease", ErrNodeGone, to.ID)
	}
	if err := s.enter(ctx); err != nil {
		return "", err
	}
	defer s.leave()
	key := s.k.owner(roomID)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, to.ID, clientv3.WithLease(clientv3.LeaseID(to.Lease)))).
		Else(clientv3.OpGet(key)).
		Commit()
	switch {
	case errors.Is(err, errLeaseNotFound):
		return "", fmt.Errorf("%w: node %s", ErrNodeGone, to.ID)
	case err != nil:
		return "", fmt.Errorf("etcdstore: place room %q on node %s: %w", roomID, to.ID, err)
	case resp.Succeeded:
		return to.ID, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		// Released between the comparison and the read: cannot be, they
		// are one transaction; say so rather than guess.
		return "", fmt.Errorf("etcdstore: place room %q: owner key vanished while read", roomID)
	}
	owner := string(kvs[0].Value)
	if owner == s.node {
		// Ours: under the live lease, or a lost one (Claim tells which).
		if l, err := s.liveLease(); err != nil || kvs[0].Lease != int64(l.id) {
			return "", &NotOwnerError{RoomID: roomID, Owner: owner}
		}
	}
	return owner, nil
}

// maxOwnerReads bounds the reads of one RoomOwners transaction, below
// etcd's default --max-txn-ops (128).
const maxOwnerReads = 100

// RoomOwners returns the owner of each of roomIDs that a node owns, by room
// id; a room no node owns is absent. The owners are read at one revision per
// 100 rooms.
func (s *Store) RoomOwners(ctx context.Context, roomIDs []string) (map[string]string, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	out := make(map[string]string, len(roomIDs))
	for len(roomIDs) > 0 {
		n := min(len(roomIDs), maxOwnerReads)
		ops := make([]clientv3.Op, n)
		for i, id := range roomIDs[:n] {
			ops[i] = clientv3.OpGet(s.k.owner(id))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("etcdstore: read room owners: %w", err)
		}
		for i, r := range resp.Responses {
			if kvs := r.GetResponseRange().Kvs; len(kvs) == 1 {
				out[roomIDs[i]] = string(kvs[0].Value)
			}
		}
		roomIDs = roomIDs[n:]
	}
	return out, nil
}
