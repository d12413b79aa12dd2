package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// whipPost sends an offer to path and returns the response.
func (s *stack) whipPost(t testing.TB, path, token, contentType, body string) response {
	t.Helper()
	hs := []header{{"Authorization", ""}, {"Content-Type", contentType}}
	if token != "" {
		hs[0] = bearer(token)
	}
	return s.do(t, http.MethodPost, path, body, hs...)
}

// gatheredOffer returns pc's offer with every candidate in it, as WHIP
// clients send it.
func gatheredOffer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound against a hang
	defer cancel()
	offer, err := rtctest.GatheredOffer(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	return offer
}

// publisherPeer returns a new pion peer that sends a new publisher's
// tracks (VP8 video, Opus audio), the publisher, and the peer's gathered
// offer. When the test ends, the media stops and the peer closes.
func publisherPeer(t testing.TB) (*webrtc.PeerConnection, *publisher, string) {
	t.Helper()
	pc, media := publishingPeer(t)
	return pc, media, gatheredOffer(t, pc)
}

// publishingPeer is publisherPeer before any offer: the peer with its
// tracks attached and the publisher feeding them.
func publishingPeer(t testing.TB) (*webrtc.PeerConnection, *publisher) {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	media := newPublisher(t)
	t.Cleanup(func() {
		media.halt()
		_ = pc.Close()
		media.wait()
	})
	media.attach(t, pc)
	return pc, media
}

// transceiverPeer returns a new peer of api, closed when the test ends,
// with a transceiver in direction dir, and no track, for each of kinds.
func transceiverPeer(t testing.TB, api *webrtc.API, dir webrtc.RTPTransceiverDirection, kinds ...webrtc.RTPCodecType) *webrtc.PeerConnection {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	for _, kind := range kinds {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: dir}); err != nil {
			t.Fatal(err)
		}
	}
	return pc
}

// whipPublish publishes a new publisher's tracks from a new pion peer
// through WHIP and returns the session's Location. When the test ends, the
// media stops and the peer closes.
func (s *stack) whipPublish(t testing.TB, room, token string) string {
	t.Helper()
	pc, media, offer := publisherPeer(t)
	r := s.whipPost(t, "/whip/"+room, token, "application/sdp", offer)
	mustStatus(t, r, http.StatusCreated)
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, "/whip/"+room+"/PA_") || r.header.Get("Content-Type") != "application/sdp" || r.header.Get("ETag") == "" {
		t.Fatalf("WHIP response headers %v", r.header)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
		t.Fatal(err)
	}
	media.run(t)
	poll.Until(t, "the published tracks", func() bool {
		for _, p := range s.participants(t, room) {
			if strings.HasSuffix(loc, "/"+p["id"].(string)) {
				return len(p["tracks"].([]any)) == 2
			}
		}
		return false
	})
	return loc
}

