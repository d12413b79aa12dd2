package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

// grantToken mints a join token with grants and metadata of its own.
func (s *stack) grantToken(t testing.TB, room, identity string, role auth.Role, g *auth.Grants, metadata string) string {
	t.Helper()
	c := auth.JoinClaims(time.Now(), time.Hour, room, identity, identity+" name", role)
	c.Grants, c.Metadata = g, metadata
	tok, err := auth.Mint(s.key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func yes() *bool { v := true; return &v }
func no() *bool  { v := false; return &v }

// identities are the identities of a list of participants.
func identities(list []any) []string {
	var out []string
	for _, p := range list {
		out = append(out, p.(map[string]any)["identity"].(string))
	}
	return out
}

// refusedJoin is the HTTP status of a signaling join with token in the
// URL that the server refuses before the upgrade.
func (s *stack) refusedJoin(t testing.TB, token string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, s.wsURL("/rtc?token="+token), nil)
	if err == nil {
		ws.CloseNow()
		t.Fatal("the join was upgraded")
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

func (s *stack) patchParticipant(t testing.TB, room, pid, body string) response {
	t.Helper()
	return s.do(t, http.MethodPatch, "/api/v1/rooms/"+room+"/participants/"+pid, body)
}

// A hidden participant is shown to no one: not in the others' joined
// lists or events, not in the REST list unless asked for, not in
// participant_count, not counted against max_participants.
func TestHiddenParticipantNotListed(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"hid","name":"Hidden","config":{"max_participants":2}}`)
	alice := s.dialWS(t, "alice", s.joinToken(t, "hid", "alice", auth.RolePublisher))
	alice.waitMsg(msgJoined, nil)
	// A hidden observer is not counted: carol fills the room after it.
	obs := s.dialWS(t, "observer", s.grantToken(t, "hid", "observer", auth.RoleModerator, &auth.Grants{Hidden: yes()}, ""))
	joined := obs.waitMsg(msgJoined, nil)
	if got := identities(joined["participants"].([]any)); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("the observer sees %v, want alice", got)
	}
	if g := joined["participant"].(map[string]any)["grants"].(map[string]any); g["hidden"] != true || g["publish"] != false || g["publish_data"] != false || g["subscribe"] != true {
		t.Fatalf("the observer's grants = %v: a hidden token publishes nothing", g)
	}
	if n := joined["room"].(map[string]any)["participant_count"]; n != 1.0 {
		t.Fatalf("the observer's joined says participant_count %v, want 1", n)
	}
	carol := s.dialWS(t, "carol", s.joinToken(t, "hid", "carol", auth.RolePublisher))
	carol.waitMsg(msgJoined, nil)
	if status := s.refusedJoin(t, s.joinToken(t, "hid", "dave", auth.RolePublisher)); status != http.StatusConflict {
		t.Fatalf("a third visible join into the room of 2: %d, want 409", status)
	}

	if got := s.participants(t, "hid"); len(got) != 2 || got[0]["identity"] != "alice" || got[1]["identity"] != "carol" {
		t.Fatalf("REST list = %v, want alice and carol", got)
	}
	r := s.do(t, http.MethodGet, "/api/v1/rooms/hid/participants?include_hidden=true", "")
	mustStatus(t, r, http.StatusOK)
	all := r.list(t)
	if got := identities(all); !slices.Equal(got, []string{"alice", "observer", "carol"}) {
		t.Fatalf("REST list with include_hidden = %v", got)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms/hid/participants?include_hidden=maybe", ""), http.StatusUnprocessableEntity)
	if n := s.do(t, http.MethodGet, "/api/v1/rooms/hid", "").json(t)["participant_count"]; n != 2.0 {
		t.Fatalf("participant_count = %v, want 2", n)
	}

	// The observer leaves, then carol: alice hears of carol alone, in
	// order, so she would have heard of the observer first.
	obs.send(map[string]any{"type": "leave"})
	obs.waitClosed()
	poll.Until(t, "the observer gone", func() bool {
		r := s.do(t, http.MethodGet, "/api/v1/rooms/hid/participants?include_hidden=true", "")
		return len(r.list(t)) == 2
	})
	carol.send(map[string]any{"type": "leave"})
	alice.waitMsg(msgParticipantLeft, func(m map[string]any) bool { return m["identity"] == "carol" })
	for _, typ := range []string{msgParticipantJoined, msgParticipantLeft} {
		alice.mu.Lock()
		for _, m := range alice.msgs {
			if m["type"] != typ {
				continue
			}
			id := m["identity"]
			if p, ok := m["participant"].(map[string]any); ok {
				id = p["identity"]
			}
			if id != "carol" {
				t.Errorf("alice was told %v", m)
			}
		}
		alice.mu.Unlock()
	}
	// The session history keeps the observer's stay, marked hidden, and
	// does not count it.
	ses := s.activeSession(t, "hid")
	r = s.do(t, http.MethodGet, "/api/v1/sessions/"+ses, "")
	if n := r.json(t)["total_participants"]; n != 2.0 {
		t.Fatalf("total_participants = %v, want 2 (alice and carol)", n)
	}
	r = s.do(t, http.MethodGet, "/api/v1/sessions/"+ses+"/participants", "")
	hidden := 0
	for _, p := range r.json(t)["participants"].([]any) {
		if p.(map[string]any)["hidden"] == true {
			hidden++
			if p.(map[string]any)["identity"] != "observer" {
				t.Errorf("hidden stay %v", p)
			}
		}
	}
	if hidden != 1 {
		t.Fatalf("session history %s: want the observer's stay hidden", r.body)
	}
}

// A track the grants do not allow is refused, and the client told with an
// error naming it; WHIP without publish is refused before it joins.
func TestPublishRefusedNamesTrack(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"pub","name":"Publish"}`)
	c := s.dialWS(t, "mic", s.grantToken(t, "pub", "mic", auth.RolePublisher, &auth.Grants{PublishSources: []string{"microphone"}}, ""))
	p := newPublisher(t)
	p.sendOn(t, c)
	e := c.waitMsg(msgError, func(m map[string]any) bool { return m["request"] == "publish" })
	tr, _ := e["track"].(map[string]any)
	if e["code"] != codeForbidden || tr == nil || tr["kind"] != "video" || tr["source"] != "camera" || tr["track_id"] != "video" || tr["mid"] == "" ||
		!strings.Contains(e["message"].(string), `"video"`) {
		t.Fatalf("error = %v, want the video track named", e)
	}
	poll.Until(t, "the audio track published", func() bool {
		list := s.participants(t, "pub")
		return len(list) == 1 && len(list[0]["tracks"].([]any)) == 1
	})
	track := s.participants(t, "pub")[0]["tracks"].([]any)[0].(map[string]any)
	if track["kind"] != "audio" || track["source"] != "microphone" {
		t.Fatalf("published %v, want the microphone alone", track)
	}
	if n := c.count(msgError); n != 1 {
		t.Fatalf("%d errors, want one", n)
	}

	whip := s.grantToken(t, "pub", "encoder", auth.RoleModerator, &auth.Grants{Publish: no()}, "")
	r := s.do(t, http.MethodPost, "/whip/pub", "v=0\r\n", header{"Content-Type", contentTypeSDP}, bearer(whip))
	if r.status != http.StatusForbidden || r.errorCode(t) != codeForbidden {
		t.Fatalf("WHIP without publish: %d %s", r.status, r.body)
	}
}

// A data message from a participant without publish_data is refused and
// its sender told; the grant given live lets the next one through.
func TestDataWithoutGrantRefused(t *testing.T) {
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"dg","name":"Data grant"}`)
	quiet := s.dialDataWith(t, "dg", "quiet", s.grantToken(t, "dg", "quiet", auth.RoleSubscriber, &auth.Grants{PublishData: no()}, ""))
	loud := s.dialData(t, "dg", "loud")

	if err := quiet.dcs.reliable.SendText(`{"topic":"greet","data":"from quiet"}`); err != nil {
		t.Fatal(err)
	}
	e := quiet.waitMsg(msgError, func(m map[string]any) bool { return m["request"] == "data" })
	if e["code"] != codeForbidden {
		t.Fatalf("quiet told %v", e)
	}
	if err := quiet.dcs.reliable.SendText(`{"topic":"chat","data":"a chat"}`); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the chat refused too", func() bool { return quiet.count(msgError) == 2 })
	// loud's first message is from loud: quiet's never came.
	if err := loud.dcs.reliable.SendText(`{"topic":"greet","data":"from loud"}`); err != nil {
		t.Fatal(err)
	}
	if got := quiet.waitData(t, 1)[0]; got["data"] != "from loud" {
		t.Fatalf("quiet received %v: receiving needs no grant", got)
	}
	if got := loud.waitData(t, 0); len(got) != 0 {
		t.Fatalf("loud received %v", got)
	}

	r := s.patchParticipant(t, "dg", quiet.ParticipantID(), `{"grants":{"publish_data":true}}`)
	mustStatus(t, r, http.StatusOK)
	if err := quiet.dcs.reliable.SendText(`{"topic":"greet","data":"allowed now"}`); err != nil {
		t.Fatal(err)
	}
	if got := loud.waitData(t, 1)[0]; got["data"] != "allowed now" || got["identity"] != "quiet" {
		t.Fatalf("loud received %v", got)
	}
}

// Grants changed on a live participant: a revoked publish unpublishes at
// once; a subscribe granted starts the media.
func TestGrantsChangedLive(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"live","name":"Live"}`)
	alice := s.dialWS(t, "alice", s.joinToken(t, "live", "alice", auth.RolePublisher))
	p := newPublisher(t)
	p.sendOn(t, alice)
	viewer := s.dialWS(t, "viewer", s.grantToken(t, "live", "viewer", auth.RoleSubscriber, &auth.Grants{Subscribe: no()}, ""))
	joined := viewer.waitMsg(msgJoined, nil)
	poll.Until(t, "alice's two tracks", func() bool {
		for _, p := range s.participants(t, "live") {
			if p["identity"] == "alice" {
				return len(p["tracks"].([]any)) == 2
			}
		}
		return false
	})
	vid := joined["participant"].(map[string]any)["id"].(string)

	// Subscribe granted: the viewer gets alice's media.
	r := s.patchParticipant(t, "live", vid, `{"grants":{"subscribe":true}}`)
	mustStatus(t, r, http.StatusOK)
	if g := r.json(t)["grants"].(map[string]any); g["subscribe"] != true || g["publish"] != false {
		t.Fatalf("PATCH answered grants %v", g)
	}
	waitMedia(t, viewer)
	viewer.waitMsg(msgParticipantUpdated, func(m map[string]any) bool {
		return m["participant"].(map[string]any)["grants"].(map[string]any)["subscribe"] == true
	})

	// Publish revoked: alice's tracks are gone when the PATCH answers.
	aid := alice.ParticipantID()
	r = s.patchParticipant(t, "live", aid, `{"grants":{"publish":false}}`)
	mustStatus(t, r, http.StatusOK)
	if tracks := r.json(t)["tracks"].([]any); len(tracks) != 0 {
		t.Fatalf("alice still publishes %v", tracks)
	}
	for _, p := range s.participants(t, "live") {
		if p["identity"] == "alice" && len(p["tracks"].([]any)) != 0 {
			t.Fatalf("the list still has alice's tracks: %v", p)
		}
	}
	poll.Until(t, "the viewer told of both tracks", func() bool { return viewer.count(msgTrackUnpublished) == 2 })
	alice.waitMsg(msgParticipantUpdated, func(m map[string]any) bool {
		return m["participant"].(map[string]any)["grants"].(map[string]any)["publish"] == false
	})
	poll.Until(t, "no forwarded track left", func() bool { return gaugeValue(t, s, "troupe_rtc_tracks") == 0 })
}

