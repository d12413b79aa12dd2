package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Session end reasons, as the API and webhooks report them.
const (
	EndEmptyTimeout    = "empty-timeout"
	EndSessionLength   = "session-length"
	EndAutoClose       = "auto-close"
	EndViaAPI          = "ended-via-api"        // POST /sessions/{id}/end
	EndRoomEnded       = "room-ended"           // POST /rooms/{id}/end
	EndRoomDeleted     = "room-deleted"         // DELETE /rooms/{id}
	EndServerRestart   = "server-restart"       // found in progress at start-up
	ReasonSessionEnded = "session-ended"        // a participant's leave reason
	ReasonTimeLimit    = "remove-after-elapsed" // remove_after_seconds_elapsed
	autoCloseDeactive  = "session-end-and-deactivate"
)

// Timer kinds; a timer message also carries the generation it was armed in,
// so that one firing after it was re-armed or its session ended is ignored.
type timerKind int

const (
	timerEmpty timerKind = iota
	timerLength
	timerAutoClose
	timerRemoveMember
)

type timerFired struct {
	kind timerKind
	gen  uint64
	who  string // participant id, for timerRemoveMember
}

// liveSession is the room actor's in-progress session.
type liveSession struct {
	rec     *recordpb.Session
	members map[string]*recordpb.SessionMember // open entries, by participant id
	timers  map[timerKey]Timer
}

type timerKey struct {
	kind timerKind
	who  string
}

// endSessionReq is POST /api/v1/sessions/{id}/end, routed to the room.
type endSessionReq struct{ sessionID string }

type sessionReply struct {
	session *recordpb.Session
	err     error
}

// changes collects what one state change writes, so that the room, the
// session, the member records and the webhook events commit together.
type changes struct {
	w persistence.Writes
}

func (a *roomActor) now() time.Time { return a.deps.cfg.Clock.Now() }

// event queues webhook event name for every destination that wants it.
func (a *roomActor) event(c *changes, room *recordpb.Room, name string, data any) {
	sessionID := ""
	if a.session != nil {
		sessionID = a.session.rec.Id
	}
	a.deps.enqueueEvent(&c.w, room, sessionID, name, a.now(), data)
}

// commit applies c synced; only then may the actor's state move on.
func (a *roomActor) commit(c *changes) error {
	if c.w.Room == nil && c.w.DeleteRoom == "" && len(c.w.Sessions) == 0 && len(c.w.Members) == 0 && len(c.w.Events) == 0 {
		return nil
	}
	ctx, cancel := a.storeCtx()
	defer cancel()
	if err := a.deps.cfg.Store.Apply(ctx, c.w); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if len(c.w.Events) > 0 && a.deps.cfg.OnEvents != nil {
		a.deps.cfg.OnEvents()
	}
	return nil
}

// startSession opens a session for the first participant entering.
func (a *roomActor) startSession(c *changes, room *recordpb.Room) {
	now := a.now()
	cfg := room.Config
	rec := &recordpb.Session{
		Id: "ses_" + randomID(), RoomId: room.Id, Name: room.Name, DisplayName: room.DisplayName,
		Status:    recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS,
		StartTime: timestamp(now), CreatedAt: timestamp(now), UpdatedAt: timestamp(now), LastActivityAt: timestamp(now),
		MaxMembers: cfg.MaxParticipants, Quality: cfg.Quality, Fps: cfg.Fps,
		JoinFrom: cfg.JoinFrom, JoinUntil: cfg.JoinUntil, RemoveAfterSecondsElapsed: cfg.RemoveAfterSecondsElapsed,
		Layout: cfg.Layout, RecordOnStart: cfg.RecordOnStart, Locked: cfg.Locked,
	}
	a.session = &liveSession{rec: rec, members: make(map[string]*recordpb.SessionMember), timers: make(map[timerKey]Timer)}
	room.ActiveSessionId = rec.Id
	c.w.Room = room
	a.event(c, room, "session-started", sessionData(rec))
}

// armSessionTimers starts the timers a session runs under, counted from
// its start.
func (a *roomActor) armSessionTimers() {
	cfg := a.room.Config
	elapsed := a.now().Sub(a.session.rec.StartTime.AsTime())
	if cfg.SessionLength > 0 {
		a.arm(timerLength, "", time.Duration(cfg.SessionLength)*time.Minute-elapsed)
	}
	if ac := a.room.AutoClose; ac != nil {
		a.arm(timerAutoClose, "", time.Duration(ac.Duration)*time.Minute-elapsed)
	}
}

