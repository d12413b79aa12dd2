package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
)

// TestSignalingFanOut: one publisher (VP8 and Opus) and five subscribers
// through WebSocket signaling; then a late joiner, a server mute, a kick,
// and the publisher's leave.
func TestSignalingFanOut(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"fanout","name":"Fan-out","config":{"max_participants":10}}`)

	pubC := s.dialWS(t, "publisher", s.joinToken(t, "fanout", "pub", auth.RolePublisher))
	joined := pubC.waitMsg("joined", nil)
	pubID := joined["participant"].(map[string]any)["id"].(string)
	if ps := joined["participants"].([]any); len(ps) != 0 {
		t.Fatalf("joined an empty room with participants %v", ps)
	}
	media := newPublisher(t)
	media.sendOn(t, pubC)
	for _, kind := range []string{"video", "audio"} {
		pubC.waitMsg("track-published", func(m map[string]any) bool {
			return m["track"].(map[string]any)["kind"] == kind
		})
	}

	const nSubs = 5
	subs := make([]*wsClient, nSubs)
	for i := range subs {
		subs[i] = s.dialWS(t, fmt.Sprintf("subscriber %d", i), s.joinToken(t, "fanout", fmt.Sprintf("sub%d", i), auth.RoleSubscriber))
	}
	for _, c := range subs {
		waitMedia(t, c)
	}

	// The measured window: 500 video packets (two seconds of media), and
	// the audio sent meanwhile.
	v0, a0 := media.video.Sent(), media.audio.Sent()
	poll.Until(t, "500 more video packets sent", func() bool { return media.video.Sent() >= v0+500 })
	v1, a1 := media.video.Sent(), media.audio.Sent()
	for _, c := range subs {
		for _, w := range []struct {
			kind     string
			from, to uint32
		}{{"video", v0, v1}, {"audio", a0, a1}} {
			r := c.receiver(w.kind)
			// The window is the counters in [from, to).
			poll.Until(t, c.name+"'s last "+w.kind, func() bool { return r.Stats().Last+1 >= w.to })
			got := r.Received(w.from, w.to)
			checkIntact(t, c.name+" "+w.kind, r)
			want := int(w.to - w.from)
			if lost := want - got; lost*100 >= want {
				t.Errorf("%s %s: %d of %d packets: loss >= 1%%", c.name, w.kind, got, want)
			}
			t.Logf("%s %s: %d of %d packets", c.name, w.kind, got, want)
		}
	}

	// A late joiner sees the publisher and its tracks, and gets media.
	late := s.dialWS(t, "late joiner", s.joinToken(t, "fanout", "late", auth.RoleSubscriber))
	lj := late.waitMsg("joined", nil)
	var pubInfo map[string]any
	for _, p := range lj["participants"].([]any) {
		if p := p.(map[string]any); p["id"] == pubID {
			pubInfo = p
		}
	}
	if pubInfo == nil || len(pubInfo["tracks"].([]any)) != 2 {
		t.Fatalf("the late joiner's joined lists the publisher as %v", pubInfo)
	}
	waitMedia(t, late)
	if n := len(s.participants(t, "fanout")); n != nSubs+2 {
		t.Errorf("REST lists %d participants, want %d", n, nSubs+2)
	}

	// Mute the publisher's video through REST: it is told, forwarding stops.
	r := s.do(t, http.MethodPost, "/api/v1/rooms/fanout/participants/"+pubID+"/mute", `{"kind":"video","muted":true}`)
	mustStatus(t, r, http.StatusNoContent)
	pubC.waitMsg("mute", func(m map[string]any) bool { return m["muted"] == true && m["by_server"] == true })
	subs[0].waitMsg("mute", func(m map[string]any) bool { return m["participant_id"] == pubID && m["muted"] == true })
	// The server mutes the track before it tells anyone, so no video sent
	// from now on may arrive, however late. Audio sent from now on comes:
	// once it has, the path has carried what was sent after the mute.
	vMuted, aMuted := media.video.Sent(), media.audio.Sent()
	poll.Until(t, "audio sent after the video mute", func() bool { return subs[0].receiver("audio").Stats().Last > aMuted+10 })
	if v := subs[0].receiver("video").Stats().Last; v >= vMuted {
		t.Errorf("muted video still forwarded: packet %d, sent after the mute (packet %d on)", v, vMuted)
	}
	for _, p := range s.participants(t, "fanout") {
		if p["id"] != pubID {
			continue
		}
		for _, tr := range p["tracks"].([]any) {
			tr := tr.(map[string]any)
			if want := tr["kind"] == "video"; tr["muted"] != want {
				t.Errorf("REST shows track %v", tr)
			}
		}
	}

	// Kick the last subscriber: its socket gets left (kicked) and closes.
	kicked := subs[nSubs-1]
	kickedID := kicked.waitMsg("joined", nil)["participant"].(map[string]any)["id"].(string)
	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/rooms/fanout/participants/"+kickedID, ""), http.StatusNoContent)
	left := kicked.waitMsg("left", nil)
	if left["reason"] != "kicked" {
		t.Errorf("kicked socket got %v", left)
	}
	if code, reason := kicked.waitClosed(); code != websocket.StatusNormalClosure || reason != "kicked" {
		t.Errorf("kicked socket closed with %d %q", code, reason)
	}
	subs[0].waitMsg("participant-left", func(m map[string]any) bool {
		return m["participant_id"] == kickedID && m["reason"] == "kicked"
	})
	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/rooms/fanout/participants/"+kickedID, ""), http.StatusNotFound)

	// The publisher leaves: the others see its tracks go, then it.
	pubC.send(map[string]any{"type": "leave"})
	if pubC.waitMsg("left", nil)["reason"] != "left" {
		t.Error("the publisher's leave was not acknowledged with reason left")
	}
	for _, c := range append(subs[:nSubs-1], late) {
		c.waitMsg("participant-left", func(m map[string]any) bool { return m["participant_id"] == pubID && m["reason"] == "left" })
		if n := c.count("track-unpublished"); n != 2 {
			t.Errorf("%s got %d track-unpublished, want 2", c.name, n)
		}
	}

	// Everyone goes: no participant, no track, no down-track left.
	for _, c := range append(subs[:nSubs-1], late) {
		c.close()
	}
	poll.Until(t, "an empty room", func() bool { return len(s.participants(t, "fanout")) == 0 })
	poll.Until(t, "no tracks", func() bool {
		n, err := testutil.GatherAndCount(s.reg, "troupe_rtc_tracks", "troupe_rtc_subscribers")
		if err != nil {
			t.Fatal(err)
		}
		return n == 2 && gaugeValue(t, s, "troupe_rtc_tracks") == 0 && gaugeValue(t, s, "troupe_rtc_subscribers") == 0
	})
}

// waitMedia waits for c to receive video and audio.
func waitMedia(t testing.TB, c *wsClient) {
	t.Helper()
	for _, kind := range []string{"video", "audio"} {
		r := c.receiver(kind)
		poll.Until(t, c.name+"'s "+kind, func() bool { return r.Stats().Packets > 0 })
	}
}

func gaugeValue(t testing.TB, s *stack, name string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// Join rules are HTTP errors before the upgrade when the token is in the
// URL, and an error message plus a 4xxx close code when it is in a join
// message.
func TestSignalingJoinRules(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"full","name":"Full","config":{"max_participants":1}}`)
	s.createRoom(t, `{"id":"locked","name":"Locked","config":{"locked":true}}`)
	s.createRoom(t, `{"id":"ended","name":"Ended"}`)
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/ended/end", ""), http.StatusOK)
	s.createRoom(t, `{"id":"later","name":"Later","config":{"join_from":"2999-01-01T00:00:00Z"}}`)
	first := s.dialWS(t, "first", s.joinToken(t, "full", "first", auth.RolePublisher))
	first.waitMsg("joined", nil)

	admin := s.admin
	cases := []struct {
		name, token string
		status      int
		code        string
	}{
		{"full", s.joinToken(t, "full", "second", auth.RolePublisher), http.StatusConflict, "room_full"},
		{"locked", s.joinToken(t, "locked", "x", auth.RolePublisher), http.StatusConflict, "room_locked"},
		{"ended", s.joinToken(t, "ended", "x", auth.RolePublisher), http.StatusConflict, "room_ended"},
		{"join window", s.joinToken(t, "later", "x", auth.RolePublisher), http.StatusConflict, "outside_join_window"},
		{"no room", s.joinToken(t, "nowhere", "x", auth.RolePublisher), http.StatusNotFound, "room_not_found"},
		{"admin token", admin, http.StatusForbidden, "forbidden"},
		{"garbage token", "not.a.jwt", http.StatusUnauthorized, "unauthorized"},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/url", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, s.wsURL("/rtc?token="+tc.token), nil)
			if err == nil {
				ws.CloseNow()
				t.Fatal("upgraded")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("response %v, want %d", resp, tc.status)
			}
		})
		t.Run(tc.name+"/message", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
			defer cancel()
			ws := s.rawSocket(ctx, t, "")
			sendJSON(ctx, t, ws, map[string]any{"type": "join", "token": tc.token})
			m := readUntil(ctx, t, ws, "error")
			if m["code"] != tc.code || m["request"] != "join" {
				t.Errorf("error %v, want code %s", m, tc.code)
			}
			if code, reason := readClose(ctx, ws); int(code) != 4000+tc.status || reason != tc.code {
				t.Errorf("closed with %d %q, want %d %q", code, reason, 4000+tc.status, tc.code)
			}
		})
	}
	// The HTTP statuses carry the JSON error body.
	r := s.do(t, http.MethodGet, "/rtc?token="+cases[0].token, "",
		header{"Connection", "Upgrade"}, header{"Upgrade", "websocket"},
		header{"Sec-WebSocket-Version", "13"}, header{"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="})
	if r.status != http.StatusConflict || r.errorCode(t) != "room_full" {
		t.Errorf("full room: %d %s", r.status, r.body)
	}
	r = s.do(t, http.MethodGet, "/rtc", "")
	if r.status != http.StatusUpgradeRequired || r.errorCode(t) != "upgrade_required" {
		t.Errorf("plain GET: %d %s", r.status, r.body)
	}
	// The one participant is still alone.
	if n := len(s.participants(t, "full")); n != 1 {
		t.Errorf("%d participants after refused joins", n)
	}
}

