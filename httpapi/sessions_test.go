package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var sessionKeys = []string{"created_at", "display_name", "duration", "enable_room_previews", "end_reason", "end_time", "fps", "id",
	"join_from", "join_until", "layout", "locked", "max_concurrent_participants", "max_members", "name",
	"participant_count", "preview_url", "prioritize_handraise", "quality", "record_on_start", "recordings",
	"remove_after_seconds_elapsed", "remove_at", "room_id", "room_join_video_off", "start_time", "status",
	"sync_audio_video", "tone_on_entry_and_exit", "total_participants", "updated_at", "user_join_video_off"}

// getSession returns GET /sessions/{id}, checking the object's keys.
func (s *stack) getSession(t testing.TB, id string) map[string]any {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/v1/sessions/"+id, "")
	mustStatus(t, r, http.StatusOK)
	m := r.json(t)
	if got := sortedKeys(m); !slices.Equal(got, sessionKeys) {
		t.Fatalf("session keys = %v, want %v", got, sessionKeys)
	}
	return m
}

// sessionParticipants returns GET /sessions/{id}/participants.
func (s *stack) sessionParticipants(t testing.TB, id string) []map[string]any {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/v1/sessions/"+id+"/participants", "")
	mustStatus(t, r, http.StatusOK)
	var list map[string][]map[string]any
	if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 1 || list["participants"] == nil {
		t.Fatalf("participants are not {\"participants\": [...]}: %v: %s", err, r.body)
	}
	out := list["participants"]
	want := []string{"duration", "hidden", "identity", "joined_at", "leave_reason", "left_at", "metadata", "name", "participant_id", "role"}
	for _, p := range out {
		if got := sortedKeys(p); !slices.Equal(got, want) {
			t.Fatalf("participant keys = %v, want %v", got, want)
		}
	}
	return out
}

// statsJSON is GET /sessions/{id}/stats as a client decodes it.
type statsJSON struct {
	SessionID    string `json:"session_id"`
	Participants []struct {
		ParticipantID string `json:"participant_id"`
		Identity      string `json:"identity"`
		Live          bool   `json:"live"`
		mediaStatsJSON
		Receiving *receivingJSON `json:"receiving"`
	} `json:"participants"`
	Totals mediaStatsJSON `json:"totals"`
}

func (s *stack) sessionStats(t testing.TB, id string) statsJSON {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/v1/sessions/"+id+"/stats", "")
	mustStatus(t, r, http.StatusOK)
	var out statsJSON
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("stats: %v: %s", err, r.body)
	}
	if out.SessionID != id {
		t.Fatalf("stats of %q, asked %q", out.SessionID, id)
	}
	// Totals are the sums, loss is computed from them.
	var sum mediaStatsJSON
	for _, p := range out.Participants {
		if meant := p.PacketsOut + p.PacketsDropped; meant > 0 && p.Loss != float64(p.PacketsDropped)/float64(meant) || meant == 0 && p.Loss != 0 {
			t.Errorf("%s: loss %v with %d out and %d dropped", p.Identity, p.Loss, p.PacketsOut, p.PacketsDropped)
		}
		sum.PacketsIn += p.PacketsIn
		sum.BytesIn += p.BytesIn
		sum.PacketsOut += p.PacketsOut
		sum.BytesOut += p.BytesOut
		sum.PacketsDropped += p.PacketsDropped
		sum.Nacks += p.Nacks
		sum.Retransmits += p.Retransmits
		sum.NackMisses += p.NackMisses
		sum.KeyframeRequests += p.KeyframeRequests
	}
	if meant := sum.PacketsOut + sum.PacketsDropped; meant > 0 {
		sum.Loss = float64(sum.PacketsDropped) / float64(meant)
	}
	if sum != out.Totals {
		t.Errorf("totals %+v, sums %+v", out.Totals, sum)
	}
	return out
}

// activeSession returns the room's active_session_id ("" for null).
func (s *stack) activeSession(t testing.TB, room string) string {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/v1/rooms/"+room, "")
	mustStatus(t, r, http.StatusOK)
	id, _ := r.json(t)["active_session_id"].(string)
	return id
}

func checkUTC(t testing.TB, what string, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !strings.HasSuffix(s, "Z") {
		t.Fatalf("%s = %v is not an RFC 3339 UTC time", what, v)
	}
	return ts
}

