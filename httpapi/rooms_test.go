package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
)

func TestCreateRoomShapeAndDefaults(t *testing.T) {
	s := newStack(t, nil)
	r := s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":"CS101 Lecture"}`)
	mustStatus(t, r, http.StatusCreated)
	room := r.json(t)
	id, _ := room["id"].(string)
	if !strings.HasPrefix(id, "room_") || actors.ValidateRoomID(actors.RoomID(id)) != nil {
		t.Fatalf("generated id %q", id)
	}
	if got := r.header.Get("Location"); got != "/api/v1/rooms/"+id {
		t.Fatalf("Location = %q", got)
	}
	wantKeys := []string{"active_session_id", "auto_close", "auto_start", "config", "created_at", "default_role", "display_name",
		"ended_at", "failure", "id", "metadata", "name", "node_id", "participant_count", "preview_url", "privacy", "status", "updated_at",
		"url", "webhook"}
	if got := sortedKeys(room); !slices.Equal(got, wantKeys) {
		t.Fatalf("room keys = %v, want %v", got, wantKeys)
	}
	if room["node_id"] != nil {
		t.Fatalf("node_id on a single node = %v, want null", room["node_id"])
	}
	wantConfig := map[string]any{
		"max_participants": 100.0, "recording_enabled": false, "chat_enabled": true,
		"record_on_start": false, "session_length": 0.0, "empty_timeout": 300.0,
		"join_from": nil, "join_until": nil, "remove_after_seconds_elapsed": nil,
		"locked": false, "quality": "720p", "fps": 30.0, "layout": "grid",
		"tone_on_entry_and_exit": false, "remove_at": nil, "room_join_video_off": false,
		"user_join_video_off": false, "prioritize_handraise": false, "sync_audio_video": false,
		"enable_room_previews": false,
	}
	cfg := room["config"].(map[string]any)
	if len(cfg) != len(wantConfig) {
		t.Fatalf("config keys = %v", sortedKeys(cfg))
	}
	for k, want := range wantConfig {
		if got, ok := cfg[k]; !ok || got != want {
			t.Errorf("config.%s = %v, want %v", k, got, want)
		}
	}
	for k, want := range map[string]any{
		"name": "CS101 Lecture", "display_name": "CS101 Lecture", "status": "active",
		"participant_count": 0.0, "active_session_id": nil, "webhook": nil, "auto_close": nil, "ended_at": nil,
		"url": s.srv.URL + "/rooms/" + id, "privacy": "private", "default_role": "publisher",
	} {
		if room[k] != want {
			t.Errorf("%s = %v, want %v", k, room[k], want)
		}
	}
	for _, k := range []string{"created_at", "updated_at"} {
		ts, _ := room[k].(string)
		p, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || p.Location() != time.UTC || !strings.HasSuffix(ts, "Z") {
			t.Errorf("%s = %q is not an RFC 3339 UTC time", k, ts)
		}
	}
	// GET returns the same object.
	g := s.do(t, http.MethodGet, "/api/v1/rooms/"+id, "")
	mustStatus(t, g, http.StatusOK)
	if compactJSON(t, g.body) != compactJSON(t, r.body) {
		t.Fatalf("GET = %s\nPOST = %s", g.body, r.body)
	}
}

func TestCreateRoomFullSpec(t *testing.T) {
	s := newStack(t, nil)
	room := s.createRoom(t, `{
		"id": "cs101", "name": "CS101", "display_name": "Intro to CS",
		"config": {"max_participants": 25, "recording_enabled": true, "chat_enabled": false,
			"record_on_start": true, "session_length": 90, "empty_timeout": 0,
			"join_from": "2030-01-02T10:00:00+02:00", "join_until": "2030-01-02T12:00:00Z",
			"remove_after_seconds_elapsed": 600, "locked": true, "quality": "1080p", "fps": 60,
			"layout": "speaker", "tone_on_entry_and_exit": true},
		"webhook": {"endpoint": "https://hooks.example.com/troupe", "events": ["participant-*", "session-ended"], "secret": "s3cret"},
		"auto_close": {"type": "session-ends", "duration": 480}}`)
	if room["id"] != "cs101" || room["display_name"] != "Intro to CS" {
		t.Fatalf("room = %v", room)
	}
	cfg := room["config"].(map[string]any)
	for k, want := range map[string]any{
		"max_participants": 25.0, "recording_enabled": true, "chat_enabled": false, "record_on_start": true,
		"session_length": 90.0, "empty_timeout": 0.0, "join_from": "2030-01-02T08:00:00Z",
		"join_until": "2030-01-02T12:00:00Z", "remove_after_seconds_elapsed": 600.0, "locked": true,
		"quality": "1080p", "fps": 60.0, "layout": "speaker", "tone_on_entry_and_exit": true,
	} {
		if cfg[k] != want {
			t.Errorf("config.%s = %v, want %v", k, cfg[k], want)
		}
	}
	wh := room["webhook"].(map[string]any)
	if _, ok := wh["secret"]; ok {
		t.Fatalf("webhook secret returned: %v", wh)
	}
	if wh["endpoint"] != "https://hooks.example.com/troupe" || fmt.Sprint(wh["events"]) != "[participant-* session-ended]" {
		t.Fatalf("webhook = %v", wh)
	}
	// The secret was kept, only not shown.
	info, err := s.rooms.Get(context.Background(), "cs101")
	if err != nil || info.Room.GetWebhook().GetSecret() != "s3cret" {
		t.Fatalf("stored webhook = %v, %v", info.Room.GetWebhook(), err)
	}
	if ac := room["auto_close"].(map[string]any); ac["type"] != "session-ends" || ac["duration"] != 480.0 {
		t.Fatalf("auto_close = %v", ac)
	}
}