// arm schedules a timer of the running session; it fires as a message to
// this actor, and only if not disarmed or re-armed meanwhile.
func (a *roomActor) arm(kind timerKind, who string, d time.Duration) {
	s := a.session
	key := timerKey{kind, who}
	if t, ok := s.timers[key]; ok {
		t.Stop()
	}
	// Generations come from one counter for every room: an actor restarted
	// after a panic keeps its PID, and a timer its predecessor armed must
	// not pass for one of its own.
	gen := a.deps.timerGen.Add(1)
	msg := &timerFired{kind: kind, gen: gen, who: who}
	self, root := a.self, a.deps.system.Root
	s.timers[key] = &armedTimer{Timer: a.deps.cfg.Clock.AfterFunc(max(d, 0), func() { root.Send(self, msg) }), gen: gen}
}

// stopTimers cancels the running session's timers (the actor is going).
func (a *roomActor) stopTimers() {
	if a.session == nil {
		return
	}
	for _, t := range a.session.timers {
		t.Stop()
	}
}

// armedTimer remembers the generation it was armed in.
type armedTimer struct {
	Timer
	gen uint64
}

func (a *roomActor) disarm(kind timerKind, who string) {
	if a.session == nil {
		return
	}
	key := timerKey{kind, who}
	if t, ok := a.session.timers[key]; ok {
		t.Stop()
		delete(a.session.timers, key)
	}
}

func (a *roomActor) timerFired(ctx actor.Context, m *timerFired) {
	s := a.session
	if s == nil {
		return
	}
	key := timerKey{m.kind, m.who}
	t, ok := s.timers[key]
	if !ok || t.(*armedTimer).gen != m.gen {
		return // disarmed, re-armed, or its session ended
	}
	delete(s.timers, key)
	switch m.kind {
	case timerEmpty:
		if len(a.members) == 0 {
			a.endSession(ctx, EndEmptyTimeout, ReasonSessionEnded, nil)
		}
	case timerLength:
		a.endSession(ctx, EndSessionLength, ReasonSessionEnded, nil)
	case timerAutoClose:
		deactivate := a.room.AutoClose != nil && a.room.AutoClose.Type == autoCloseDeactive
		if deactivate {
			if _, err := a.endRoom(ctx, EndAutoClose); err != nil {
				a.log.Error("auto close", "err", err)
			}
			return
		}
		a.endSession(ctx, EndAutoClose, ReasonSessionEnded, nil)
	case timerRemoveMember:
		if mb, ok := a.members[m.who]; ok {
			a.removeMember(ctx, mb, ReasonTimeLimit)
		}
	}
}

// memberJoined records a participant entering the session (starting it
// if there is none) with its events. It runs before the participant's
// actor exists: if the write fails, nobody joins. Joins admitted together
// share c: each builds on the session record the one before left there.
func (a *roomActor) memberJoined(c *changes, room *recordpb.Room, info ParticipantInfo) {
	if a.session == nil {
		a.startSession(c, room)
	}
	s := a.session
	now := a.now()
	m := &recordpb.SessionMember{
		SessionId: s.rec.Id, ParticipantId: info.ID, Identity: info.Identity, Name: info.Name,
		Role: string(info.Role), JoinedAt: timestamp(info.JoinedAt),
	}
	at := -1
	for i, rec := range c.w.Sessions {
		if rec.Id == s.rec.Id {
			at = i
		}
	}
	base := s.rec
	if at >= 0 {
		base = c.w.Sessions[at]
	}
	next := proto.Clone(base).(*recordpb.Session)
	next.ParticipantCount++
	next.TotalParticipants++
	next.MaxConcurrentParticipants = max(next.MaxConcurrentParticipants, next.ParticipantCount)
	next.UpdatedAt, next.LastActivityAt = timestamp(now), timestamp(now)
	if at >= 0 {
		c.w.Sessions[at] = next // one record per session in a write
	} else {
		c.w.Sessions = append(c.w.Sessions, next)
	}
	c.w.Members = append(c.w.Members, m)
	a.event(c, room, "participant-joined", participantData(info, m))
}