// TestSessionLifecycle: a WHIP publisher starts a session, a WebSocket
// viewer comes, goes and comes back, media flows, and the session is ended
// through the API; every session route is read along the way.
func TestSessionLifecycle(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"class","name":"Class","display_name":"CS101","config":{"max_participants":7,
		"quality":"1080p","fps":24,"layout":"speaker","join_from":"2001-02-03T04:05:06Z","remove_after_seconds_elapsed":3600}}`)

	// No session yet: an empty page, not a 404.
	r := s.do(t, http.MethodGet, "/api/v1/rooms/class/sessions", "")
	mustStatus(t, r, http.StatusOK)
	if got := compactJSON(t, r.body); got != `{"sessions":[],"total":0,"limit":20,"offset":0}` {
		t.Fatalf("no sessions = %s", got)
	}

	s.whipPublish(t, "class", s.joinToken(t, "class", "encoder", auth.RolePublisher))
	id := s.activeSession(t, "class")
	if !strings.HasPrefix(id, "ses_") {
		t.Fatalf("active_session_id = %q", id)
	}
	ses := s.getSession(t, id)
	for k, want := range map[string]any{
		"id": id, "room_id": "class", "name": "Class", "display_name": "CS101", "status": "in-progress",
		"end_time": nil, "duration": nil, "end_reason": nil, "participant_count": 1.0,
		"max_concurrent_participants": 1.0, "total_participants": 1.0, "max_members": 7.0,
		"quality": "1080p", "fps": 24.0, "join_from": "2001-02-03T04:05:06Z", "join_until": nil,
		"remove_after_seconds_elapsed": 3600.0, "layout": "speaker", "record_on_start": false, "locked": false,
	} {
		if ses[k] != want {
			t.Errorf("session %s = %v, want %v", k, ses[k], want)
		}
	}
	start := checkUTC(t, "start_time", ses["start_time"])
	checkUTC(t, "created_at", ses["created_at"])
	checkUTC(t, "updated_at", ses["updated_at"])
	if d := time.Since(start); d < 0 || d > time.Minute {
		t.Errorf("start_time %v is not about now", start)
	}
	// The list holds the same object.
	r = s.do(t, http.MethodGet, "/api/v1/sessions?room_id=class", "")
	mustStatus(t, r, http.StatusOK)
	var page struct{ Sessions []json.RawMessage }
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Sessions) != 1 {
		t.Fatalf("list = %s", r.body)
	}
	if got, want := compactJSON(t, page.Sessions[0]), compactJSON(t, s.do(t, http.MethodGet, "/api/v1/sessions/"+id, "").body); got != want {
		t.Fatalf("listed %s\nget %s", got, want)
	}

	viewer := s.dialWS(t, "viewer", s.joinToken(t, "class", "viewer", auth.RoleSubscriber))
	poll.Until(t, "media at the viewer", func() bool { return viewer.receiver("video").Stats().Packets >= 50 })
	if ses := s.getSession(t, id); ses["participant_count"] != 2.0 || ses["total_participants"] != 2.0 || ses["max_concurrent_participants"] != 2.0 {
		t.Fatalf("with the viewer: %v", ses)
	}
	ps := s.sessionParticipants(t, id)
	if len(ps) != 2 {
		t.Fatalf("participants = %v", ps)
	}
	for i, want := range []struct{ identity, role string }{{"encoder", "publisher"}, {"viewer", "subscriber"}} {
		p := ps[i]
		if p["identity"] != want.identity || p["role"] != want.role || p["name"] != want.identity+" name" ||
			p["left_at"] != nil || p["duration"] != nil || p["leave_reason"] != nil {
			t.Errorf("participant %d = %v", i, p)
		}
		if !strings.HasPrefix(p["participant_id"].(string), "PA_") {
			t.Errorf("participant_id %v", p["participant_id"])
		}
		checkUTC(t, "joined_at", p["joined_at"])
	}

	// Stats: the publisher's packets in, the viewer's packets out, live.
	var st statsJSON
	poll.Until(t, "stats of the media", func() bool {
		st = s.sessionStats(t, id)
		return len(st.Participants) == 2 && st.Participants[0].PacketsIn > 50 && st.Participants[1].PacketsOut > 50
	})
	for i, p := range st.Participants {
		if !p.Live || p.ParticipantID != ps[i]["participant_id"] || p.Identity != ps[i]["identity"] {
			t.Errorf("stats %d = %+v, participant %v", i, p, ps[i])
		}
	}
	if pub, view := st.Participants[0], st.Participants[1]; pub.BytesIn <= pub.PacketsIn || view.BytesOut <= view.PacketsOut || pub.PacketsOut != 0 || view.PacketsIn != 0 {
		t.Errorf("publisher %+v, viewer %+v", pub, view)
	}
	viewerOut := st.Participants[1].PacketsOut

	// The viewer leaves: its stay closes, its stats come from the record.
	viewer.send(map[string]any{"type": "leave"})
	viewer.waitMsg("left", nil)
	viewer.close()
	poll.Until(t, "the viewer's leave", func() bool { return s.getSession(t, id)["participant_count"] == 1.0 })
	ps = s.sessionParticipants(t, id)
	if ps[1]["leave_reason"] != "left" || ps[1]["left_at"] == nil {
		t.Fatalf("the viewer's stay = %v", ps[1])
	}
	joined, left := checkUTC(t, "joined_at", ps[1]["joined_at"]), checkUTC(t, "left_at", ps[1]["left_at"])
	if d, ok := ps[1]["duration"].(float64); !ok || d != float64(int64(left.Sub(joined)/time.Second)) {
		t.Errorf("duration %v for a stay from %v to %v", ps[1]["duration"], joined, left)
	}
	st = s.sessionStats(t, id)
	if v := st.Participants[1]; v.Live || v.PacketsOut < viewerOut {
		t.Errorf("the viewer's stats after its leave = %+v (it had %d packets out)", v, viewerOut)
	}

	// It comes back: a second stay, with its own participant id.
	again := s.dialWS(t, "viewer again", s.joinToken(t, "class", "viewer", auth.RoleSubscriber))
	again.waitMsg("joined", nil)
	ses = s.getSession(t, id)
	if ses["participant_count"] != 2.0 || ses["total_participants"] != 3.0 || ses["max_concurrent_participants"] != 2.0 {
		t.Fatalf("after the return: %v", ses)
	}
	ps = s.sessionParticipants(t, id)
	if len(ps) != 3 || ps[2]["identity"] != "viewer" || ps[2]["participant_id"] == ps[1]["participant_id"] || ps[2]["left_at"] != nil {
		t.Fatalf("participants after the return = %v", ps)
	}

	// End it, with an Idempotency-Key.
	r = s.do(t, http.MethodPost, "/api/v1/sessions/"+id+"/end", "", idemKey("end-class"))
	mustStatus(t, r, http.StatusOK)
	ended := r.json(t)
	if got := sortedKeys(ended); !slices.Equal(got, sessionKeys) {
		t.Fatalf("ended session keys = %v", got)
	}
	end := checkUTC(t, "end_time", ended["end_time"])
	for k, want := range map[string]any{
		"status": "completed", "end_reason": "ended-via-api", "participant_count": 0.0,
		"total_participants": 3.0, "max_concurrent_participants": 2.0,
		"duration": float64(int64(end.Sub(start) / time.Second)),
	} {
		if ended[k] != want {
			t.Errorf("ended %s = %v, want %v", k, ended[k], want)
		}
	}
	if got := compactJSON(t, s.do(t, http.MethodGet, "/api/v1/sessions/"+id, "").body); got != compactJSON(t, r.body) {
		t.Errorf("GET after end = %s\nend answered %s", got, r.body)
	}
	replay := s.do(t, http.MethodPost, "/api/v1/sessions/"+id+"/end", "", idemKey("end-class"))
	mustStatus(t, replay, http.StatusOK)
	if replay.header.Get("Idempotent-Replayed") != "true" || string(replay.body) != string(r.body) {
		t.Errorf("replay = %v %s", replay.header, replay.body)
	}
	for _, hs := range [][]header{nil, {idemKey("end-again")}} {
		r := s.do(t, http.MethodPost, "/api/v1/sessions/"+id+"/end", "{}", hs...)
		mustStatus(t, r, http.StatusConflict)
		if r.errorCode(t) != codeSessionEnded {
			t.Errorf("second end: %s", r.body)
		}
	}
	again.waitMsg("left", nil)
	for i, p := range s.sessionParticipants(t, id) {
		want := "session-ended"
		if i == 1 {
			want = "left"
		}
		if p["leave_reason"] != want || p["left_at"] == nil {
			t.Errorf("after the end, participant %d = %v", i, p)
		}
	}
	for _, p := range s.sessionStats(t, id).Participants {
		if p.Live {
			t.Errorf("live stats after the end: %+v", p)
		}
	}
	if got := s.sessionStats(t, id).Participants[0].PacketsIn; got < st.Participants[0].PacketsIn {
		t.Errorf("the publisher's packets in went from %d to %d", st.Participants[0].PacketsIn, got)
	}
	// The room stays open, with no session.
	room := s.do(t, http.MethodGet, "/api/v1/rooms/class", "").json(t)
	if room["status"] != "active" || room["active_session_id"] != nil {
		t.Errorf("room after the session's end: %v", room)
	}
	for q, want := range map[string]float64{"?status=completed": 1, "?status=ended": 1, "?status=in-progress": 0, "": 1} {
		r := s.do(t, http.MethodGet, "/api/v1/sessions"+q, "")
		mustStatus(t, r, http.StatusOK)
		if got := r.json(t)["total"]; got != want {
			t.Errorf("sessions%s: total %v, want %v", q, got, want)
		}
	}
}

// TestListSessions: pagination, order, filters, and the sessions of a
// deleted room.
func TestListSessions(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"a","name":"A"}`)
	s.createRoom(t, `{"id":"b","name":"B"}`)

	// a1 b1 a2 b2 a3 b3, the last still in progress.
	var created []string
	var inB *wsClient
	for i := range 6 {
		room := []string{"a", "b"}[i%2]
		c := s.dialWS(t, fmt.Sprintf("client %d", i), s.joinToken(t, room, fmt.Sprintf("p%d", i), auth.RoleSubscriber))
		c.waitMsg("joined", nil)
		id := s.activeSession(t, room)
		if id == "" || slices.Contains(created, id) {
			t.Fatalf("join %d: active session %q after %v", i, id, created)
		}
		created = append(created, id)
		if i == 5 {
			inB = c
			break
		}
		mustStatus(t, s.do(t, http.MethodPost, "/api/v1/sessions/"+id+"/end", ""), http.StatusOK)
		c.waitMsg("left", nil)
		c.close()
	}
	newest := slices.Clone(created)
	slices.Reverse(newest)
	pick := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, created[i])
		}
		return out
	}

	all, total, limit, offset := s.listIDs(t, "/api/v1/sessions", "sessions")
	if !slices.Equal(all, newest) || total != 6 || limit != 20 || offset != 0 {
		t.Fatalf("all = %v total %d limit %d offset %d; want %v", all, total, limit, offset, newest)
	}
	s.pagesTile(t, "/api/v1/sessions", "sessions", newest)
	cases := []struct {
		path  string
		want  []string
		total int
	}{
		{"/api/v1/sessions?limit=4&offset=4", newest[4:], 6},
		{"/api/v1/sessions?offset=50", nil, 6},
		{"/api/v1/sessions?limit=100", newest, 6},
		{"/api/v1/sessions?room_id=a", pick(4, 2, 0), 3},
		{"/api/v1/rooms/a/sessions", pick(4, 2, 0), 3},
		{"/api/v1/sessions?status=in-progress", pick(5), 1},
		{"/api/v1/sessions?status=completed", pick(4, 3, 2, 1, 0), 5},
		{"/api/v1/sessions?room_id=b&status=completed&limit=1&offset=1", pick(1), 2},
		{"/api/v1/rooms/b/sessions?status=completed&limit=1&offset=1", pick(1), 2},
		// ended: the word of earlier versions, still taken as a filter.
		{"/api/v1/sessions?status=ended", pick(4, 3, 2, 1, 0), 5},
		{"/api/v1/rooms/b/sessions?status=ended&limit=1&offset=1", pick(1), 2},
		{"/api/v1/rooms/b/sessions?status=in-progress", pick(5), 1},
		{"/api/v1/rooms/a/sessions?status=in-progress", nil, 0},
		{"/api/v1/sessions?room_id=nobody", nil, 0},
	}
	for _, c := range cases {
		got, total, _, _ := s.listIDs(t, c.path, "sessions")
		if !slices.Equal(got, c.want) && (len(got) != 0 || len(c.want) != 0) || total != c.total {
			t.Errorf("%s = %v total %d; want %v total %d", c.path, got, total, c.want, c.total)
		}
	}

	for _, path := range []string{"/api/v1/sessions", "/api/v1/rooms/a/sessions"} {
		s.refuseListQueries(t, path,
			badQuery{"status=active", codeValidationFailed, "status", 422},
			badQuery{"status=", codeValidationFailed, "status", 422})
	}
	for _, q := range []string{"room_id=", "room_id=a%20b", "room_id=" + strings.Repeat("r", 65)} {
		r := s.do(t, http.MethodGet, "/api/v1/sessions?"+q, "")
		mustStatus(t, r, http.StatusUnprocessableEntity)
		if r.errorField(t) != "room_id" {
			t.Errorf("%s: %s", q, r.body)
		}
	}
	for _, path := range []string{"/api/v1/rooms/nobody/sessions", "/api/v1/rooms/a%20b/sessions"} {
		r := s.do(t, http.MethodGet, path, "")
		mustStatus(t, r, http.StatusNotFound)
		if r.errorCode(t) != codeRoomNotFound {
			t.Errorf("%s: %s", path, r.body)
		}
	}

	// Deleting b ends its session; its sessions stay listed under its id.
	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/rooms/b", ""), http.StatusNoContent)
	inB.waitMsg("left", nil)
	inB.close()
	if ses := s.getSession(t, created[5]); ses["status"] != "completed" || ses["end_reason"] != "room-deleted" || ses["room_id"] != "b" {
		t.Errorf("b's last session after the delete: %v", ses)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms/b", ""), http.StatusNotFound)
	for _, path := range []string{"/api/v1/rooms/b/sessions", "/api/v1/sessions?room_id=b"} {
		if got, total, _, _ := s.listIDs(t, path, "sessions"); !slices.Equal(got, pick(5, 3, 1)) || total != 3 {
			t.Errorf("%s after the delete = %v total %d", path, got, total)
		}
	}
	for _, path := range []string{"/api/v1/sessions?status=in-progress", "/api/v1/rooms/b/sessions?status=in-progress"} {
		if got, total, _, _ := s.listIDs(t, path, "sessions"); len(got) != 0 || total != 0 {
			t.Errorf("%s after the delete = %v total %d", path, got, total)
		}
	}
}

