package actors

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

func TestValidateRoom(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		patch *actorpb.RoomPatch
		field string // "" = valid
	}{
		{"minimal", &actorpb.RoomPatch{Name: ptr("x")}, ""},
		{"blank name", &actorpb.RoomPatch{Name: ptr("   ")}, "name"},
		{"long name", &actorpb.RoomPatch{Name: ptr(strings.Repeat("é", 201))}, "name"},
		{"200 runes", &actorpb.RoomPatch{Name: ptr(strings.Repeat("é", 200))}, ""},
		{"control char", &actorpb.RoomPatch{Name: ptr("a\nb")}, "name"},
		{"bad utf8", &actorpb.RoomPatch{Name: ptr("a\xffb")}, "name"},
		{"display name too long", &actorpb.RoomPatch{Name: ptr("x"), DisplayName: ptr(strings.Repeat("a", 201))}, "display_name"},
		{"max 0", cfg(&actorpb.ConfigPatch{MaxParticipants: ptr(uint32(0))}), "config.max_participants"},
		{"max too big", cfg(&actorpb.ConfigPatch{MaxParticipants: ptr(uint32(10001))}), "config.max_participants"},
		{"session too long", cfg(&actorpb.ConfigPatch{SessionLength: ptr(uint32(7*24*60 + 1))}), "config.session_length"},
		{"empty timeout too long", cfg(&actorpb.ConfigPatch{EmptyTimeout: ptr(uint32(86401))}), "config.empty_timeout"},
		{"remove after 0", cfg(&actorpb.ConfigPatch{RemoveAfterSecondsElapsed: ptr(uint32(0))}), "config.remove_after_seconds_elapsed"},
		{"quality", cfg(&actorpb.ConfigPatch{Quality: ptr("8k")}), "config.quality"},
		{"fps 0", cfg(&actorpb.ConfigPatch{Fps: ptr(uint32(0))}), "config.fps"},
		{"fps 61", cfg(&actorpb.ConfigPatch{Fps: ptr(uint32(61))}), "config.fps"},
		{"layout", cfg(&actorpb.ConfigPatch{Layout: ptr("mosaic")}), "config.layout"},
		{"SignalWire layout", cfg(&actorpb.ConfigPatch{Layout: ptr("highlight-1-responsive")}), ""},
		{"SignalWire fields", cfg(&actorpb.ConfigPatch{RoomJoinVideoOff: ptr(true), UserJoinVideoOff: ptr(true), PrioritizeHandraise: ptr(true),
			SyncAudioVideo: ptr(true), EnableRoomPreviews: ptr(true), RemoveAt: timestamppb.New(t0)}), ""},
		{"remove_at out of range", cfg(&actorpb.ConfigPatch{RemoveAt: &timestamppb.Timestamp{Seconds: 1 << 40}}), "config.remove_at"},
		{"record without recording", cfg(&actorpb.ConfigPatch{RecordOnStart: ptr(true)}), "config.record_on_start"},
		{"record with recording", cfg(&actorpb.ConfigPatch{RecordOnStart: ptr(true), RecordingEnabled: ptr(true)}), ""},
		{"join window", cfg(&actorpb.ConfigPatch{JoinFrom: timestamppb.New(t0), JoinUntil: timestamppb.New(t0.Add(time.Hour))}), ""},
		{"join window reversed", cfg(&actorpb.ConfigPatch{JoinFrom: timestamppb.New(t0), JoinUntil: timestamppb.New(t0)}), "config.join_until"},
		{"join time out of range", cfg(&actorpb.ConfigPatch{JoinFrom: &timestamppb.Timestamp{Seconds: 1 << 40}}), "config.join_from"},
		{"webhook ok", hook("https://example.com/h", "*"), ""},
		{"webhook wildcard", hook("http://example.com/h", "participant-*", "room-ended"), ""},
		{"webhook relative", hook("/h", "*"), "webhook.endpoint"},
		{"webhook ftp", hook("ftp://example.com/h", "*"), "webhook.endpoint"},
		{"webhook creds", hook("https://u:p@example.com/h", "*"), "webhook.endpoint"},
		{"webhook no events", hook("https://example.com/h"), "webhook.events"},
		{"webhook unknown event", hook("https://example.com/h", "room-exploded"), "webhook.events"},
		{"webhook wildcard matching nothing", hook("https://example.com/h", "nothing-*"), "webhook.events"},
		{"webhook inner star", hook("https://example.com/h", "*-joined"), "webhook.events"},
		{"auto close", &actorpb.RoomPatch{Name: ptr("x"), AutoClose: &recordpb.AutoClose{Type: "session-end-and-deactivate", Duration: 60}}, ""},
		{"auto close type", &actorpb.RoomPatch{Name: ptr("x"), AutoClose: &recordpb.AutoClose{Type: "never", Duration: 60}}, "auto_close.type"},
		{"auto close duration", &actorpb.RoomPatch{Name: ptr("x"), AutoClose: &recordpb.AutoClose{Type: "session-ends"}}, "auto_close.duration"},
		{"clear unknown", &actorpb.RoomPatch{Name: ptr("x"), Clear: []string{"name"}}, "name"},
		{"public", &actorpb.RoomPatch{Name: ptr("x"), Privacy: ptr("public"), DefaultRole: ptr("subscriber")}, ""},
		{"privacy unknown", &actorpb.RoomPatch{Name: ptr("x"), Privacy: ptr("open")}, "privacy"},
		{"privacy empty", &actorpb.RoomPatch{Name: ptr("x"), Privacy: ptr("")}, "privacy"},
		{"default role moderator", &actorpb.RoomPatch{Name: ptr("x"), DefaultRole: ptr("moderator")}, "default_role"},
		{"default role empty", &actorpb.RoomPatch{Name: ptr("x"), DefaultRole: ptr("")}, "default_role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := newRoomFromSpec("room_1", tt.patch)
			if err == nil {
				err = ValidateRoom(r)
			}
			var ve *ValidationError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.field != "" && (!errors.As(err, &ve) || ve.Field != tt.field):
				t.Fatalf("got %v, want a validation error on %s", err, tt.field)
			}
		})
	}
}