// afterJoin moves the actor's state once the join's writes are durable.
func (a *roomActor) afterJoin(c *changes, info ParticipantInfo, newSession bool) {
	s := a.session
	for _, rec := range c.w.Sessions {
		if rec.Id == s.rec.Id {
			s.rec = rec
		}
	}
	for _, m := range c.w.Members {
		if m.ParticipantId == info.ID {
			s.members[info.ID] = m
		}
	}
	if c.w.Room != nil {
		a.room = c.w.Room
	}
	if newSession {
		a.armSessionTimers()
	}
	a.disarm(timerEmpty, "")
	if after := a.room.Config.RemoveAfterSecondsElapsed; after != nil {
		a.arm(timerRemoveMember, info.ID, time.Duration(*after)*time.Second)
	}
}

// memberLeft records a participant leaving the session.
func (a *roomActor) memberLeft(m *member, reason string) {
	s := a.session
	if s == nil {
		return
	}
	rec, ok := s.members[m.info.ID]
	if !ok {
		return
	}
	now := a.now()
	left := proto.Clone(rec).(*recordpb.SessionMember)
	left.LeftAt, left.LeaveReason = timestamp(now), reason
	left.Stats = m.stats.snapshot()
	next := proto.Clone(s.rec).(*recordpb.Session)
	if next.ParticipantCount > 0 {
		next.ParticipantCount--
	}
	next.UpdatedAt, next.LastActivityAt = timestamp(now), timestamp(now)
	c := &changes{w: persistence.Writes{Sessions: []*recordpb.Session{next}, Members: []*recordpb.SessionMember{left}}}
	a.event(c, a.room, "participant-left", participantData(m.info, left))
	if err := a.commit(c); err != nil {
		// The participant is gone either way; the session record catches
		// up at the next write, and a crash closes it at start-up.
		a.log.Error("record leave", "participant", m.info.ID, "err", err)
		return
	}
	s.rec = next
	delete(s.members, m.info.ID)
	a.disarm(timerRemoveMember, m.info.ID)
	if len(a.members) == 0 {
		a.arm(timerEmpty, "", time.Duration(a.room.Config.EmptyTimeout)*time.Second)
	}
}

// endSession ends the running session with reason: every member is
// removed (leaving for leaveReason), open member records are closed, and
// the session and its events are written in one batch, with whatever the
// caller adds to extra.
func (a *roomActor) endSession(ctx actor.Context, reason, leaveReason string, extra *changes) error {
	s := a.session
	c := extra
	if c == nil {
		c = &changes{}
	}
	if s == nil {
		return a.commit(c)
	}
	now := a.now()
	next := proto.Clone(s.rec).(*recordpb.Session)
	next.Status = recordpb.SessionStatus_SESSION_STATUS_ENDED
	next.EndTime, next.EndReason = timestamp(now), reason
	next.UpdatedAt, next.LastActivityAt = timestamp(now), timestamp(now)
	next.ParticipantCount = 0
	for _, id := range a.memberOrder {
		rec, ok := s.members[id]
		if !ok {
			continue
		}
		left := proto.Clone(rec).(*recordpb.SessionMember)
		left.LeftAt, left.LeaveReason = timestamp(now), leaveReason
		left.Stats = a.members[id].stats.snapshot()
		c.w.Members = append(c.w.Members, left)
		a.event(c, a.room, "participant-left", participantData(a.members[id].info, left))
	}
	c.w.Sessions = append(c.w.Sessions, next)
	room := c.w.Room
	if room == nil && c.w.DeleteRoom == "" {
		room = proto.Clone(a.room).(*recordpb.Room)
		c.w.Room = room
	}
	if room != nil {
		room.ActiveSessionId = ""
	}
	a.event(c, a.room, "session-ended", sessionData(next))
	if err := a.commit(c); err != nil {
		return err
	}
	for _, t := range s.timers {
		t.Stop()
	}
	a.session = nil
	if room != nil {
		a.room = room
	}
	// Readers of the session record must not find the room still naming
	// it for longer than they have to: publish before the members go.
	a.publish()
	// The members' leave records are written: their departure adds none.
	for _, m := range a.members {
		a.removeMember(ctx, m, leaveReason)
	}
	return nil
}

