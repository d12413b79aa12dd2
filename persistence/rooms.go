package persistence

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// RoomQuery selects a page of rooms.
type RoomQuery struct {
	// Status filters by status; UNSPECIFIED means every room.
	Status recordpb.RoomStatus
	// Limit is the most rooms to return; zero or less means no limit.
	Limit int
	// Offset is how many matching rooms to skip; less than zero means zero.
	Offset int
}

// RoomPage is one page of a listing.
type RoomPage struct {
	// Rooms in creation order, then by id.
	Rooms []*recordpb.Room
	// Total is the number of rooms matching the status filter, regardless
	// of Limit and Offset.
	Total int
}

// GetRoom returns the room with the given id, or ErrNotFound.
func (s *Store) GetRoom(ctx context.Context, id string) (*recordpb.Room, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	return getRoom(s.db, id)
}

func getRoom(r pebble.Reader, id string) (*recordpb.Room, error) {
	return getRecord(r, KindRoom, roomKey(id), id, decodeRoom)
}

// getRecord reads the record of a kind stored under key, or ErrNotFound.
// The record found must be id's: one that decodes as another record
// is as corrupt as one that does not decode.
func getRecord[M interface{ GetId() string }](r pebble.Reader, kind KeyKind, key []byte, id string, decode func([]byte) (M, error)) (M, error) {
	var none M
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return none, ErrNotFound
	}
	if err != nil {
		return none, fmt.Errorf("persistence: get %s %q: %w", kind, id, err)
	}
	defer closer.Close()
	m, err := decode(v)
	if err != nil {
		return none, corrupt(kind, key, err)
	}
	if m.GetId() != id {
		return none, corrupt(kind, key, fmt.Errorf("holds %s %q", kind, m.GetId()))
	}
	return m, nil
}

// PutRoom creates or replaces a room. The room and its listing entries are
// written in one batch, synced before PutRoom returns; when the status or
// the creation time changed, the old listing entries go in the same batch.
// The room needs an id and a created_at that Unix nanoseconds can hold. It is
// Apply with only Room set.
func (s *Store) PutRoom(ctx context.Context, r *recordpb.Room) error {
	if r == nil {
		return fmt.Errorf("%w: nil room", ErrInvalid)
	}
	return s.Apply(ctx, Writes{Room: r})
}

// DeleteRoom removes a room and its listing entries in one synced batch. It
// returns ErrNotFound if there is no such room. It is Apply with only
// DeleteRoom set.
func (s *Store) DeleteRoom(ctx context.Context, id string) error {
	if id == "" {
		return ErrNotFound
	}
	return s.Apply(ctx, Writes{DeleteRoom: id})
}

// ListRooms returns a page of rooms in creation order, then by id. It reads
// only the index entries up to the page's end and the rooms on the page.
//
// The page is read from one consistent snapshot; Total comes from the
// in-memory counts, so under concurrent writes it may already include a
// write the snapshot does not (or the other way round).
func (s *Store) ListRooms(ctx context.Context, q RoomQuery) (RoomPage, error) {
	if err := s.enter(ctx); err != nil {
		return RoomPage{}, err
	}
	defer s.leave()
	page := RoomPage{Total: s.counts.get(q.Status)}

	snap := s.db.NewSnapshot()
	defer snap.Close()
	rooms, err := readIndexedPage(ctx, snap, roomListPrefix(q.Status), q.Offset, q.Limit, page.Total, KindRoomIndex, KindRoom, getRoom)
	if err != nil {
		return RoomPage{}, fmt.Errorf("persistence: list rooms: %w", err)
	}
	page.Rooms = rooms
	return page, nil
}

// createdNanos returns the room's created_at as listing index time.
func createdNanos(r *recordpb.Room) (int64, error) {
	return timeNanos(r.GetCreatedAt(), "room", r.GetId(), "created_at")
}

// roomIndex describes the stored state of one room id before a write.
type roomIndex struct {
	exists  bool                // the room key exists
	counted bool                // the room is in the counts, under status
	status  recordpb.RoomStatus // valid if counted
	keys    [][]byte            // its listing entries
}

// indexOf reads the stored room to learn which listing entries it has. The
// caller holds the room's lock.
func (s *Store) indexOf(id string) (roomIndex, error) {
	room, err := getRoom(s.db, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return roomIndex{}, nil
	case errors.Is(err, ErrCorrupt):
		// The entries cannot be derived from an unreadable value; find
		// them by their id so that replacing or deleting the room still
		// leaves a consistent index.
		s.log.Warn("replacing unreadable room", "id", id, "err", err)
		return s.scanIndexOf(id)
	case err != nil:
		return roomIndex{}, err
	}
	created, err := createdNanos(room)
	if err != nil {
		// PutRoom never stores such a room.
		return roomIndex{}, corrupt(KindRoom, roomKey(id), err)
	}
	keys := roomIndexKeys(room.Status, created, id)
	return roomIndex{exists: true, counted: true, status: room.Status, keys: keys[:]}, nil
}

// scanIndexOf finds the listing entries of id by reading every index key.
// Only used for unreadable room values, so its cost does not matter.
func (s *Store) scanIndexOf(id string) (roomIndex, error) {
	x := roomIndex{exists: true}
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte(prefixRoomIndexAll),
		UpperBound: prefixEnd([]byte(prefixRoomIndexState)),
	})
	if err != nil {
		return roomIndex{}, fmt.Errorf("persistence: scan room index: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		key := it.Key()
		prefixLen := len(prefixRoomIndexAll)
		var st recordpb.RoomStatus
		isStatus := bytes.HasPrefix(key, []byte(prefixRoomIndexState))
		if isStatus {
			if st, err = statusFromIndexKey(key); err != nil {
				continue
			}
			prefixLen = len(roomStatusPrefix(st))
		}
		if got, err := idFromIndexKey(key, prefixLen); err != nil || got != id {
			continue
		}
		x.keys = append(x.keys, bytes.Clone(key))
		if isStatus {
			x.counted, x.status = true, st
		}
	}
	if err := it.Error(); err != nil {
		return roomIndex{}, fmt.Errorf("persistence: scan room index: %w", err)
	}
	return x, nil
}

// loadCounts counts the rooms per status from the status index keys.
func (s *Store) loadCounts() error {
	prefix := []byte(prefixRoomIndexState)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("persistence: count rooms: %w", err)
	}
	defer it.Close()
	counts := make(map[recordpb.RoomStatus]int)
	for valid := it.First(); valid; valid = it.Next() {
		st, err := statusFromIndexKey(it.Key())
		if err != nil {
			return corrupt(KindRoomIndex, it.Key(), err)
		}
		counts[st]++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("persistence: count rooms: %w", err)
	}
	for st, n := range counts {
		s.counts.add(st, n)
	}
	return nil
}
