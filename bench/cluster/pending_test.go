//go:build clusterpending

// The cluster behaviours these tests check are being built: build with
// -tags clusterpending to run them, until the tag is removed once they
// have landed.
package cluster

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/coder/websocket"

	"github.com/troupe-media/troupe/internal/poll"
)

// Takeover: when an owner dies, a watcher on another node claims its
// rooms without waiting for a request, and closes the members the dead
// node left open with the reason node-lost.
func TestTakeoverClosesLostMembers(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	c.Expect(c.Live()[0], http.StatusCreated, "POST", "/api/v1/rooms", map[string]any{"id": "lost", "name": "lost"})
	owner, err := c.Owner(ctx, "lost")
	if err != nil {
		t.Fatal(err)
	}
	join(t, c, owner, "lost", "alice", "publisher")
	join(t, c, owner, "lost", "bob", "subscriber")
	var room struct {
		Session string `json:"active_session_id"`
	}
	if err := c.Expect(owner, http.StatusOK, "GET", "/api/v1/rooms/lost", nil).JSON(&room); err != nil || room.Session == "" {
		t.Fatalf("no active session: %v", err)
	}
	owner.Kill()

	// No request names the room: only a watcher can bring it back.
	poll.Until(t, "a live node to run the dead node's room", func() bool {
		var sum float64
		for _, n := range c.Live() {
			v, err := c.Metric(ctx, n, "troupe_room_actors")
			if err != nil {
				t.Fatal(err)
			}
			sum += v
		}
		return sum == 1
	})
	poll.Until(t, "the lost members to be closed with reason node-lost", func() bool {
		var hist struct {
			Participants []struct {
				Identity    string  `json:"identity"`
				LeftAt      *string `json:"left_at"`
				LeaveReason string  `json:"leave_reason"`
			} `json:"participants"`
		}
		resp := c.Expect(c.Live()[0], http.StatusOK, "GET", "/api/v1/sessions/"+room.Session+"/participants", nil)
		if err := resp.JSON(&hist); err != nil {
			t.Fatal(err)
		}
		closed := 0
		for _, p := range hist.Participants {
			if p.LeftAt != nil && p.LeaveReason == "node-lost" {
				closed++
			}
		}
		return len(hist.Participants) == 2 && closed == 2
	})
}

// Placement: new rooms go to the least loaded live node, whichever node
// creates them, and a room names its owner in node_id.
func TestPlacementSpreadsRooms(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	entry := c.Live()[0]
	perNode := map[string]int{}
	for i := range 6 {
		id := "spread" + string(rune('a'+i))
		c.Expect(entry, http.StatusCreated, "POST", "/api/v1/rooms", map[string]any{"id": id, "name": id})
		// A member makes the room's load count.
		join(t, c, entry, id, "m", "subscriber")
		o, err := c.Owner(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		perNode[o.ID]++
		var room struct {
			NodeID string `json:"node_id"`
		}
		if err := c.Expect(entry, http.StatusOK, "GET", "/api/v1/rooms/"+id, nil).JSON(&room); err != nil {
			t.Fatal(err)
		}
		if room.NodeID != o.ID {
			t.Errorf("room %s: node_id %q, its owner is %s", id, room.NodeID, o.ID)
		}
	}
	for _, n := range c.Live() {
		if perNode[n.ID] == 0 {
			t.Errorf("%s got none of 6 rooms created through %s: %v", n.ID, entry.ID, perNode)
		}
	}
}

// The media benchmark's many rooms, created through one node, spread
// over the nodes.
func TestBenchMediaSpreadsRooms(t *testing.T) {
	c := startCluster(t, Config{})
	_, ids := runManyRooms(t, c, 6)
	owners := map[string]bool{}
	for _, id := range ids {
		o, err := c.Owner(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		owners[o.ID] = true
	}
	if len(owners) != len(c.Live()) {
		t.Errorf("%d rooms on %d of %d nodes", len(ids), len(owners), len(c.Live()))
	}
}

// A WebSocket opened without a token on a node that does not own the room
// is forwarded once its first message, join, names the room.
func TestJoinMessageForwarded(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	c.Expect(c.Live()[0], http.StatusCreated, "POST", "/api/v1/rooms", map[string]any{"id": "late", "name": "late"})
	owner, err := c.Owner(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	via := nonOwners(c, owner)[0]
	token, err := c.JoinToken(ctx, via, "late", "carol", "subscriber")
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.Dial(ctx, "ws://"+via.URL[len("http://"):]+"/rtc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	join, _ := json.Marshal(map[string]string{"type": "join", "token": token})
	if err := ws.Write(ctx, websocket.MessageText, join); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var joined struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(msg, &joined); err != nil || joined.Type != "joined" {
		t.Fatalf("first message %s (%v), want joined", msg, err)
	}
	if got := identities(t, c, owner, "late"); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("members in the owner's room: %v", got)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}

// Webhooks split by owner: across the durability run's kills, each room's
// events arrive in the order of its writes (a retry may repeat one).
func TestWebhooksInOrderAcrossKills(t *testing.T) {
	run := runDurability(t)
	for r := range durableRooms {
		got := run.hooks.order(roomName(r))
		if !slices.IsSorted(got) {
			t.Errorf("%s's events arrived in the order of writes %v", roomName(r), got)
		}
	}
}