// TestWHIPPublish: a pion WHIP client publishes, a WebSocket subscriber
// receives its packets, and DELETE (with the session's own token) leaves.
func TestWHIPPublish(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"whip","name":"WHIP"}`)
	pubToken := s.joinToken(t, "whip", "encoder", auth.RolePublisher)
	loc := s.whipPublish(t, "whip", pubToken)

	viewer := s.dialWS(t, "viewer", s.joinToken(t, "whip", "viewer", auth.RoleSubscriber))
	for _, kind := range []string{"video", "audio"} {
		r := viewer.receiver(kind)
		poll.Until(t, "50 "+kind+" packets at the viewer", func() bool { return r.Stats().Packets >= 50 })
		checkIntact(t, "viewer "+kind, r)
	}

	r := s.do(t, http.MethodPatch, loc, `{"width":640}`, bearer(pubToken), header{"Content-Type", "application/json"})
	if r.status != http.StatusUnsupportedMediaType || r.header.Get("Accept-Patch") != "application/trickle-ice-sdpfrag" {
		t.Errorf("JSON PATCH of a WHIP session: %d, Accept-Patch %q", r.status, r.header.Get("Accept-Patch"))
	}
	other := s.joinToken(t, "whip", "someone-else", auth.RolePublisher)
	mustStatus(t, s.do(t, http.MethodDelete, loc, "", bearer(other)), http.StatusForbidden)
	mustStatus(t, s.do(t, http.MethodDelete, loc, "", header{"Authorization", ""}), http.StatusUnauthorized)
	mustStatus(t, s.do(t, http.MethodDelete, strings.Replace(loc, "/whip/", "/whep/", 1), "", bearer(pubToken)), http.StatusNotFound)
	mustStatus(t, s.do(t, http.MethodDelete, loc, "", bearer(pubToken)), http.StatusOK)
	mustStatus(t, s.do(t, http.MethodDelete, loc, "", bearer(pubToken)), http.StatusNotFound)
	viewer.waitMsg("participant-left", func(m map[string]any) bool { return m["reason"] == "left" })
	if n := viewer.count("track-unpublished"); n != 2 {
		t.Errorf("the viewer got %d track-unpublished, want 2", n)
	}
	viewer.close()
	poll.Until(t, "an empty room", func() bool { return len(s.participants(t, "whip")) == 0 })
}

// whepViewer is a pion WHEP client and what it receives.
type whepViewer struct {
	pc        *webrtc.PeerConnection
	loc       string
	receivers []*rtctest.Receiver
}

// whepView subscribes to room through WHEP with token and waits until it
// receives 50 packets of audio and of video.
func (s *stack) whepView(t testing.TB, room, token string) *whepViewer {
	t.Helper()
	pc := transceiverPeer(t, clientAPI(t), webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	got := make(chan *rtctest.Receiver, 2)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		rc := rtctest.NewReceiver(tr)
		got <- rc
		rc.Run()
	})
	r := s.whipPost(t, "/whep/"+room, token, "application/sdp", gatheredOffer(t, pc))
	mustStatus(t, r, http.StatusCreated)
	v := &whepViewer{pc: pc, loc: r.header.Get("Location")}
	if !strings.HasPrefix(v.loc, "/whep/"+room+"/PA_") || r.header.Get("Content-Type") != "application/sdp" {
		t.Fatalf("WHEP response headers %v", r.header)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
		t.Fatal(err)
	}
	for len(v.receivers) < 2 {
		select {
		case rc := <-got:
			v.receivers = append(v.receivers, rc)
		case <-time.After(poll.Timeout):
			t.Fatalf("the WHEP client got %d tracks, want 2", len(v.receivers))
		}
	}
	for _, rc := range v.receivers {
		poll.Until(t, "50 packets at the WHEP client", func() bool { return rc.Stats().Packets >= 50 })
		checkIntact(t, "WHEP receiver", rc)
	}
	return v
}

// TestWHEPSubscribe: a pion WHEP client receives a WHIP publisher's
// packets, and DELETE leaves.
func TestWHEPSubscribe(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"whep","name":"WHEP"}`)
	s.whipPublish(t, "whep", s.joinToken(t, "whep", "encoder", auth.RolePublisher))

	viewerToken := s.joinToken(t, "whep", "viewer", auth.RoleSubscriber)
	v := s.whepView(t, "whep", viewerToken)
	mustStatus(t, s.do(t, http.MethodDelete, v.loc, "", bearer(viewerToken)), http.StatusOK)
	poll.Until(t, "the viewer to leave", func() bool { return len(s.participants(t, "whep")) == 1 })
}

