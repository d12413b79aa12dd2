package etcdstore

import (
	"context"
	"fmt"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// The recordings' keys, beside the others of keys.go.
const (
	prefixRecording     = "rec/r/"
	prefixRecordingAll  = "rec/all/"
	prefixRecordingSt   = "rec/st/"
	prefixRecordingRoom = "rec/room/"
	prefixRecordingSes  = "rec/ses/"
)

func (k keys) recording(id string) string { return k.p + prefixRecording + id }

// recordingList is the range of one listing index of recordings: key is
// what persistence.RecordingQuery.Index returned with idx.
func (k keys) recordingList(idx persistence.RecordingIndex, key string) string {
	switch idx {
	case persistence.RecordingsByStatus:
		return k.p + prefixRecordingSt + key + "/"
	case persistence.RecordingsByRoom:
		return k.p + prefixRecordingRoom + esc(key) + "/"
	case persistence.RecordingsBySession:
		return k.p + prefixRecordingSes + esc(key) + "/"
	default:
		return k.p + prefixRecordingAll
	}
}

// recordingIndex returns the listing entries of r: three, and a fourth when
// it has a session.
func (k keys) recordingIndex(r *recordpb.Recording) []string {
	at := newestKey(r.CreatedAt.AsTime().UnixNano()) + r.Id
	out := []string{
		k.recordingList(persistence.RecordingsAll, "") + at,
		k.recordingList(persistence.RecordingsByStatus, strconv.FormatInt(int64(r.Status), 10)) + at,
		k.recordingList(persistence.RecordingsByRoom, r.RoomId) + at,
	}
	if r.SessionId != "" {
		out = append(out, k.recordingList(persistence.RecordingsBySession, r.SessionId)+at)
	}
	return out
}

// GetRecording returns the recording with the given id, or
// persistence.ErrNotFound.
func (s *Store) GetRecording(ctx context.Context, id string) (*recordpb.Recording, error) {
	return recordingRecords.get(ctx, s, id)
}

// ListRecordings returns a page of recordings, newest first. A query with
// one filter (or none) reads the keys of its listing index up to the page's
// end and the recordings on the page; one with more reads every recording of
// its narrowest index, at one revision (see persistence.RecordingQuery).
func (s *Store) ListRecordings(ctx context.Context, q persistence.RecordingQuery) (persistence.RecordingPage, error) {
	if err := s.enter(ctx); err != nil {
		return persistence.RecordingPage{}, err
	}
	defer s.leave()
	idx, key, filter := q.Index()
	prefix := s.k.recordingList(idx, key)
	offset, limit := q.Offset, q.Limit
	if filter {
		offset, limit = 0, 0
	}
	entries, total, rev, err := s.pageKeys(ctx, prefix, offset, limit)
	if err != nil {
		return persistence.RecordingPage{}, fmt.Errorf("etcdstore: list recordings: %w", err)
	}
	recs, err := recordingRecords.listed(ctx, s, rev, prefix, entries)
	if err != nil {
		return persistence.RecordingPage{}, err
	}
	if !filter {
		return persistence.RecordingPage{Recordings: recs, Total: total}, nil
	}
	var match []*recordpb.Recording
	for _, r := range recs {
		if q.Matches(r) {
			match = append(match, r)
		}
	}
	lo, hi := q.Window(len(match))
	return persistence.RecordingPage{Recordings: match[lo:hi], Total: len(match)}, nil
}

// OpenRecordings returns every recording that has not ended.
func (s *Store) OpenRecordings(ctx context.Context) ([]*recordpb.Recording, error) {
	return persistence.OpenRecordings(ctx, s.ListRecordings)
}

// recordingReads returns the keys Apply reads for w's recordings: each one
// it puts or deletes.
func (s *Store) recordingReads(w *persistence.Writes) []string {
	var out []string
	for _, r := range w.Recordings {
		out = append(out, s.k.recording(r.Id))
	}
	for _, id := range w.DeleteRecordings {
		out = append(out, s.k.recording(id))
	}
	return out
}

// recordingOps returns the operations that write w's recordings (their
// records and listing entries) given got, what recordingReads read. It
// calls unchanged with each key the transaction must find as read, and
// marks in rooms the room of each recording, for the fence.
func (s *Store) recordingOps(ctx context.Context, rev int64, w *persistence.Writes, got map[string]*mvccpb.KeyValue,
	unchanged func(string), rooms map[string]bool) ([]clientv3.Op, error) {
	var ops []clientv3.Op
	for _, r := range w.Recordings {
		v, err := persistence.EncodeRecording(r)
		if err != nil {
			return nil, err
		}
		key := s.k.recording(r.Id)
		unchanged(key)
		old, err := s.oldRecordingIndex(ctx, rev, r.Id, got[key])
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(key, string(v)))
		ops = replaceKeys(ops, old, s.k.recordingIndex(r))
		rooms[r.RoomId] = true
	}
	for _, id := range w.DeleteRecordings {
		key := s.k.recording(id)
		kv := got[key]
		if kv == nil {
			return nil, fmt.Errorf("%w: recording %q", persistence.ErrNotFound, id)
		}
		unchanged(key)
		old, err := s.oldRecordingIndex(ctx, rev, id, kv)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpDelete(key))
		ops = replaceKeys(ops, old, nil)
		if r, err := persistence.DecodeRecording(kv.Value); err == nil {
			rooms[r.RoomId] = true
		}
	}
	return ops, nil
}

// oldRecordingIndex is oldRoomIndex for a recording.
func (s *Store) oldRecordingIndex(ctx context.Context, rev int64, id string, kv *mvccpb.KeyValue) ([]string, error) {
	if kv == nil {
		return nil, nil
	}
	r, err := persistence.DecodeRecording(kv.Value)
	if err == nil && r.CreatedAt.CheckValid() == nil {
		return s.k.recordingIndex(r), nil
	}
	s.log.Warn("replacing unreadable recording", "id", id, "err", err)
	// rec/r/ holds the records, which scanIndex does not take for entries.
	return s.scanIndex(ctx, rev, s.k.p+"rec/", id)
}
