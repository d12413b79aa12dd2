package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/actorstest"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc"
)

func TestWHEPQuerySettings(t *testing.T) {
	for _, c := range []struct {
		query string
		want  *actors.TrackSettings
		field string
	}{
		{query: ""},
		{query: "width=320&height=180", want: &actors.TrackSettings{Width: 320, Height: 180}},
		{query: "max_quality=720p", want: &actors.TrackSettings{MaxLines: 720}},
		{query: "width=320", field: "width"},
		{query: "height=180", field: "width"},
		{query: "width=0&height=180", field: "width"},
		{query: "width=320&height=99999", field: "height"},
		{query: "width=abc&height=180", field: "width"},
		{query: "width=320&width=640&height=180", field: "width"},
		{query: "max_quality=huge", field: "max_quality"},
		{query: "paused=true", field: "paused"},
		{query: "quality=high&width=1", field: "quality"},
	} {
		q, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := whepQuerySettings(q)
		var ae *apiError
		switch {
		case c.field != "":
			if !errors.As(err, &ae) || ae.status != http.StatusUnprocessableEntity || ae.details["field"] != c.field {
				t.Errorf("%q: %v, want a 422 for %s", c.query, err, c.field)
			}
		case err != nil:
			t.Errorf("%q: %v", c.query, err)
		case (got == nil) != (c.want == nil) || (got != nil && *got != *c.want):
			t.Errorf("%q: %+v, want %+v", c.query, got, c.want)
		}
	}
}

