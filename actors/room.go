package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// roomActor is the single writer of one room. Its record is nil while the
// room does not exist (never created, or deleted).
type roomActor struct {
	id   string
	deps *Rooms
	log  *slog.Logger

	room    *recordpb.Room
	loadErr error // the last load failed; every request retries it

	// The live participants, children of this actor. They are not part of
	// the snapshot: a restarted room has lost its peer connections anyway.
	members     map[string]*member
	memberOrder []string
	// session is the running session, nil between sessions.
	session *liveSession
	self    *actor.PID
	// joins wait here for the next flushJoins, which is in the mailbox
	// whenever joins is not empty.
	joins []pendingJoin

	// published is what readers see (Rooms.Get without a message), and the
	// record it was made from.
	published     *RoomInfo
	publishedFrom *recordpb.Room
	stopping      bool
}

// respond publishes the room's state, then answers: a caller that reads
// after its reply sees its change.
func (a *roomActor) respond(ctx actor.Context, msg any) {
	a.publish()
	ctx.Respond(msg)
}

// publish makes the room's current state what Rooms.Get returns without
// asking this actor. The room is cloned: readers never see a record the
// actor goes on to change. It does nothing when nothing changed.
func (a *roomActor) publish() {
	if a.stopping {
		return
	}
	if a.room == nil {
		a.withdrawSnapshot()
		return
	}
	n := len(a.members)
	if a.published != nil && a.publishedFrom == a.room && a.published.ParticipantCount == n {
		return
	}
	a.published = &RoomInfo{Room: proto.Clone(a.room).(*recordpb.Room), ParticipantCount: n}
	a.publishedFrom = a.room
	a.deps.snapshots.Store(a.id, a.published)
}

// withdraw stops publishing for good: the actor is stopping or
// restarting, and readers must ask whichever actor comes next.
func (a *roomActor) withdraw() {
	a.stopping = true
	a.withdrawSnapshot()
}

func (a *roomActor) withdrawSnapshot() {
	if a.published != nil {
		a.deps.snapshots.CompareAndDelete(a.id, a.published)
		a.published, a.publishedFrom = nil, nil
	}
}

// passivate asks the registry to stop the room actor who once its mailbox
// is drained.
type passivate struct{ who *actor.PID }

// crashRoom makes a room actor panic. It exists for the supervision tests and
// is unexported so that nothing outside this package can send it.
type crashRoom struct{}

func (a *roomActor) Receive(ctx actor.Context) {
	// Changes without a reply of their own (a member leaving, a timer)
	// reach readers too.
	defer a.publish()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self = ctx.Self()
		ctx.SetReceiveTimeout(a.deps.cfg.PassivateAfter)
		a.load()
	case *actor.Stopping:
		a.withdraw()
		a.stopTimers()
		a.refuseJoins(ctx, fmt.Errorf("%w: room %s is stopping", ErrUnavailable, a.id))
		// The node is shutting down (or the room is passivated, which it
		// never is with members): the children stop with this actor.
		for _, m := range a.members {
			if m.leaveReason == "" {
				m.leaveReason = ReasonServerShutdown
				if m.signal != nil {
					m.signal.Close(ReasonServerShutdown)
				}
			}
		}
	case *actor.Restarting:
		a.withdraw() // until the fresh actor has reloaded
		a.stopTimers()
		a.refuseJoins(ctx, fmt.Errorf("%w: room %s is restarting", ErrUnavailable, a.id))
		a.deps.metrics.restarts.Inc()
		a.log.Warn("room actor restarting after a failure; it will reload its record")
	case *actor.ReceiveTimeout:
		// A running session (even an empty one, waiting out its
		// empty_timeout) keeps its room in memory: its timers live here.
		if len(a.members) == 0 && a.session == nil {
			ctx.Send(ctx.Parent(), &passivate{who: ctx.Self()})
		}
	case *actor.Terminated:
		a.memberTerminated(ctx, m.Who)
	case *joinRoom:
		a.queueJoin(ctx, m.req)
	case *flushJoins:
		a.flushJoins(ctx)
	case *listParticipants:
		a.respond(ctx, a.participants())
	case *removeParticipant:
		reply := &errorReply{}
		if mb, err := a.findMember(m.id); err != nil {
			reply.err = err
		} else {
			a.removeMember(ctx, mb, m.reason)
		}
		if ctx.Sender() != nil {
			a.respond(ctx, reply)
		}
	case *muteParticipant:
		reply := &errorReply{}
		if mb, err := a.findMember(m.id); err != nil {
			reply.err = err
		} else {
			ctx.Send(mb.pid, &setMuted{kind: m.kind, muted: m.muted, byServer: true})
		}
		a.respond(ctx, reply)
	case *trackPublished:
		a.trackPublished(ctx, m)
	case *trackEnded:
		if mb, ok := a.members[m.participantID]; ok {
			a.unpublish(ctx, mb, m.trackID)
		}
	case *trackMuted:
		a.trackMuted(m)
	case *crashRoom:
		panic("room actor: crash requested by a test")
	case *actorpb.CreateRoom:
		a.respond(ctx, a.roomReply(a.create(m)))
		if a.room == nil {
			ctx.Send(ctx.Parent(), &passivate{who: ctx.Self()}) // nothing was created
		}
	case *actorpb.GetRoom:
		a.respond(ctx, a.roomReply(a.current()))
	case *actorpb.UpdateRoom:
		a.respond(ctx, a.roomReply(a.update(m)))
	case *actorpb.EndRoom:
		a.respond(ctx, a.roomReply(a.endRoom(ctx, EndRoomEnded)))
	case *actorpb.DeleteRoom:
		err := a.delete(ctx)
		if err == nil {
			a.removeAll(ctx, ReasonRoomDeleted)
		}
		a.respond(ctx, a.roomReply(nil, err))
		if err == nil && len(a.members) == 0 {
			// A room that is gone has no state worth keeping in memory; one
			// with members still leaving passivates when they are gone.
			ctx.Send(ctx.Parent(), &passivate{who: ctx.Self()})
		}
	case *endSessionReq:
		s, err := a.endSessionByID(ctx, m.sessionID)
		a.respond(ctx, &sessionReply{session: s, err: err})
	case *timerFired:
		a.timerFired(ctx, m)
	case *sessionStatsReq:
		a.respond(ctx, a.liveStats(m.sessionID))
	}
}

