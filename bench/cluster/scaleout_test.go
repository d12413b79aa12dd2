package cluster

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// A fourth node joining moves no room and disconnects no participant: every
// room keeps its owner and its members, every socket stays open, media
// keeps flowing, and the new node runs no room until one is created there.
func TestScaleOut(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	const rooms = 6
	owners := map[string]*Node{}
	var members []*Member
	for i := range rooms {
		room := fmt.Sprintf("r%d", i)
		n := c.Live()[i%3]
		c.Expect(n, http.StatusCreated, "POST", "/api/v1/rooms", map[string]any{"id": room, "name": room})
		// Each member joins through another node than the room's creator.
		members = append(members, join(t, c, c.Live()[(i+1)%3], room, "m"+room, "publisher"))
		o, err := c.Owner(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		owners[room] = o
	}
	// One room with media across the join: a publisher and a subscriber.
	if err := members[0].Publish(ctx); err != nil {
		t.Fatal(err)
	}
	viewer := join(t, c, c.Live()[2], "r0", "viewer", "subscriber")
	video := waitReceiver(t, viewer, "video")
	waitPackets(t, "the viewer's video", video, 30)

	fourth := c.AddNode()
	for _, n := range c.Live() {
		poll.Until(t, n.ID+" to list "+fourth.ID, func() bool {
			ids, err := c.NodeIDs(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			return slices.Contains(ids, fourth.ID)
		})
	}
	before := video.Stats().Packets
	for i := range rooms {
		room := fmt.Sprintf("r%d", i)
		// Asked through the new node, the room answers from its owner.
		want := []string{"m" + room}
		if i == 0 {
			want = append(want, "viewer")
		}
		if got := identities(t, c, fourth, room); !slices.Equal(got, want) {
			t.Errorf("members of %s through %s: %v, want %v", room, fourth.ID, got, want)
		}
		o, err := c.Owner(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		if o != owners[room] {
			t.Errorf("room %s moved from %s to %s", room, owners[room].ID, o.ID)
		}
	}
	for _, m := range append(members, viewer) {
		select {
		case <-m.Done():
			t.Errorf("%s was disconnected: %v", m.ParticipantID(), m.Err())
		default:
		}
	}
	waitPackets(t, "the viewer's video after the join", video, before+30)
	checkNoLoss(t, "the viewer's video", video)
	if n, err := c.Metric(ctx, fourth, "troupe_room_actors"); err != nil || n != 0 {
		t.Errorf("%s runs %v room actors (%v), want 0", fourth.ID, n, err)
	}
}
