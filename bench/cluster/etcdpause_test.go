package cluster

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
)

const (
	// etcdPause is how long etcd is frozen: three lease TTLs, so that
	// every node loses its lease.
	etcdPause = 6 * time.Second
	// servedAgain bounds, from etcd's SIGCONT, the time until every room
	// is served again.
	servedAgain = 10 * time.Second
)

// After etcd was frozen for 6 s, every room is served again within 10 s
// of its return, and no node stays stuck: each is ready, lists every node,
// creates a room and serves it; a member who rejoins gets media again.
func TestEtcdPause(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	const rooms = 6
	for i := range rooms {
		room := fmt.Sprintf("p%d", i)
		c.Expect(c.Live()[i%3], http.StatusCreated, "POST", "/api/v1/rooms", map[string]any{"id": room, "name": room})
		if _, err := c.Owner(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	pub := join(t, c, c.Live()[0], "p0", "pub", "publisher")
	if err := pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	sub := join(t, c, c.Live()[1], "p0", "sub", "subscriber")
	waitPackets(t, "the subscriber's video", waitReceiver(t, sub, "video"), 10)

	if err := c.Etcd().Pause(); err != nil {
		t.Fatal(err)
	}
	// The fault's length, not a wait for something to happen.
	time.Sleep(etcdPause)
	if err := c.Etcd().Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()

	served := map[string]time.Duration{}
	poll.Until(t, "every room to be served again", func() bool {
		for i := range rooms {
			room := fmt.Sprintf("p%d", i)
			if _, ok := served[room]; ok {
				continue
			}
			n := c.Live()[i%3]
			if resp, err := c.Do(ctx, n, http.MethodGet, "/api/v1/rooms/"+room+"/participants", nil); err == nil && resp.Status == http.StatusOK {
				served[room] = time.Since(resumed)
			}
		}
		return len(served) == rooms
	})
	var worst time.Duration
	for room, d := range served {
		worst = max(worst, d)
		if d > servedAgain {
			t.Errorf("%s was served again %v after etcd resumed, more than %v", room, d, servedAgain)
		}
	}
	t.Logf("every room served again at most %v after etcd resumed", worst.Round(time.Millisecond))

	var ids []string
	for _, n := range c.Live() {
		ids = append(ids, n.ID)
	}
	for _, n := range c.Live() {
		poll.Until(t, n.ID+" to list every node", func() bool {
			got, err := c.NodeIDs(ctx, n)
			return err == nil && slices.Equal(got, ids)
		})
		room := "after-" + n.ID
		c.Expect(n, http.StatusCreated, "POST", "/api/v1/rooms", map[string]any{"id": room, "name": room})
		c.Expect(n, http.StatusOK, "GET", "/api/v1/rooms/"+room+"/participants", nil)
	}

	// Members whose node dropped the room rejoin and get media again.
	for _, m := range []*Member{pub, sub} {
		select {
		case <-m.Done():
		default:
			continue // still connected: its room was never dropped
		}
		t.Logf("%s was disconnected: %v", m.ParticipantID(), m.Err())
	}
	pub2 := rejoin(t, c, "p0", "pub2", "publisher")
	if err := pub2.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	sub2 := rejoin(t, c, "p0", "sub2", "subscriber")
	waitPackets(t, "the rejoined subscriber's video", waitReceiver(t, sub2, "video"), 10)
}
