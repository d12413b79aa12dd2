package etcdstore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// GetSession returns the session with the given id, or
// persistence.ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*recordpb.Session, error) {
	return sessionRecords.get(ctx, s, id)
}

// ListSessions returns a page of sessions, newest first, read as ListRooms
// reads rooms: one listing index per filter, so a page never reads entries
// that its filters exclude.
func (s *Store) ListSessions(ctx context.Context, q persistence.SessionQuery) (persistence.SessionPage, error) {
	if err := s.enter(ctx); err != nil {
		return persistence.SessionPage{}, err
	}
	defer s.leave()
	prefix := s.k.sessionList(q.RoomID, q.Status)
	entries, total, rev, err := s.pageKeys(ctx, prefix, q.Offset, q.Limit)
	if err != nil {
		return persistence.SessionPage{}, fmt.Errorf("etcdstore: list sessions: %w", err)
	}
	list, err := sessionRecords.listed(ctx, s, rev, prefix, entries)
	if err != nil {
		return persistence.SessionPage{}, err
	}
	return persistence.SessionPage{Sessions: list, Total: total}, nil
}

// InProgressSessions returns every session in progress, newest first.
func (s *Store) InProgressSessions(ctx context.Context) ([]*recordpb.Session, error) {
	return persistence.InProgressSessions(ctx, s.ListSessions)
}

// ListSessionMembers returns the participant history of a session in join
// order: one range read of the session's members.
func (s *Store) ListSessionMembers(ctx context.Context, sessionID string) ([]*recordpb.SessionMember, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	resp, err := s.cli.Get(ctx, s.k.members(sessionID), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list members of session %q: %w", sessionID, err)
	}
	var out []*recordpb.SessionMember
	for _, kv := range resp.Kvs {
		m, err := persistence.DecodeMember(kv.Value)
		if err == nil && m.SessionId != sessionID {
			err = fmt.Errorf("holds a member of session %q", m.SessionId)
		}
		if err != nil {
			return nil, &persistence.CorruptError{Kind: persistence.KindMember, Key: string(kv.Key), Err: err}
		}
		out = append(out, m)
	}
	return out, nil
}
