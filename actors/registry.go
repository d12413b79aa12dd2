package actors

import (
	"context"
	"errors"

	"github.com/asynkron/protoactor-go/actor"
)

// routed carries a message for the room actor of roomID through the registry.
// It never leaves this process: in a cluster, a call for a room that another
// node owns is forwarded to that node at the HTTP edge.
type routed struct {
	roomID RoomID
	msg    any
}

// registry spawns room actors on demand and routes requests to them. It is
// the parent and supervisor of every room actor on this node
// (HandleFailure, room_supervision.go).
//
// Passivation is a handshake so that a room never has two actors: an idle
// room asks to stop; the registry poisons it (the poison pill queues behind
// any request already forwarded) and holds new requests for that room until
// the old actor has terminated, then starts a fresh one and hands them over.
//
// In a cluster (Config.Owners), the registry claims a room before it spawns
// its actor, and releases it when the actor has stopped with no request
// waiting for it. A room another node owns is not spawned: its requests
// get a *NotOwnerError. The claim is a call to etcd made by the registry
// itself, bounded by Config.RequestTimeout, once per spawn.
type registry struct {
	rooms *Rooms
	byID  map[RoomID]*roomEntry
	byPID map[string]RoomID // by actor id
}

type roomEntry struct {
	pid      *actor.PID
	life     *roomLife
	stopping bool
	dropped  bool // stopping because of DropAll, not idle
	held     []heldRequest
}

type heldRequest struct {
	msg    any
	sender *actor.PID
}

func newRegistry(r *Rooms) *registry {
	return &registry{rooms: r, byID: make(map[RoomID]*roomEntry), byPID: make(map[string]RoomID)}
}

func (g *registry) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *routed:
		g.route(ctx, m.roomID, m.msg, ctx.Sender())
	case *passivate:
		g.passivate(ctx, m.who)
	case *dropAll:
		g.dropAll(ctx)
	case *actor.Terminated:
		g.terminated(ctx, m.Who)
	}
}

func (g *registry) route(ctx actor.Context, roomID RoomID, msg any, sender *actor.PID) {
	e, ok := g.byID[roomID]
	switch {
	case !ok:
		if err := g.claim(roomID); err != nil {
			if sender != nil {
				ctx.Send(sender, &refused{err: err})
			}
			return
		}
		life := newRoomLife()
		e = &roomEntry{pid: g.spawn(ctx, roomID, life), life: life}
		g.byID[roomID] = e
	case e.stopping:
		e.held = append(e.held, heldRequest{msg: msg, sender: sender})
		return
	}
	ctx.RequestWithCustomSender(e.pid, msg, sender)
}

// spawn starts the actor of roomID. Its producer runs again at each
// restart, and every incarnation shares life.
func (g *registry) spawn(ctx actor.Context, roomID RoomID, life *roomLife) *actor.PID {
	rooms := g.rooms
	props := actor.PropsFromProducer(func() actor.Actor {
		return newRoomActor(rooms, roomID, life)
	})
	pid := ctx.Spawn(props)
	g.byPID[pid.Id] = roomID
	rooms.metrics.live(+1)
	return pid
}

func (g *registry) passivate(ctx actor.Context, who *actor.PID) {
	if who == nil {
		return
	}
	roomID, ok := g.byPID[who.Id]
	if !ok {
		return
	}
	e := g.byID[roomID]
	if e.stopping {
		return
	}
	e.stopping = true
	ctx.Poison(e.pid)
}

// dropAll stops every room actor at once; each tells its members it is
// shutting down as it stops. Requests that come meanwhile wait for the
// actor to have stopped, then start a fresh one, as after a passivation.
func (g *registry) dropAll(ctx actor.Context) {
	for _, e := range g.byID {
		if !e.stopping {
			e.stopping, e.dropped = true, true
			ctx.Stop(e.pid)
		}
	}
	if ctx.Sender() != nil {
		ctx.Respond(&dropped{})
	}
}

func (g *registry) terminated(ctx actor.Context, who *actor.PID) {
	roomID, ok := g.byPID[who.Id]
	if !ok {
		return
	}
	delete(g.byPID, who.Id)
	g.rooms.metrics.live(-1)
	e := g.byID[roomID]
	delete(g.byID, roomID)
	if e == nil {
		return
	}
	if e.stopping && !e.dropped {
		g.rooms.metrics.passivations.Inc()
	}
	if len(e.held) == 0 {
		g.release(roomID)
		return
	}
	// Requests that arrived while the old actor stopped go to a fresh one.
	for _, h := range e.held {
		g.route(ctx, roomID, h.msg, h.sender)
	}
}

// claim makes this node the owner of roomID, if it runs in a cluster.
func (g *registry) claim(roomID RoomID) error {
	owners := g.rooms.cfg.Owners
	if owners == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.rooms.cfg.RequestTimeout)
	defer cancel()
	err := owners.Claim(ctx, string(roomID))
	var noe *NotOwnerError
	if err == nil || errors.As(err, &noe) {
		return err
	}
	return &NotOwnerError{RoomID: roomID, Owner: ""}
}

// release gives up the ownership of a room whose actor has stopped.
func (g *registry) release(roomID RoomID) {
	owners := g.rooms.cfg.Owners
	if owners == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.rooms.cfg.RequestTimeout)
	defer cancel()
	if err := owners.Release(ctx, string(roomID)); err != nil {
		// Its owner key goes with the node's lease in any case.
		g.rooms.cfg.Logger.Warn("release room", "room", roomID, "err", err)
	}
}