func TestCreateRoomErrors(t *testing.T) {
	s := newStack(t, func(c *Config) { c.MaxBodyBytes = 4096 })
	s.createRoom(t, `{"id":"taken","name":"x"}`)
	tests := []struct {
		name   string
		body   string
		hs     []header
		status int
		code   string
		field  string
	}{
		{"duplicate id", `{"id":"taken","name":"y"}`, nil, 409, codeRoomExists, ""},
		{"bad id", `{"id":"no spaces","name":"y"}`, nil, 422, codeValidationFailed, "id"},
		{"long id", `{"id":"` + strings.Repeat("a", 65) + `","name":"y"}`, nil, 422, codeValidationFailed, "id"},
		{"missing name", `{}`, nil, 422, codeValidationFailed, "name"},
		{"blank name", `{"name":"  "}`, nil, 422, codeValidationFailed, "name"},
		{"long name", `{"name":"` + strings.Repeat("n", 201) + `"}`, nil, 422, codeValidationFailed, "name"},
		{"null name", `{"name":null}`, nil, 422, codeValidationFailed, "name"},
		{"unknown field", `{"name":"x","colour":"red"}`, nil, 422, codeValidationFailed, "colour"},
		{"unknown nested field", `{"name":"x","config":{"fps":30,"bitrate":1}}`, nil, 422, codeValidationFailed, "config.bitrate"},
		{"unknown webhook field", `{"name":"x","webhook":{"endpoint":"https://a.example","events":["*"],"url":"x"}}`, nil, 422, codeValidationFailed, "webhook.url"},
		{"status is not writable", `{"name":"x","status":"ended"}`, nil, 422, codeValidationFailed, "status"},
		{"wrong type", `{"name":"x","config":{"fps":"thirty"}}`, nil, 400, codeInvalidType, "config.fps"},
		{"negative", `{"name":"x","config":{"max_participants":-1}}`, nil, 422, codeValidationFailed, "config.max_participants"},
		{"fraction", `{"name":"x","config":{"empty_timeout":1.5}}`, nil, 422, codeValidationFailed, "config.empty_timeout"},
		{"name not string", `{"name":7}`, nil, 400, codeInvalidType, "name"},
		{"name an array", `{"name":["x"]}`, nil, 400, codeInvalidType, "name"},
		{"config not object", `{"name":"x","config":[]}`, nil, 400, codeInvalidType, "config"},
		{"config null", `{"name":"x","config":null}`, nil, 422, codeValidationFailed, "config"},
		{"bad time", `{"name":"x","config":{"join_from":"tomorrow"}}`, nil, 422, codeValidationFailed, "config.join_from"},
		{"events not strings", `{"name":"x","webhook":{"endpoint":"https://a.example","events":[1]}}`, nil, 400, codeInvalidType, "webhook.events"},
		{"events not an array", `{"name":"x","webhook":{"endpoint":"https://a.example","events":"*"}}`, nil, 400, codeInvalidType, "webhook.events"},
		{"range from actors", `{"name":"x","config":{"fps":0}}`, nil, 422, codeValidationFailed, "config.fps"},
		{"bad webhook url", `{"name":"x","webhook":{"endpoint":"ftp://a","events":["*"]}}`, nil, 422, codeValidationFailed, "webhook.endpoint"},
		{"bad auto_close", `{"name":"x","auto_close":{"type":"never","duration":1}}`, nil, 422, codeValidationFailed, "auto_close.type"},
		{"malformed", `{"name":`, nil, 400, codeMalformedJSON, ""},
		{"trailing garbage", `{"name":"x"} {}`, nil, 400, codeMalformedJSON, ""},
		{"not an object", `["name"]`, nil, 400, codeMalformedJSON, ""},
		{"empty body", ``, nil, 400, codeEmptyBody, ""},
		{"blank body", "  \n", []header{{"Content-Type", "application/json"}}, 400, codeEmptyBody, ""},
		{"text/plain", `{"name":"x"}`, []header{{"Content-Type", "text/plain"}}, 415, codeUnsupportedMediaType, ""},
		{"no content type", `{"name":"x"}`, []header{{"Content-Type", ""}}, 415, codeUnsupportedMediaType, ""},
		{"json with charset", `{"name":"charset"}`, []header{{"Content-Type", "application/json; charset=utf-8"}}, 201, "", ""},
		{"too large", `{"name":"` + strings.Repeat("x", 5000) + `"}`, nil, 413, codeBodyTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.total(t, "")
			r := s.do(t, http.MethodPost, "/api/v1/rooms", tt.body, tt.hs...)
			mustStatus(t, r, tt.status)
			if tt.code == "" {
				return
			}
			if got := r.errorCode(t); got != tt.code {
				t.Fatalf("code = %q, want %q: %s", got, tt.code, r.body)
			}
			if got := r.errorField(t); got != tt.field {
				t.Fatalf("details.field = %q, want %q: %s", got, tt.field, r.body)
			}
			if after := s.total(t, ""); after != before {
				t.Fatalf("a failed create changed the room count %d -> %d", before, after)
			}
		})
	}
}

