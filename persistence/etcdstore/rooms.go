package etcdstore

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// GetRoom returns the room with the given id, or persistence.ErrNotFound.
func (s *Store) GetRoom(ctx context.Context, id string) (*recordpb.Room, error) {
	if id == "" {
		return nil, persistence.ErrNotFound
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	key := s.k.room(id)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: get room %q: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, persistence.ErrNotFound
	}
	return decodeRoom(resp.Kvs[0], id)
}

func decodeRoom(kv *mvccpb.KeyValue, id string) (*recordpb.Room, error) {
	r, err := persistence.DecodeRoom(kv.Value)
	if err == nil && r.GetId() != id {
		err = fmt.Errorf("holds room %q", r.GetId())
	}
	if err != nil {
		return nil, &persistence.CorruptError{Kind: persistence.KindRoom, Key: string(kv.Key), Err: err}
	}
	return r, nil
}

// ListRooms returns a page of rooms in creation order, then by id. It reads
// the listing entries up to the page's end (keys only; etcd counts the
// whole range for Total in the same read) and then the page's rooms, from
// the same revision.
func (s *Store) ListRooms(ctx context.Context, q persistence.RoomQuery) (persistence.RoomPage, error) {
	if err := s.enter(ctx); err != nil {
		return persistence.RoomPage{}, err
	}
	defer s.leave()
	prefix := s.k.roomList(q.Status)
	entries, total, rev, err := s.pageKeys(ctx, prefix, q.Offset, q.Limit)
	if err != nil {
		return persistence.RoomPage{}, fmt.Errorf("etcdstore: list rooms: %w", err)
	}
	ids := make([]string, len(entries))
	keys := make([]string, len(entries))
	for i, e := range entries {
		if ids[i], err = idAfterTime(e, prefix); err != nil {
			return persistence.RoomPage{}, &persistence.CorruptError{Kind: persistence.KindRoomIndex, Key: e, Err: err}
		}
		keys[i] = s.k.room(ids[i])
	}
	got, _, err := s.getMany(ctx, rev, keys)
	if err != nil {
		return persistence.RoomPage{}, fmt.Errorf("etcdstore: list rooms: %w", err)
	}
	page := persistence.RoomPage{Rooms: make([]*recordpb.Room, 0, len(ids)), Total: total}
	for i, id := range ids {
		kv := got[keys[i]]
		if kv == nil {
			return persistence.RoomPage{}, &persistence.CorruptError{Kind: persistence.KindRoomIndex, Key: entries[i],
				Err: fmt.Errorf("room %q is missing", id)}
		}
		r, err := decodeRoom(kv, id)
		if err != nil {
			return persistence.RoomPage{}, err
		}
		page.Rooms = append(page.Rooms, r)
	}
	return page, nil
}
