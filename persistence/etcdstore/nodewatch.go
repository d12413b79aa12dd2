package etcdstore

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
)

// followRetry is the pause before reading a followed range again after its
// watch ended, so that an unreachable etcd is not polled in a tight loop.
const followRetry = time.Second

// FollowNodes keeps a caller's view of the node records: it reads them,
// calls onChange with them (by id, ok true), then follows their range with
// a watch and calls onChange again after every change, until ctx ends.
// When the watch ends (etcd unreachable, or its revision compacted away)
// it calls onChange(nil, false): the view is stale until the next call,
// which comes once the records could be read again. onChange runs on the
// caller's goroutine, one call at a time.
func (s *Store) FollowNodes(ctx context.Context, onChange func(nodes []NodeInfo, ok bool)) {
	prefix := s.k.nodes()
	var byID map[string]NodeInfo
	s.follow(ctx, "node records", prefix, rangeFollower{
		load: func(kvs []*mvccpb.KeyValue) error {
			byID = make(map[string]NodeInfo, len(kvs))
			for _, kv := range kvs {
				n, err := s.nodeRecord(kv, prefix)
				if err != nil {
					return err
				}
				byID[n.ID] = n
			}
			onChange(sortedNodes(byID), true)
			return nil
		},
		apply: func(evs []*clientv3.Event) error {
			for _, ev := range evs {
				if ev.Type == clientv3.EventTypeDelete {
					delete(byID, strings.TrimPrefix(string(ev.Kv.Key), prefix))
					continue
				}
				n, err := s.nodeRecord(ev.Kv, prefix)
				if err != nil {
					return err
				}
				byID[n.ID] = n
			}
			onChange(sortedNodes(byID), true)
			return nil
		},
		stale: func() { onChange(nil, false) },
	})
}

// rangeFollower is what follow does with a range: load takes every key
// read at the start, apply each batch of the watch's events after it,
// stale says that the watch ended and the view is no longer followed.
type rangeFollower struct {
	load  func(kvs []*mvccpb.KeyValue) error
	apply func(evs []*clientv3.Event) error
	stale func()
}

// follow reads the range prefix, then follows it with a watch from the
// read's revision, until ctx ends or the Store closes. When the watch ends
// (etcd unreachable, its revision compacted away, a value load or apply
// cannot take) it calls f.stale and, after followRetry, starts again from
// a fresh read. f's functions run on the caller's goroutine, one at a time.
func (s *Store) follow(ctx context.Context, what, prefix string, f rangeFollower) {
	for {
		err := s.followOnce(ctx, prefix, f)
		if ctx.Err() != nil || s.bg.Err() != nil {
			return
		}
		s.log.Warn("watch ended; reading again", "range", what, "err", err)
		f.stale()
		if !s.pause(ctx, followRetry) {
			return
		}
	}
}

// followOnce reads the range, then applies the watch's events until the
// watch ends, and returns why.
func (s *Store) followOnce(ctx context.Context, prefix string, f rangeFollower) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	stop := context.AfterFunc(s.bg, cancel) // Close ends the watch
	defer stop()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	if err := f.load(resp.Kvs); err != nil {
		return err
	}
	for wr := range s.cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return err
		}
		if err := f.apply(wr.Events); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errWatchClosed
}

// nodeRecord decodes the node record kv of the node range prefix.
func (s *Store) nodeRecord(kv *mvccpb.KeyValue, prefix string) (NodeInfo, error) {
	var n NodeInfo
	if err := json.Unmarshal(kv.Value, &n); err != nil {
		return n, &persistence.CorruptError{Kind: persistence.KindMeta, Key: string(kv.Key), Err: err}
	}
	n.ID = strings.TrimPrefix(string(kv.Key), prefix)
	n.Revision = kv.ModRevision
	return n, nil
}

func sortedNodes(byID map[string]NodeInfo) []NodeInfo {
	out := make([]NodeInfo, 0, len(byID))
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out = append(out, byID[id])
	}
	return out
}
