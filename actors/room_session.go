package actors

// This file owns the room's running session: its start with the first
// participant, each member's join and leave records, its end (and why), and
// the timers it runs under: empty_timeout, session_length, auto_close and
// remove_after_seconds_elapsed. The timers are scheduled messages to the
// room actor, never goroutines that sleep. (The join window needs no timer:
// admission checks it at each join.)

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// autoCloseDeactive is the auto_close type that also ends the room.
const autoCloseDeactive = "session-end-and-deactivate"

// liveSession is the room actor's in-progress session.
type liveSession struct {
	rec     *recordpb.Session
	members map[string]*recordpb.SessionMember // open entries, by participant id
	timers  map[timerKey]clock.Timer
	chat    *chatLog // nil until first needed (see roomActor.chatLog)
}

func newLiveSession(rec *recordpb.Session) *liveSession {
	return &liveSession{rec: rec, members: make(map[string]*recordpb.SessionMember), timers: make(map[timerKey]clock.Timer)}
}

// endSessionReq is POST /api/v1/sessions/{id}/end, routed to the room.
type endSessionReq struct{ sessionID SessionID }

type sessionReply struct {
	session *recordpb.Session
	err     error
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
		RemoveAt: cfg.RemoveAt, RoomJoinVideoOff: cfg.RoomJoinVideoOff, UserJoinVideoOff: cfg.UserJoinVideoOff,
		PrioritizeHandraise: cfg.PrioritizeHandraise, SyncAudioVideo: cfg.SyncAudioVideo,
		ToneOnEntryAndExit: cfg.ToneOnEntryAndExit, EnableRoomPreviews: cfg.EnableRoomPreviews,
	}
	a.session = newLiveSession(rec)
	room.ActiveSessionId = rec.Id
	c.w.Room = room
	a.event(c, room, "session-started", sessionData(rec))
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
		SessionId: s.rec.Id, ParticipantId: string(info.ID), Identity: info.Identity, Name: info.Name,
		Role: string(info.Role), JoinedAt: timestamp(info.JoinedAt),
		Hidden: info.Grants.Hidden, Metadata: info.Metadata,
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
	if !m.Hidden { // hidden participants are not counted
		next.ParticipantCount++
		next.TotalParticipants++
		next.MaxConcurrentParticipants = max(next.MaxConcurrentParticipants, next.ParticipantCount)
	}
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
		if m.ParticipantId == string(info.ID) {
			s.members[m.ParticipantId] = m
		}
	}
	if c.w.Room != nil {
		a.room = c.w.Room
	}
	if newSession {
		a.armSessionTimers()
		a.recordOnStart()
	}
	a.disarm(timerEmpty, "")
	if after := a.room.Config.RemoveAfterSecondsElapsed; after != nil {
		a.arm(timerRemoveMember, info.ID, time.Duration(*after)*time.Second)
	}
}