// TestSessionRouteErrors: unknown sessions, bad bodies and tokens on every
// session and delivery route.
func TestSessionRouteErrors(t *testing.T) {
	s := newStack(t, nil)
	s.createRoom(t, `{"id":"r","name":"R"}`)
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/sessions", ""},
		{http.MethodGet, "/api/v1/rooms/r/sessions", ""},
		{http.MethodGet, "/api/v1/sessions/ses_missing", ""},
		{http.MethodGet, "/api/v1/sessions/ses_missing/participants", ""},
		{http.MethodGet, "/api/v1/sessions/ses_missing/stats", ""},
		{http.MethodPost, "/api/v1/sessions/ses_missing/end", ""},
		{http.MethodGet, "/api/v1/webhooks/deliveries", ""},
		{http.MethodGet, "/api/v1/cluster/nodes", ""},
	}
	join := s.joinToken(t, "r", "someone", auth.RolePublisher)
	for _, rt := range routes {
		for _, tc := range []struct {
			h      header
			status int
			code   string
		}{
			{header{"Authorization", ""}, http.StatusUnauthorized, codeUnauthorized},
			{bearer("not.a.jwt"), http.StatusUnauthorized, codeUnauthorized},
			{bearer(join), http.StatusForbidden, codeForbidden},
		} {
			r := s.do(t, rt.method, rt.path, rt.body, tc.h)
			mustStatus(t, r, tc.status)
			if r.errorCode(t) != tc.code {
				t.Errorf("%s %s with %q: %s", rt.method, rt.path, tc.h.value, r.body)
			}
		}
		if strings.Contains(rt.path, "ses_missing") {
			r := s.do(t, rt.method, rt.path, rt.body)
			mustStatus(t, r, http.StatusNotFound)
			if r.errorCode(t) != codeSessionNotFound {
				t.Errorf("%s %s: %s", rt.method, rt.path, r.body)
			}
		}
	}
	end := "/api/v1/sessions/ses_missing/end"
	for _, b := range []struct {
		body   string
		hs     []header
		status int
		code   string
	}{
		{`{"reason":"x"}`, nil, 422, codeValidationFailed},
		{`{`, nil, 400, codeMalformedJSON},
		{`{}`, []header{{"Content-Type", "text/plain"}}, 415, codeUnsupportedMediaType},
		{`{}`, []header{idemKey("bad\tkey")}, 400, codeInvalidIdempotency},
	} {
		r := s.do(t, http.MethodPost, end, b.body, b.hs...)
		mustStatus(t, r, b.status)
		if r.errorCode(t) != b.code {
			t.Errorf("end with %s: %s", b.body, r.body)
		}
	}
	for _, m := range []string{http.MethodDelete, http.MethodPatch} {
		mustStatus(t, s.do(t, m, "/api/v1/sessions/ses_missing", ""), http.StatusMethodNotAllowed)
	}
}

