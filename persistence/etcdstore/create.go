package etcdstore

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
)

// ErrNotNew is ClaimCreate's refusal of a room that is stored already, or
// that this node owns already: it wrote nothing, and the room is created
// the usual way (Claim, then a fenced Apply), whose reads tell which.
var ErrNotNew = errors.New("etcdstore: the room is stored or owned already")

// ClaimCreate creates a room and makes this node its owner in one etcd
// transaction: w is the creation (w.Room, and webhook events of that room
// only), and the transaction claims the room's owner key under this node's
// lease, writes the room, its listing entries, its events and its Seq
// counter, on condition that no node owns the room and that neither the
// room nor its counter is stored. A new room so costs one raft proposal
// and no read, where Claim then Apply cost two proposals and a read.
//
// It returns a *NotOwnerError naming the owner if another node owns the
// room, ErrNotNew if the room is stored or this node owns it already,
// ErrNoLease (wrapped with ErrNotOwner) if this node holds no lease, and
// writes nothing in each case.
//
// A room with no counter takes its events' Seq from a revision R that this
// Store saw last (lastRev), not from a read: the transaction also requires
// that no outbox entry of the room was written after R. Entries written up
// to R have a Seq below R << seqShift (see seqShift), so the new ones queue
// after every entry still waiting, even those of an earlier room of the same
// id. Should an entry be newer, the transaction fails, reads the revision it
// ran at, and runs again from there.
func (s *Store) ClaimCreate(ctx context.Context, w persistence.Writes) error {
	if s.node == "" {
		return ErrNotNode
	}
	r := w.Room
	if r == nil || w.DeleteRoom != "" || len(w.Sessions) > 0 || len(w.Members) > 0 || len(w.Chat) > 0 ||
		len(w.Recordings) > 0 || len(w.DeleteRecordings) > 0 {
		return fmt.Errorf("%w: a room's creation writes the room and its events only", persistence.ErrInvalid)
	}
	for _, e := range w.Events {
		if e.GetRoomId() != r.GetId() {
			return fmt.Errorf("%w: an event of room %q in the creation of room %q", persistence.ErrInvalid, e.GetRoomId(), r.GetId())
		}
	}
	p, err := s.checkedPlan(&w)
	if err != nil {
		return err
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	l, err := s.liveLease()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotOwner, err)
	}
	rev := s.lastRev.Load()
	for range maxAttempts {
		done, next, err := s.claimCreateOnce(ctx, &w, p, l, rev)
		if done {
			return err
		}
		rev = next
	}
	return ErrConflict
}

// claimCreateOnce makes one attempt of ClaimCreate, taking Seq from rev.
// It returns done=false, and the revision to take it from next, when an
// outbox entry of the room is newer than rev.
func (s *Store) claimCreateOnce(ctx context.Context, w *persistence.Writes, p *plan, l *Lease, rev int64) (done bool, next int64, err error) {
	id := w.Room.Id
	owner, room, seq, queues := s.k.owner(id), s.k.room(id), s.k.seq(id), s.k.roomQueues(id)
	ops := []clientv3.Op{
		clientv3.OpPut(owner, s.node, clientv3.WithLease(l.id)),
		clientv3.OpPut(room, p.roomVal),
	}
	ops = replaceKeys(ops, nil, p.roomIndex)
	last := uint64(rev) << seqShift
	for _, e := range w.Events {
		last++
		e.Seq = last // meaningful only if ClaimCreate returns nil
		v, err := persistence.EncodeWebhookEvent(e)
		if err != nil {
			return true, 0, err
		}
		ops = append(ops, clientv3.OpPut(s.k.outbox(id, e.Endpoint, e.Seq), string(v)))
	}
	if len(w.Events) > 0 {
		ops = append(ops, clientv3.OpPut(seq, seqKey(last)))
	}
	resp, err := s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(owner), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(room), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(seq), "=", 0),
		clientv3.Compare(clientv3.ModRevision(queues), "<", rev+1).WithPrefix(),
	).Then(ops...).Else(clientv3.OpGet(owner), clientv3.OpGet(room, clientv3.WithKeysOnly()), clientv3.OpGet(seq, clientv3.WithKeysOnly())).Commit()
	switch {
	case errors.Is(err, errLeaseNotFound):
		return true, 0, fmt.Errorf("%w: %w", ErrNotOwner, ErrNoLease)
	case err != nil:
		return true, 0, fmt.Errorf("etcdstore: create room %q: %w", id, err)
	}
	s.sawRevision(resp.Header.Revision)
	if resp.Succeeded {
		if n := len(w.Events); n > 0 {
			s.backlog.wrote(resp.Header.Revision, n, 0)
		}
		return true, 0, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		if string(kvs[0].Value) != s.node {
			return true, 0, notOwner(id, kvs)
		}
		return true, 0, ErrNotNew
	}
	if len(resp.Responses[1].GetResponseRange().Kvs) == 1 || len(resp.Responses[2].GetResponseRange().Kvs) == 1 {
		return true, 0, ErrNotNew // a counter without its room: the usual way reads it
	}
	// An outbox entry newer than rev: the revision this attempt ran at is
	// above every entry.
	return false, resp.Header.Revision, nil
}

// sawRevision raises lastRev to rev.
func (s *Store) sawRevision(rev int64) {
	for {
		cur := s.lastRev.Load()
		if rev <= cur || s.lastRev.CompareAndSwap(cur, rev) {
			return
		}
	}
}
