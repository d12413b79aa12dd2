package main

import (
	"net/http"
	"strings"
	"testing"

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
