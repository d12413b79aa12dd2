package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

// The series an alert looks for read 0 on a fresh server rather than being
// absent until their first event, and troupe_rooms_active counts the rooms
// with a session in progress.
func TestAlertSeriesExistFromTheStart(t *testing.T) {
	s := startServer(t, testConfig(t.TempDir()))
	text := metricsText(t, s)
	for _, want := range []string{
		`troupe_rtc_round_trip_time_seconds_count{kind="audio"} 0`,
		`troupe_rtc_round_trip_time_seconds_count{kind="video"} 0`,
		`troupe_rtc_jitter_seconds_count{kind="video"} 0`,
		`troupe_rtc_loss_ratio_count{kind="audio"} 0`,
		`troupe_rtc_connections_total{candidate_type="host",protocol="udp"} 0`,
		`troupe_rtc_connections_total{candidate_type="relay",protocol="tcp"} 0`,
		`troupe_joins_refused_total{reason="room_full"} 0`,
		`troupe_joins_refused_total{reason="error"} 0`,
		`troupe_recordings_ended_total{reason="disk_full",status="failed"} 0`,
		`troupe_recordings_ended_total{reason="stopped-via-api",status="completed"} 0`,
		`troupe_participant_leaves_total{reason="connection-failed"} 0`,
		`troupe_participant_leaves_total{reason="left"} 0`,
		"\ntroupe_rooms_active 0\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	s.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	s.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"r2","name":"two"}`)
	publish(t, s, "r1", "ann")
	poll.Until(t, "r1 to count as active", func() bool { return s.metric("troupe_rooms_active") == 1 })
	s.mustDo(http.StatusOK, "POST", "/api/v1/rooms/r1/end", "")
	poll.Until(t, "r1 to count no more", func() bool { return s.metric("troupe_rooms_active") == 0 })
}

// troupe_store_rooms counts a room held failed as the API lists it: failed,
// not active.
func TestStoreRoomsCountsFailedRooms(t *testing.T) {
	srv, err := NewServer(testConfig(t.TempDir()), nil, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	token, err := auth.Mint(srv.key, auth.AdminClaims(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}, Timeout: poll.Timeout}
	defer client.CloseIdleConnections()
	s := &testServer{t: t, url: "http://" + srv.ln.Addr().String(), token: token, client: client}
	s.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"crashy","name":"c"}`)
	s.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"calm","name":"c"}`)
	if text := metricsText(t, s); !strings.Contains(text, `troupe_store_rooms{status="failed"} 0`) ||
		!strings.Contains(text, `troupe_store_rooms{status="active"} 2`) {
		t.Fatalf("troupe_store_rooms before the failure:\n%s", grepLines(text, "troupe_store_rooms"))
	}
	// Crashes beyond its restart limit: the room is stopped and held failed.
	for range 11 {
		srv.rooms.CrashRoom("crashy")
	}
	poll.Until(t, "crashy to be held failed", func() bool {
		// Between crashes the room may not answer in time (503).
		status, got := s.do("GET", "/api/v1/rooms/crashy", "")
		m, _ := got.(map[string]any)
		return status == http.StatusOK && m["status"] == "failed"
	})
	text := metricsText(t, s)
	if !strings.Contains(text, `troupe_store_rooms{status="failed"} 1`) || !strings.Contains(text, `troupe_store_rooms{status="active"} 1`) {
		t.Fatalf("troupe_store_rooms with crashy failed:\n%s", grepLines(text, "troupe_store_rooms"))
	}
}

// grepLines returns the lines of text that hold s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// --metrics-addr serves /metrics on a listener of its own, and the API's
// port then serves none; the listener stops with the server.
func TestMetricsAddrMovesMetrics(t *testing.T) {
	metricsAddr := freeAddr(t)
	cfg := testConfig(t.TempDir())
	cfg.MetricsAddr = metricsAddr
	s := startServer(t, cfg)
	s.mustDo(http.StatusCreated, http.MethodPost, "/api/v1/rooms", `{"name":"metered"}`)
	m := &testServer{t: t, url: "http://" + metricsAddr, client: s.client, token: s.token}
	text := metricsText(t, m)
	for _, family := range []string{"\ngo_goroutines", "\ntroupe_room_actors", `troupe_http_requests_total{method="POST",route="/api/v1/rooms",status="201"} 1`} {
		if !strings.Contains(text, family) {
			t.Errorf("the metrics listener's /metrics lacks %s", family)
		}
	}
	for _, c := range []struct {
		on           *testServer
		method, path string
		want         int
	}{
		{s, http.MethodGet, "/metrics", http.StatusNotFound},
		{m, http.MethodGet, "/api/v1/rooms", http.StatusNotFound},
		{m, http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
	} {
		if resp, _ := c.on.request(c.method, c.path, "", nil); resp.StatusCode != c.want {
			t.Errorf("%s %s%s: %d, want %d", c.method, c.on.url, c.path, resp.StatusCode, c.want)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Get("http://" + metricsAddr + "/metrics"); err == nil {
		t.Error("the metrics listener still serves after shutdown")
	}
}
