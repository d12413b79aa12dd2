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
)

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
