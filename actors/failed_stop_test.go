package actors

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/internal/poll"
)

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