// A body that is not valid UTF-8 is refused on every JSON route before
// anything happens: decoding it would put U+FFFD where the client sent
// other bytes.
func TestInvalidUTF8Refused(t *testing.T) {
	s := newStack(t, nil)
	s.createRoom(t, `{"id":"u","name":"U"}`)
	before := s.do(t, http.MethodGet, "/api/v1/rooms/u", "")
	mustStatus(t, before, http.StatusOK)
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/rooms", "{\"id\":\"u8\",\"name\":\"\xff\xfe\"}"},
		{http.MethodPost, "/api/v1/rooms", "{\"id\":\"u8\",\"name\":\"ok\",\"\xc3\":1}"},
		{http.MethodPatch, "/api/v1/rooms/u", "{\"name\":\"caf\xe9\"}"},
		{http.MethodPost, "/api/v1/rooms/u/end", "{\"\xed\xa0\x80\":null}"},
		{http.MethodPost, "/api/v1/rooms/u/tokens", "{\"identity\":\"\xff\"}"},
		{http.MethodPost, "/api/v1/rooms/u/participants/PA_x/mute", "{\"kind\":\"audio\",\"muted\":true,\"x\":\"\x80\"}"},
		{http.MethodPost, "/api/v1/sessions/ses_x/end", "{\"\xfe\":1}"},
	} {
		r := s.do(t, req.method, req.path, req.body)
		mustStatus(t, r, http.StatusBadRequest)
		if code := r.errorCode(t); code != codeInvalidUTF8 {
			t.Errorf("%s %s %q: code %q: %s", req.method, req.path, req.body, code, r.body)
		}
	}
	if n := s.total(t, ""); n != 1 {
		t.Fatalf("%d rooms after refused bodies, want 1", n)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms/u8", ""), http.StatusNotFound)
	after := s.do(t, http.MethodGet, "/api/v1/rooms/u", "")
	if compactJSON(t, after.body) != compactJSON(t, before.body) {
		t.Fatalf("refused bodies changed the room:\n%s\n%s", before.body, after.body)
	}
}

// total is the room count reported by GET /rooms.
func (s *stack) total(t testing.TB, status string) int {
	t.Helper()
	path := "/api/v1/rooms?limit=1"
	if status != "" {
		path += "&status=" + status
	}
	r := s.do(t, http.MethodGet, path, "")
	mustStatus(t, r, http.StatusOK)
	return int(r.json(t)["total"].(float64))
}

