package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// hookDelivery is a delivery a test receiver accepted.
type hookDelivery struct{ id, event, room string }

// hookReceiver is a webhook endpoint on loopback that accepts deliveries
// (204) once open, and answers 503 until then.
type hookReceiver struct {
	t    *testing.T
	srv  *httptest.Server
	open atomic.Bool

	mu  sync.Mutex
	got []hookDelivery
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{t: t}
	r.open.Store(true)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p struct {
			ID     string `json:"id"`
			Event  string `json:"event"`
			RoomID string `json:"room_id"`
		}
		body, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("delivery body %q: %v", body, err)
		}
		if !r.open.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, hookDelivery{p.ID, p.Event, p.RoomID})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// node starts a cluster node whose global webhook is r, for the room events.
func (r *hookReceiver) node(endpoint, id string) *testServer {
	cfg := clusterConfig(r.t, endpoint, id, strings.Repeat("s", 32))
	cfg.WebhookURLs, cfg.WebhookEvents = stringList{r.srv.URL + "/hooks"}, stringList{"room-*"}
	cfg.WebhookAllowPrivate = true // the receiver is on loopback
	return startServer(r.t, cfg)
}

// check waits for n deliveries, then checks that each was accepted once and
// that each room's events are want, in order.
func (r *hookReceiver) check(n int, rooms []string, want []string) {
	r.t.Helper()
	poll.Until(r.t, "every room event delivered", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.got) >= n
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	byRoom := map[string][]string{}
	for _, d := range r.got {
		if seen[d.id] {
			r.t.Errorf("delivery %s (%s of %s) accepted twice", d.id, d.event, d.room)
		}
		seen[d.id] = true
		byRoom[d.room] = append(byRoom[d.room], d.event)
	}
	for _, room := range rooms {
		if !slices.Equal(byRoom[room], want) {
			r.t.Errorf("room %s: events %v, want %v", room, byRoom[room], want)
		}
	}
}

// Two cluster nodes share one global webhook: the events of rooms created
// on either node, and changed through the other, are each delivered once,
// in order per room, whichever node delivers them.
func TestClusterWebhooksOncePerEvent(t *testing.T) {
	endpoint := etcdStart(t)
	recv := newHookReceiver(t)
	nodes := []*testServer{recv.node(endpoint, "node-a"), recv.node(endpoint, "node-b")}

	rooms := []string{"r0", "r1", "r2", "r3"}
	for i, room := range rooms {
		on, through := nodes[i%2], nodes[(i+1)%2]
		on.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"`+room+`","name":"one"}`)
		through.mustDo(http.StatusOK, "PATCH", "/api/v1/rooms/"+room, `{"name":"two"}`)
		on.mustDo(http.StatusOK, "PATCH", "/api/v1/rooms/"+room, `{"name":"three"}`)
	}
	want := []string{"room-created", "room-updated", "room-updated"}
	recv.check(len(rooms)*len(want), rooms, want)
}

// A node stops with the webhooks of its room still pending (the endpoint
// answered 503 so far): the other node, told that it left, delivers them,
// in order, once the endpoint accepts.
func TestClusterWebhooksOutliveTheirNode(t *testing.T) {
	endpoint := etcdStart(t)
	recv := newHookReceiver(t)
	recv.open.Store(false)
	a, _ := recv.node(endpoint, "node-a"), recv.node(endpoint, "node-b")

	a.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	a.mustDo(http.StatusOK, "PATCH", "/api/v1/rooms/r1", `{"name":"two"}`)
	if err := a.stop(); err != nil {
		t.Fatalf("stop node-a: %v", err)
	}
	recv.open.Store(true)
	recv.check(2, []string{"r1"}, []string{"room-created", "room-updated"})
}