// Metadata: from the token and the API, sent to everyone in the room and
// to the webhooks, and kept with the room and the member record.
func TestMetadataUpdates(t *testing.T) {
	checkLeaks(t)
	var mu sync.Mutex
	var events []webhook.Payload
	recv := newRecordingReceiver(t, func(p webhook.Payload) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	})
	s := newWebhookStack(t, true, webhook.Config{PollInterval: 50 * time.Millisecond})
	s.start(t)
	s.createRoom(t, `{"id":"md","name":"Meta","metadata":"{\"topic\":\"start\"}","webhook":{"endpoint":"`+recv+`","events":["room-updated","participant-updated"]}}`)
	alice := s.dialWS(t, "alice", s.grantToken(t, "md", "alice", auth.RolePublisher, nil, "alice's own"))
	aid := alice.waitMsg(msgJoined, nil)["participant"].(map[string]any)["id"].(string)
	bob := s.dialWS(t, "bob", s.joinToken(t, "md", "bob", auth.RolePublisher))
	joined := bob.waitMsg(msgJoined, nil)
	if md := joined["participants"].([]any)[0].(map[string]any)["metadata"]; md != "alice's own" {
		t.Fatalf("bob sees alice's metadata %q", md)
	}
	if md := joined["room"].(map[string]any)["metadata"]; md != `{"topic":"start"}` {
		t.Fatalf("bob sees the room's metadata %q", md)
	}

	r := s.patchParticipant(t, "md", aid, `{"metadata":"changed"}`)
	mustStatus(t, r, http.StatusOK)
	if r.json(t)["metadata"] != "changed" {
		t.Fatalf("PATCH answered %s", r.body)
	}
	bob.waitMsg(msgParticipantUpdated, func(m map[string]any) bool {
		p := m["participant"].(map[string]any)
		return p["id"] == aid && p["metadata"] == "changed"
	})
	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/md", `{"metadata":"room changed"}`), http.StatusOK)
	bob.waitMsg(msgRoomUpdated, func(m map[string]any) bool { return m["room"].(map[string]any)["metadata"] == "room changed" })
	alice.waitMsg(msgRoomUpdated, func(m map[string]any) bool { return m["room"].(map[string]any)["metadata"] == "room changed" })

	poll.Until(t, "both webhooks", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= 2
	})
	mu.Lock()
	got := slices.Clone(events)
	mu.Unlock()
	var pu struct {
		ParticipantID string `json:"participant_id"`
		Metadata      string `json:"metadata"`
		Grants        *struct {
			Publish bool `json:"publish"`
		} `json:"grants"`
	}
	var ru struct {
		Metadata *string `json:"metadata"`
		ID       string  `json:"id"`
	}
	if got[0].Event != "participant-updated" || json.Unmarshal(got[0].Data, &pu) != nil || pu.ParticipantID != aid || pu.Metadata != "changed" || pu.Grants == nil || !pu.Grants.Publish {
		t.Fatalf("first webhook %s %s", got[0].Event, got[0].Data)
	}
	if got[1].Event != "room-updated" || json.Unmarshal(got[1].Data, &ru) != nil || ru.ID != "md" {
		t.Fatalf("second webhook %s %s", got[1].Event, got[1].Data)
	}
	// Kept: the room's record, and alice's member record.
	if md := s.do(t, http.MethodGet, "/api/v1/rooms/md", "").json(t)["metadata"]; md != "room changed" {
		t.Fatalf("room metadata %q", md)
	}
	r = s.do(t, http.MethodGet, "/api/v1/sessions/"+s.activeSession(t, "md")+"/participants", "")
	for _, p := range r.json(t)["participants"].([]any) {
		if p := p.(map[string]any); p["participant_id"] == aid && p["metadata"] != "changed" {
			t.Fatalf("alice's stay %v", p)
		}
	}
}

