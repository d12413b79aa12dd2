package webhook

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Events are the names of the events Troupe reports.
var Events = []string{
	"room-created", "room-updated", "room-deleted", "room-ended",
	"session-started", "session-ended",
	"participant-joined", "participant-left", "participant-updated",
	"track-published", "track-unpublished",
	"recording-starting", "recording-started", "recording-stopping", "recording-stopped", "recording-failed",
	"participant-recording-started", "participant-recording-stopped",
	"participant-track-recording-started", "participant-track-recording-stopped",
}

// Match reports whether event matches pattern: the same name, "*", or a
// prefix followed by one final "*" ("participant-*").
func Match(pattern, event string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return !strings.Contains(prefix, "*") && strings.HasPrefix(event, prefix)
	}
	return pattern == event
}

// ValidPattern reports whether pattern matches at least one of Events, so
// that a misspelt filter is refused rather than silently matching nothing.
func ValidPattern(pattern string) bool {
	return slices.ContainsFunc(Events, func(e string) bool { return Match(pattern, e) })
}

// Destination is where deliveries go: a room's webhook or one configured
// globally.
type Destination struct {
	// Endpoint is an absolute http or https URL.
	Endpoint string
	// Events are the patterns (see Match) of the events it wants.
	Events []string
	// Secret signs its deliveries; empty means the Deliverer's
	// Config.DefaultSecret (the server's API secret).
	Secret string
}

// Wants reports whether the destination wants the event.
func (d Destination) Wants(event string) bool {
	return slices.ContainsFunc(d.Events, func(p string) bool { return Match(p, event) })
}

// Validate checks the endpoint's shape (not its address: see CheckEndpoint)
// and that every pattern is valid.
func (d Destination) Validate() error {
	if _, err := parseEndpoint(d.Endpoint); err != nil {
		return err
	}
	if len(d.Events) == 0 {
		return fmt.Errorf("%w: webhook %s names no events", ErrInvalidEvent, d.Endpoint)
	}
	for _, p := range d.Events {
		if !ValidPattern(p) {
			return fmt.Errorf("%w: webhook %s: unknown event %q", ErrInvalidEvent, d.Endpoint, p)
		}
	}
	return nil
}

// RoomDestination returns the destination of a room's webhook, or false if
// the room has none.
func RoomDestination(w *recordpb.Webhook) (Destination, bool) {
	if w == nil || w.Endpoint == "" {
		return Destination{}, false
	}
	return Destination{Endpoint: w.Endpoint, Events: w.Events, Secret: w.Secret}, true
}

// Event is something that happened in a room, to be reported.
type Event struct {
	// Name is one of Events.
	Name string
	// Time is when it happened.
	Time time.Time
	// RoomID is required.
	RoomID string
	// SessionID is empty for events outside a session (the body then
	// carries "session_id": null).
	SessionID string
	// Data is marshaled to the body's "data", which must be a JSON object
	// (a struct, a map, or a json.RawMessage holding one); nil means {}.
	Data any
}

// Deliveries returns the outbox records of e: one for each destination that
// wants it, the room's webhook (room, may be nil) first and then the global
// ones, each with a fresh delivery id. Destinations with the same endpoint
// and secret get one delivery. The caller queues them with the state change
// e reports (persistence.Writes.Events), then calls Deliverer.Notify.
func Deliveries(e Event, room *recordpb.Webhook, global []Destination) ([]*recordpb.WebhookEvent, error) {
	if !slices.Contains(Events, e.Name) {
		return nil, fmt.Errorf("%w: unknown event %q", ErrInvalidEvent, e.Name)
	}
	if e.RoomID == "" {
		return nil, fmt.Errorf("%w: %s without a room id", ErrInvalidEvent, e.Name)
	}
	data, err := marshalData(e.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s data: %v", ErrInvalidEvent, e.Name, err)
	}
	dests := global
	if d, ok := RoomDestination(room); ok {
		dests = append([]Destination{d}, global...)
	}
	type target struct{ endpoint, secret string }
	seen := make(map[target]bool, len(dests))
	var out []*recordpb.WebhookEvent
	created := timestamppb.New(e.Time)
	for _, d := range dests {
		t := target{d.Endpoint, d.Secret}
		if seen[t] || !d.Wants(e.Name) {
			continue
		}
		seen[t] = true
		out = append(out, &recordpb.WebhookEvent{
			Id:        NewDeliveryID(),
			Event:     e.Name,
			CreatedAt: created,
			RoomId:    e.RoomID,
			SessionId: e.SessionID,
			Data:      data,
			Endpoint:  d.Endpoint,
			Secret:    d.Secret,
		})
	}
	return out, nil
}

func marshalData(v any) ([]byte, error) {
	if v == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if b = bytes.TrimSpace(b); len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	return b, nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewDeliveryID returns a fresh random delivery id ("whd_" and 16
// characters, 80 bits).
func NewDeliveryID() string {
	b := make([]byte, 10)
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return "whd_" + strings.ToLower(idEncoding.EncodeToString(b))
}

// Payload is the JSON body of a delivery. Receivers may decode into it.
type Payload struct {
	// ID is the delivery id, also in the Troupe-Delivery header: the same
	// on every retry, so a receiver can drop duplicates.
	ID        string    `json:"id"`
	Event     string    `json:"event"`
	CreatedAt time.Time `json:"created_at"`
	RoomID    string    `json:"room_id"`
	// SessionID is null for events outside a session.
	SessionID *string         `json:"session_id"`
	Data      json.RawMessage `json:"data"`
}

// body returns the JSON body of a delivery. It is the same on every
// attempt: only the signature's time changes.
func body(e *recordpb.WebhookEvent) ([]byte, error) {
	p := Payload{
		ID:        e.Id,
		Event:     e.Event,
		CreatedAt: e.CreatedAt.AsTime().UTC(),
		RoomID:    e.RoomId,
		Data:      e.Data,
	}
	if e.SessionId != "" {
		p.SessionID = &e.SessionId
	}
	if len(p.Data) == 0 {
		p.Data = json.RawMessage("{}")
	}
	if !json.Valid(p.Data) {
		return nil, fmt.Errorf("%w: data of delivery %s is not JSON", ErrInvalidEvent, e.Id)
	}
	return json.Marshal(p)
}
