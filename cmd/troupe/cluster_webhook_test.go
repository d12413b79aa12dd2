package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// Two cluster nodes share one global webhook: the events of rooms created
// on either node, and changed through the other, are each delivered once,
// in order per room, whichever node delivers them.
func TestClusterWebhooksOncePerEvent(t *testing.T) {
	endpoint := etcdStart(t)
	secret := strings.Repeat("s", 32)
	type delivery struct{ id, event, room string }
	var mu sync.Mutex
	var got []delivery
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			ID     string `json:"id"`
			Event  string `json:"event"`
			RoomID string `json:"room_id"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("delivery body %q: %v", body, err)
		}
		mu.Lock()
		got = append(got, delivery{p.ID, p.Event, p.RoomID})
		mu.Unlock()
	}))
	defer receiver.Close()
	node := func(id string) *testServer {
		cfg := clusterConfig(t, endpoint, id, secret)
		cfg.WebhookURLs, cfg.WebhookEvents = stringList{receiver.URL + "/hooks"}, stringList{"room-*"}
		cfg.WebhookAllowPrivate = true // the receiver is on loopback
		return startServer(t, cfg)
	}
	nodes := []*testServer{node("node-a"), node("node-b")}

	rooms := []string{"r0", "r1", "r2", "r3"}
	for i, room := range rooms {
		on, through := nodes[i%2], nodes[(i+1)%2]
		on.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"`+room+`","name":"one"}`)
		through.mustDo(http.StatusOK, "PATCH", "/api/v1/rooms/"+room, `{"name":"two"}`)
		on.mustDo(http.StatusOK, "PATCH", "/api/v1/rooms/"+room, `{"name":"three"}`)
	}
	want := []string{"room-created", "room-updated", "room-updated"}
	poll.Until(t, "every room event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(rooms)*len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	byRoom := map[string][]string{}
	for _, d := range got {
		if seen[d.id] {
			t.Errorf("delivery %s (%s of %s) posted twice", d.id, d.event, d.room)
		}
		seen[d.id] = true
		byRoom[d.room] = append(byRoom[d.room], d.event)
	}
	for _, room := range rooms {
		if !slices.Equal(byRoom[room], want) {
			t.Errorf("room %s: events %v, want %v", room, byRoom[room], want)
		}
	}
}