// memberLeft records a participant leaving the session.
func (a *roomActor) memberLeft(m *member, reason LeaveReason) {
	s := a.session
	if s == nil {
		return
	}
	rec, ok := s.members[string(m.info.ID)]
	if !ok {
		return
	}
	now := a.now()
	left := closeMember(rec, timestamp(now), reason, m.stats.snapshot())
	next := proto.Clone(s.rec).(*recordpb.Session)
	if next.ParticipantCount > 0 && !rec.Hidden {
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
	delete(s.members, string(m.info.ID))
	a.disarm(timerRemoveMember, m.info.ID)
	if len(a.members) == 0 {
		a.arm(timerEmpty, "", time.Duration(a.room.Config.EmptyTimeout)*time.Second)
	}
}

// closeMember returns a copy of rec that says the participant left at at,
// for reason. stats are its media figures; nil when they were lost with
// it (a crash), which keeps whatever rec has.
func closeMember(rec *recordpb.SessionMember, at *timestamppb.Timestamp, reason LeaveReason, stats *recordpb.MediaStats) *recordpb.SessionMember {
	left := proto.Clone(rec).(*recordpb.SessionMember)
	left.LeftAt, left.LeaveReason = at, string(reason)
	if stats != nil {
		left.Stats = stats
	}
	return left
}

// endSession ends the running session with reason: every member is
// removed (leaving for leaveReason), open member records are closed, and
// the session and its events are written in one batch, with whatever the
// caller adds to extra.
func (a *roomActor) endSession(ctx actor.Context, reason EndReason, leaveReason LeaveReason, extra *changes) error {
	a.endRecordingNow(RecordingSessionEnded)
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
	next.EndTime, next.EndReason = timestamp(now), string(reason)
	next.UpdatedAt, next.LastActivityAt = timestamp(now), timestamp(now)
	next.ParticipantCount = 0
	for _, m := range a.memberList() {
		rec, ok := s.members[string(m.info.ID)]
		if !ok {
			continue
		}
		left := closeMember(rec, timestamp(now), leaveReason, m.stats.snapshot())
		c.w.Members = append(c.w.Members, left)
		a.event(c, a.room, "participant-left", participantData(m.info, left))
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

// endSessionAtShutdown ends the running session when a single node stops
// in order: nobody can be in it until the server is back, so it ends now,
// its session-ended event queued in the outbox, rather than at the next
// start as an interrupted one. A cluster node's sessions go on: its rooms
// go with its lease, and the node that takes one over keeps its session.
func (a *roomActor) endSessionAtShutdown(ctx actor.Context) {
	if a.session == nil || a.deps.cfg.Owners != nil || !a.deps.closed.Load() {
		return // nothing running, or a passivation or a lost lease
	}
	id := a.session.rec.Id
	if err := a.endSession(ctx, EndServerShutdown, ReasonServerShutdown, nil); err != nil {
		// The next start closes it as interrupted (server-restart).
		a.log.Error("end the session at shutdown", "session", id, "err", err)
	}
}

func (a *roomActor) endSessionByID(ctx actor.Context, id SessionID) (*recordpb.Session, error) {
	if _, err := a.current(); err != nil {
		return nil, err
	}
	if a.session == nil || SessionID(a.session.rec.Id) != id {
		return nil, ErrSessionEnded
	}
	if err := a.endSession(ctx, EndViaAPI, ReasonSessionEnded, nil); err != nil {
		return nil, err
	}
	sctx, cancel := a.storeCtx()
	defer cancel()
	return a.deps.cfg.Store.GetSession(sctx, string(id))
}

// Timer kinds; a timer message also carries the generation it was armed in,
// so that one firing after it was re-armed or its session ended is ignored.
type timerKind int

const (
	timerEmpty timerKind = iota
	timerLength
	timerAutoClose
	timerRemoveMember
	timerRemoveAt
)

type timerFired struct {
	kind timerKind
	gen  uint64
	who  ParticipantID // for timerRemoveMember
}

type timerKey struct {
	kind timerKind
	who  ParticipantID
}

// armedTimer remembers the generation it was armed in.
type armedTimer struct {
	clock.Timer
	gen uint64
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
	a.armRemoveAt()
}

// armRemoveAt arms the running session's remove_at timer, or disarms it
// when the room has none: at session start, after a restart, and after a
// patch, which may move it.
func (a *roomActor) armRemoveAt() {
	if a.session == nil || a.room == nil {
		return
	}
	at := a.room.Config.RemoveAt
	if at == nil {
		a.disarm(timerRemoveAt, "")
		return
	}
	a.arm(timerRemoveAt, "", at.AsTime().Sub(a.now()))
}

// arm schedules a timer of the running session; it fires as a message to
// this actor, and only if not disarmed or re-armed meanwhile.
func (a *roomActor) arm(kind timerKind, who ParticipantID, d time.Duration) {
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

func (a *roomActor) disarm(kind timerKind, who ParticipantID) {
	if a.session == nil {
		return
	}
	key := timerKey{kind, who}
	if t, ok := a.session.timers[key]; ok {
		t.Stop()
		delete(a.session.timers, key)
	}
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
	case timerRemoveAt:
		a.removeAll(ctx, ReasonRemoveAt)
	}
}
