package persistence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/cockroachdb/pebble/v2"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// RecordingQuery selects a page of recordings. Every filter set must match.
type RecordingQuery struct {
	// RoomID filters by room; empty means every room.
	RoomID string
	// SessionID filters by session; empty means every session.
	SessionID string
	// Status filters by status; UNSPECIFIED means every recording.
	Status recordpb.RecordingStatus
	// Limit is the most recordings to return; zero or less means no limit.
	Limit int
	// Offset is how many matching recordings to skip; less than zero means
	// zero.
	Offset int
}

// RecordingPage is one page of a recording listing.
type RecordingPage struct {
	// Recordings newest first: by created_at descending, then by id.
	Recordings []*recordpb.Recording
	// Total is the number of recordings matching the filters, regardless
	// of Limit and Offset.
	Total int
}

// RecordingIndex names one listing index of recordings. Each backend keeps
// the four, newest first; a query reads one of them (RecordingQuery.Index).
type RecordingIndex int

// The listing indexes of recordings.
const (
	RecordingsAll RecordingIndex = iota
	RecordingsByStatus
	RecordingsByRoom
	RecordingsBySession
)

// Index returns the listing index q reads and its key (the session id, the
// room id or the status number; empty for RecordingsAll), and whether the
// recordings read there must still be filtered by q.Matches: a query with
// more than one filter reads the index of its narrowest one (a session,
// then a room, then a status). Recordings are few per room and per session,
// so filtering those in memory stays cheap, and a backend keeps no index
// per combination of filters.
func (q RecordingQuery) Index() (idx RecordingIndex, key string, filter bool) {
	n := 0
	for _, set := range []bool{q.RoomID != "", q.SessionID != "", q.Status != recordpb.RecordingStatus_RECORDING_STATUS_UNSPECIFIED} {
		if set {
			n++
		}
	}
	switch {
	case q.SessionID != "":
		return RecordingsBySession, q.SessionID, n > 1
	case q.RoomID != "":
		return RecordingsByRoom, q.RoomID, n > 1
	case n == 1:
		return RecordingsByStatus, strconv.FormatInt(int64(q.Status), 10), false
	default:
		return RecordingsAll, "", false
	}
}

// Matches reports whether r passes every filter of q.
func (q RecordingQuery) Matches(r *recordpb.Recording) bool {
	return (q.RoomID == "" || r.GetRoomId() == q.RoomID) &&
		(q.SessionID == "" || r.GetSessionId() == q.SessionID) &&
		(q.Status == recordpb.RecordingStatus_RECORDING_STATUS_UNSPECIFIED || r.GetStatus() == q.Status)
}

// Window returns the bounds [lo, hi) of the page of n matches that q's
// Offset and Limit select.
func (q RecordingQuery) Window(n int) (lo, hi int) {
	lo = min(max(q.Offset, 0), n)
	hi = n
	if q.Limit > 0 && q.Limit < hi-lo {
		hi = lo + q.Limit
	}
	return lo, hi
}

// OpenRecordingStatuses are the statuses of a recording that has not ended:
// at start-up, one of these is what a crash or a stop left open.
var OpenRecordingStatuses = []recordpb.RecordingStatus{
	recordpb.RecordingStatus_RECORDING_STATUS_STARTING,
	recordpb.RecordingStatus_RECORDING_STATUS_RECORDING,
	recordpb.RecordingStatus_RECORDING_STATUS_STOPPING,
}

// OpenRecordings is Backend.OpenRecordings for a backend that lists through
// list, its own ListRecordings: every backend finds the recordings left open
// by the same queries.
func OpenRecordings(ctx context.Context, list func(context.Context, RecordingQuery) (RecordingPage, error)) ([]*recordpb.Recording, error) {
	var out []*recordpb.Recording
	for _, st := range OpenRecordingStatuses {
		page, err := list(ctx, RecordingQuery{Status: st})
		if err != nil {
			return nil, err
		}
		out = append(out, page.Recordings...)
	}
	return out, nil
}

func prepareRecording(r *recordpb.Recording) (keyValue, int64, error) {
	switch {
	case r.GetId() == "":
		return keyValue{}, 0, fmt.Errorf("%w: recording without id", ErrInvalid)
	case r.RoomId == "":
		return keyValue{}, 0, fmt.Errorf("%w: recording %q without room id", ErrInvalid, r.Id)
	case r.Status == recordpb.RecordingStatus_RECORDING_STATUS_UNSPECIFIED:
		return keyValue{}, 0, fmt.Errorf("%w: recording %q without status", ErrInvalid, r.Id)
	}
	created, err := timeNanos(r.CreatedAt, "recording", r.Id, "created_at")
	if err != nil {
		return keyValue{}, 0, err
	}
	val, err := encodeRecording(r)
	if err != nil {
		return keyValue{}, 0, err
	}
	return keyValue{recordingKey(r.Id), val}, created, nil
}