// TestWHEPViewersShareToken: viewers of one page share its playback token.
// Each WHEP join is a participant of its own that keeps receiving while
// the others join; the list, the session's history and the webhook
// events count every one of them. A WHIP publisher that comes back with
// its token replaces its old self.
func TestWHEPViewersShareToken(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"show","name":"Show","webhook":{"endpoint":"https://hooks.example.com/troupe","events":["participant-*"]}}`)
	pubToken := s.joinToken(t, "show", "encoder", auth.RolePublisher)
	pubLoc := s.whipPublish(t, "show", pubToken)

	token := s.joinToken(t, "show", "viewer", auth.RoleSubscriber)
	var viewers []*whepViewer
	for range 3 {
		viewers = append(viewers, s.whepView(t, "show", token))
	}
	// The first viewers still receive after the last joined.
	for i, v := range viewers {
		for _, rc := range v.receivers {
			n := rc.Stats().Packets
			poll.Until(t, fmt.Sprintf("viewer %d to keep receiving", i), func() bool { return rc.Stats().Packets >= n+50 })
		}
	}
	ids := map[string]bool{}
	for _, p := range s.participants(t, "show") {
		if p["identity"] == "viewer" {
			ids[p["id"].(string)] = true
		}
	}
	for _, v := range viewers {
		if !ids[v.loc[strings.LastIndex(v.loc, "/")+1:]] {
			t.Errorf("viewer %s is not listed: %v", v.loc, ids)
		}
	}
	if len(ids) != 3 {
		t.Fatalf("%d viewers listed, want 3", len(ids))
	}

	// DELETE ends one viewer only.
	mustStatus(t, s.do(t, http.MethodDelete, viewers[0].loc, "", bearer(token)), http.StatusOK)
	poll.Until(t, "one viewer to leave", func() bool { return len(s.participants(t, "show")) == 3 })

	// The publisher restarts with its token: it replaces its old self.
	s.whipPublish(t, "show", pubToken)
	poll.Until(t, "the old publisher to be replaced", func() bool { return len(s.participants(t, "show")) == 3 })
	mustStatus(t, s.do(t, http.MethodDelete, pubLoc, "", bearer(pubToken)), http.StatusNotFound)

	room := s.do(t, http.MethodGet, "/api/v1/rooms/show", "").json(t)
	r := s.do(t, http.MethodGet, "/api/v1/sessions/"+room["active_session_id"].(string)+"/participants", "")
	mustStatus(t, r, http.StatusOK)
	var page struct {
		Participants []map[string]any `json:"participants"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	history := page.Participants
	reasons := map[string][]string{}
	seen := map[string]bool{}
	for _, m := range history {
		id := m["participant_id"].(string)
		if seen[id] {
			t.Errorf("participant %s twice in the history", id)
		}
		seen[id] = true
		reason, _ := m["leave_reason"].(string)
		reasons[m["identity"].(string)] = append(reasons[m["identity"].(string)], reason)
	}
	for _, r := range reasons {
		slices.Sort(r)
	}
	if len(history) != 5 || !slices.Equal(reasons["viewer"], []string{"", "", "left"}) || !slices.Equal(reasons["encoder"], []string{"", "replaced"}) {
		t.Errorf("history %s", r.body)
	}
	events := map[string]int{}
	list, _ := s.deliveries(t, "?status=pending&limit=100")
	for _, d := range list {
		events[d["event"].(string)]++
	}
	if events["participant-joined"] != 5 || events["participant-left"] != 2 {
		t.Errorf("webhook events %v, want 5 participant-joined and 2 participant-left", events)
	}
	for _, v := range viewers {
		_ = v.pc.Close()
	}
}

