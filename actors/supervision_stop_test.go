package actors

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
)

// crashingStore is a store whose write of a room named crashName, once a
// hold is armed, waits on it and then panics: the room's actor fails in
// the middle of a request, at a point the test chose.
type crashingStore struct {
	Store
	crashName string
	armed     atomic.Pointer[hold]
}

func (s *crashingStore) Apply(ctx context.Context, w persistence.Writes) error {
	if w.Room.GetName() == s.crashName {
		if h := s.armed.Swap(nil); h != nil {
			_ = h.wait(ctx)
			panic("store: a write panics, as a test asked")
		}
	}
	return s.Store.Apply(ctx, w)
}

// A room that DropAll marks dropped while it is in a request, and that
// the request then crashes, is restarted as any room that panics, then
// stops as a dropped room does: the lifecycle messages of its restart
// reach it (a dropped room refuses only requests), so the fresh actor has
// itself, its record and its session when it stops. Without its Started,
// the stop ended the recording by sending the closer's report to a nil
// actor, which killed the process.
func TestDroppedRoomThatPanicsRestartsThenStops(t *testing.T) {
	ctx := context.Background()
	store := &crashingStore{crashName: "renamed"}
	env, _ := newRecordingEnv(t, func(c *Config) {
		store.Store = c.Store
		c.Store = store
	})
	createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
	pub := joinClient(t, env, "studio", "pub", RolePublisher)
	rec := recordWhile(t, env, pub, 20)

	h := newHold()
	releaseAtEnd(t, h)
	store.armed.Store(h)
	// No reply comes: the request dies with the panic.
	env.rooms.system.Root.Send(env.rooms.registry, &routed{roomID: "studio",
		msg: &actorpb.UpdateRoom{Patch: &actorpb.RoomPatch{Name: ptr(store.crashName)}}})
	h.reached(t, "the update's write")
	if err := env.rooms.DropAll(ctx); err != nil {
		t.Fatal(err)
	}
	close(h.released)

	pub.waitRemoved(ReasonServerShutdown)
	poll.Until(t, "the dropped room's actor to stop", func() bool { return env.rooms.Live() == 0 })
	if n := testutil.ToFloat64(env.rooms.metrics.restarts); n != 1 {
		t.Errorf("%v restarts counted, want 1", n)
	}
	if n := testutil.ToFloat64(env.rooms.metrics.failures); n != 0 {
		t.Errorf("%v failures counted, want none", n)
	}
	poll.Until(t, "the recording to end", func() bool { return recordingEnded(recordingStatus(t, env, rec.Id)) })
	if got := recordingStatus(t, env, rec.Id); got.EndReason != RecordingServerShutdown {
		t.Errorf("the recording ended for %q, want %q", got.EndReason, RecordingServerShutdown)
	}
}

// A room stopped for failing too often whose stop then panics is one
// failure of the room: troupe_room_failures_total counts it once, not
// once for the stop and once for its panic.
func TestFailedRoomWhoseStopPanicsCountsOnce(t *testing.T) {
	env := newTestEnv(t, nil)
	createRoom(t, env, "r", nil)
	for range roomRestartLimit {
		crash(env, "r")
	}
	// Behind the crashes: the last incarnation arms it.
	if _, err := env.rooms.request(context.Background(), "r", &crashRoom{atStop: true}); err != nil {
		t.Fatalf("arm the panic at stop: %v", err)
	}
	if n := testutil.ToFloat64(env.rooms.metrics.restarts); n != roomRestartLimit {
		t.Fatalf("%v restarts before the last crash, want %d", n, roomRestartLimit)
	}
	crash(env, "r")
	poll.Until(t, "the failed room's actor to stop", func() bool { return env.rooms.Live() == 0 })
	if n := testutil.ToFloat64(env.rooms.metrics.failures); n != 1 {
		t.Errorf("%v failures counted, want 1", n)
	}
	if f := env.rooms.failure("r"); f == nil || f.Count != 1 {
		t.Errorf("failure %+v, want the first", f)
	}
}
