package actors

// This file owns recovery: a room actor loads its record when it starts
// (and when supervision restarts it after a panic) and resumes the session
// its predecessor ran, with the members still live; at server start-up,
// Rooms ends the sessions that a crash or a kill left in progress, whose
// participants are gone with their peer connections, so their member
// records are closed.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

func (a *roomActor) load() {
	ctx, cancel := a.storeCtx()
	defer cancel()
	r, err := a.deps.cfg.Store.GetRoom(ctx, string(a.id))
	switch {
	case err == nil:
		a.room, a.loadErr = r, nil
		a.resumeSession(ctx)
	case errors.Is(err, persistence.ErrNotFound):
		a.room, a.loadErr = nil, nil
	default:
		a.loadErr = err
		a.log.Error("load room", "err", err)
	}
}

// resumeSession picks up the room's session after this actor restarted
// (a panic), or started on a session another actor left in progress. The
// members still live (a restart keeps them: see roomLife) keep their
// records; those of participants that went with an earlier actor are
// closed as failed, and a session left empty waits out its empty_timeout
// like any empty one. At server start-up there is none: Rooms closed them
// already.
func (a *roomActor) resumeSession(ctx context.Context) {
	if a.room.ActiveSessionId == "" || a.session != nil {
		return
	}
	rec, err := a.deps.cfg.Store.GetSession(ctx, a.room.ActiveSessionId)
	if err != nil || rec.Status != recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS {
		a.log.Warn("active session not found; clearing it", "session", a.room.ActiveSessionId, "err", err)
		a.room.ActiveSessionId = ""
		return
	}
	members, err := a.deps.cfg.Store.ListSessionMembers(ctx, rec.Id)
	if err != nil {
		a.log.Error("resume session members", "session", rec.Id, "err", err)
	}
	var live, lost []*recordpb.SessionMember
	for _, m := range members {
		_, ok := a.members[ParticipantID(m.ParticipantId)]
		switch {
		case m.LeftAt != nil:
		case ok:
			live = append(live, m)
		default:
			lost = append(lost, m)
		}
	}
	a.session = newLiveSession(rec)
	for _, m := range live {
		a.session.members[m.ParticipantId] = m
	}
	if len(lost) > 0 || int(rec.ParticipantCount) != len(live) {
		now := timestamp(a.now())
		w := abandoned(rec, lost, now, now, ReasonFailed)
		w.Sessions[0].ParticipantCount = uint32(len(live))
		if err := a.commit(&changes{w: w}); err != nil {
			a.log.Error("resume session", "session", rec.Id, "err", err)
		} else {
			a.session.rec = w.Sessions[0]
		}
	}
	if len(live) == 0 {
		a.arm(timerEmpty, "", time.Duration(a.room.Config.EmptyTimeout)*time.Second)
	}
	a.armSessionTimers()
}

// closeInterruptedSessions ends the sessions a crash or a kill left in
// progress, at the time of their last recorded activity.
func (r *Rooms) closeInterruptedSessions(ctx context.Context) error {
	sessions, err := r.cfg.Store.InProgressSessions(ctx)
	if err != nil {
		return fmt.Errorf("actors: find interrupted sessions: %w", err)
	}
	for _, s := range sessions {
		members, err := r.cfg.Store.ListSessionMembers(ctx, s.Id)
		if err != nil {
			return fmt.Errorf("actors: session %s members: %w", s.Id, err)
		}
		end := lastActivity(s, members)
		w := abandoned(s, members, timestamp(r.cfg.Clock.Now()), end, ReasonServerRestart)
		next := w.Sessions[0]
		next.Status = recordpb.SessionStatus_SESSION_STATUS_ENDED
		next.EndTime, next.EndReason = end, string(EndServerRestart)
		room, err := r.cfg.Store.GetRoom(ctx, s.RoomId)
		switch {
		case err == nil:
			if room.ActiveSessionId == s.Id {
				room.ActiveSessionId = ""
				w.Room = room
			}
			r.enqueueEvent(&w, room, s.Id, "session-ended", end.AsTime(), sessionData(next))
		case !isNotFound(err):
			return fmt.Errorf("actors: room of session %s: %w", s.Id, err)
		}
		if err := r.cfg.Store.Apply(ctx, w); err != nil {
			return fmt.Errorf("actors: close session %s: %w", s.Id, err)
		}
		r.cfg.Logger.Info("closed a session interrupted by a restart", "session", s.Id, "room", s.RoomId)
	}
	if len(sessions) > 0 && r.cfg.OnEvents != nil {
		r.cfg.OnEvents()
	}
	return nil
}

// abandoned returns the writes that take from session s the participants a
// crash took with it: s with nobody in it, updated at now, and the records
// of members still open closed at left, for reason.
func abandoned(s *recordpb.Session, members []*recordpb.SessionMember, now, left *timestamppb.Timestamp, reason LeaveReason) persistence.Writes {
	next := proto.Clone(s).(*recordpb.Session)
	next.ParticipantCount = 0
	next.UpdatedAt = now
	w := persistence.Writes{Sessions: []*recordpb.Session{next}}
	for _, m := range members {
		if m.LeftAt == nil {
			w.Members = append(w.Members, closeMember(m, left, reason, nil))
		}
	}
	return w
}

// lastActivity is the time of the latest change recorded of a session
// that a crash left open: its last_activity_at, its updated_at (the only
// time some records carry of their last change: one whose members a
// restarted room closed, or one written without last_activity_at), or its
// members' joins and leaves, whichever is latest; never before its start.
// The session ran at least until then, so that is its end and its
// duration, rather than its start and none.
func lastActivity(s *recordpb.Session, members []*recordpb.SessionMember) *timestamppb.Timestamp {
	end := s.StartTime.AsTime()
	later := func(ts *timestamppb.Timestamp) {
		if ts.IsValid() && ts.AsTime().After(end) {
			end = ts.AsTime()
		}
	}
	later(s.LastActivityAt)
	later(s.UpdatedAt)
	for _, m := range members {
		later(m.JoinedAt)
		later(m.LeftAt)
	}
	return timestamp(end)
}

func isNotFound(err error) bool { return errors.Is(err, persistence.ErrNotFound) }