// Stats without participants still render every total; loss is computed
// per participant and from the totals, never averaged.
func TestSessionStatsJSON(t *testing.T) {
	tests := []struct {
		name  string
		stats []actors.ParticipantStats
		want  string
	}{
		{"none", nil, `{"session_id":"ses_1","participants":[],"totals":{"packets_in":0,"bytes_in":0,"packets_out":0,"bytes_out":0,` +
			`"packets_dropped":0,"loss":0,"nacks":0,"retransmits":0,"nack_misses":0,"keyframe_requests":0}}`},
		{"loss", []actors.ParticipantStats{
			{ParticipantID: "PA_a", Identity: "a", Live: true, Media: &recordpb.MediaStats{PacketsIn: 100, BytesIn: 1000}},
			{ParticipantID: "PA_b", Identity: "b", Media: &recordpb.MediaStats{PacketsOut: 90, BytesOut: 900, PacketsDropped: 10, Nacks: 3, Retransmits: 2, NackMisses: 1, KeyframeRequests: 4}},
			{ParticipantID: "PA_c", Identity: "c", Live: true, Media: &recordpb.MediaStats{PacketsOut: 70, BytesOut: 700, PacketsDropped: 30},
				Receiving: &actors.Receiving{EstimateBps: 800_000, EstimateSource: "twcc", Tracks: []actors.ReceivedTrack{
					{TrackID: "TR_v", Layer: 1, RID: "h"}, {TrackID: "TR_s", Layer: 0, Paused: true, PauseReason: "bandwidth"}}}},
		}, `{"session_id":"ses_1","participants":[` +
			`{"participant_id":"PA_a","identity":"a","live":true,"packets_in":100,"bytes_in":1000,"packets_out":0,"bytes_out":0,"packets_dropped":0,"loss":0,"nacks":0,"retransmits":0,"nack_misses":0,"keyframe_requests":0,"receiving":null},` +
			`{"participant_id":"PA_b","identity":"b","live":false,"packets_in":0,"bytes_in":0,"packets_out":90,"bytes_out":900,"packets_dropped":10,"loss":0.1,"nacks":3,"retransmits":2,"nack_misses":1,"keyframe_requests":4,"receiving":null},` +
			`{"participant_id":"PA_c","identity":"c","live":true,"packets_in":0,"bytes_in":0,"packets_out":70,"bytes_out":700,"packets_dropped":30,"loss":0.3,"nacks":0,"retransmits":0,"nack_misses":0,"keyframe_requests":0,` +
			`"receiving":{"estimate_bps":800000,"estimate_source":"twcc","tracks":[{"track_id":"TR_v","layer":1,"rid":"h","paused":false,"pause_reason":""},` +
			`{"track_id":"TR_s","layer":0,"rid":"","paused":true,"pause_reason":"bandwidth"}]}}],` +
			`"totals":{"packets_in":100,"bytes_in":1000,"packets_out":160,"bytes_out":1600,"packets_dropped":40,"loss":0.2,"nacks":3,"retransmits":2,"nack_misses":1,"keyframe_requests":4}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(toSessionStatsJSON("ses_1", tt.stats))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("stats = %s\nwant    %s", b, tt.want)
			}
		})
	}
}