// newRecordingReceiver is a webhook receiver that checks each delivery's
// signature (the server's API secret) and hands its payload to got.
func newRecordingReceiver(t *testing.T, got func(webhook.Payload)) string {
	t.Helper()
	srv := httptest.NewServer(troupeWebhook([]byte("the API secret"), func(_ string, body []byte) error {
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			return err
		}
		got(p)
		return nil
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Bad input to PATCH and to the token API is refused with the field named,
// and changes nothing.
func TestParticipantPatchBadInput(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"bad","name":"Bad"}`)
	c := s.dialWS(t, "alice", s.grantToken(t, "bad", "alice", auth.RolePublisher, nil, "kept"))
	pid := c.waitMsg(msgJoined, nil)["participant"].(map[string]any)["id"].(string)
	before := grantsAndMetadata(t, s, "bad")

	big := strings.Repeat("m", 64<<10+1)
	for _, tt := range []struct{ body, field string }{
		{`{"metadata":"` + big + `"}`, "metadata"},
		{`{"grants":{"publish":true,"admin":true}}`, "grants.admin"},
		{`{"grants":{"publish_sources":["camera","hologram"]}}`, "grants.publish_sources"},
		{`{"grants":{"publish_sources":[]}}`, "grants.publish_sources"},
		{`{"grants":{"hidden":true}}`, "grants.hidden"},
		{`{"grants":null}`, "grants"},
		{`{"metadata":null}`, "metadata"},
		{`{"name":"x"}`, "name"},
	} {
		r := s.patchParticipant(t, "bad", pid, tt.body)
		if r.status != http.StatusUnprocessableEntity || r.errorField(t) != tt.field {
			t.Errorf("%.60s: %d %s, want 422 on %s", tt.body, r.status, r.body, tt.field)
		}
	}
	if r := s.patchParticipant(t, "bad", pid, `{"grants":{"publish":"yes"}}`); !r.isTypeError(t, "grants.publish") {
		t.Errorf("a string for grants.publish: %d %s", r.status, r.body)
	}
	mustStatus(t, s.patchParticipant(t, "bad", "PA_nobody", `{"metadata":"x"}`), http.StatusNotFound)
	mustStatus(t, s.patchParticipant(t, "bad", pid, `not json`), http.StatusBadRequest)
	after := grantsAndMetadata(t, s, "bad")
	if before != after {
		t.Fatalf("a refused PATCH changed the participant:\n%v\n%v", before, after)
	}
	if n := c.count(msgParticipantUpdated); n != 0 {
		t.Fatalf("%d participant-updated sent for refused changes", n)
	}
	// The room's metadata has the same limit.
	r := s.do(t, http.MethodPatch, "/api/v1/rooms/bad", `{"metadata":"`+big+`"}`)
	if r.status != http.StatusUnprocessableEntity || r.errorField(t) != "metadata" {
		t.Fatalf("room metadata over the limit: %d %s", r.status, r.body)
	}

	// The token API checks grants the same way; a token that carries a
	// grant this server does not know is no token.
	for _, body := range []string{
		`{"identity":"x","grants":{"superpower":true}}`,
		`{"identity":"x","grants":{"hidden":true,"publish":true}}`,
		`{"identity":"x","metadata":"` + big + `"}`,
	} {
		if r := s.do(t, http.MethodPost, "/api/v1/rooms/bad/tokens", body); r.status != http.StatusUnprocessableEntity {
			t.Errorf("token %.60s: %d %s", body, r.status, r.body)
		}
	}
	r = s.do(t, http.MethodPost, "/api/v1/rooms/bad/tokens", `{"identity":"obs","role":"subscriber","grants":{"hidden":true},"metadata":"m"}`)
	mustStatus(t, r, http.StatusOK)
	v, err := auth.NewVerifier(s.key)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(r.json(t)["token"].(string))
	if err != nil || claims.Grants == nil || claims.Grants.Hidden == nil || !*claims.Grants.Hidden || claims.Metadata != "m" {
		t.Fatalf("minted claims %+v (%v)", claims, err)
	}
	badSource := s.grantToken(t, "bad", "x", auth.RolePublisher, &auth.Grants{PublishSources: []string{"hologram"}}, "")
	if status := s.refusedJoin(t, badSource); status != http.StatusUnauthorized {
		t.Fatalf("a token with an unknown source: %d, want 401", status)
	}
}

// grantsAndMetadata is what a PATCH may change of a room's participants,
// as JSON.
func grantsAndMetadata(t testing.TB, s *stack, room string) string {
	t.Helper()
	var out []any
	for _, p := range s.participants(t, room) {
		out = append(out, []any{p["id"], p["grants"], p["metadata"]})
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A participant made hidden leaves the others' view (participant-left,
// reason hidden) and the count; made visible again, it joins it.
func TestHiddenChangedLive(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"hide","name":"Hide"}`)
	alice := s.dialWS(t, "alice", s.joinToken(t, "hide", "alice", auth.RolePublisher))
	alice.waitMsg(msgJoined, nil)
	bob := s.dialWS(t, "bob", s.joinToken(t, "hide", "bob", auth.RolePublisher))
	bid := bob.waitMsg(msgJoined, nil)["participant"].(map[string]any)["id"].(string)

	r := s.patchParticipant(t, "hide", bid, `{"grants":{"hidden":true}}`)
	if r.status != http.StatusUnprocessableEntity || r.errorField(t) != "grants.hidden" {
		t.Fatalf("hidden while publishing: %d %s", r.status, r.body)
	}
	mustStatus(t, s.patchParticipant(t, "hide", bid, `{"grants":{"hidden":true,"publish":false,"publish_data":false}}`), http.StatusOK)
	alice.waitMsg(msgParticipantLeft, func(m map[string]any) bool { return m["participant_id"] == bid && m["reason"] == "hidden" })
	if n := s.do(t, http.MethodGet, "/api/v1/rooms/hide", "").json(t)["participant_count"]; n != 1.0 {
		t.Fatalf("participant_count = %v, want 1", n)
	}
	if got := s.participants(t, "hide"); len(got) != 1 {
		t.Fatalf("REST list %v, want alice alone", got)
	}
	bob.waitMsg(msgParticipantUpdated, func(m map[string]any) bool {
		return m["participant"].(map[string]any)["grants"].(map[string]any)["hidden"] == true
	})
	bob.send(map[string]any{"type": "hand", "raised": true})
	if e := bob.waitMsg(msgError, func(m map[string]any) bool { return m["request"] == msgHand }); e["code"] != codeForbidden {
		t.Fatalf("a hidden hand: %v", e)
	}

	mustStatus(t, s.patchParticipant(t, "hide", bid, `{"grants":{"hidden":false}}`), http.StatusOK)
	alice.waitMsg(msgParticipantJoined, func(m map[string]any) bool { return m["participant"].(map[string]any)["id"] == bid })
	if n := s.do(t, http.MethodGet, "/api/v1/rooms/hide", "").json(t)["participant_count"]; n != 2.0 {
		t.Fatalf("participant_count = %v, want 2", n)
	}
	// Hidden, bob's change was told to bob alone; visible, to alice too.
	alice.waitMsg(msgParticipantUpdated, nil)
	if n := alice.count(msgParticipantUpdated); n != 1 {
		t.Fatalf("alice got %d participant-updated, want 1", n)
	}
}

// The sources a client names in its offer are what the grants judge: a
// screen share without the grant is refused by name, with it published as
// one; a source of the wrong kind is refused too.
func TestPublishSources(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"src","name":"Sources"}`)
	cam := s.dialWS(t, "cam", s.grantToken(t, "src", "cam", auth.RolePublisher, &auth.Grants{PublishSources: []string{"camera", "microphone"}}, ""))
	newPublisher(t).sendOnAs(t, cam, []string{"screen_share", "camera"})
	refusal := func(kind string) map[string]any {
		e := cam.waitMsg(msgError, func(m map[string]any) bool {
			tr, _ := m["track"].(map[string]any)
			return m["request"] == "publish" && tr["kind"] == kind
		})
		return e["track"].(map[string]any)
	}
	if tr := refusal("video"); tr["source"] != "screen_share" || tr["reason"] != "the participant may not publish screen_share" {
		t.Fatalf("the video refused as %v", tr)
	}
	if tr := refusal("audio"); tr["source"] != "camera" || !strings.Contains(tr["reason"].(string), "camera is a source of video tracks") {
		t.Fatalf("the audio refused as %v", tr)
	}

	share := s.dialWS(t, "share", s.joinToken(t, "src", "share", auth.RolePublisher))
	newPublisher(t).sendOnAs(t, share, []string{"screen_share", "screen_share_audio"})
	var sources []string
	poll.Until(t, "the screen share published", func() bool {
		sources = nil
		for _, p := range s.participants(t, "src") {
			if p["identity"] == "share" {
				for _, tr := range p["tracks"].([]any) {
					sources = append(sources, tr.(map[string]any)["source"].(string))
				}
			}
		}
		return len(sources) == 2
	})
	slices.Sort(sources)
	if !slices.Equal(sources, []string{"screen_share", "screen_share_audio"}) {
		t.Fatalf("published sources %v", sources)
	}
	cam.waitMsg(msgTrackPublished, func(m map[string]any) bool {
		return m["track"].(map[string]any)["source"] == "screen_share"
	})
}
