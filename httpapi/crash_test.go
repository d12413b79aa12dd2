package httpapi

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
)

// counter reads the counter name from reg; zero if it is not there.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// A panic in a room costs its members nothing through the API: the room and
// its participants answer, the members stay listed, and no webhook event is
// queued. A room that keeps failing shows status failed, and requests to it
// get 503 room_failed with Retry-After until its hold ends.
func TestRoomCrashThroughTheAPI(t *testing.T) {
	checkLeaks(t)
	clk := clock.NewManual(time.Now().UTC())
	reg := prometheus.NewRegistry() // the room actors' metrics
	s := buildStack(t, nil, func(c *actors.Config) { c.Clock, c.Registerer = clk, reg }, true)
	s.createRoom(t, `{"id":"crashy","name":"Crashy","webhook":{"endpoint":"https://hooks.example.com/troupe","events":["*"]}}`)

	pubC := s.dialWS(t, "publisher", s.joinToken(t, "crashy", "pub", auth.RolePublisher))
	pubC.waitMsg("joined", nil)
	media := newPublisher(t)
	media.sendOn(t, pubC)
	subC := s.dialWS(t, "subscriber", s.joinToken(t, "crashy", "sub", auth.RoleSubscriber))
	defer subC.close()
	poll.Until(t, "the subscriber's media", func() bool {
		return subC.receiver("video").Stats().Packets > 0 && subC.receiver("audio").Stats().Packets > 0
	})
	_, queued := s.deliveries(t, "?status=pending")

	start := time.Now()
	s.rooms.CrashRoom("crashy")
	// Requests after the crash queue behind it: the restarted room answers.
	room := s.do(t, http.MethodGet, "/api/v1/rooms/crashy", "")
	list := s.participants(t, "crashy")
	t.Logf("GET room and participants answered %v after the panic", time.Since(start))
	mustStatus(t, room, http.StatusOK)
	if m := room.json(t); m["status"] != "active" || m["participant_count"] != 2.0 || m["failure"] != nil {
		t.Errorf("room after the panic: %s", room.body)
	}
	if len(list) != 2 {
		t.Errorf("%d participants listed after the panic, want 2", len(list))
	}
	poll.Until(t, "the restart counted", func() bool { return counter(t, reg, "troupe_room_actor_restarts_total") == 1 })
	v := subC.receiver("video").Stats().Packets
	poll.Until(t, "the subscriber's media after the panic", func() bool { return subC.receiver("video").Stats().Packets > v+50 })
	if _, n := s.deliveries(t, "?status=pending"); n != queued {
		t.Errorf("%d webhook events queued after the panic, want %d", n, queued)
	}
	if subC.count("participant-left") != 0 || pubC.count("participant-left") != 0 {
		t.Error("a member was told that someone left")
	}

	// The crash loop: the room is stopped and held failed.
	for range 11 {
		s.rooms.CrashRoom("crashy")
	}
	code, reason := subC.waitClosed()
	t.Logf("after the failure stop the subscriber's socket closed with %d %q", code, reason)
	poll.Until(t, "the failure stop", func() bool { return counter(t, reg, "troupe_room_failures_total") == 1 })
	room = s.do(t, http.MethodGet, "/api/v1/rooms/crashy", "")
	mustStatus(t, room, http.StatusOK)
	m := room.json(t)
	f, _ := m["failure"].(map[string]any)
	if m["status"] != "failed" || f == nil || f["count"] != 1.0 || f["reason"] == "" {
		t.Fatalf("room after the failure stop: %s", room.body)
	}
	if at, err := time.Parse(time.RFC3339Nano, f["retry_at"].(string)); err != nil || !at.Equal(clk.Now().Add(30*time.Second)) {
		t.Errorf("retry_at %v (%v), want 30 s from now", f["retry_at"], err)
	}
	r := s.do(t, http.MethodGet, "/api/v1/rooms?status=failed", "")
	mustStatus(t, r, http.StatusOK)
	if l := r.json(t); l["total"] != 1.0 {
		t.Errorf("failed rooms: %s", r.body)
	}
	r = s.do(t, http.MethodGet, "/api/v1/rooms?status=active", "")
	if l := r.json(t); l["total"] != 0.0 {
		t.Errorf("active rooms while crashy is failed: %s", r.body)
	}
	r = s.do(t, http.MethodGet, "/api/v1/rooms/crashy/participants", "")
	mustStatus(t, r, http.StatusServiceUnavailable)
	if r.errorCode(t) != "room_failed" || r.header.Get("Retry-After") != "30" {
		t.Errorf("participants of a failed room: %s, Retry-After %q", r.body, r.header.Get("Retry-After"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, s.wsURL("/rtc?token="+s.joinToken(t, "crashy", "late", auth.RoleSubscriber)), nil)
	if err == nil {
		ws.CloseNow()
		t.Fatal("a join to a failed room was upgraded")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "30" {
		t.Errorf("a join to a failed room: %v %v", resp, err)
	}

	clk.Advance(29 * time.Second)
	r = s.do(t, http.MethodGet, "/api/v1/rooms/crashy/participants", "")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" {
		t.Errorf("a second before the hold ends: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	// DELETE works during the hold, and clears it.
	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/rooms/crashy", ""), http.StatusNoContent)
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms/crashy", ""), http.StatusNotFound)
}

func TestRoomListStatusFilterTakesFailed(t *testing.T) {
	s := newStack(t, nil)
	for _, q := range []string{"active", "ended", "failed"} {
		mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms?status="+q, ""), http.StatusOK)
	}
	r := s.do(t, http.MethodGet, "/api/v1/rooms?status=broken", "")
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if r.errorField(t) != "status" {
		t.Errorf("status=broken: %s", r.body)
	}
}
