package etcdstore

import (
	"context"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// OwnerView is a node's memory of who owns each room, following the owner
// keys with a watch (FollowOwners), so that a request for a room another
// node owns is forwarded without asking etcd first. It is a hint, never a
// claim: a node owns a room only by Claim (or Place), and its writes are
// fenced by the owner key itself, so a view a few milliseconds behind
// sends a request to a node that no longer owns the room, which answers
// from etcd; it never makes a node serve a room. Its zero value is a view
// that follows nothing yet, whose Owner always says ask etcd.
type OwnerView struct {
	mu     sync.RWMutex      // guards the following
	live   bool              // the owners follow etcd
	owners map[string]string // room id -> owner node id
}

// Owner returns the node that owns roomID as last heard, "" if none does.
// ok is false while the view does not follow etcd (not read yet, or its
// watch ended until it is read again): the caller must ask etcd.
func (v *OwnerView) Owner(roomID string) (owner string, ok bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if !v.live {
		return "", false
	}
	return v.owners[roomID], true
}

// Len returns how many rooms the view knows an owner of.
func (v *OwnerView) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.owners)
}

// FollowOwners keeps v following the owner keys of every room, until ctx
// ends or the Store closes: a read of the range, then a watch from its
// revision. While the watch is down (etcd unreachable, its revision
// compacted) v says ask etcd, and it is read afresh once etcd answers.
// It returns when ctx ends or the Store closes.
func (s *Store) FollowOwners(ctx context.Context, v *OwnerView) {
	prefix := s.k.owner("")
	room := func(kv *mvccpb.KeyValue) string { return strings.TrimPrefix(string(kv.Key), prefix) }
	defer func() {
		v.mu.Lock()
		v.owners, v.live = nil, false // no longer followed
		v.mu.Unlock()
	}()
	s.follow(ctx, "room owners", prefix, rangeFollower{
		load: func(kvs []*mvccpb.KeyValue) error {
			owners := make(map[string]string, len(kvs))
			for _, kv := range kvs {
				owners[room(kv)] = string(kv.Value)
			}
			v.mu.Lock()
			v.owners, v.live = owners, true
			v.mu.Unlock()
			return nil
		},
		apply: func(evs []*clientv3.Event) error {
			v.mu.Lock()
			defer v.mu.Unlock()
			for _, ev := range evs {
				if ev.Type == clientv3.EventTypeDelete {
					delete(v.owners, room(ev.Kv))
				} else {
					v.owners[room(ev.Kv)] = string(ev.Kv.Value)
				}
			}
			return nil
		},
		stale: func() {
			v.mu.Lock()
			v.owners, v.live = nil, false
			v.mu.Unlock()
		},
	})
}
