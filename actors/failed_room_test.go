package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// failRoom crashes room until the registry stops it for failing, and waits
// until its actor is gone, leaving liveAfter room actors.
func failRoom(t *testing.T, env *testEnv, room RoomID, liveAfter int) {
	t.Helper()
	before := testutil.ToFloat64(env.rooms.metrics.failures)
	for range roomRestartLimit + 1 {
		crash(env, room)
	}
	poll.Until(t, fmt.Sprintf("%s's failure stop", room), func() bool {
		return testutil.ToFloat64(env.rooms.metrics.failures) == before+1 && env.rooms.Live() == liveAfter
	})
}

// heldFor returns what is left of room's cool-down, failing t unless a
// request to it is refused with ErrRoomFailed.
func heldFor(t *testing.T, env *testEnv, room RoomID) time.Duration {
	t.Helper()
	_, err := env.rooms.Participants(context.Background(), room)
	var fe *RoomFailedError
	if !errors.As(err, &fe) {
		t.Fatalf("request to %s: %v, want a RoomFailedError", room, err)
	}
	return fe.RetryAfter
}

func TestCoolDownDoublesUpToItsBound(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 8; n++ {
		got = append(got, coolDown(n))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		roomCoolDownMax, roomCoolDownMax, roomCoolDownMax}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cool-downs %v, want %v", got, want)
	}
	if coolDown(1000) != roomCoolDownMax {
		t.Errorf("cool-down of the 1000th failure: %v", coolDown(1000))
	}
}

// A room that fails again soon after its cool-down is held longer each
// time, up to the bound; one that stays up long enough starts over.
func TestFailedRoomCoolDownGrows(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	env := newTestEnv(t, func(c *Config) { c.Clock = clk })
	ctx := context.Background()
	createRoom(t, env, "r", nil)

	var held []time.Duration
	for i := range 7 {
		failRoom(t, env, "r", 0)
		d := heldFor(t, env, "r")
		held = append(held, d)
		if want := coolDown(i + 1); d != want {
			t.Errorf("failure %d held for %v, want %v", i+1, d, want)
		}
		clk.Advance(d - time.Second)
		if left := heldFor(t, env, "r"); left != time.Second {
			t.Errorf("failure %d: %v left a second before its end", i+1, left)
		}
		clk.Advance(time.Second)
		if _, err := env.rooms.Participants(ctx, "r"); err != nil {
			t.Fatalf("after cool-down %d: %v", i+1, err)
		}
	}
	t.Logf("cool-downs of 7 failures in a row: %v", held)

	// Up for longer than the failure is remembered: the next one is a first.
	clk.Advance(roomFailureMemory)
	failRoom(t, env, "r", 0)
	if d := heldFor(t, env, "r"); d != roomCoolDownBase {
		t.Errorf("a failure after %v up held for %v, want %v", roomFailureMemory, d, roomCoolDownBase)
	}
}

// An operator's change clears a failed room; a DELETE works during the
// cool-down.
func TestFailedRoomIsClearedByAnOperator(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	env := newTestEnv(t, func(c *Config) { c.Clock = clk })
	ctx := context.Background()
	for _, id := range []RoomID{"a", "b", "c", "d"} {
		createRoom(t, env, id, nil)
		clk.Advance(time.Second) // creation order
	}
	failRoom(t, env, "b", 3)
	failRoom(t, env, "c", 2)

	list := func(q ListQuery) string {
		t.Helper()
		rooms, total, err := env.rooms.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprint(total)
		for _, r := range rooms {
			out += " " + r.Room.Id
			if r.Failed {
				out += "!"
			}
		}
		return out
	}
	active := recordpb.RoomStatus_ROOM_STATUS_ACTIVE
	for _, c := range []struct {
		q    ListQuery
		want string
	}{
		{ListQuery{}, "4 a b! c! d"},
		{ListQuery{Failed: true}, "2 b! c!"},
		{ListQuery{Failed: true, Offset: 1, Limit: 5}, "2 c!"},
		{ListQuery{Status: active}, "2 a d"},
		{ListQuery{Status: active, Offset: 1, Limit: 1}, "2 d"},
		{ListQuery{Status: recordpb.RoomStatus_ROOM_STATUS_ENDED}, "0"},
	} {
		if got := list(c.q); got != c.want {
			t.Errorf("List(%+v) = %q, want %q", c.q, got, c.want)
		}
	}

	if _, err := env.rooms.Update(ctx, "b", &actorpb.RoomPatch{Name: ptr("fixed")}); err != nil {
		t.Fatalf("patch of a failed room: %v", err)
	}
	if info, err := env.rooms.Get(ctx, "b"); err != nil || info.Failed || info.Failure != nil || info.Room.Name != "fixed" {
		t.Errorf("after the patch: %+v %v, want the room cleared", info, err)
	}
	if _, err := env.rooms.Participants(ctx, "b"); err != nil {
		t.Errorf("participants after the patch: %v", err)
	}
	if err := env.rooms.Delete(ctx, "c"); err != nil {
		t.Fatalf("delete of a failed room: %v", err)
	}
	if _, err := env.rooms.Get(ctx, "c"); !errors.Is(err, ErrRoomNotFound) {
		t.Errorf("get after the delete: %v, want ErrRoomNotFound", err)
	}
	if got := list(ListQuery{Failed: true}); got != "0" {
		t.Errorf("failed rooms after the operator: %q", got)
	}
}