// A body streamed without Content-Length is cut at the limit too.
func TestBodyLimitWithoutContentLength(t *testing.T) {
	s := newStack(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	body := `{"name":"` + strings.Repeat("x", 4096) + `"}`
	req, err := http.NewRequest(http.MethodPost, s.srv.URL+"/api/v1/rooms", struct{ *strings.Reader }{strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+s.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("status %d, body: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || got.Error.Code != codeBodyTooLarge ||
		got.Error.Message != "request body exceeds 1024 bytes" {
		t.Fatalf("status %d, error %+v", resp.StatusCode, got.Error)
	}
}

// Ending a room ends its session as the contract says, ended-via-api;
// its members leave with room-ended, the word of their own leave.
func TestRoomEndEndsSessionViaAPI(t *testing.T) {
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"over","name":"Over"}`)
	alice := s.dialWS(t, "alice", s.joinToken(t, "over", "alice", auth.RoleSubscriber))
	alice.waitMsg("joined", nil)
	id := s.activeSession(t, "over")
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/over/end", ""), http.StatusOK)
	if left := alice.waitMsg("left", nil); left["reason"] != "room-ended" {
		t.Errorf("alice's left message = %v", left)
	}
	if ses := s.getSession(t, id); ses["status"] != "completed" || ses["end_reason"] != "ended-via-api" {
		t.Errorf("the session after the room's end = %v", ses)
	}
	poll.Until(t, "alice's stay to close", func() bool {
		ps := s.sessionParticipants(t, id)
		return len(ps) == 1 && ps[0]["left_at"] != nil
	})
	if p := s.sessionParticipants(t, id)[0]; p["leave_reason"] != "room-ended" {
		t.Errorf("alice's stay = %v", p)
	}
}

func TestRoomLifecycle(t *testing.T) {
	s := newStack(t, nil)
	s.createRoom(t, `{"id":"life","name":"Life"}`)
	path := "/api/v1/rooms/life"

	r := s.do(t, http.MethodPost, path+"/end", "")
	mustStatus(t, r, http.StatusOK)
	ended := r.json(t)
	if ended["status"] != "ended" || ended["ended_at"] == nil {
		t.Fatalf("ended room = %v", ended)
	}
	// Ending again returns it unchanged.
	again := s.do(t, http.MethodPost, path+"/end", "{}")
	mustStatus(t, again, http.StatusOK)
	if compactJSON(t, again.body) != compactJSON(t, r.body) {
		t.Fatalf("second end changed the room:\n%s\n%s", r.body, again.body)
	}
	r = s.do(t, http.MethodPost, path+"/end", `{"reason":"x"}`)
	mustStatus(t, r, http.StatusUnprocessableEntity)

	r = s.do(t, http.MethodPatch, path, `{"name":"Later"}`)
	mustStatus(t, r, http.StatusConflict)
	if r.errorCode(t) != codeRoomEnded {
		t.Fatalf("patch ended room: %s", r.body)
	}
	r = s.do(t, http.MethodPost, path+"/tokens", `{"identity":"alice"}`)
	mustStatus(t, r, http.StatusConflict)
	if r.errorCode(t) != codeRoomEnded {
		t.Fatalf("token for ended room: %s", r.body)
	}
	// An ended room keeps its record and lists as ended.
	if n := s.total(t, "ended"); n != 1 {
		t.Fatalf("ended rooms = %d", n)
	}

	r = s.do(t, http.MethodDelete, path, "")
	mustStatus(t, r, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Fatalf("204 with body %q", r.body)
	}
	for _, req := range []struct{ method, path, body string }{
		{http.MethodGet, path, ""},
		{http.MethodDelete, path, ""},
		{http.MethodPatch, path, `{"name":"x"}`},
		{http.MethodPost, path + "/end", ""},
		{http.MethodPost, path + "/tokens", `{"identity":"a"}`},
		{http.MethodGet, "/api/v1/rooms/not%20valid", ""},
	} {
		r := s.do(t, req.method, req.path, req.body)
		mustStatus(t, r, http.StatusNotFound)
		if r.errorCode(t) != codeRoomNotFound {
			t.Fatalf("%s %s: %s", req.method, req.path, r.body)
		}
	}
}

func TestListRooms(t *testing.T) {
	s := newStack(t, nil)
	var ids []string
	for i := range 7 {
		ids = append(ids, s.createRoom(t, fmt.Sprintf(`{"name":"room %d"}`, i))["id"].(string))
	}
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/"+ids[1]+"/end", ""), http.StatusOK)
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/"+ids[4]+"/end", ""), http.StatusOK)

	list := func(query string) (got []string, total, limit, offset int) {
		t.Helper()
		return s.listIDs(t, "/api/v1/rooms"+query, "rooms")
	}

	all, total, limit, offset := list("")
	if !slices.Equal(all, ids) || total != 7 || limit != 20 || offset != 0 {
		t.Fatalf("default list = %v total %d limit %d offset %d; want %v", all, total, limit, offset, ids)
	}
	s.pagesTile(t, "/api/v1/rooms", "rooms", ids)
	if page, total, _, _ := list("?limit=3&offset=5"); !slices.Equal(page, ids[5:]) || total != 7 {
		t.Fatalf("last page = %v", page)
	}
	if page, total, _, offset := list("?offset=50"); len(page) != 0 || total != 7 || offset != 50 {
		t.Fatalf("past the end = %v total %d", page, total)
	}
	if page, _, limit, _ := list("?limit=100"); len(page) != 7 || limit != 100 {
		t.Fatalf("limit 100 = %v", page)
	}
	active, total, _, _ := list("?status=active")
	wantActive := []string{ids[0], ids[2], ids[3], ids[5], ids[6]}
	if !slices.Equal(active, wantActive) || total != 5 {
		t.Fatalf("active = %v total %d", active, total)
	}
	if ended, total, _, _ := list("?status=ended&limit=1&offset=1"); !slices.Equal(ended, []string{ids[4]}) || total != 2 {
		t.Fatalf("ended page = %v total %d", ended, total)
	}

	s.refuseListQueries(t, "/api/v1/rooms",
		badQuery{"status=open", codeValidationFailed, "status", 422},
		badQuery{"status=", codeValidationFailed, "status", 422})
}

func TestPatchRoom(t *testing.T) {
	s := newStack(t, nil)
	s.createRoom(t, `{"id":"p","name":"P","config":{"join_from":"2030-01-01T00:00:00Z","remove_after_seconds_elapsed":60},
		"webhook":{"endpoint":"https://h.example","events":["*"]},"auto_close":{"type":"session-ends","duration":5}}`)
	path := "/api/v1/rooms/p"

	r := s.do(t, http.MethodPatch, path, `{"config":{"max_participants":150}}`)
	mustStatus(t, r, http.StatusOK)
	cfg := r.json(t)["config"].(map[string]any)
	if cfg["max_participants"] != 150.0 || cfg["fps"] != 30.0 || cfg["join_from"] != "2030-01-01T00:00:00Z" || cfg["chat_enabled"] != true {
		t.Fatalf("config did not merge: %v", cfg)
	}

	// null clears the nullable fields.
	r = s.do(t, http.MethodPatch, path, `{"display_name":"Shown","config":{"join_from":null,"remove_after_seconds_elapsed":null},"webhook":null,"auto_close":null}`)
	mustStatus(t, r, http.StatusOK)
	room := r.json(t)
	cfg = room["config"].(map[string]any)
	if room["webhook"] != nil || room["auto_close"] != nil || cfg["join_from"] != nil || cfg["remove_after_seconds_elapsed"] != nil {
		t.Fatalf("nulls did not clear: %v", room)
	}
	if room["display_name"] != "Shown" || room["name"] != "P" || cfg["max_participants"] != 150.0 {
		t.Fatalf("patch changed more than asked: %v", room)
	}

	// An invalid patch changes nothing, whichever part is wrong.
	before, err := s.rooms.Get(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	beforeJSON := s.do(t, http.MethodGet, path, "").body
	invalid := []struct{ body, field string }{
		{`{"name":"new","config":{"fps":0}}`, "config.fps"},
		{`{"name":"new","config":{"max_participants":20000}}`, "config.max_participants"},
		{`{"name":"new","config":{"join_from":"2031-01-01T00:00:00Z","join_until":"2030-01-01T00:00:00Z"}}`, "config.join_until"},
		{`{"name":"new","config":{"record_on_start":true}}`, "config.record_on_start"},
		{`{"name":"new","webhook":{"endpoint":"nope","events":["*"]}}`, "webhook.endpoint"},
		{`{"name":"new","config":{"locked":true,"colour":1}}`, "config.colour"},
		{`{"name":null}`, "name"},
		{`{"config":{"fps":null}}`, "config.fps"},
		{`{"id":"other"}`, "id"},
		{`{"name":""}`, "name"},
	}
	if r := s.do(t, http.MethodPatch, path, `{"name":"new","config":{"locked":"yes"}}`); !r.isTypeError(t, "config.locked") {
		t.Errorf("a string for config.locked: %d %s", r.status, r.body)
	}
	for _, in := range invalid {
		r := s.do(t, http.MethodPatch, path, in.body)
		mustStatus(t, r, http.StatusUnprocessableEntity)
		if r.errorCode(t) != codeValidationFailed || r.errorField(t) != in.field {
			t.Errorf("%s: %s", in.body, r.body)
		}
	}
	for _, in := range []struct {
		body   string
		hs     []header
		status int
	}{
		{`{"name":`, nil, 400},
		{``, nil, 400},
		{`{"name":"x"}`, []header{{"Content-Type", "text/plain"}}, 415},
	} {
		mustStatus(t, s.do(t, http.MethodPatch, path, in.body, in.hs...), in.status)
	}
	after, err := s.rooms.Get(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if after.Room.GetRevision() != before.Room.GetRevision() {
		t.Fatalf("invalid patches moved the revision %d -> %d", before.Room.GetRevision(), after.Room.GetRevision())
	}
	if got := s.do(t, http.MethodGet, path, "").body; compactJSON(t, got) != compactJSON(t, beforeJSON) {
		t.Fatalf("invalid patches changed the room:\n%s\n%s", beforeJSON, got)
	}
}

// auto_close with a type and no duration gets VideoSDK's default of 480
// minutes, at create and at update; an explicit 0 or null is still refused.
func TestAutoCloseDefaultDuration(t *testing.T) {
	s := newStack(t, nil)
	autoClose := func(r response) any {
		t.Helper()
		mustStatus(t, r, http.StatusOK)
		return r.json(t)["auto_close"]
	}
	room := s.createRoom(t, `{"id":"ac","name":"AC","auto_close":{"type":"session-ends"}}`)
	if got := fmt.Sprint(room["auto_close"]); got != "map[duration:480 type:session-ends]" {
		t.Fatalf("created auto_close = %s", got)
	}
	if got := fmt.Sprint(autoClose(s.do(t, http.MethodGet, "/api/v1/rooms/ac", ""))); got != "map[duration:480 type:session-ends]" {
		t.Fatalf("stored auto_close = %s", got)
	}
	r := s.do(t, http.MethodPatch, "/api/v1/rooms/ac", `{"auto_close":{"type":"session-end-and-deactivate","duration":5}}`)
	if got := fmt.Sprint(autoClose(r)); got != "map[duration:5 type:session-end-and-deactivate]" {
		t.Fatalf("patched auto_close = %s", got)
	}
	// auto_close is replaced as a whole: no duration is the default, not
	// the former one.
	r = s.do(t, http.MethodPatch, "/api/v1/rooms/ac", `{"auto_close":{"type":"session-ends"}}`)
	if got := fmt.Sprint(autoClose(r)); got != "map[duration:480 type:session-ends]" {
		t.Fatalf("patched without duration = %s", got)
	}
	for _, body := range []string{
		`{"auto_close":{"type":"session-ends","duration":0}}`,
		`{"auto_close":{"type":"session-ends","duration":null}}`,
	} {
		r := s.do(t, http.MethodPatch, "/api/v1/rooms/ac", body)
		mustStatus(t, r, http.StatusUnprocessableEntity)
		if r.errorField(t) != "auto_close.duration" {
			t.Errorf("%s: %s", body, r.body)
		}
	}
	r = s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":"x","auto_close":{"duration":60}}`)
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if r.errorField(t) != "auto_close.type" {
		t.Errorf("auto_close without type: %s", r.body)
	}
}

// The live participants come as the array itself, as the contract shows
// them: the list is not paginated, unlike the others.
func TestParticipantListIsArray(t *testing.T) {
	s := newStack(t, nil)
	s.createRoom(t, `{"id":"quiet","name":"Quiet"}`)
	r := s.do(t, http.MethodGet, "/api/v1/rooms/quiet/participants", "")
	mustStatus(t, r, http.StatusOK)
	if got := compactJSON(t, r.body); got != `[]` {
		t.Fatalf("participants of an empty room = %s", got)
	}
	r = s.do(t, http.MethodGet, "/api/v1/rooms/nowhere/participants", "")
	mustStatus(t, r, http.StatusNotFound)
	if r.errorCode(t) != codeRoomNotFound {
		t.Fatalf("participants of no room: %s", r.body)
	}
}

// Every room representation gives the live participant count: GET of the
// room, the list (filtered or not), and the replies of PATCH and end.
func TestParticipantCountAgrees(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"empty","name":"Empty"}`)
	s.createRoom(t, `{"id":"busy","name":"Busy"}`)
	c := s.dialWS(t, "viewer", s.joinToken(t, "busy", "viewer", auth.RoleSubscriber))
	c.waitMsg("joined", nil)

	listed := func(query string) map[string]any {
		t.Helper()
		r := s.do(t, http.MethodGet, "/api/v1/rooms"+query, "")
		mustStatus(t, r, http.StatusOK)
		counts := map[string]any{}
		for _, room := range r.json(t)["rooms"].([]any) {
			m := room.(map[string]any)
			counts[m["id"].(string)] = m["participant_count"]
		}
		return counts
	}
	if ps := s.participants(t, "busy"); len(ps) != 1 || ps[0]["identity"] != "viewer" {
		t.Fatalf("participants = %v", ps)
	}
	get := s.do(t, http.MethodGet, "/api/v1/rooms/busy", "")
	mustStatus(t, get, http.StatusOK)
	patch := s.do(t, http.MethodPatch, "/api/v1/rooms/busy", `{"display_name":"Busy room"}`)
	mustStatus(t, patch, http.StatusOK)
	for what, got := range map[string]any{
		"GET /rooms/busy":          get.json(t)["participant_count"],
		"PATCH /rooms/busy":        patch.json(t)["participant_count"],
		"GET /rooms":               listed("")["busy"],
		"GET /rooms?status=active": listed("?status=active")["busy"],
		"GET /rooms, the other":    listed("")["empty"],
	} {
		want := 1.0
		if strings.HasSuffix(what, "other") {
			want = 0.0
		}
		if got != want {
			t.Errorf("%s: participant_count %v, want %v", what, got, want)
		}
	}

	// Ending the room disconnects the viewer; the end's reply and every
	// later read agree.
	end := s.do(t, http.MethodPost, "/api/v1/rooms/busy/end", "")
	mustStatus(t, end, http.StatusOK)
	c.waitClosed()
	poll.Until(t, "the viewer to be gone", func() bool {
		return s.do(t, http.MethodGet, "/api/v1/rooms/busy", "").json(t)["participant_count"] == 0.0
	})
	if got := listed("?status=ended")["busy"]; got != 0.0 {
		t.Errorf("ended room listed with participant_count %v", got)
	}
}

// Concurrent PATCHes of one room must all land: the room actor is the
// single writer, so none may overwrite another's field.
func TestConcurrentPatches(t *testing.T) {
	s := newStack(t, nil)
	s.createRoom(t, `{"id":"busy","name":"Busy","config":{"recording_enabled":true}}`)
	start, err := s.rooms.Get(context.Background(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	fieldPatches := map[string]string{
		"max_participants":             `{"config":{"max_participants":42}}`,
		"session_length":               `{"config":{"session_length":15}}`,
		"empty_timeout":                `{"config":{"empty_timeout":60}}`,
		"fps":                          `{"config":{"fps":24}}`,
		"quality":                      `{"config":{"quality":"360p"}}`,
		"layout":                       `{"config":{"layout":"sidebar"}}`,
		"locked":                       `{"config":{"locked":true}}`,
		"chat_enabled":                 `{"config":{"chat_enabled":false}}`,
		"record_on_start":              `{"config":{"record_on_start":true}}`,
		"tone_on_entry_and_exit":       `{"config":{"tone_on_entry_and_exit":true}}`,
		"join_from":                    `{"config":{"join_from":"2030-05-05T05:05:05Z"}}`,
		"remove_after_seconds_elapsed": `{"config":{"remove_after_seconds_elapsed":99}}`,
	}
	const names = 50
	var wg sync.WaitGroup
	errs := make(chan string, names+len(fieldPatches))
	patch := func(body string) {
		defer wg.Done()
		r := s.do(t, http.MethodPatch, "/api/v1/rooms/busy", body)
		if r.status != http.StatusOK {
			errs <- fmt.Sprintf("%s: %d %s", body, r.status, r.body)
		}
	}
	for i := range names {
		wg.Add(1)
		go patch(fmt.Sprintf(`{"name":"name %d"}`, i))
	}
	for _, body := range fieldPatches {
		wg.Add(1)
		go patch(body)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	end, err := s.rooms.Get(context.Background(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := end.Room.GetRevision()-start.Room.GetRevision(), uint64(names+len(fieldPatches)); got != want {
		t.Fatalf("revision advanced by %d, want %d", got, want)
	}
	room := s.do(t, http.MethodGet, "/api/v1/rooms/busy", "").json(t)
	if !strings.HasPrefix(room["name"].(string), "name ") {
		t.Fatalf("name = %v", room["name"])
	}
	cfg := room["config"].(map[string]any)
	for k, want := range map[string]any{
		"max_participants": 42.0, "session_length": 15.0, "empty_timeout": 60.0, "fps": 24.0,
		"quality": "360p", "layout": "sidebar", "locked": true, "chat_enabled": false,
		"record_on_start": true, "tone_on_entry_and_exit": true, "join_from": "2030-05-05T05:05:05Z",
		"remove_after_seconds_elapsed": 99.0, "recording_enabled": true,
	} {
		if cfg[k] != want {
			t.Errorf("lost update: config.%s = %v, want %v", k, cfg[k], want)
		}
	}
}

func TestConcurrentCreates(t *testing.T) {
	// 500 creates at once may take the rooms longer than the usual
	// request timeout under the race detector on a loaded machine: wait
	// for them as long as for anything else.
	s := buildStack(t, nil, func(c *actors.Config) { c.RequestTimeout = poll.Timeout }, false)
	const n = 500
	var wg sync.WaitGroup
	ids := make([]string, n)
	fails := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.do(t, http.MethodPost, "/api/v1/rooms", fmt.Sprintf(`{"name":"c%d"}`, i))
			if r.status != http.StatusCreated {
				fails <- fmt.Sprintf("%d %s", r.status, r.body)
				return
			}
			ids[i] = r.json(t)["id"].(string)
		}()
	}
	wg.Wait()
	close(fails)
	for f := range fails {
		t.Fatal(f)
	}
	if got := s.total(t, ""); got != n {
		t.Fatalf("total = %d, want %d", got, n)
	}
	// Every room is listed exactly once across pages.
	var listed []string
	for off := 0; off < n; off += maxLimit {
		r := s.do(t, http.MethodGet, fmt.Sprintf("/api/v1/rooms?limit=%d&offset=%d", maxLimit, off), "")
		mustStatus(t, r, http.StatusOK)
		for _, room := range r.json(t)["rooms"].([]any) {
			listed = append(listed, room.(map[string]any)["id"].(string))
		}
	}
	sort.Strings(listed)
	sort.Strings(ids)
	if !slices.Equal(listed, ids) {
		t.Fatalf("listed %d rooms, created %d, or they differ", len(listed), len(ids))
	}
}

func TestTokens(t *testing.T) {
	clk := clock.NewManual(time.Now())
	s := newStack(t, func(c *Config) { c.Clock = clk })
	s.createRoom(t, `{"id":"stage","name":"Stage"}`)
	verifier, err := auth.NewVerifier(s.key)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(body string) (string, time.Time) {
		t.Helper()
		r := s.do(t, http.MethodPost, "/api/v1/rooms/stage/tokens", body)
		mustStatus(t, r, http.StatusOK)
		m := r.json(t)
		if keys := sortedKeys(m); !slices.Equal(keys, []string{"expires_at", "token"}) {
			t.Fatalf("token keys %v", keys)
		}
		exp, err := time.Parse(time.RFC3339, m["expires_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return m["token"].(string), exp
	}

	tok, exp := mint(`{"identity":"alice"}`)
	c, err := verifier.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now().Truncate(time.Second)
	if c.Room != "stage" || c.Subject != "alice" || c.Role != auth.RolePublisher || c.Admin || c.Issuer != s.key.ID {
		t.Fatalf("claims = %+v", c)
	}
	if !exp.Equal(now.Add(time.Hour)) || !c.ExpiresAt.Time.Equal(exp) {
		t.Fatalf("expires_at %v, exp %v, want %v", exp, c.ExpiresAt.Time, now.Add(time.Hour))
	}

	tok, exp = mint(`{"identity":"bob","name":"Bob B.","role":"moderator","ttl":86400}`)
	if c, err = verifier.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if c.Name != "Bob B." || c.Role != auth.RoleModerator || !exp.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("claims = %+v exp %v", c, exp)
	}
	if c.AutoSubscribe != nil || !c.Subscribes() {
		t.Fatalf("a token minted without auto_subscribe has it %v", c.AutoSubscribe)
	}
	for _, auto := range []bool{false, true} {
		tok, _ = mint(fmt.Sprintf(`{"identity":"carol","auto_subscribe":%v}`, auto))
		if c, err = verifier.Verify(tok); err != nil {
			t.Fatal(err)
		}
		if c.AutoSubscribe == nil || *c.AutoSubscribe != auto || c.Subscribes() != auto {
			t.Fatalf("auto_subscribe %v minted as %v", auto, c.AutoSubscribe)
		}
	}

	// A join token opens no REST route.
	r := s.do(t, http.MethodGet, "/api/v1/rooms/stage", "", bearer(tok))
	mustStatus(t, r, http.StatusForbidden)
	if r.errorCode(t) != codeForbidden {
		t.Fatalf("join token on REST: %s", r.body)
	}

	for _, b := range []struct{ body, field string }{
		{`{}`, "identity"},
		{`{"identity":""}`, "identity"},
		{`{"identity":"a\u0000b"}`, "identity"},
		{`{"identity":"` + strings.Repeat("i", 129) + `"}`, "identity"},
		{`{"identity":"a","role":"admin"}`, "role"},
		{`{"identity":"a","ttl":0}`, "ttl"},
		{`{"identity":"a","ttl":86401}`, "ttl"},
		{`{"identity":"a","room":"other"}`, "room"},
		{`{"identity":"a","auto_subscribe":null}`, "auto_subscribe"},
	} {
		r := s.do(t, http.MethodPost, "/api/v1/rooms/stage/tokens", b.body)
		mustStatus(t, r, http.StatusUnprocessableEntity)
		if r.errorField(t) != b.field {
			t.Errorf("%s: %s", b.body, r.body)
		}
	}
	// Values of the wrong JSON type are a 400, the field named as well.
	for _, b := range []struct{ body, field string }{
		{`{"identity":5}`, "identity"},
		{`{"identity":"a","ttl":"1h"}`, "ttl"},
		{`{"identity":"a","auto_subscribe":"no"}`, "auto_subscribe"},
	} {
		if r := s.do(t, http.MethodPost, "/api/v1/rooms/stage/tokens", b.body); !r.isTypeError(t, b.field) {
			t.Errorf("%s: %d %s", b.body, r.status, r.body)
		}
	}
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/stage/tokens", ""), http.StatusBadRequest)
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/nowhere/tokens", `{"identity":"a"}`), http.StatusNotFound)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
