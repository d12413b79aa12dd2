package main

import (
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/internal/poll"
)

// drainableNode starts node-a, whose room r1 has a publisher: a drain of
// the node goes on for the hour of its drain timeout.
func drainableNode(t *testing.T, endpoint, secret string) *testServer {
	t.Helper()
	cfg := clusterConfig(t, endpoint, "node-a", secret)
	cfg.DrainTimeout = time.Hour // kept draining by its member
	a := startServer(t, cfg)
	createOn(t, a, "r1")
	publish(t, a, "r1", "pub")
	return a
}

// A draining node takes over no room of a node lost meanwhile: it would
// refuse the joins of the members coming back, and hold the room from the
// nodes that take work. The room waits for such a node, and goes to it.
func TestClusterDrainingNodeTakesNoRoomOver(t *testing.T) {
	endpoint := etcdStart(t)
	secret := strings.Repeat("s", 32)
	a := drainableNode(t, endpoint, secret)
	a.mustDo(202, "POST", "/api/v1/cluster/nodes/node-a/drain", "")

	// Node c goes with sessions in progress: its lease, revoked as it
	// closes, takes its rooms' owner keys while node-a watches.
	c := nodeStore(t, endpoint, "node-c", time.Minute)
	if _, err := c.Register(t.Context()); err != nil {
		t.Fatal(err)
	}
	lost := map[string]string{} // session by room
	for _, id := range []string{"lost1", "lost2", "lost3"} {
		if err := c.Claim(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		lost[id] = orphanRoom(t, c, id)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	b := startServer(t, clusterConfig(t, endpoint, "node-b", secret))
	owners := plainStore(t, endpoint)
	for id, ses := range lost {
		poll.Until(t, "a node to take "+id+" over", func() bool { return leaveReasons(t, b, ses)["gone"] != "" })
		if owner, err := owners.Owner(t.Context(), id); err != nil || owner != "node-b" {
			t.Fatalf("owner of %s: %q %v, want node-b (node-a drains)", id, owner, err)
		}
		if got := leaveReasons(t, b, ses)["gone"]; got != string(actors.ReasonNodeLost) {
			t.Fatalf("the lost node's member of %s left for %q, want %q", id, got, actors.ReasonNodeLost)
		}
	}
	if got := roomActors(t, a); got != "1" {
		t.Fatalf("the draining node-a runs %s room actors, want its own r1 alone", got)
	}
}
