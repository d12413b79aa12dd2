package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/internal/poll"
)

// A global webhook configured on the command line gets the server's events,
// signed with the API secret.
func TestGlobalWebhookReceivesSignedEvents(t *testing.T) {
	type delivery struct {
		event, id string
		sigErr    error
	}
	got := make(chan delivery, 16)
	var secret []byte
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var payload struct {
			ID     string `json:"id"`
			Event  string `json:"event"`
			RoomID string `json:"room_id"`
		}
		json.Unmarshal(body, &payload)
		err := webhook.Verify(r.Header.Get("Troupe-Signature"), secret, body, time.Now(), time.Minute)
		got <- delivery{event: payload.Event, id: r.Header.Get("Troupe-Delivery"), sigErr: err}
	}))
	defer receiver.Close()

	cfg := testConfig(t.TempDir())
	cfg.WebhookURLs = stringList{receiver.URL + "/hooks"}
	cfg.WebhookEvents = stringList{"room-*"}
	cfg.WebhookAllowPrivate = true // the receiver is on loopback
	cfg.APIKey, cfg.APISecret = "TKtest", "0123456789abcdef0123456789abcdef"
	secret = []byte(cfg.APISecret)
	s := startServer(t, cfg)
	defer s.stop()

	s.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"hooked","name":"Hooked"}`)
	select {
	case d := <-got:
		if d.event != "room-created" || d.id == "" || d.sigErr != nil {
			t.Fatalf("delivery %+v", d)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("no webhook delivery")
	}
}

// Without --webhook-allow-private a room's webhook to a loopback address
// is refused when the room is created, and when a room is changed to one,
// with a message that names the way to allow it.
func TestRoomWebhookToPrivateAddressRefused(t *testing.T) {
	s := startServer(t, testConfig(t.TempDir()))
	defer s.stop()
	body := s.mustDo(http.StatusUnprocessableEntity, "POST", "/api/v1/rooms",
		`{"name":"R","webhook":{"endpoint":"http://127.0.0.1:9/h","events":["*"]}}`)
	e, _ := body["error"].(map[string]any)
	details, _ := e["details"].(map[string]any)
	msg, _ := e["message"].(string)
	if details["field"] != "webhook.endpoint" || !strings.Contains(msg, "--webhook-allow-private") {
		t.Fatalf("error %v", body)
	}
	s.mustDo(http.StatusCreated, "POST", "/api/v1/rooms", `{"id":"plain","name":"Plain"}`)
	body = s.mustDo(http.StatusUnprocessableEntity, "PATCH", "/api/v1/rooms/plain",
		`{"webhook":{"endpoint":"http://[::1]:9/h","events":["*"]}}`)
	if e, _ := body["error"].(map[string]any); !strings.Contains(fmt.Sprint(e["message"]), "--webhook-allow-private") {
		t.Fatalf("update: error %v", body)
	}
}
