package actors

// This file owns recovery: a room actor loads its record when it starts
// (and when supervision restarts it after a panic) and resumes the session
// its predecessor ran, with the members still live; in a cluster, the
// same load is the takeover of a room whose node was lost (TakeOver
// starts it without a request). At a single server's start-up, Rooms ends
// the sessions that a crash or a kill left in progress, whose participants
// are gone with their peer connections, so their member records are
// closed.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

func (a *roomActor) load() {
	ctx, cancel := a.storeCtx()
	defer cancel()
	if !a.life.loaded {
		// Nothing of the room runs here yet: if Rooms closes meanwhile,
		// the room stops at once, so its load (a takeover's, maybe) is
		// given up, and what a lost node left is left to the next owner.
		defer context.AfterFunc(a.deps.closing, cancel)()
	}
	r, err := a.deps.cfg.Store.GetRoom(ctx, string(a.id))
	switch {
	case err == nil:
		a.room, a.loadErr = r, nil
		if err := a.resumeSession(ctx); err != nil {
			// The members left open are still open: the room does not
			// serve until a later load (the next request) closes them.
			a.loadErr = err
			a.loadFailed("resume session", err)
			return
		}
		if ctx.Err() == nil {
			a.closeOrphanRecordings(ctx)
		}
	case errors.Is(err, persistence.ErrNotFound):
		a.room, a.loadErr = nil, nil
	default:
		a.loadErr = err
		a.loadFailed("load room", err)
		return
	}
	a.life.loaded = true
}

// loadFailed logs a load that failed, as an error unless Rooms is closing
// and the load was given up for it.
func (a *roomActor) loadFailed(what string, err error) {
	if a.deps.closed.Load() {
		a.log.Info(what+": given up, shutting down", "err", err)
		return
	}
	a.log.Error(what, "err", err)
}

// resumeSession picks up the room's session after this actor restarted
// (a panic), or started on a session another actor left in progress. The
// members still live (a restart keeps them: see roomLife) keep their
// records; those of participants that went with an earlier actor are
// closed, each with its participant-left event, in one write with the
// session's count. A session left empty waits out its empty_timeout like
// any empty one; a participant that joins meanwhile joins it. At a single
// server's start-up there is none to resume: Rooms closed them already.
//
// In a cluster, the first actor of a room on a node that finds members
// open is a takeover: the node that ran them died or lost its lease (its
// fenced writes fail from then on), so they leave with ReasonNodeLost.
// Only the node that won the room's claim runs this, and its write is
// fenced, so they are closed once. After a restart they left with
// ReasonFailed.
func (a *roomActor) resumeSession(ctx context.Context) error {
	if a.room.ActiveSessionId == "" || a.session != nil {
		return nil
	}
	rec, err := a.deps.cfg.Store.GetSession(ctx, a.room.ActiveSessionId)
	switch {
	case isNotFound(err) || err == nil && rec.Status != recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS:
		a.log.Warn("active session not found; clearing it", "session", a.room.ActiveSessionId, "err", err)
		a.room.ActiveSessionId = ""
		return nil
	case err != nil:
		return fmt.Errorf("read session %s: %w", a.room.ActiveSessionId, err)
	}
	members, err := a.deps.cfg.Store.ListSessionMembers(ctx, rec.Id)
	if err != nil {
		return fmt.Errorf("read the members of session %s: %w", rec.Id, err)
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
	session := newLiveSession(rec)
	counted := 0 // hidden members are not
	for _, m := range live {
		session.members[m.ParticipantId] = m
		if !m.Hidden {
			counted++
		}
	}
	if len(lost) > 0 || int(rec.ParticipantCount) != counted {
		now := a.now()
		reason := ReasonFailed
		if a.deps.cfg.Owners != nil && !a.life.loaded {
			reason = ReasonNodeLost
		}
		w := abandoned(rec, lost, timestamp(now), timestamp(now), reason)
		w.Sessions[0].ParticipantCount = uint32(counted)
		for _, m := range w.Members {
			a.deps.enqueueEvent(&w, a.room, rec.Id, "participant-left", now, participantData(recordedInfo(m), m))
		}
		if err := ctx.Err(); err != nil { // given up (see load)
			return fmt.Errorf("close the members session %s lost: %w", rec.Id, err)
		}
		if err := a.commit(&changes{w: w}); err != nil {
			return fmt.Errorf("close the members session %s lost: %w", rec.Id, err)
		}
		session.rec = w.Sessions[0]
		a.deps.metrics.leaves.WithLabelValues(string(reason)).Add(float64(len(lost)))
		if reason == ReasonNodeLost {
			a.deps.metrics.takeovers.Inc()
			a.log.Warn("took over a room from a lost node; closed the members it left", "session", rec.Id, "members", len(lost))
		}
	}
	a.session = session
	if len(live) == 0 {
		a.arm(timerEmpty, "", time.Duration(a.room.Config.EmptyTimeout)*time.Second)
	}
	a.armSessionTimers()
	return nil
}

// recordedInfo describes the participant of a member record, for the
// events of a member that left with no actor of this room to tell it.
func recordedInfo(m *recordpb.SessionMember) ParticipantInfo {
	return ParticipantInfo{ID: ParticipantID(m.ParticipantId), Identity: m.Identity, Name: m.Name,
		Role: Role(m.Role), Grants: Grants{Hidden: m.Hidden}, Metadata: m.Metadata, JoinedAt: m.JoinedAt.AsTime()}
}

// TakeOver starts the actor of room id on this node unless it runs
// already, as a request would: in a cluster the room is claimed first, and
// the actor that starts closes the members a lost node left (see
// resumeSession) and runs the session's timers again. It returns nil once
// the room runs here or another node won it, or if it no longer exists;
// an error means it is worth trying again.
func (r *Rooms) TakeOver(ctx context.Context, id RoomID) error {
	// The room's owner key went a moment ago: this node's hint of its
	// owner may not know yet, so etcd is asked.
	_, err := r.roomRequest(Forwarded(ctx), id, &actorpb.GetRoom{})
	var noe *NotOwnerError
	switch {
	case errors.As(err, &noe) && noe.Owner != "":
		return nil
	case errors.Is(err, ErrRoomNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("actors: take over room %s: %w", id, err)
	}
	return nil
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
		recs, err := r.sessionRecordings(ctx, s)
		if err != nil {
			return err
		}
		end := lastActivity(s, members, recs)
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

// sessionRecordings reads the recordings session s lists (those deleted
// since are gone from the store, and skipped).
func (r *Rooms) sessionRecordings(ctx context.Context, s *recordpb.Session) ([]*recordpb.Recording, error) {
	var recs []*recordpb.Recording
	for _, id := range s.RecordingIds {
		rec, err := r.cfg.Store.GetRecording(ctx, id)
		switch {
		case err == nil:
			recs = append(recs, rec)
		case !isNotFound(err):
			return nil, fmt.Errorf("actors: recording %s of session %s: %w", id, s.Id, err)
		}
	}
	return recs, nil
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
// restarted room closed, or one written without last_activity_at), its
// members' joins and leaves, or its recordings' starts and ends (the
// start-up closed those first, ended at the last frame their files hold),
// whichever is latest; never before its start. The session ran at least
// until then, so that is its end and its duration, rather than its start
// and none.
func lastActivity(s *recordpb.Session, members []*recordpb.SessionMember, recs []*recordpb.Recording) *timestamppb.Timestamp {
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
	for _, rec := range recs {
		later(rec.StartedAt)
		later(rec.EndedAt)
	}
	return timestamp(end)
}

func isNotFound(err error) bool { return errors.Is(err, persistence.ErrNotFound) }