// Bad frames get an error message and change nothing; the socket stays
// usable; a run of them closes it.
func TestSignalingBadFrames(t *testing.T) {
	checkLeaks(t)
	// The cases come faster than the default message rate allows.
	s := newMediaStack(t, func(c *Config) { c.SignalingBurst = 1000 })
	s.createRoom(t, `{"id":"bad","name":"Bad"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ws := s.rawSocket(ctx, t, s.joinToken(t, "bad", "c", auth.RolePublisher))
	readUntil(ctx, t, ws, "joined")

	cases := []struct {
		name  string
		typ   websocket.MessageType
		frame string
		code  string
		field string
	}{
		{"not JSON", websocket.MessageText, `{"type":`, "malformed_json", ""},
		{"array", websocket.MessageText, `[1,2]`, "malformed_json", ""},
		{"no type", websocket.MessageText, `{}`, "validation_failed", "type"},
		{"type not a string", websocket.MessageText, `{"type":5}`, "invalid_type", "type"},
		{"unknown type", websocket.MessageText, `{"type":"dance"}`, "unknown_type", ""},
		{"unknown field", websocket.MessageText, `{"type":"ping","x":1}`, "validation_failed", "x"},
		{"offer without sdp", websocket.MessageText, `{"type":"offer"}`, "validation_failed", "sdp"},
		{"sdp not a string", websocket.MessageText, `{"type":"offer","sdp":5}`, "invalid_type", "sdp"},
		{"garbage sdp", websocket.MessageText, `{"type":"offer","sdp":"hello"}`, "invalid_sdp", ""},
		{"answer without offer", websocket.MessageText, `{"type":"answer","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"}`, "signaling_state", ""},
		{"mute with both", websocket.MessageText, `{"type":"mute","kind":"audio","track_id":"TR_x","muted":true}`, "validation_failed", "track_id"},
		{"mute bad kind", websocket.MessageText, `{"type":"mute","kind":"screen","muted":true}`, "validation_failed", "kind"},
		{"mute without muted", websocket.MessageText, `{"type":"mute","kind":"audio"}`, "validation_failed", "muted"},
		{"mute unknown track", websocket.MessageText, `{"type":"mute","track_id":"TR_nope","muted":true}`, "signaling_state", ""},
		{"subscribe without track", websocket.MessageText, `{"type":"subscribe"}`, "validation_failed", "track_id"},
		{"subscribe unknown track", websocket.MessageText, `{"type":"subscribe","track_id":"TR_nope"}`, "signaling_state", ""},
		{"unsubscribe unknown track", websocket.MessageText, `{"type":"unsubscribe","track_id":"TR_nope"}`, "signaling_state", ""},
		{"unsubscribe extra field", websocket.MessageText, `{"type":"unsubscribe","track_id":"TR_nope","kind":"video"}`, "validation_failed", "kind"},
		{"paused not a boolean", websocket.MessageText, `{"type":"track-settings","track_id":"TR_nope","paused":1}`, "invalid_type", "paused"},
		{"candidate line not a string", websocket.MessageText, `{"type":"candidate","candidate":{"candidate":1}}`, "invalid_type", "candidate.candidate"},
		{"candidate missing", websocket.MessageText, `{"type":"candidate"}`, "validation_failed", "candidate"},
		{"join again", websocket.MessageText, `{"type":"join","token":"x"}`, "already_joined", ""},
		{"binary", websocket.MessageBinary, `{"type":"ping"}`, "binary_not_supported", ""},
		{"too large", websocket.MessageText, `{"type":"offer","sdp":"` + strings.Repeat("a", 70<<10) + `"}`, "message_too_large", ""},
	}
	for _, tc := range cases {
		if err := ws.Write(ctx, tc.typ, []byte(tc.frame)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		m := readUntil(ctx, t, ws, "error")
		if m["code"] != tc.code || (tc.field != "" && m["field"] != tc.field) || m["message"] == "" {
			t.Errorf("%s: got %v, want code %s field %q", tc.name, m, tc.code, tc.field)
		}
		// Still usable.
		sendJSON(ctx, t, ws, map[string]any{"type": "ping"})
		readUntil(ctx, t, ws, "pong")
	}
	ps := s.participants(t, "bad")
	if len(ps) != 1 || len(ps[0]["tracks"].([]any)) != 0 {
		t.Fatalf("participants after bad frames: %v", ps)
	}
	// A run of garbage closes the socket, and the participant leaves.
	for range maxBadMessages {
		// The server may close before the last: its close shows below.
		_ = ws.Write(ctx, websocket.MessageText, []byte("garbage"))
	}
	if code, reason := readClose(ctx, ws); code != websocket.StatusPolicyViolation {
		t.Errorf("closed with %d %q, want 1008", code, reason)
	}
	poll.Until(t, "an empty room", func() bool { return len(s.participants(t, "bad")) == 0 })
}

// A client flooding its socket with hand toggles has its messages beyond
// the rate refused, then is closed with 1008; the others stay, and their
// sockets work.
func TestSignalingFlood(t *testing.T) {
	checkLeaks(t)
	// The clock stands still: the bucket does not refill during the test.
	clk := clock.NewManual(time.Now())
	s := newMediaStack(t, func(c *Config) { c.Clock = clk })
	s.createRoom(t, `{"id":"flood","name":"Flood"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	other := s.rawSocket(ctx, t, s.joinToken(t, "flood", "other", auth.RoleSubscriber))
	readUntil(ctx, t, other, "joined")
	flood := s.rawSocket(ctx, t, s.joinToken(t, "flood", "flooder", auth.RoleSubscriber))
	readUntil(ctx, t, flood, "joined")

	// Within the burst, every message is handled.
	for i := range defaultSignalingBurst {
		sendJSON(ctx, t, flood, map[string]any{"type": "hand", "raised": i%2 == 0})
	}
	var refused map[string]any
	go func() {
		// Beyond it, until the server closes; the writes after the close
		// fail, and the reader below sees why.
		for i := 0; ; i++ {
			b, _ := json.Marshal(map[string]any{"type": "hand", "raised": i%2 == 0})
			if flood.Write(ctx, websocket.MessageText, b) != nil {
				return
			}
		}
	}()
	var code websocket.StatusCode
	var reason string
	for {
		_, b, err := flood.Read(ctx)
		if err != nil {
			code, reason = closeStatus(err)
			break
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("server sent non-JSON %q", b)
		}
		if m["type"] == "error" && refused == nil {
			refused = m
		}
	}
	if refused == nil || refused["code"] != codeRateLimited || refused["retry_after_ms"] == nil {
		t.Errorf("first error to the flooder: %v, want rate_limited with retry_after_ms", refused)
	}
	if code != websocket.StatusPolicyViolation || reason != "message rate exceeded" {
		t.Errorf("flooder closed with %d %q, want 1008 message rate exceeded", code, reason)
	}
	poll.Until(t, "the flooder to leave", func() bool { return len(s.participants(t, "flood")) == 1 })
	if ps := s.participants(t, "flood"); ps[0]["identity"] != "other" {
		t.Errorf("participants after the flood: %v", ps)
	}
	sendJSON(ctx, t, other, map[string]any{"type": "ping"})
	readUntil(ctx, t, other, "pong")
}

// Sockets without a token that wait for their join message are capped per
// client address (429) and in all (503), before the upgrade; a join
// message gives the place back.
func TestSignalingPendingJoinsCapped(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	refused := func(t *testing.T, s *stack, status int, code string) {
		t.Helper()
		ws, resp, err := websocket.Dial(ctx, s.wsURL("/rtc"), nil)
		if err == nil {
			_ = ws.CloseNow()
			t.Fatalf("a socket over the cap was accepted")
		}
		if resp == nil || resp.StatusCode != status || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("a socket over the cap: %v %v, want %d with Retry-After", resp, err, status)
		}
		var body struct{ Error struct{ Code string } }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Code != code {
			t.Errorf("refusal body: %+v %v, want code %s", body, err, code)
		}
	}
	t.Run("per address", func(t *testing.T) {
		s := newMediaStack(t, func(c *Config) { c.SignalingPendingPerAddr = 2 })
		s.createRoom(t, `{"id":"pend","name":"Pending"}`)
		first := s.rawSocket(ctx, t, "")
		s.rawSocket(ctx, t, "")
		refused(t, s, http.StatusTooManyRequests, codeRateLimited)
		// A socket with a token is not waiting for a join message.
		withToken := s.rawSocket(ctx, t, s.joinToken(t, "pend", "t", auth.RoleSubscriber))
		readUntil(ctx, t, withToken, "joined")
		sendJSON(ctx, t, first, map[string]any{"type": "join", "token": s.joinToken(t, "pend", "j", auth.RoleSubscriber)})
		readUntil(ctx, t, first, "joined")
		s.rawSocket(ctx, t, "")
		refused(t, s, http.StatusTooManyRequests, codeRateLimited)
	})
	t.Run("relayed by another node", func(t *testing.T) {
		// The relaying node counted its client already: the owner does
		// not count the relays, which all come from that node's address.
		s := newStack(t, func(c *Config) {
			c.Owners, c.NodeID = nodeURLs{}, "node-a"
			c.SignalingPendingPerAddr = 1
		})
		s.rawSocket(ctx, t, "")
		for range 3 {
			h := http.Header{}
			SignForward(h, s.api.cfg.SigningKey, "node-b", http.MethodGet, "/rtc", s.api.cfg.Clock.Now())
			ws, resp, err := websocket.Dial(ctx, s.wsURL("/rtc"), &websocket.DialOptions{HTTPHeader: h})
			if err != nil {
				t.Fatalf("a relayed socket refused: %v %v", resp, err)
			}
			t.Cleanup(func() { _ = ws.CloseNow() })
		}
		// An unsigned claim to be a relay is an outside socket, counted.
		ws, _, err := websocket.Dial(ctx, s.wsURL("/rtc"), &websocket.DialOptions{HTTPHeader: http.Header{ForwardedByHeader: {"node-b"}}})
		if err == nil {
			_ = ws.CloseNow()
			t.Fatal("an unsigned relay over the cap was accepted")
		}
	})
	t.Run("in all", func(t *testing.T) {
		s := newStack(t, func(c *Config) { c.SignalingPending = 1 })
		waiting := s.rawSocket(ctx, t, "")
		refused(t, s, http.StatusServiceUnavailable, codeSignalingBusy)
		// A socket that ends gives its place back.
		_ = waiting.Close(websocket.StatusNormalClosure, "")
		poll.Until(t, "the place given back", func() bool {
			ws, _, err := websocket.Dial(ctx, s.wsURL("/rtc"), nil)
			if err != nil {
				return false
			}
			_ = ws.CloseNow()
			return true
		})
	})
}

// rawSocket opens a signaling socket with token in the URL (none: a join
// message is due), for frames no real client sends.
func (s *stack) rawSocket(ctx context.Context, t testing.TB, token string) *websocket.Conn {
	t.Helper()
	path := "/rtc"
	if token != "" {
		path += "?token=" + token
	}
	ws, _, err := websocket.Dial(ctx, s.wsURL(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

func sendJSON(ctx context.Context, t testing.TB, ws *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// readUntil reads the server's messages up to the first of type typ.
func readUntil(ctx context.Context, t testing.TB, ws *websocket.Conn, typ string) map[string]any {
	t.Helper()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for a %s message: %v", typ, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("server sent non-JSON %q", b)
		}
		if m["type"] == typ {
			return m
		}
	}
}

// readClose reads until the server ends the socket, and returns its close
// status.
func readClose(ctx context.Context, ws *websocket.Conn) (websocket.StatusCode, string) {
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return closeStatus(err)
		}
	}
}

// A client that stops answering pings is dropped, and leaves the room;
// one that reads keeps its place.
func TestSignalingPingTimeout(t *testing.T) {
	checkLeaks(t)
	// Long enough that a loaded machine's reader answers a ping within it.
	const ping = time.Second
	s := newMediaStack(t, func(c *Config) { c.SignalingPingInterval = ping })
	s.createRoom(t, `{"id":"ping","name":"Ping"}`)
	// The live client joins first, so its first ping is due before the
	// frozen one's: it has answered by the time the frozen one is dropped.
	c := s.dialWS(t, "alive", s.joinToken(t, "ping", "q", auth.RolePublisher))
	c.waitMsg("joined", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, s.wsURL("/rtc?token="+s.joinToken(t, "ping", "p", auth.RolePublisher)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	// Pongs are sent by the client's reader: read the joined message, then
	// stop reading, like a frozen client.
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the frozen client to be removed", func() bool { return len(s.participants(t, "ping")) < 2 })
	if ps := s.participants(t, "ping"); len(ps) != 1 || ps[0]["identity"] != "q" {
		t.Errorf("a live client was dropped: participants %v", ps)
	}
}

// Server.Close ends every socket with 1001 and empties the rooms.
func TestSignalingServerClose(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"bye","name":"Bye"}`)
	a := s.dialWS(t, "a", s.joinToken(t, "bye", "a", auth.RolePublisher))
	b := s.dialWS(t, "b", s.joinToken(t, "bye", "b", auth.RoleSubscriber))
	a.waitMsg("joined", nil)
	b.waitMsg("joined", nil)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	if err := s.api.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wsClient{a, b} {
		if code, _ := c.waitClosed(); code != websocket.StatusGoingAway {
			t.Errorf("%s closed with %d, want 1001", c.name, code)
		}
	}
	poll.Until(t, "an empty room", func() bool { return len(s.participants(t, "bye")) == 0 })
	_, resp, err := websocket.Dial(ctx, s.wsURL("/rtc?token="+s.joinToken(t, "bye", "c", auth.RolePublisher)), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a socket after Close: %v %v", resp, err)
	}
}