// endRoom ends the room (its status) and the session, for the end API and
// session-end-and-deactivate.
func (a *roomActor) endRoom(ctx actor.Context, sessionReason string) (*recordpb.Room, error) {
	cur, err := a.current()
	if err != nil {
		return nil, err
	}
	if cur.Status == recordpb.RoomStatus_ROOM_STATUS_ENDED {
		return cur, nil
	}
	next := proto.Clone(cur).(*recordpb.Room)
	next.Status = recordpb.RoomStatus_ROOM_STATUS_ENDED
	next = a.stamp(next)
	next.EndedAt = next.UpdatedAt
	next.ActiveSessionId = ""
	c := &changes{w: persistence.Writes{Room: next}}
	a.event(c, next, "room-ended", roomData(next))
	if err := a.endSession(ctx, sessionReason, ReasonRoomEnded, c); err != nil {
		return nil, err
	}
	a.room = next
	a.removeAll(ctx, ReasonRoomEnded)
	return next, nil
}

func (a *roomActor) endSessionByID(ctx actor.Context, id string) (*recordpb.Session, error) {
	if _, err := a.current(); err != nil {
		return nil, err
	}
	if a.session == nil || a.session.rec.Id != id {
		return nil, ErrSessionEnded
	}
	if err := a.endSession(ctx, EndViaAPI, ReasonSessionEnded, nil); err != nil {
		return nil, err
	}
	sctx, cancel := a.storeCtx()
	defer cancel()
	return a.deps.cfg.Store.GetSession(sctx, id)
}

// Webhook payloads: what a receiver needs without calling back.

// roomData is a room event's data: the room's head, as in the API.
func roomData(r *recordpb.Room) RoomHead { return NewRoomHead(r) }

type sessionEventData struct {
	SessionID                 string     `json:"session_id"`
	StartTime                 time.Time  `json:"start_time"`
	EndTime                   *time.Time `json:"end_time,omitempty"`
	Duration                  *int64     `json:"duration,omitempty"` // seconds
	EndReason                 string     `json:"end_reason,omitempty"`
	TotalParticipants         uint32     `json:"total_participants"`
	MaxConcurrentParticipants uint32     `json:"max_concurrent_participants"`
}

func sessionData(s *recordpb.Session) sessionEventData {
	d := sessionEventData{SessionID: s.Id, StartTime: s.StartTime.AsTime(), EndReason: s.EndReason,
		TotalParticipants: s.TotalParticipants, MaxConcurrentParticipants: s.MaxConcurrentParticipants}
	d.EndTime, d.Duration = Ended(d.StartTime, s.EndTime)
	return d
}

type participantEventData struct {
	StayHead
	LeftAt *time.Time `json:"left_at,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

func participantData(info ParticipantInfo, m *recordpb.SessionMember) participantEventData {
	d := participantEventData{StayHead: StayHead{ParticipantID: info.ID, Identity: info.Identity, Name: info.Name,
		Role: string(info.Role), JoinedAt: info.JoinedAt}, Reason: m.GetLeaveReason()}
	d.LeftAt, _ = Ended(info.JoinedAt, m.GetLeftAt())
	return d
}

type trackEventData struct {
	ParticipantID string `json:"participant_id"`
	Identity      string `json:"identity"`
	TrackID       string `json:"track_id"`
	Kind          string `json:"kind,omitempty"`
	Codec         string `json:"codec,omitempty"`
}

// enqueueEvent adds an outbox entry to w for every destination that wants
// event name: the room's own webhook and the server's global ones.
func (r *Rooms) enqueueEvent(w *persistence.Writes, room *recordpb.Room, sessionID, name string, now time.Time, data any) {
	events, err := webhook.Deliveries(webhook.Event{Name: name, Time: now, RoomID: room.Id, SessionID: sessionID, Data: data},
		room.GetWebhook(), r.cfg.Webhooks)
	if err != nil {
		// Only a payload that is not a JSON object: a bug here, not bad input.
		r.cfg.Logger.Error("webhook event", "event", name, "err", err)
		return
	}
	w.Events = append(w.Events, events...)
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
		next := proto.Clone(s).(*recordpb.Session)
		next.Status = recordpb.SessionStatus_SESSION_STATUS_ENDED
		next.EndTime, next.EndReason, next.UpdatedAt = end, EndServerRestart, timestamp(r.cfg.Clock.Now())
		next.ParticipantCount = 0
		w := persistence.Writes{Sessions: []*recordpb.Session{next}}
		for _, m := range members {
			if m.LeftAt == nil {
				left := proto.Clone(m).(*recordpb.SessionMember)
				left.LeftAt, left.LeaveReason = end, EndServerRestart
				w.Members = append(w.Members, left)
			}
		}
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
