package etcdstore

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// records says where the records of one kind (rooms, sessions, recordings)
// are and how they decode, so that the reads by id and the listing pages of
// every kind are one piece of code.
type records[T interface{ GetId() string }] struct {
	kind, index persistence.KeyKind
	key         func(k keys, id string) string
	decode      func([]byte) (T, error)
}

var (
	roomRecords      = records[*recordpb.Room]{persistence.KindRoom, persistence.KindRoomIndex, keys.room, persistence.DecodeRoom}
	sessionRecords   = records[*recordpb.Session]{persistence.KindSession, persistence.KindSessionIdx, keys.session, persistence.DecodeSession}
	recordingRecords = records[*recordpb.Recording]{persistence.KindRecording, persistence.KindRecordingIdx, keys.recording, persistence.DecodeRecording}
)

// get returns the record with the given id, or persistence.ErrNotFound.
func (rs records[T]) get(ctx context.Context, s *Store, id string) (T, error) {
	var zero T
	if id == "" {
		return zero, persistence.ErrNotFound
	}
	if err := s.enter(ctx); err != nil {
		return zero, err
	}
	defer s.leave()
	resp, err := s.cli.Get(ctx, rs.key(s.k, id))
	if err != nil {
		return zero, fmt.Errorf("etcdstore: get %s %q: %w", rs.kind, id, err)
	}
	if len(resp.Kvs) == 0 {
		return zero, persistence.ErrNotFound
	}
	return rs.decodeKV(resp.Kvs[0], id)
}

// decodeKV decodes the record kv holds, which must be the one with the
// given id: a record under another's key is as corrupt as damaged bytes.
func (rs records[T]) decodeKV(kv *mvccpb.KeyValue, id string) (T, error) {
	r, err := rs.decode(kv.Value)
	if err == nil && r.GetId() != id {
		err = fmt.Errorf("holds %s %q", rs.kind, r.GetId())
	}
	if err != nil {
		var zero T
		return zero, &persistence.CorruptError{Kind: rs.kind, Key: string(kv.Key), Err: err}
	}
	return r, nil
}

// listed reads, at revision rev, the records that the listing entries of
// the range prefix name, in the entries' order. An entry whose record is
// missing is a corrupt index.
func (rs records[T]) listed(ctx context.Context, s *Store, rev int64, prefix string, entries []string) ([]T, error) {
	ids := make([]string, len(entries))
	keys := make([]string, len(entries))
	for i, e := range entries {
		id, err := idAfterTime(e, prefix)
		if err != nil {
			return nil, &persistence.CorruptError{Kind: rs.index, Key: e, Err: err}
		}
		ids[i], keys[i] = id, rs.key(s.k, id)
	}
	got, _, err := s.getMany(ctx, rev, keys)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list %ss: %w", rs.kind, err)
	}
	out := make([]T, 0, len(ids))
	for i, id := range ids {
		kv := got[keys[i]]
		if kv == nil {
			return nil, &persistence.CorruptError{Kind: rs.index, Key: entries[i],
				Err: fmt.Errorf("%s %q is missing", rs.kind, id)}
		}
		r, err := rs.decodeKV(kv, id)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
