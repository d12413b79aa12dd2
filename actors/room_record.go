package actors

// This file owns the room record's own changes: create, update, end and
// delete, each persisted with its webhook event before the actor's state
// moves on and the caller is answered.

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// roomReply carries the live participant count with every room, so that
// each reply agrees with what Get and the snapshot say.
func (a *roomActor) roomReply(room *recordpb.Room, err error) *actorpb.RoomReply {
	if err != nil {
		return &actorpb.RoomReply{Error: errorToPB(err)}
	}
	return &actorpb.RoomReply{Room: room, ParticipantCount: uint32(len(a.members))}
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
	r, err := a.newRoom(m)
	if err != nil {
		return nil, err
	}
	return a.saveRoom(r, "room-created")
}

// newRoom is the room m creates, validated, as of now.
func (a *roomActor) newRoom(m *actorpb.CreateRoom) (*recordpb.Room, error) {
	r, err := newRoomFromSpec(a.id, m.Spec)
	if err != nil {
		return nil, err
	}
	if err := ValidateRoom(r); err != nil {
		return nil, err
	}
	now := timestamp(a.now())
	r.CreatedAt, r.UpdatedAt, r.Revision = now, now, 1
	return r, nil
}

// createUnclaimedReply is the reply to m, created by createUnclaimed: a
// room another node owns is refused as the registry refuses it, so that
// the owner's name reaches the caller (a RoomReply would lose it).
func (a *roomActor) createUnclaimedReply(ctx actor.Context, m *actorpb.CreateRoom) any {
	room, err := a.createUnclaimed(ctx, m)
	var noe *NotOwnerError
	if errors.As(err, &noe) {
		return &refused{err: noe}
	}
	return a.roomReply(room, err)
}

// createUnclaimed creates the room of an actor the registry started
// unclaimed (Config.Owners is a Creator): the room, its event and its
// claim are one write, with nothing read first. If another node owns the
// room, nothing is written and the *NotOwnerError names it, for the create
// to be forwarded there. If the room is stored, or this node owns it
// already, or that write failed, the room is claimed and loaded as any
// room, and created the usual way. The registry learns whether this node
// owns the room; if not, it stops this actor.
func (a *roomActor) createUnclaimed(ctx actor.Context, m *actorpb.CreateRoom) (_ *recordpb.Room, err error) {
	owned := false
	defer func() { ctx.Send(ctx.Parent(), &createClaimed{roomID: a.id, owned: owned}) }()
	r, err := a.newRoom(m)
	if err != nil {
		return nil, err
	}
	c := &changes{w: persistence.Writes{Room: r}}
	a.event(c, r, "room-created", roomData(r))
	sctx, cancel := a.storeCtx()
	err = a.deps.cfg.Owners.(Creator).ClaimCreate(sctx, string(a.id), c.w)
	cancel()
	var noe *NotOwnerError
	switch {
	case err == nil:
		owned, a.life.unclaimed = true, false
		a.room, a.loadErr, a.life.loaded = r, nil, true
		if len(c.w.Events) > 0 && a.deps.cfg.OnEvents != nil {
			a.deps.cfg.OnEvents()
		}
		return r, nil
	case errors.As(err, &noe) && noe.Owner != "":
		return nil, err
	}
	a.log.Debug("creating the room the usual way", "why", err)
	if err := a.deps.claim(a.id, true); err != nil {
		return nil, err
	}
	owned, a.life.unclaimed = true, false
	a.load()
	return a.create(m)
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
	saved, err := a.saveRoom(a.stamp(next), "room-updated")
	if err == nil {
		a.armRemoveAt()
	}
	return saved, err
}

// endRoom ends the room (its status) and the session, for the end API and
// session-end-and-deactivate.
func (a *roomActor) endRoom(ctx actor.Context, sessionReason EndReason) (*recordpb.Room, error) {
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

func (a *roomActor) delete(ctx actor.Context) error {
	cur, err := a.current()
	if err != nil {
		return err
	}
	c := &changes{w: persistence.Writes{DeleteRoom: string(a.id)}}
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
