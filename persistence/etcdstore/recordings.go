package etcdstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

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
		key := s.k.recording(r.Id)
		unchanged(key)
		old, err := s.oldRecordingIndex(ctx, rev, r.Id, got[key])
		if err != nil {
			return nil, err
		}
		if kv := got[key]; kv != nil {
			if stored, err := persistence.DecodeRecording(kv.Value); err == nil {
				r = keepSettledFiles(r, stored)
			}
		}
		v, err := persistence.EncodeRecording(r)
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

// SettleRecordingFiles writes the figures of files this node finalized
// into recording id's record: each of files (this node's, by their
// node_id, with a name and a part) replaces the size, duration and
// container of the record's entry of the same file, or is added when the
// record does not list it, and the entry is marked settled and no longer
// writing. It returns the record as stored then.
//
// The record is the room owner's, which this node need not be (it lost
// the part that wrote the files, and another node went on with the
// recording), so the write is not fenced by the room's ownership: it
// touches the entries of this node's files only, on condition that the
// record did not change since it was read, and reads again when it did.
// The owner's own writes of the record keep the settled entries
// (keepSettledFiles), so that neither writer undoes the other's.
//
// A Store that is not a cluster node's (Config.NodeID), or files that are
// not its node's or lack a name or part, get persistence.ErrInvalid; a
// record that is not stored, persistence.ErrNotFound. at is the update's
// time: the record's updated_at, unless that is later.
func (s *Store) SettleRecordingFiles(ctx context.Context, id string, files []*recordpb.RecordingFile, at time.Time) (*recordpb.Recording, error) {
	if s.node == "" {
		return nil, fmt.Errorf("%w: settle recording files: the store is no cluster node's", persistence.ErrInvalid)
	}
	for _, f := range files {
		if f.GetName() == "" || f.GetPart() == 0 || f.GetNodeId() != s.node {
			return nil, fmt.Errorf("%w: settle recording files: %q of part %d on node %q is not a file of node %q",
				persistence.ErrInvalid, f.GetName(), f.GetPart(), f.GetNodeId(), s.node)
		}
	}
	if id == "" {
		return nil, persistence.ErrNotFound
	}
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	key := s.k.recording(id)
	for range maxAttempts {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("etcdstore: settle recording files: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return nil, persistence.ErrNotFound
		}
		kv := resp.Kvs[0]
		rec, err := recordingRecords.decodeKV(kv, id)
		if err != nil {
			return nil, err
		}
		if !settleFiles(rec, files) {
			return rec, nil
		}
		if at.After(rec.GetUpdatedAt().AsTime()) {
			rec.UpdatedAt = timestamppb.New(at)
		}
		v, err := persistence.EncodeRecording(rec)
		if err != nil {
			return nil, err
		}
		// The listing entries depend on nothing a file changes.
		txn, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key, string(v))).Commit()
		if err != nil {
			return nil, fmt.Errorf("etcdstore: settle recording files: %w", err)
		}
		if txn.Succeeded {
			return rec, nil
		}
	}
	return nil, ErrConflict
}

// settleFiles sets rec's entries of files as SettleRecordingFiles says,
// and reports whether that changed rec.
func settleFiles(rec *recordpb.Recording, files []*recordpb.RecordingFile) bool {
	changed := false
	for _, f := range files {
		g := proto.Clone(f).(*recordpb.RecordingFile)
		g.Writing, g.Settled = false, true
		i := slices.IndexFunc(rec.Files, func(e *recordpb.RecordingFile) bool { return sameFile(rec, e, g) })
		if i < 0 {
			rec.Files = append(rec.Files, g)
			changed = true
			continue
		}
		e := rec.Files[i]
		if e.Settled && !e.Writing && e.Size == g.Size && e.DurationMs == g.DurationMs && e.Container == g.Container {
			continue
		}
		e.Size, e.DurationMs, e.Container, e.Writing, e.Settled = g.Size, g.DurationMs, g.Container, false, true
		e.Part, e.NodeId = max(e.Part, 1), g.NodeId
		changed = true
	}
	return changed
}

// keepSettledFiles returns r with the settled entries of stored, the
// record r replaces, in place of r's entries of the same files (or added,
// if r lacks them): their node wrote what the files hold, which the room's
// owner, writing r, did not know. r itself is not changed.
func keepSettledFiles(r, stored *recordpb.Recording) *recordpb.Recording {
	var out *recordpb.Recording
	for _, sf := range stored.GetFiles() {
		if !sf.Settled {
			continue
		}
		if out == nil {
			out = proto.Clone(r).(*recordpb.Recording)
		}
		i := slices.IndexFunc(out.Files, func(e *recordpb.RecordingFile) bool { return sameFile(out, e, sf) })
		if i < 0 {
			out.Files = append(out.Files, proto.Clone(sf).(*recordpb.RecordingFile))
		} else if !proto.Equal(out.Files[i], sf) {
			out.Files[i] = proto.Clone(sf).(*recordpb.RecordingFile)
		}
	}
	if out == nil {
		return r
	}
	return out
}

// sameFile reports whether e, an entry of rec, and f name the same file:
// the same name on the same node. An entry without part and node (a
// record from before parts) is on rec's node.
func sameFile(rec *recordpb.Recording, e, f *recordpb.RecordingFile) bool {
	node := e.NodeId
	if node == "" && e.Part == 0 {
		node = rec.NodeId
	}
	return e.Name == f.Name && node == f.NodeId
}