// roomReply carries the live participant count with every room, so that
// each reply agrees with what Get and the snapshot say.
func (a *roomActor) roomReply(room *recordpb.Room, err error) *actorpb.RoomReply {
	if err != nil {
		return &actorpb.RoomReply{Error: errorToPB(err)}
	}
	return &actorpb.RoomReply{Room: room, ParticipantCount: uint32(len(a.members))}
}

// storeCtx bounds a store call; the store syncs, so allow more than a read.
func (a *roomActor) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.deps.cfg.RequestTimeout)
}

func (a *roomActor) load() {
	ctx, cancel := a.storeCtx()
	defer cancel()
	r, err := a.deps.cfg.Store.GetRoom(ctx, a.id)
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
// (a panic): the participants went with the old actor, so their records
// are closed, and the session waits out its empty_timeout like any empty
// one. At server start-up there is none: Rooms closed them already.
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
	now := a.now()
	next := proto.Clone(rec).(*recordpb.Session)
	next.ParticipantCount = 0
	next.UpdatedAt = timestamp(now)
	c := &changes{w: persistence.Writes{Sessions: []*recordpb.Session{next}}}
	for _, m := range members {
		if m.LeftAt == nil {
			left := proto.Clone(m).(*recordpb.SessionMember)
			left.LeftAt, left.LeaveReason = timestamp(now), ReasonFailed
			c.w.Members = append(c.w.Members, left)
		}
	}
	if err := a.commit(c); err != nil {
		a.log.Error("resume session", "session", rec.Id, "err", err)
	}
	a.session = &liveSession{rec: next, members: make(map[string]*recordpb.SessionMember), timers: make(map[timerKey]Timer)}
	a.arm(timerEmpty, "", time.Duration(a.room.Config.EmptyTimeout)*time.Second)
	a.armSessionTimers()
}

// current returns the room, reloading first if the last load failed.
func (a *roomActor) current() (*recordpb.Room, error) {
	if a.loadErr != nil {
		a.load()
		if a.loadErr != nil {
			return nil, fmt.Errorf("%w: loading room: %v", ErrUnavailable, a.loadErr)
		}
	}
	if a.room == nil {
		return nil, ErrRoomNotFound
	}
	return a.room, nil
}

func (a *roomActor) create(m *actorpb.CreateRoom) (*recordpb.Room, error) {
	if _, err := a.current(); err == nil {
		return nil, ErrRoomExists
	} else if !errors.Is(err, ErrRoomNotFound) {
		return nil, err
	}
	r, err := newRoomFromSpec(a.id, m.Spec)
	if err != nil {
		return nil, err
	}
	if err := ValidateRoom(r); err != nil {
		return nil, err
	}
	now := timestamp(a.now())
	r.CreatedAt, r.UpdatedAt, r.Revision = now, now, 1
	return a.saveRoom(r, "room-created")
}

func (a *roomActor) update(m *actorpb.UpdateRoom) (*recordpb.Room, error) {
	cur, err := a.current()
	if err != nil {
		return nil, err
	}
	if cur.Status == recordpb.RoomStatus_ROOM_STATUS_ENDED {
		return nil, ErrRoomEnded
	}
	if m.Patch == nil {
		return cur, nil
	}
	// Work on a copy: an invalid patch or a failed write changes nothing.
	next := proto.Clone(cur).(*recordpb.Room)
	if err := applyPatch(next, m.Patch); err != nil {
		return nil, err
	}
	if err := ValidateRoom(next); err != nil {
		return nil, err
	}
	return a.saveRoom(a.stamp(next), "room-updated")
}

func (a *roomActor) delete(ctx actor.Context) error {
	cur, err := a.current()
	if err != nil {
		return err
	}
	c := &changes{w: persistence.Writes{DeleteRoom: a.id}}
	a.event(c, cur, "room-deleted", roomData(cur))
	if err := a.endSession(ctx, EndRoomDeleted, ReasonRoomDeleted, c); err != nil {
		return fmt.Errorf("delete room: %w", err)
	}
	a.room = nil
	return nil
}

func (a *roomActor) stamp(r *recordpb.Room) *recordpb.Room {
	r.UpdatedAt = timestamp(a.now())
	r.Revision++
	return r
}

// saveRoom persists r with its event (synced) and only then makes it the
// actor's state.
func (a *roomActor) saveRoom(r *recordpb.Room, event string) (*recordpb.Room, error) {
	c := &changes{w: persistence.Writes{Room: r}}
	a.event(c, r, event, roomData(r))
	if err := a.commit(c); err != nil {
		return nil, err
	}
	a.room = r
	return r, nil
}
