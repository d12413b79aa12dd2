package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

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
}

// passivate asks the registry to stop the room actor who once its mailbox
// is drained.
type passivate struct{ who *actor.PID }

// crashRoom makes a room actor panic. It exists for the supervision tests and
// is unexported so that nothing outside this package can send it.
type crashRoom struct{}

func (a *roomActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.SetReceiveTimeout(a.deps.cfg.PassivateAfter)
		a.load()
	case *actor.Stopping:
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
		a.deps.metrics.restarts.Inc()
		a.log.Warn("room actor restarting after a failure; it will reload its record")
	case *actor.ReceiveTimeout:
		if len(a.members) == 0 {
			ctx.Send(ctx.Parent(), &passivate{who: ctx.Self()})
		}
	case *actor.Terminated:
		a.memberTerminated(ctx, m.Who)
	case *joinRoom:
		ctx.Respond(a.join(ctx, m.req))
	case *listParticipants:
		ctx.Respond(a.participants())
	case *removeParticipant:
		reply := &errorReply{}
		if mb, err := a.findMember(m.id); err != nil {
			reply.err = err
		} else {
			a.removeMember(ctx, mb, m.reason)
		}
		if ctx.Sender() != nil {
			ctx.Respond(reply)
		}
	case *muteParticipant:
		reply := &errorReply{}
		if mb, err := a.findMember(m.id); err != nil {
			reply.err = err
		} else {
			ctx.Send(mb.pid, &setMuted{kind: m.kind, muted: m.muted, byServer: true})
		}
		ctx.Respond(reply)
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
		ctx.Respond(roomReply(a.create(m)))
	case *actorpb.GetRoom:
		reply := roomReply(a.current())
		reply.ParticipantCount = uint32(len(a.members))
		ctx.Respond(reply)
	case *actorpb.UpdateRoom:
		ctx.Respond(roomReply(a.update(m)))
	case *actorpb.EndRoom:
		room, err := a.end()
		if err == nil {
			a.removeAll(ctx, ReasonRoomEnded)
		}
		ctx.Respond(roomReply(room, err))
	case *actorpb.DeleteRoom:
		err := a.delete()
		if err == nil {
			a.removeAll(ctx, ReasonRoomDeleted)
		}
		ctx.Respond(roomReply(nil, err))
		// A room that is gone has no state worth keeping in memory.
		ctx.Send(ctx.Parent(), &passivate{who: ctx.Self()})
	}
}

func roomReply(room *recordpb.Room, err error) *actorpb.RoomReply {
	if err != nil {
		return &actorpb.RoomReply{Error: errorToPB(err)}
	}
	return &actorpb.RoomReply{Room: room}
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
	case errors.Is(err, persistence.ErrNotFound):
		a.room, a.loadErr = nil, nil
	default:
		a.loadErr = err
		a.log.Error("load room", "err", err)
	}
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
	now := timestamp(a.deps.cfg.Clock.Now())
	r.CreatedAt, r.UpdatedAt, r.Revision = now, now, 1
	return a.commit(r)
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
	return a.commit(a.stamp(next))
}

func (a *roomActor) end() (*recordpb.Room, error) {
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
	return a.commit(next)
}

func (a *roomActor) delete() error {
	if _, err := a.current(); err != nil {
		return err
	}
	ctx, cancel := a.storeCtx()
	defer cancel()
	if err := a.deps.cfg.Store.DeleteRoom(ctx, a.id); err != nil {
		return fmt.Errorf("delete room: %w", err)
	}
	a.room = nil
	return nil
}

func (a *roomActor) stamp(r *recordpb.Room) *recordpb.Room {
	r.UpdatedAt = timestamp(a.deps.cfg.Clock.Now())
	r.Revision++
	return r
}

// commit persists r (synced) and only then makes it the actor's state.
func (a *roomActor) commit(r *recordpb.Room) (*recordpb.Room, error) {
	ctx, cancel := a.storeCtx()
	defer cancel()
	if err := a.deps.cfg.Store.PutRoom(ctx, r); err != nil {
		return nil, fmt.Errorf("store room: %w", err)
	}
	a.room = r
	return r, nil
}