// A new room is private, with publisher as its default role; a record
// from before the fields reads the same.
func TestRoomPrivacyDefaults(t *testing.T) {
	r, err := newRoomFromSpec("room_1", &actorpb.RoomPatch{Name: ptr("x")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Privacy != PrivacyPrivate || r.DefaultRole != string(RolePublisher) {
		t.Errorf("new room: privacy %q, default role %q", r.Privacy, r.DefaultRole)
	}
	old := &recordpb.Room{Id: "old", Name: "Old", Config: r.Config}
	if err := ValidateRoom(old); err != nil {
		t.Fatalf("a record from before privacy: %v", err)
	}
	if RoomPrivacy(old) != PrivacyPrivate || RoomDefaultRole(old) != RolePublisher {
		t.Errorf("old record: %q, %q", RoomPrivacy(old), RoomDefaultRole(old))
	}
}

func cfg(c *actorpb.ConfigPatch) *actorpb.RoomPatch {
	return &actorpb.RoomPatch{Name: ptr("x"), Config: c}
}

func hook(endpoint string, events ...string) *actorpb.RoomPatch {
	return &actorpb.RoomPatch{Name: ptr("x"), Webhook: &recordpb.Webhook{Endpoint: endpoint, Events: events}}
}

func TestValidateRoomID(t *testing.T) {
	for id, ok := range map[RoomID]bool{
		"room_abc-123": true, RoomID(strings.Repeat("a", 64)): true, NewRoomID(): true,
		"": false, RoomID(strings.Repeat("a", 65)): false, "a b": false, "ümlaut": false, "a/b": false,
	} {
		if err := ValidateRoomID(id); (err == nil) != ok {
			t.Errorf("ValidateRoomID(%q) = %v", id, err)
		}
	}
}

func TestErrorsCrossTheMailbox(t *testing.T) {
	for _, err := range sentinels {
		if got := errorFromPB(errorToPB(err)); got != err {
			t.Errorf("%v came back as %v", err, got)
		}
		wrapped := fmt.Errorf("room r1: %w", err)
		if got := errorFromPB(errorToPB(wrapped)); !errors.Is(got, err) || !strings.Contains(got.Error(), wrapped.Error()) {
			t.Errorf("%v came back as %v", wrapped, got)
		}
		for _, other := range sentinels {
			if other != err && errors.Is(errorFromPB(errorToPB(err)), other) {
				t.Errorf("%v came back as %v too", err, other)
			}
		}
	}
	got := errorFromPB(errorToPB(invalid("config.fps", "too high")))
	var ve *ValidationError
	if !errors.As(got, &ve) || ve.Field != "config.fps" || ve.Reason != "too high" {
		t.Errorf("validation error came back as %v", got)
	}
	got = errorFromPB(errorToPB(fmt.Errorf("start: %w", NotProvided("layout", "a composite needs decoding"))))
	var np *NotProvidedError
	if !errors.As(got, &np) || np.Field != "layout" || np.Reason != "a composite needs decoding" || !errors.Is(got, ErrNotProvided) {
		t.Errorf("not provided came back as %v", got)
	}
	if errorFromPB(errorToPB(nil)) != nil {
		t.Error("nil did not stay nil")
	}
	if got := errorFromPB(errorToPB(errors.New("disk on fire"))); got == nil || errors.Is(got, ErrUnavailable) {
		t.Errorf("internal error came back as %v", got)
	}
}