// A kicked WHIP session is forgotten: its DELETE is a 404.
func TestWHIPKickedSession(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"kick","name":"Kick"}`)
	_, _, offer := publisherPeer(t)
	tok := s.joinToken(t, "kick", "enc", auth.RolePublisher)
	r := s.whipPost(t, "/whip/kick", tok, "application/sdp", offer)
	mustStatus(t, r, http.StatusCreated)
	loc := r.header.Get("Location")
	pid := loc[strings.LastIndex(loc, "/")+1:]
	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/rooms/kick/participants/"+pid, ""), http.StatusNoContent)
	poll.Until(t, "the session to be forgotten", func() bool {
		return s.do(t, http.MethodDelete, loc, "", bearer(tok)).status == http.StatusNotFound
	})
}

// The WHIP and WHEP errors, none of which lets anyone into the room.
func TestWHIPErrors(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"errs","name":"Errors"}`)
	s.createRoom(t, `{"id":"other","name":"Other"}`)
	s.createRoom(t, `{"id":"full","name":"Full","config":{"max_participants":1}}`)
	pub := s.joinToken(t, "errs", "p", auth.RolePublisher)
	sub := s.joinToken(t, "errs", "s", auth.RoleSubscriber)

	sendOffer, recvOffer := publisherOffers(t)

	// Fill the full room.
	_, _, fullOffer := publisherPeer(t)
	mustStatus(t, s.whipPost(t, "/whip/full", s.joinToken(t, "full", "a", auth.RolePublisher), "application/sdp", fullOffer), http.StatusCreated)

	// Layers told apart by SSRC alone, by SSRCs the section does not
	// declare (TestWHIPSimulcastBySSRC publishes well-formed ones).
	simBySSRC := strings.Replace(sendOffer, "a=mid:", "a=ssrc-group:SIM 1 2 3\r\na=mid:", 1)
	cases := []struct {
		name, path, token, ctype, body string
		status                         int
		code                           string
	}{
		{"no token", "/whip/errs", "", "application/sdp", sendOffer, http.StatusUnauthorized, "unauthorized"},
		{"bad token", "/whip/errs", "x.y.z", "application/sdp", sendOffer, http.StatusUnauthorized, "unauthorized"},
		{"admin token", "/whip/errs", s.admin, "application/sdp", sendOffer, http.StatusForbidden, "forbidden"},
		{"other room", "/whip/other", pub, "application/sdp", sendOffer, http.StatusForbidden, "forbidden"},
		{"subscriber publishing", "/whip/errs", sub, "application/sdp", sendOffer, http.StatusForbidden, "forbidden"},
		{"json", "/whip/errs", pub, "application/json", sendOffer, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"no content type", "/whip/errs", pub, "", sendOffer, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"empty", "/whip/errs", pub, "application/sdp", "", http.StatusBadRequest, "empty_body"},
		{"not sdp", "/whip/errs", pub, "application/sdp", "hello", http.StatusBadRequest, "invalid_sdp"},
		{"no media", "/whip/errs", pub, "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", http.StatusBadRequest, "invalid_sdp"},
		{"whip recvonly", "/whip/errs", pub, "application/sdp", recvOffer, http.StatusBadRequest, "invalid_sdp"},
		{"whep sendonly", "/whep/errs", sub, "application/sdp", sendOffer, http.StatusBadRequest, "invalid_sdp"},
		{"simulcast by undeclared SSRCs", "/whip/errs", pub, "application/sdp", simBySSRC, http.StatusBadRequest, "invalid_sdp"},
		{"too large", "/whip/errs", pub, "application/sdp", strings.Repeat("a", actors.MaxSDPSize+1), http.StatusRequestEntityTooLarge, "body_too_large"},
		{"full", "/whip/full", s.joinToken(t, "full", "b", auth.RolePublisher), "application/sdp", sendOffer, http.StatusConflict, "room_full"},
		{"no room", "/whip/nowhere", s.joinToken(t, "nowhere", "b", auth.RolePublisher), "application/sdp", sendOffer, http.StatusNotFound, "room_not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.whipPost(t, tc.path, tc.token, tc.ctype, tc.body)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			if tc.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if r := s.whipPost(t, "/whip/errs", pub, "application/sdp", "hello"); !strings.Contains(r.json(t)["error"].(map[string]any)["message"].(string), "SDP") {
		t.Errorf("a bad SDP's message does not say why: %s", r.body)
	}
	if r := s.whipPost(t, "/whip/errs", pub, "application/sdp", simBySSRC); !strings.Contains(r.json(t)["error"].(map[string]any)["message"].(string), "ssrc-group:SIM 1 2 3 names SSRC 1, which the section does not declare") {
		t.Errorf("bad simulcast by SSRC is refused without saying why: %s", r.body)
	}
	if n := len(s.participants(t, "errs")); n != 0 {
		t.Errorf("%d participants after refused offers", n)
	}
}