// TestWHEPViewerSettings: a WHEP viewer of a three-layer camera that
// asks, in its POST's query, for a 320x180 picture receives only the low
// layer, where one that asks nothing receives the top one; a JSON PATCH
// of its session URL for 1280x720 moves it up, on a keyframe, as one
// stream. Bad settings, in the query or the PATCH, are refused and change
// nothing: no participant joins, the layer stays.
func TestWHEPViewerSettings(t *testing.T) {
	checkLeaks(t)
	// No bandwidth estimate: the layers are the sizes' choice.
	s := serveStack(t, actorstest.StartMedia(t, func(c *rtc.Config) { c.NoBandwidthEstimation = true }, nil), nil)
	s.createRoom(t, `{"id":"whepsize","name":"WHEP sizes"}`)
	t.Cleanup(s.publishSimulcast(t, "whepsize"))
	s.waitLayersSized(t, "whepsize")

	watch := func(identity, query string) (*whepReceiver, string, string, response) {
		t.Helper()
		return s.watchWHEP(t, "whepsize", identity, query)
	}

	for query, field := range map[string]string{
		"?width=320":                 "width",
		"?width=320&height=0":        "height",
		"?max_quality=4k":            "max_quality",
		"?width=320&height=180&fps=": "fps",
	} {
		_, _, _, r := watch("refused", query)
		mustStatus(t, r, http.StatusUnprocessableEntity)
		if got := r.errorField(t); got != field {
			t.Fatalf("POST %s: field %q, want %q", query, got, field)
		}
	}
	if n := len(s.participants(t, "whepsize")); n != 1 {
		t.Fatalf("%d participants after refused viewers, want the publisher alone", n)
	}

	small, loc, token, _ := watch("small", "?width=320&height=180")
	full, _, _, _ := watch("full", "")
	poll.Until(t, "the low layer at the small viewer", func() bool { return small.run(0) >= 30 })
	poll.Until(t, "the top layer at the other", func() bool { return full.run(2) >= 30 })

	other := s.joinToken(t, "whepsize", "full", auth.RoleSubscriber)
	for _, c := range []struct {
		body, contentType, token string
		status                   int
		field, code              string
	}{
		{body: `{"width":0,"height":10}`, status: http.StatusUnprocessableEntity, field: "width"},
		{body: `{"width":640}`, status: http.StatusUnprocessableEntity, field: "width"},
		{body: `{"max_quality":"huge"}`, status: http.StatusUnprocessableEntity, field: "max_quality"},
		{body: `{"paused":"yes"}`, status: http.StatusBadRequest, field: "paused"},
		{body: `{"colour":"red"}`, status: http.StatusUnprocessableEntity, field: "colour"},
		{body: `not json`, status: http.StatusBadRequest, code: codeMalformedJSON},
		{body: `{"width":1280,"height":720}` + strings.Repeat(" ", maxViewerSettingsBytes), status: http.StatusRequestEntityTooLarge, code: codeBodyTooLarge},
		{body: `{"width":1280,"height":720}`, contentType: "text/plain", status: http.StatusUnsupportedMediaType},
		{body: "a=end-of-candidates", contentType: contentTypeTrickleICE, status: http.StatusPreconditionRequired, code: codePreconditionRequired},
		{body: `{"width":1280,"height":720}`, token: other, status: http.StatusForbidden},
	} {
		hs := []header{bearer(token)}
		if c.token != "" {
			hs[0] = bearer(c.token)
		}
		if c.contentType != "" {
			hs = append(hs, header{"Content-Type", c.contentType})
		}
		r := s.do(t, http.MethodPatch, loc, c.body, hs...)
		mustStatus(t, r, c.status)
		if c.field != "" && r.errorField(t) != c.field {
			t.Fatalf("PATCH %s: field %q, want %q", c.body, r.errorField(t), c.field)
		}
		if c.code != "" && r.errorCode(t) != c.code {
			t.Fatalf("PATCH of %d bytes: code %q, want %q", len(c.body), r.errorCode(t), c.code)
		}
		if c.status == http.StatusUnsupportedMediaType {
			if got, want := r.header.Get("Accept-Patch"), "application/json, application/trickle-ice-sdpfrag"; got != want {
				t.Fatalf("PATCH as %s: Accept-Patch %q, want %q", c.contentType, got, want)
			}
		}
	}
	mustStatus(t, s.do(t, http.MethodPatch, loc+"x", `{"width":1280,"height":720}`, bearer(token)), http.StatusNotFound)
	// A refused PATCH applied by mistake would move the viewer on the
	// next keyframe of the layer it asked for: the camera sends one on
	// every layer each 100 frames, so 101 frames of the low layer (two
	// packets each) after the PATCHes span one, and the viewer must
	// still have the low layer alone.
	small.run(0)
	n := len(small.got)
	poll.Until(t, "101 frames after the refused settings", func() bool {
		small.run(0)
		return len(small.got) >= n+2*101
	})
	if got := small.layers(t); !slices.Equal(got, []int{0}) {
		t.Fatalf("after the refused settings the small viewer received the layers %v, want the low one alone", got)
	}

	mustStatus(t, s.do(t, http.MethodPatch, loc, `{"width":1280,"height":720}`, bearer(token)), http.StatusNoContent)
	poll.Until(t, "the top layer at the viewer that asked for it", func() bool { return small.run(2) >= 30 })
	if got := small.layers(t); !slices.Equal(got, []int{0, 2}) {
		t.Fatalf("the small viewer received the layers %v, want the low one then the top", got)
	}
	if got := full.layers(t); !slices.Equal(got, []int{2}) {
		t.Fatalf("the other viewer received the layers %v, want the top one", got)
	}

	// Paused and resumed, as a track-settings message would: the session
	// stats say so.
	paused := func(want bool) func() bool {
		return func() bool {
			session, _ := s.do(t, http.MethodGet, "/api/v1/rooms/whepsize", "").json(t)["active_session_id"].(string)
			for _, p := range s.sessionStats(t, session).Participants {
				if rx := p.Receiving; p.Identity == "small" && rx != nil && len(rx.Tracks) == 1 {
					return rx.Tracks[0].Paused == want && (!want || rx.Tracks[0].PauseReason == actors.PauseReasonSubscriber)
				}
			}
			return false
		}
	}
	mustStatus(t, s.do(t, http.MethodPatch, loc, `{"paused":true}`, bearer(token)), http.StatusNoContent)
	poll.Until(t, "the small viewer's video paused", paused(true))
	mustStatus(t, s.do(t, http.MethodPatch, loc, `{}`, bearer(token)), http.StatusNoContent)
	poll.Until(t, "the small viewer's video resumed", paused(false))
	n = small.run(2)
	poll.Until(t, "video again after the resume", func() bool { return small.run(2) >= n+30 })
}

