package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/actors/actorpb"
)

// Drain makes this node refuse, with ErrDraining, the creation of rooms
// and the joins of the rooms it runs, for good: the node is stopping. What
// already runs goes on (members stay, rooms take updates, kicks and ends)
// until the node closes its rooms. In a cluster a room no node owns is
// still placed, on another node if placement skips this one, and its calls
// are forwarded there.
func (r *Rooms) Drain() { r.draining.Store(true) }

// Draining reports whether Drain was called.
func (r *Rooms) Draining() bool { return r.draining.Load() }

// refuseDraining answers msg with ErrDraining, and reports true, if the
// node is draining and msg would start something new here: a room or a
// member. The check is where a request reaches this node's room, so that
// it never refuses what placement sends to another node.
func (g *registry) refuseDraining(ctx actor.Context, msg any, sender *actor.PID) bool {
	if !g.rooms.draining.Load() {
		return false
	}
	var what string
	switch msg.(type) {
	case *joinRoom:
		what = "join"
	case *actorpb.CreateRoom:
		what = "create room"
	default:
		return false
	}
	if sender != nil {
		ctx.Send(sender, &refused{err: fmt.Errorf("%s: %w", what, ErrDraining)})
	}
	return true
}