// TestWHIPSimulcastBySSRC: a WHIP encoder offers a VP8 camera in three
// layers told apart by SSRC alone (a=ssrc-group:SIM, no rids, no mid or
// rid header extension), and names no layer in its packets. The answer
// names no layer either; the camera is one track of three layers, q, h
// and f in the group's order, each as received, in REST and signaling,
// and a viewer receives one video track of it.
func TestWHIPSimulcastBySSRC(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"ssrcsim","name":"Simulcast by SSRC"}`)
	defer s.publishSimulcastBy(t, "ssrcsim", true)()
	s.checkOneSimulcastTrack(t, "ssrcsim")
}

// TestWHIPRefusedOfferLeavesNoTrace: offers that parse but that a peer
// connection cannot take, or that can carry no media, are refused before
// the join: no participant, no session, no history, no webhook event.
func TestWHIPRefusedOfferLeavesNoTrace(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"strict","name":"Strict","webhook":{"endpoint":"https://hooks.example.com/troupe","events":["*"]}}`)
	pub := s.joinToken(t, "strict", "p", auth.RolePublisher)
	sub := s.joinToken(t, "strict", "s", auth.RoleSubscriber)

	send, recv := publisherOffers(t)
	without := func(sdp, prefix string) string {
		var keep []string
		for _, l := range strings.SplitAfter(sdp, "\n") {
			if !strings.HasPrefix(l, prefix) {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "")
	}
	// unknownCodecs renames every codec of the offer to one Troupe does
	// not know: pion rejects every section (m=... 0).
	unknownCodecs := func(sdp string) string {
		var out []string
		for _, l := range strings.SplitAfter(sdp, "\n") {
			if strings.HasPrefix(l, "a=rtpmap:") {
				pt, _, _ := strings.Cut(strings.TrimPrefix(l, "a=rtpmap:"), " ")
				l = "a=rtpmap:" + pt + " X-UNKNOWN/90000\r\n"
			}
			out = append(out, l)
		}
		return strings.Join(out, "")
	}
	cases := []struct {
		name, path, token, offer string
		status                   int
		code                     string
	}{
		{"no ice-ufrag", "/whip/strict", pub, without(send, "a=ice-ufrag"), http.StatusBadRequest, "invalid_sdp"},
		{"no ice-pwd", "/whep/strict", sub, without(recv, "a=ice-pwd"), http.StatusBadRequest, "invalid_sdp"},
		{"no fingerprint", "/whip/strict", pub, without(send, "a=fingerprint"), http.StatusBadRequest, "invalid_sdp"},
		{"no mid", "/whip/strict", pub, without(send, "a=mid"), http.StatusBadRequest, "invalid_sdp"},
		{"unknown codecs", "/whip/strict", pub, unknownCodecs(send), http.StatusUnprocessableEntity, "no_acceptable_media"},
		{"unknown codecs, WHEP", "/whep/strict", sub, unknownCodecs(recv), http.StatusUnprocessableEntity, "no_acceptable_media"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.whipPost(t, tc.path, tc.token, "application/sdp", tc.offer)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
			// A 422 names the field to blame: the offer.
			if tc.status == http.StatusUnprocessableEntity && r.errorField(t) != "sdp" {
				t.Fatalf("%s: details.field %q, want sdp", r.body, r.errorField(t))
			}
		})
	}
	if n := len(s.participants(t, "strict")); n != 0 {
		t.Errorf("%d participants after refused offers", n)
	}
	if room := s.do(t, http.MethodGet, "/api/v1/rooms/strict", "").json(t); room["active_session_id"] != nil {
		t.Errorf("refused offers started session %v", room["active_session_id"])
	}
	if r := s.do(t, http.MethodGet, "/api/v1/rooms/strict/sessions", "").json(t); r["total"].(float64) != 0 {
		t.Errorf("sessions after refused offers: %v", r)
	}
	list, _ := s.deliveries(t, "?status=pending&limit=100")
	for _, d := range list {
		if d["event"] != "room-created" {
			t.Errorf("webhook event %v after refused offers", d["event"])
		}
	}
}

// publisherOffers is the gathered offer of a pion publisher of audio and
// video, and the same offer asking to receive instead. Its connection and
// media stop when the test ends.
func publisherOffers(t *testing.T) (send, recv string) {
	t.Helper()
	_, _, send = publisherPeer(t)
	return send, strings.ReplaceAll(send, "a=sendonly", "a=recvonly")
}

// TestWHIPSessionRemovedBeforeRegister: the room may remove a WHIP
// participant (replaced, kicked) before its POST has registered the
// session; the room goes on, and the session is never reachable.
func TestWHIPSessionRemovedBeforeRegister(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"early","name":"Early"}`)
	claims, err := s.api.verify(s.joinToken(t, "early", "p", auth.RolePublisher))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	w := &whipSession{identity: claims.Subject, kind: actors.ClientWHIP, live: &s.api.live}
	p, _, err := s.rooms.Join(ctx, "early", joinRequest(claims, actors.ClientWHIP, w))
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/rooms/early/participants/"+string(p.ID), ""), http.StatusNoContent)
	poll.Until(t, "the room to remove the participant", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.closed
	})
	if err := w.register(p); !errors.Is(err, actors.ErrParticipantNotFound) {
		t.Fatalf("register after removal: %v", err)
	}
	if _, ok := s.api.live.getWHIP(p.ID); ok {
		t.Error("a removed participant's session is reachable")
	}
	// The room did not crash on the removal: it still admits and lists.
	s.whipPublish(t, "early", s.joinToken(t, "early", "q", auth.RolePublisher))
}
