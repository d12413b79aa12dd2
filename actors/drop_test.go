package actors

import (
	"context"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// DropAll stops every room of the node with its members told the server
// is shutting down, and a later request starts the room afresh: what a
// cluster node does when it loses its lease.
func TestDropAllStopsEveryRoom(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "a", nil)
	createRoom(t, env, "b", nil)
	inA := joinClient(t, env, "a", "x", RoleSubscriber)
	inB := joinClient(t, env, "b", "y", RoleSubscriber)
	if n := env.rooms.Live(); n != 2 {
		t.Fatalf("%d live rooms before, want 2", n)
	}

	if err := env.rooms.DropAll(ctx); err != nil {
		t.Fatal(err)
	}
	inA.waitRemoved(ReasonServerShutdown)
	inB.waitRemoved(ReasonServerShutdown)
	poll.Until(t, "no live room", func() bool { return env.rooms.Live() == 0 })

	// The room comes back on its next request, and takes joins.
	info, err := env.rooms.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if info.ParticipantCount != 0 {
		t.Errorf("room a after the drop counts %d participants", info.ParticipantCount)
	}
	joinClient(t, env, "a", "z", RoleSubscriber)
	if n := env.rooms.Live(); n != 1 {
		t.Errorf("%d live rooms after a join, want 1", n)
	}
}
