package actors

import (
	"context"
	"errors"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/actors/actorpb"
)

// routed carries a message for the room actor of roomID through the registry.
// It never leaves this process: in a cluster, a call for a room that another
// node owns is forwarded to that node at the HTTP edge.
type routed struct {
	roomID RoomID
	msg    any
	// forwarded: another node sent the request here (Forwarded), or it is
	// a takeover: the owner is asked of etcd, never of Owners.Elsewhere.
	forwarded bool
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
// In a cluster (Config.Owners), a room this node runs no actor for and
// hears another node owns (Owners.Elsewhere) is refused at once with a
// *NotOwnerError naming that node, without a call to etcd, unless the
// request was forwarded here. Otherwise the registry claims a room before
// it spawns its actor, and releases it when the actor has stopped with no
// request waiting for it, unless Rooms is closing (see release). A room
// another node owns is not spawned: its requests get a *NotOwnerError. The
// claim is a call to etcd, bounded by Config.RequestTimeout, made beside
// the registry so that it holds up only the requests of that room, and
// given up when Rooms closes.
//
// When Rooms closes, protoactor stops the registry's children, the room
// actors, and hands the registry the messages still in its mailbox until
// they have stopped: the registry then starts no actor (see stopping) and
// refuses every request that waits for one.
//
// A create of a room this node runs no actor for, with a Creator, is not
// claimed first: placement chooses its node at once (PlaceNew), and the
// create is forwarded there, or its actor starts here unclaimed and its
// creation claims the room in the same write. The room's other requests
// wait until the actor says whether this node owns the room
// (createClaimed); if it does not, the actor stops and they start afresh.
type registry struct {
	rooms *Rooms
	byID  map[RoomID]*roomEntry
	byPID map[string]RoomID // by actor id
	// stopping: Rooms is closing, and protoactor is stopping the room
	// actors, the registry's children. It hands the registry the messages
	// still in its mailbox meanwhile; a room actor it spawned now would
	// never be told to stop, and the registry (so Close) would wait for it
	// for ever. So nothing starts from here on, and requests are refused.
	stopping bool
}

type roomEntry struct {
	pid      *actor.PID
	life     *roomLife
	stopping bool
	dropped  bool // stopping because of DropAll, not idle
	claiming bool // its claim runs: no actor yet, requests held
	creating bool // its actor creates it unclaimed: requests held
	unowned  bool // stopping because this node does not own it: no release
	held     []heldRequest
}

// createClaimed is what the actor of a room started unclaimed tells the
// registry once its creation is done: whether this node owns the room.
type createClaimed struct {
	roomID RoomID
	owned  bool
}

// claimed is the result of a room's claim, sent to the registry.
type claimed struct {
	roomID RoomID
	err    error
}

type heldRequest struct {
	msg       any
	sender    *actor.PID
	forwarded bool
}

func newRegistry(r *Rooms) *registry {
	return &registry{rooms: r, byID: make(map[RoomID]*roomEntry), byPID: make(map[string]RoomID)}
}

func (g *registry) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Stopping:
		g.stop(ctx)
	case *routed:
		g.route(ctx, m.roomID, m.msg, ctx.Sender(), m.forwarded)
	case *passivate:
		g.passivate(ctx, m.who)
	case *dropAll:
		g.dropAll(ctx)
	case *claimed:
		g.claimedRoom(ctx, m)
	case *createClaimed:
		g.createClaimed(ctx, m)
	case *actor.Terminated:
		g.terminated(ctx, m.Who)
	}
}

