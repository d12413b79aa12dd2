package etcdstore

import (
	"context"
	"fmt"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// GetRoom returns the room with the given id, or persistence.ErrNotFound.
func (s *Store) GetRoom(ctx context.Context, id string) (*recordpb.Room, error) {
	return roomRecords.get(ctx, s, id)
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
	list, err := roomRecords.listed(ctx, s, rev, prefix, entries)
	if err != nil {
		return persistence.RoomPage{}, err
	}
	return persistence.RoomPage{Rooms: list, Total: total}, nil
}
