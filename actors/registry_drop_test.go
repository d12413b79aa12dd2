package actors

import (
	"context"
	"errors"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
)

// The requests a room has in its mailbox when DropAll stops it are
// refused with ErrUnavailable at once, rather than dropped with the actor
// and left to wait out their timeout; the request it is on finishes, and
// the next request starts the room afresh.
func TestDropAllRefusesTheRequestsARoomHeld(t *testing.T) {
	ctx := context.Background()
	store, err := persistence.Open(persistence.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	plain, err := NewRooms(Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Create(ctx, "r", spec("R")); err != nil {
		t.Fatal(err)
	}
	if err := plain.Close(ctx); err != nil {
		t.Fatal(err)
	}

	writes := map[string]*hold{"r": newHold()}
	releaseAtEnd(t, writes["r"])
	rooms, err := NewRooms(Config{Store: heldStore{Store: store, writes: writes}, RequestTimeout: poll.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rooms.Close(ctx) }) // before the store's (last in, first out)
	updated := make(chan error, 1)
	go func() {
		_, err := rooms.Update(ctx, "r", &actorpb.RoomPatch{Name: ptr("renamed")})
		updated <- err
	}()
	writes["r"].reached(t, "the update's write")
	// Queued in the registry's mailbox before DropAll's message, so routed
	// to the busy room's mailbox before it is told to stop.
	var queued []*actor.Future
	for range 4 {
		queued = append(queued, rooms.system.Root.RequestFuture(rooms.registry, &routed{roomID: "r", msg: &actorpb.GetRoom{}}, poll.Timeout))
	}
	if err := rooms.DropAll(ctx); err != nil {
		t.Fatal(err)
	}
	close(writes["r"].released)
	if err := <-updated; err != nil {
		t.Errorf("the update the room was on: %v", err)
	}
	for i, f := range queued {
		res, err := f.Result()
		ref, ok := res.(*refused)
		if err != nil || !ok || !errors.Is(ref.err, ErrUnavailable) {
			t.Errorf("request %d queued at the drop: %v (%v), want refused as unavailable", i, res, err)
		}
	}
	info, err := rooms.Get(ctx, "r")
	if err != nil || info.Room.Name != "renamed" {
		t.Fatalf("the room after the drop: %+v, %v", info, err)
	}
}
