package httpapi

import (
	"net/http"
	"testing"
)

// SignalWire's room fields are taken, shown, cleared and carried by the
// session; preview_url is always null.
func TestSignalWireRoomFields(t *testing.T) {
	s := newStack(t, nil)
	room := s.createRoom(t, `{"id":"sw","name":"SW","config":{"room_join_video_off":true,"user_join_video_off":true,
		"remove_at":"2030-01-02T03:04:05Z","prioritize_handraise":true,"sync_audio_video":true,
		"enable_room_previews":true,"tone_on_entry_and_exit":true,"layout":"grid-responsive"}}`)
	cfg := room["config"].(map[string]any)
	for k, want := range map[string]any{
		"room_join_video_off": true, "user_join_video_off": true, "remove_at": "2030-01-02T03:04:05Z",
		"prioritize_handraise": true, "sync_audio_video": true, "enable_room_previews": true,
		"tone_on_entry_and_exit": true, "layout": "grid-responsive",
	} {
		if cfg[k] != want {
			t.Errorf("config.%s = %v, want %v", k, cfg[k], want)
		}
	}
	if v, ok := room["preview_url"]; !ok || v != nil {
		t.Errorf("preview_url = %v (present %v), want null", v, ok)
	}
	r := s.do(t, http.MethodPatch, "/api/v1/rooms/sw", `{"config":{"remove_at":null,"sync_audio_video":false}}`)
	mustStatus(t, r, http.StatusOK)
	if c := r.json(t)["config"].(map[string]any); c["remove_at"] != nil || c["sync_audio_video"] != false || c["room_join_video_off"] != true {
		t.Fatalf("after the patch: %v", c)
	}
	if r := s.do(t, http.MethodPatch, "/api/v1/rooms/sw", `{"config":{"room_join_video_off":"yes"}}`); !r.isTypeError(t, "config.room_join_video_off") {
		t.Errorf("a string for room_join_video_off: %d %s", r.status, r.body)
	}
	for _, body := range []string{
		`{"config":{"remove_at":"tomorrow"}}`,
		`{"config":{"prioritize_handraise":null}}`,
		`{"config":{"layout":"mosaic"}}`,
		`{"config":{"preview_url":"https://x"}}`,
	} {
		if r := s.do(t, http.MethodPatch, "/api/v1/rooms/sw", body); r.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
}