func (g *registry) route(ctx actor.Context, roomID RoomID, msg any, sender *actor.PID, forwarded bool) {
	e, ok := g.byID[roomID]
	owners := g.rooms.cfg.Owners
	switch {
	case g.stopping:
		refuse(ctx, sender, errShuttingDown)
		return
	case !ok && g.refuseFailedRoom(ctx, roomID, msg, sender):
		return
	case !ok && owners != nil && !forwarded && g.elsewhere(ctx, roomID, sender):
		return
	case !ok && owners != nil && g.createUnclaimed(ctx, roomID, msg, sender, forwarded):
		return
	case !ok && owners != nil:
		// The claim is a call to etcd: it runs beside the registry, which
		// holds this room's requests meanwhile and routes the others.
		e = &roomEntry{claiming: true, held: []heldRequest{{msg: msg, sender: sender, forwarded: forwarded}}}
		g.byID[roomID] = e
		self, root := ctx.Self(), ctx.ActorSystem().Root
		g.rooms.claims.Add(1)
		go func() {
			defer g.rooms.claims.Done()
			root.Send(self, &claimed{roomID: roomID, err: g.claim(roomID, forwarded)})
		}()
		return
	case !ok:
		if g.refuseDraining(ctx, msg, sender) {
			return // no actor started for it
		}
		e = g.start(ctx, roomID)
	case e.stopping || e.claiming || e.creating:
		e.held = append(e.held, heldRequest{msg: msg, sender: sender, forwarded: forwarded})
		return
	case g.refuseDraining(ctx, msg, sender):
		return
	}
	ctx.RequestWithCustomSender(e.pid, msg, sender)
}

// stop refuses the requests held for rooms that are not running (their
// claim runs, or their actor stops), whose actors will not start now, and
// forgets the claims: their results come to nothing.
func (g *registry) stop(ctx actor.Context) {
	g.stopping = true
	for id, e := range g.byID {
		for _, h := range e.held {
			refuse(ctx, h.sender, errShuttingDown)
		}
		e.held = nil
		if e.claiming {
			delete(g.byID, id)
		}
	}
}

// refuseFailedRoom refuses a request for a room held failed that has no
// actor (one held while the failed actor stopped, or that passed
// Rooms.request's check before the room failed), rather than start the
// room in its cool-down; an operator's goes through (refuseFailed). It
// reports whether it refused.
func (g *registry) refuseFailedRoom(ctx actor.Context, roomID RoomID, msg any, sender *actor.PID) bool {
	err := g.rooms.refuseFailed(roomID, msg)
	if err == nil {
		return false
	}
	refuse(ctx, sender, err)
	return true
}

// refuse answers sender, if the request has one, with err.
func refuse(ctx actor.Context, sender *actor.PID, err error) {
	if sender != nil {
		ctx.Send(sender, &refused{err: err})
	}
}

// start spawns the actor of roomID, which this node may run.
func (g *registry) start(ctx actor.Context, roomID RoomID) *roomEntry {
	life := newRoomLife()
	e := &roomEntry{pid: g.spawn(ctx, roomID, life), life: life}
	g.byID[roomID] = e
	return e
}

// createUnclaimed routes a create of a room this node runs no actor for,
// with a Creator, and reports whether it did: to the node placement
// chooses, or to an actor started here unclaimed, whose creation claims
// the room. A forwarded create was placed here already.
func (g *registry) createUnclaimed(ctx actor.Context, roomID RoomID, msg any, sender *actor.PID, forwarded bool) bool {
	creator, ok := g.rooms.cfg.Owners.(Creator)
	if _, create := msg.(*actorpb.CreateRoom); !ok || !create {
		return false
	}
	if !forwarded {
		if to := creator.PlaceNew(string(roomID)); to != "" {
			refuse(ctx, sender, &NotOwnerError{RoomID: roomID, Owner: to})
			return true
		}
	}
	if g.refuseDraining(ctx, msg, sender) {
		return true
	}
	life := newRoomLife()
	life.unclaimed = true
	e := &roomEntry{pid: g.spawn(ctx, roomID, life), life: life, creating: true}
	g.byID[roomID] = e
	ctx.RequestWithCustomSender(e.pid, msg, sender)
	return true
}

// createClaimed hands the requests held for a room created unclaimed to
// its actor, now that this node owns the room, or stops the actor.
func (g *registry) createClaimed(ctx actor.Context, m *createClaimed) {
	e := g.byID[m.roomID]
	if e == nil || !e.creating {
		return
	}
	if !m.owned {
		g.notCreated(e)
		ctx.Stop(e.pid)
		return
	}
	e.creating = false
	held := e.held
	e.held = nil
	for _, h := range held {
		if !g.refuseDraining(ctx, h.msg, h.sender) {
			ctx.RequestWithCustomSender(e.pid, h.msg, h.sender)
		}
	}
}