// A room whose stop panics while Rooms closes still stops, as a failed
// room (its members leave with room-failed, its session ends so), and
// Close returns: left to protoactor's supervisor, the panic would restart
// the room, the restart would consume its stop, and Close would wait for
// it until its deadline. The other rooms stop in order.
func TestCloseStopsARoomThatPanicsAtStop(t *testing.T) {
	leaktest.Check(t)
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	pub := joinClient(t, env, "r", "pub", RolePublisher)
	pub.publishAV()
	sub := joinClient(t, env, "r", "sub", RoleSubscriber)
	sub.receive(2)
	failing := activeSession(t, env, "r")
	createRoom(t, env, "calm", nil)
	calm := joinClient(t, env, "calm", "calm", RoleSubscriber)
	orderly := activeSession(t, env, "calm")
	if _, err := env.rooms.request(ctx, "r", &crashRoom{atStop: true}); err != nil {
		t.Fatalf("arm the panic: %v", err)
	}

	closeCtx, cancel := context.WithTimeout(ctx, poll.Timeout)
	defer cancel()
	if err := env.rooms.Close(closeCtx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := env.rooms.Live(); n != 0 {
		t.Errorf("%d room actors after Close", n)
	}
	pub.waitRemoved(ReasonRoomFailed)
	sub.waitRemoved(ReasonRoomFailed)
	calm.waitRemoved(ReasonServerShutdown)
	if n := testutil.ToFloat64(env.rooms.metrics.failures); n != 1 {
		t.Errorf("%v failures counted, want 1", n)
	}
	if n := testutil.ToFloat64(env.rooms.metrics.restarts); n != 0 {
		t.Errorf("%v restarts counted, want none", n)
	}
	for _, c := range []struct {
		session *recordpb.Session
		end     EndReason
		leave   LeaveReason
		members int
	}{{failing, EndRoomFailed, ReasonRoomFailed, 2}, {orderly, EndServerShutdown, ReasonServerShutdown, 1}} {
		s, err := env.store.GetSession(ctx, c.session.Id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status != recordpb.SessionStatus_SESSION_STATUS_ENDED || EndReason(s.EndReason) != c.end {
			t.Errorf("session of room %s: %v ended for %q, want ended for %q", s.RoomId, s.Status, s.EndReason, c.end)
		}
		members, err := env.store.ListSessionMembers(ctx, c.session.Id)
		if err != nil {
			t.Fatal(err)
		}
		if len(members) != c.members {
			t.Errorf("room %s: %d members recorded, want %d", s.RoomId, len(members), c.members)
		}
		for _, m := range members {
			if m.LeftAt == nil || LeaveReason(m.LeaveReason) != c.leave {
				t.Errorf("room %s: %s left at %v for %q, want %q", s.RoomId, m.Identity, m.LeftAt, m.LeaveReason, c.leave)
			}
		}
	}
}

// The requests a room has in its mailbox when it is stopped for failing,
// and those that come while it stops, are refused with ErrRoomFailed at
// once rather than left to wait out their timeout, and none starts the
// room again; the failure counts once.
func TestFailedRoomRefusesTheRequestsItHeld(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.RequestTimeout = poll.Timeout })
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	for range roomRestartLimit + 1 {
		crash(env, "r")
	}
	// Routed behind the crashes: most wait in the room's mailbox, or in the
	// registry while it stops.
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			_, err := env.rooms.request(ctx, "r", &actorpb.GetRoom{})
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; !errors.Is(err, ErrRoomFailed) {
			t.Errorf("request sent with the crashes: %v, want ErrRoomFailed", err)
		}
	}
	poll.Until(t, "the failed room's actor to stop", func() bool { return env.rooms.Live() == 0 })
	if n := testutil.ToFloat64(env.rooms.metrics.failures); n != 1 {
		t.Errorf("%v failures counted, want 1", n)
	}
	if f := env.rooms.failure("r"); f == nil || f.Count != 1 {
		t.Errorf("failure %+v, want the first", f)
	}
	if n := testutil.ToFloat64(env.rooms.metrics.passivations); n != 0 {
		t.Errorf("%v passivations counted, want none", n)
	}
}