// GetRecording returns the recording with the given id, or ErrNotFound.
func (s *Store) GetRecording(ctx context.Context, id string) (*recordpb.Recording, error) {
	if id == "" {
		return nil, ErrNotFound
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	return getRecording(s.db, id)
}

func getRecording(r pebble.Reader, id string) (*recordpb.Recording, error) {
	return getRecord(r, KindRecording, recordingKey(id), id, decodeRecording)
}

// ListRecordings returns a page of recordings, newest first, from one
// consistent snapshot. A query with one filter (or none) reads the keys of
// its listing index and the recordings on the page; one with more reads
// every recording of its narrowest index (see RecordingQuery.Index).
func (s *Store) ListRecordings(ctx context.Context, q RecordingQuery) (RecordingPage, error) {
	if err := s.enter(ctx); err != nil {
		return RecordingPage{}, err
	}
	defer s.leave()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	idx, key, filter := q.Index()
	prefix := recordingListPrefix(idx, key)
	var page RecordingPage
	if !filter {
		total := 0
		if err := scanPage(ctx, snap, prefix, 0, 0, func(_, _ []byte) error { total++; return nil }); err != nil {
			return RecordingPage{}, fmt.Errorf("persistence: list recordings: %w", err)
		}
		recs, err := readIndexedPage(ctx, snap, prefix, q.Offset, q.Limit, total, KindRecordingIdx, KindRecording, getRecording)
		if err != nil {
			return RecordingPage{}, fmt.Errorf("persistence: list recordings: %w", err)
		}
		return RecordingPage{Recordings: recs, Total: total}, nil
	}
	all, err := readIndexedPage(ctx, snap, prefix, 0, 0, 0, KindRecordingIdx, KindRecording, getRecording)
	if err != nil {
		return RecordingPage{}, fmt.Errorf("persistence: list recordings: %w", err)
	}
	for _, r := range all {
		if q.Matches(r) {
			page.Recordings = append(page.Recordings, r)
		}
	}
	page.Total = len(page.Recordings)
	lo, hi := q.Window(page.Total)
	page.Recordings = page.Recordings[lo:hi]
	return page, nil
}

// OpenRecordings returns every recording that has not ended (starting,
// recording or stopping): at start-up, what a crash or a stop left open.
func (s *Store) OpenRecordings(ctx context.Context) ([]*recordpb.Recording, error) {
	return OpenRecordings(ctx, s.ListRecordings)
}

// recordingIndexOf returns the listing entries of the stored recording id
// (none if there is none), and whether it is stored. The caller holds the
// recording's lock.
func (s *Store) recordingIndexOf(id string) (keys [][]byte, exists bool, err error) {
	r, err := getRecording(s.db, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, false, nil
	case errors.Is(err, ErrCorrupt):
		s.log.Warn("replacing unreadable recording", "id", id, "err", err)
		keys, err := s.scanRecordingIndexOf(id)
		return keys, true, err
	case err != nil:
		return nil, false, err
	}
	created, err := timeNanos(r.CreatedAt, "recording", id, "created_at")
	if err != nil {
		// Apply never stores such a recording.
		return nil, true, corrupt(KindRecording, recordingKey(id), err)
	}
	return recordingIndexKeys(r, created), true, nil
}

// scanRecordingIndexOf finds the listing entries of id by reading every
// recording index key. Only used for unreadable recording values.
func (s *Store) scanRecordingIndexOf(id string) ([][]byte, error) {
	var found [][]byte
	for _, root := range []string{prefixRecordingAll, prefixRecordingSt, prefixRecordingRoom, prefixRecordingSes} {
		err := scanPage(context.Background(), s.db, []byte(root), 0, 0, func(key, _ []byte) error {
			rest := key[len(root):]
			if root != prefixRecordingAll {
				i := bytes.IndexByte(rest, '/')
				if i < 0 {
					return nil
				}
				rest = rest[i+1:]
			}
			if len(rest) > createdLen && string(rest[createdLen:]) == id {
				found = append(found, bytes.Clone(key))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("persistence: scan recording index: %w", err)
		}
	}
	return found, nil
}

// writeRecordings adds to b the recordings p puts, with their listing
// entries, and the deletion of those named by del. The caller holds their
// locks.
func (s *Store) writeRecordings(b *pebble.Batch, p *prepared, del []string) error {
	for _, pr := range p.recordings {
		old, _, err := s.recordingIndexOf(pr.r.Id)
		if err != nil {
			return err
		}
		if err := b.Set(pr.kv.key, pr.kv.val, nil); err != nil {
			return fmt.Errorf("persistence: put recording %q: %w", pr.r.Id, err)
		}
		if err := replaceKeys(b, old, recordingIndexKeys(pr.r, pr.created)); err != nil {
			return fmt.Errorf("persistence: put recording %q: %w", pr.r.Id, err)
		}
	}
	for _, id := range del {
		old, exists, err := s.recordingIndexOf(id)
		if err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("%w: recording %q", ErrNotFound, id)
		}
		for _, k := range append(old, recordingKey(id)) {
			if err := b.Delete(k, nil); err != nil {
				return fmt.Errorf("persistence: delete recording %q: %w", id, err)
			}
		}
	}
	return nil
}
