package webhook

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

func TestSignVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"id":"whd_1","event":"room-created"}`)
	at := time.Unix(1772362800, 0)
	sig := Sign(secret, at, body)
	if !strings.HasPrefix(sig, "t=1772362800,v1=") || len(sig) != len("t=1772362800,v1=")+64 {
		t.Fatalf("Sign = %q", sig)
	}
	other := Sign([]byte("other"), at, body)
	tests := []struct {
		name   string
		header string
		secret []byte
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", sig, secret, body, at, nil},
		{"valid within tolerance", sig, secret, body, at.Add(4 * time.Minute), nil},
		{"rotated secret listed second", other + ",v1=" + strings.TrimPrefix(sig, "t=1772362800,v1="), secret, body, at, nil},
		{"unknown field ignored", sig + ",v0=abc", secret, body, at, nil},
		{"wrong secret", sig, []byte("s3cres"), body, at, ErrSignatureMismatch},
		{"tampered body", sig, secret, []byte(`{"id":"whd_2","event":"room-created"}`), at, ErrSignatureMismatch},
		{"tampered time", strings.Replace(sig, "t=1772362800", "t=1772362801", 1), secret, body, at, ErrSignatureMismatch},
		{"too old", sig, secret, body, at.Add(6 * time.Minute), ErrSignatureExpired},
		{"from the future", sig, secret, body, at.Add(-6 * time.Minute), ErrSignatureExpired},
		{"empty", "", secret, body, at, ErrSignatureMalformed},
		{"no v1", "t=1772362800", secret, body, at, ErrSignatureMalformed},
		{"no t", strings.TrimPrefix(sig, "t=1772362800,"), secret, body, at, ErrSignatureMalformed},
		{"bad hex", "t=1772362800,v1=zz", secret, body, at, ErrSignatureMalformed},
		{"short mac", "t=1772362800,v1=abcd", secret, body, at, ErrSignatureMalformed},
		{"bad time", "t=soon," + strings.Split(sig, ",")[1], secret, body, at, ErrSignatureMalformed},
		{"two times", "t=1," + sig, secret, body, at, ErrSignatureMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.header, tt.secret, tt.body, tt.now, 5*time.Minute)
			if (tt.want == nil && err != nil) || !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	if err := Verify(sig, secret, body, at.Add(24*time.Hour), 0); err != nil {
		t.Fatalf("Verify without tolerance = %v", err)
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, event string
		want           bool
	}{
		{"participant-joined", "participant-joined", true},
		{"participant-joined", "participant-left", false},
		{"participant-*", "participant-left", true},
		{"participant-*", "session-started", false},
		{"*", "recording-failed", true},
		{"*-joined", "participant-joined", false},
		{"p*-*", "participant-joined", false},
		{"", "room-created", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.event); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.event, got, tt.want)
		}
	}
	for p, want := range map[string]bool{"*": true, "room-*": true, "room-created": true, "nothing-*": false, "room-exploded": false, "*-ended": false} {
		if got := ValidPattern(p); got != want {
			t.Errorf("ValidPattern(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestDeliveries(t *testing.T) {
	roomHook := &recordpb.Webhook{Endpoint: "https://room.example/h", Events: []string{"participant-*"}, Secret: "room-secret"}
	global := []Destination{
		{Endpoint: "https://ops.example/all", Events: []string{"*"}},
		{Endpoint: "https://billing.example/h", Events: []string{"session-ended"}, Secret: "b"},
		{Endpoint: "https://room.example/h", Events: []string{"*"}, Secret: "room-secret"}, // same as the room's
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		event string
		want  []string // endpoints, in order
	}{
		{"participant-joined", []string{"https://room.example/h", "https://ops.example/all"}},
		{"session-ended", []string{"https://ops.example/all", "https://billing.example/h", "https://room.example/h"}},
		{"room-created", []string{"https://ops.example/all", "https://room.example/h"}},
	}
	for _, tt := range tests {
		evs, err := Deliveries(Event{Name: tt.event, Time: at, RoomID: "r1", SessionID: "ses_1", Data: map[string]string{"identity": "alice"}}, roomHook, global)
		if err != nil {
			t.Fatalf("%s: %v", tt.event, err)
		}
		var got []string
		ids := map[string]bool{}
		for _, e := range evs {
			got = append(got, e.Endpoint)
			ids[e.Id] = true
			if e.Event != tt.event || e.RoomId != "r1" || e.SessionId != "ses_1" || string(e.Data) != `{"identity":"alice"}` || !e.CreatedAt.AsTime().Equal(at) {
				t.Errorf("%s: delivery %v", tt.event, e)
			}
			if !strings.HasPrefix(e.Id, "whd_") || len(e.Id) != 20 {
				t.Errorf("delivery id %q", e.Id)
			}
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s goes to %v, want %v", tt.event, got, tt.want)
		}
		if len(ids) != len(evs) {
			t.Errorf("%s: delivery ids not unique", tt.event)
		}
	}
	evs, err := Deliveries(Event{Name: "room-created", Time: at, RoomID: "r1"}, nil, global[:1])
	if err != nil || len(evs) != 1 || string(evs[0].Data) != "{}" || evs[0].SessionId != "" {
		t.Fatalf("nil data = %v, %v", evs, err)
	}
	for name, e := range map[string]Event{
		"unknown event": {Name: "room-exploded", Time: at, RoomID: "r1"},
		"no room":       {Name: "room-created", Time: at},
		"array data":    {Name: "room-created", Time: at, RoomID: "r1", Data: []int{1}},
		"bad raw data":  {Name: "room-created", Time: at, RoomID: "r1", Data: json.RawMessage(`"x"`)},
	} {
		if _, err := Deliveries(e, roomHook, global); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: err = %v, want ErrInvalidEvent", name, err)
		}
	}
}

func TestDestinationValidate(t *testing.T) {
	tests := []struct {
		d    Destination
		want error
	}{
		{Destination{Endpoint: "https://x.example/h", Events: []string{"*"}}, nil},
		{Destination{Endpoint: "ftp://x.example/h", Events: []string{"*"}}, ErrInvalidEndpoint},
		{Destination{Endpoint: "https://u:p@x.example/h", Events: []string{"*"}}, ErrInvalidEndpoint},
		{Destination{Endpoint: "/h", Events: []string{"*"}}, ErrInvalidEndpoint},
		{Destination{Endpoint: "https://x.example/h"}, ErrInvalidEvent},
		{Destination{Endpoint: "https://x.example/h", Events: []string{"nothing-*"}}, ErrInvalidEvent},
	}
	for _, tt := range tests {
		if err := tt.d.Validate(); (tt.want == nil && err != nil) || !errors.Is(err, tt.want) {
			t.Errorf("Validate(%+v) = %v, want %v", tt.d, err, tt.want)
		}
	}
}