// notCreated marks e, whose room this node may not own, as stopping
// without a release; its held requests start afresh once it stopped.
func (g *registry) notCreated(e *roomEntry) {
	e.creating, e.stopping, e.unowned = false, true, true
}

// claimedRoom starts the room whose claim succeeded and hands it the
// requests held meanwhile, or refuses them all.
func (g *registry) claimedRoom(ctx actor.Context, m *claimed) {
	e := g.byID[m.roomID]
	if e == nil || !e.claiming {
		return
	}
	delete(g.byID, m.roomID)
	if m.err != nil {
		for _, h := range e.held {
			refuse(ctx, h.sender, m.err)
		}
		return
	}
	started := g.start(ctx, m.roomID)
	for _, h := range e.held {
		if !g.refuseDraining(ctx, h.msg, h.sender) {
			ctx.RequestWithCustomSender(started.pid, h.msg, h.sender)
		}
	}
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
// shutting down as it stops. The requests in its mailbox are refused
// (refuseQueued) before its poison pill, which a stop would have dropped
// unanswered, each caller waiting out its timeout. Requests that come
// meanwhile wait for the actor to have stopped, then start a fresh one,
// as after a passivation.
func (g *registry) dropAll(ctx actor.Context) {
	for _, e := range g.byID {
		if !e.stopping && !e.claiming {
			if e.creating {
				g.notCreated(e)
			}
			e.stopping, e.dropped = true, true
			e.life.dropped.Store(true)
			ctx.Poison(e.pid)
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
	if e.stopping && !e.dropped && !e.unowned && !e.life.failed.Load() {
		g.rooms.metrics.passivations.Inc()
	}
	if len(e.held) == 0 {
		if !e.unowned {
			g.release(roomID)
		}
		return
	}
	// Requests that arrived while the old actor stopped go to a fresh one.
	for _, h := range e.held {
		g.route(ctx, roomID, h.msg, h.sender, h.forwarded)
	}
}

// elsewhere refuses a request for a room that this node heard another
// node owns, naming that node, and reports whether it did.
func (g *registry) elsewhere(ctx actor.Context, roomID RoomID, sender *actor.PID) bool {
	owner, ok := g.rooms.cfg.Owners.Elsewhere(string(roomID))
	if !ok || owner == "" {
		return false
	}
	refuse(ctx, sender, &NotOwnerError{RoomID: roomID, Owner: owner})
	g.rooms.metrics.ownerHints.Inc()
	return true
}

// claim makes this node, in a cluster (Config.Owners), the owner of
// roomID; the claim of a forwarded request says so (Forwarded).
func (g *registry) claim(roomID RoomID, forwarded bool) error {
	return g.rooms.claim(roomID, forwarded)
}

// claim makes this node the owner of roomID (Config.Owners.Claim, bounded
// by Config.RequestTimeout, and given up when Close begins): nil, or a
// *NotOwnerError, naming the owner if another node has it.
func (r *Rooms) claim(roomID RoomID, forwarded bool) error {
	ctx, cancel := context.WithTimeout(r.closing, r.cfg.RequestTimeout)
	defer cancel()
	if forwarded {
		ctx = Forwarded(ctx)
	}
	err := r.cfg.Owners.Claim(ctx, string(roomID))
	var noe *NotOwnerError
	if err == nil || errors.As(err, &noe) {
		return err
	}
	return &NotOwnerError{RoomID: roomID, Owner: ""}
}

// release gives up the ownership of a room whose actor has stopped. Not
// while Rooms closes: the node's lease goes next, and its rooms with it,
// which is how the other nodes know to take over those that still have a
// session in progress (a Release says the room was left in order).
func (g *registry) release(roomID RoomID) {
	owners := g.rooms.cfg.Owners
	if owners == nil || g.rooms.closed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.rooms.cfg.RequestTimeout)
	defer cancel()
	if err := owners.Release(ctx, string(roomID)); err != nil {
		// Its owner key goes with the node's lease in any case.
		g.rooms.cfg.Logger.Warn("release room", "room", roomID, "err", err)
	}
}