// TestWHEPSettingsRefusalOrder: a WHEP or WHIP session's PATCH checks the
// token first (401 whatever the body), then the session (404 whatever the
// body's type), before the body's type.
func TestWHEPSettingsRefusalOrder(t *testing.T) {
	s := newStack(t, nil)
	s.createRoom(t, `{"id":"wheporder","name":"WHEP order"}`)
	token := bearer(s.joinToken(t, "wheporder", "v", auth.RoleSubscriber))
	for _, c := range []struct {
		name, path string
		hs         []header
		status     int
	}{
		{"no token, text", "/whep/wheporder/PA_x", []header{{"Authorization", ""}, {"Content-Type", "text/plain"}}, http.StatusUnauthorized},
		{"no token, trickle ICE", "/whep/wheporder/PA_x", []header{{"Authorization", ""}, {"Content-Type", contentTypeTrickleICE}}, http.StatusUnauthorized},
		{"no session, trickle ICE", "/whep/wheporder/PA_x", []header{token, {"Content-Type", contentTypeTrickleICE}}, http.StatusNotFound},
		{"no session, text", "/whep/wheporder/PA_x", []header{token, {"Content-Type", "text/plain"}}, http.StatusNotFound},
		{"WHIP, no session, trickle ICE", "/whip/wheporder/PA_x", []header{token, {"Content-Type", contentTypeTrickleICE}}, http.StatusNotFound},
		{"WHIP, no session, JSON", "/whip/wheporder/PA_x", []header{token, {"Content-Type", contentTypeJSON}}, http.StatusNotFound},
		{"WHIP, no token, JSON", "/whip/wheporder/PA_x", []header{{"Authorization", ""}, {"Content-Type", contentTypeJSON}}, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := s.do(t, http.MethodPatch, c.path, "a=end-of-candidates", c.hs...)
			mustStatus(t, r, c.status)
		})
	}
}

// A WHEP viewer's settings hold for the tracks published after it joined:
// one that asked for 320x180 in an empty room ends on the low layer of
// the camera published then, once the layers' sizes are known.
func TestWHEPViewerSettingsOfLaterTracks(t *testing.T) {
	checkLeaks(t)
	s := serveStack(t, actorstest.StartMedia(t, func(c *rtc.Config) { c.NoBandwidthEstimation = true }, nil), nil)
	s.createRoom(t, `{"id":"wheplater","name":"WHEP later"}`)
	small, _, _, r := s.watchWHEP(t, "wheplater", "small", "?width=320&height=180")
	mustStatus(t, r, http.StatusCreated)
	t.Cleanup(s.publishSimulcast(t, "wheplater"))
	poll.Until(t, "the low layer at the viewer", func() bool { return small.run(0) >= 30 })
	if got := small.layers(t); got[len(got)-1] != 0 {
		t.Fatalf("the viewer received the layers %v, want the low one last", got)
	}
}

// watchWHEP has a new pion viewer of identity watch room by WHEP, its POST
// to /whep/{room} followed by query, and returns what it receives, its
// session URL and token, and the POST's response. A refused viewer has
// no session URL.
func (s *stack) watchWHEP(t *testing.T, room, identity, query string) (rx *whepReceiver, loc, token string, r response) {
	t.Helper()
	pc := transceiverPeer(t, clientAPI(t), webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo)
	rx = receiveWHEP(t, pc)
	token = s.joinToken(t, room, identity, auth.RoleSubscriber)
	r = s.whipPost(t, "/whep/"+room+query, token, "application/sdp", gatheredOffer(t, pc))
	if r.status != http.StatusCreated {
		return rx, "", token, r
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
		t.Fatal(err)
	}
	return rx, r.header.Get("Location"), token, r
}
