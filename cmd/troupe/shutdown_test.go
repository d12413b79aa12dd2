package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/internal/poll"
)

// A single server stopped in order (SIGTERM) with a session running ends
// that session then, as server-shutdown, with its member's leave and its
// session-ended webhook; the next start finds nothing to close.
func TestShutdownEndsRunningSessions(t *testing.T) {
	ended := make(chan string, 16) // the end_reason of each session-ended delivery
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var payload struct {
			Event string `json:"event"`
			Data  struct {
				EndReason string `json:"end_reason"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &payload) == nil && payload.Event == "session-ended" {
			select {
			case ended <- payload.Data.EndReason:
			default:
			}
		}
	}))
	defer receiver.Close()

	cfg := testConfig(t.TempDir())
	cfg.WebhookURLs = stringList{receiver.URL + "/hooks"}
	cfg.WebhookEvents = stringList{"session-ended"}
	cfg.WebhookAllowPrivate = true // the receiver is on loopback
	s := startServer(t, cfg)
	s.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	pc := publish(t, s, "r1", "ann")
	defer pc.Close()
	session := sessionInProgress(t, s, "r1")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	s = startServer(t, cfg)
	got := s.mustDo(http.StatusOK, "GET", "/api/v1/sessions/"+session, "")
	if got["status"] != "completed" || got["end_reason"] != string(actors.EndServerShutdown) {
		t.Fatalf("session after the stop: status %v, end_reason %v; want completed, %s", got["status"], got["end_reason"], actors.EndServerShutdown)
	}
	if reason := leaveReasons(t, s, session)["ann"]; reason != string(actors.ReasonServerShutdown) {
		t.Fatalf("ann left for %q, want %q", reason, actors.ReasonServerShutdown)
	}
	select {
	case reason := <-ended:
		if reason != string(actors.EndServerShutdown) {
			t.Fatalf("session-ended webhook with end_reason %q, want %q", reason, actors.EndServerShutdown)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("no session-ended webhook")
	}
}
