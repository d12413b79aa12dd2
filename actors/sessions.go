package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// SessionQuery selects sessions for Sessions.
type SessionQuery struct {
	RoomID RoomID
	// Status filters; SESSION_STATUS_UNSPECIFIED lists every session.
	Status        recordpb.SessionStatus
	Limit, Offset int
}

// Sessions returns a page of sessions, newest first, and how many match.
// Every session change is written before it is acknowledged, so the store
// is current: participant_count included.
func (r *Rooms) Sessions(ctx context.Context, q SessionQuery) ([]*recordpb.Session, int, error) {
	page, err := r.cfg.Store.ListSessions(ctx, persistence.SessionQuery{RoomID: string(q.RoomID), Status: q.Status, Limit: q.Limit, Offset: q.Offset})
	if err != nil {
		return nil, 0, fmt.Errorf("list sessions: %w", err)
	}
	return page.Sessions, page.Total, nil
}

// Session returns one session.
func (r *Rooms) Session(ctx context.Context, id SessionID) (*recordpb.Session, error) {
	s, err := r.cfg.Store.GetSession(ctx, string(id))
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, ErrSessionNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// SessionParticipants returns a session's participant history in join order.
func (r *Rooms) SessionParticipants(ctx context.Context, id SessionID) ([]*recordpb.SessionMember, error) {
	if _, err := r.Session(ctx, id); err != nil {
		return nil, err
	}
	members, err := r.cfg.Store.ListSessionMembers(ctx, string(id))
	if err != nil {
		return nil, fmt.Errorf("session members: %w", err)
	}
	return members, nil
}

// EndSession ends a session that is in progress (EndViaAPI); a session
// that has ended already gives ErrSessionEnded.
func (r *Rooms) EndSession(ctx context.Context, id SessionID) (*recordpb.Session, error) {
	s, err := r.Session(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.Status != recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS {
		return nil, ErrSessionEnded
	}
	reply, err := requestAs[*sessionReply](ctx, r, RoomID(s.RoomId), &endSessionReq{sessionID: id})
	if err != nil {
		return nil, err
	}
	return reply.session, reply.err
}
