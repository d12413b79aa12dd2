package cluster

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
)

// probeTimeout is how long a client of TestNodePause waits for an answer
// before it tries again.
const probeTimeout = 500 * time.Millisecond

// A node frozen (SIGSTOP) longer than its lease TTL loses its rooms to the
// other nodes, and once it runs again it stops its copy at once, tells its
// members, and registers again: the room is never served by two nodes.
func TestNodePause(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	owner := createRoom(t, c, c.Live()[0], "frozen")
	// A member on the owner itself, whose socket only the owner can end.
	m := join(t, c, owner, "frozen", "alice", "subscriber")

	if err := owner.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	other := nonOwners(c, owner)[0]
	poll.Until(t, "another node to serve the frozen node's room", func() bool {
		// A request forwarded to the frozen node waits for it: a client
		// gives up and tries again.
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		resp, err := c.Do(pctx, other, http.MethodGet, "/api/v1/rooms/frozen/participants", nil)
		return err == nil && resp.Status == http.StatusOK
	})
	took := time.Since(paused)
	t.Logf("%s served the room %v after %s froze", other.ID, took.Round(time.Millisecond), owner.ID)
	checkTarget(t, "serving the room again after its owner froze (target: lease TTL, slack, a client's timeout)", took, c.LeaseTTL()+answerSlack+probeTimeout)
	if err := owner.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	poll.Until(t, "the resumed node to stop its copy of the room", func() bool {
		n, err := c.Metric(ctx, owner, "troupe_room_actors")
		return err == nil && n == 0
	})
	t.Logf("%s stopped its copy %v after it resumed", owner.ID, time.Since(resumed).Round(time.Millisecond))
	poll.Closed(t, "alice's socket to end", m.Done())
	t.Logf("alice's socket ended %v after %s resumed: %v", time.Since(resumed).Round(time.Millisecond), owner.ID, m.Err())
	poll.Until(t, "the resumed node to register again", func() bool {
		ids, err := c.NodeIDs(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if id == owner.ID {
				return true
			}
		}
		return false
	})
	// One node serves the room, and the resumed node forwards to it.
	newOwner, err := c.Owner(ctx, "frozen")
	if err != nil {
		t.Fatal(err)
	}
	if newOwner == owner {
		t.Fatalf("the resumed node %s serves the room again before anyone asked it to", owner.ID)
	}
	served := 0
	for _, n := range c.Live() {
		if v, err := c.Metric(ctx, n, "troupe_room_actors"); err == nil {
			served += int(v)
		}
	}
	if served != 1 {
		t.Errorf("%d room actors in the cluster for one room", served)
	}
	c.Expect(owner, http.StatusOK, "GET", "/api/v1/rooms/frozen/participants", nil)
}
