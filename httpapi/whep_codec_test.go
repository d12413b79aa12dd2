package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// whepCodecViewer is a pion WHEP client that supports only codecs, with a
// recvonly section for each kind.
func whepCodecViewer(t *testing.T, codecs []webrtc.RTPCodecCapability, kinds ...webrtc.RTPCodecType) *webrtc.PeerConnection {
	t.Helper()
	api, err := rtctest.ClientAPIWithCodecs(codecs...)
	if err != nil {
		t.Fatal(err)
	}
	return transceiverPeer(t, api, webrtc.RTPTransceiverDirectionRecvonly, kinds...)
}

// A WHEP viewer that can decode none of the room's tracks is refused with
// 422 no_common_codec before it joins: no member, no history, no webhook.
// One that can decode some gets those.
func TestWHEPCodecs(t *testing.T) {
	checkLeaks(t)
	hooks := newWebhookStack(t, true, webhook.Config{}) // the deliverer never runs: events stay pending
	s := hooks.stack
	s.createRoom(t, `{"id":"codecs","name":"Codecs","webhook":{"endpoint":"http://127.0.0.1:9/hooks","events":["*"]}}`)
	s.whipPublish(t, "codecs", s.joinToken(t, "codecs", "encoder", auth.RolePublisher)) // VP8 and Opus
	_, pending := s.deliveries(t, "?status=pending")

	h264Only := whepCodecViewer(t, []webrtc.RTPCodecCapability{rtctest.H264}, webrtc.RTPCodecTypeVideo)
	r := s.whipPost(t, "/whep/codecs", s.joinToken(t, "codecs", "viewer", auth.RoleSubscriber), "application/sdp", gatheredOffer(t, h264Only))
	if r.status != http.StatusUnprocessableEntity || r.errorCode(t) != "no_common_codec" || r.errorField(t) != "sdp" {
		t.Fatalf("%d %s, want 422 no_common_codec", r.status, r.body)
	}
	if msg := string(r.body); !strings.Contains(msg, "video/VP8") {
		t.Errorf("the error does not name the room's codecs: %s", msg)
	}
	if n := len(s.participants(t, "codecs")); n != 1 {
		t.Fatalf("%d participants after the refusal, want the publisher alone", n)
	}
	room := s.do(t, http.MethodGet, "/api/v1/rooms/codecs", "").json(t)
	members := s.do(t, http.MethodGet, "/api/v1/sessions/"+room["active_session_id"].(string)+"/participants", "")
	mustStatus(t, members, http.StatusOK)
	if strings.Contains(string(members.body), `"viewer"`) {
		t.Fatalf("the refused viewer is in the session's history: %s", members.body)
	}
	if _, after := s.deliveries(t, "?status=pending"); after != pending {
		t.Fatalf("%d webhook events queued by the refusal", after-pending)
	}

	// H.264 video and Opus audio: the audio comes, the video section idles.
	partial := whepCodecViewer(t, []webrtc.RTPCodecCapability{rtctest.H264, rtctest.Opus}, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	tracks := make(chan *rtctest.Receiver, 2)
	partial.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		r := rtctest.NewReceiver(tr)
		tracks <- r
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			r.Run()
		}
	})
	token := s.joinToken(t, "codecs", "listener", auth.RoleSubscriber)
	r = s.whipPost(t, "/whep/codecs", token, "application/sdp", gatheredOffer(t, partial))
	mustStatus(t, r, http.StatusCreated)
	if err := partial.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
		t.Fatal(err)
	}
	select {
	case audio := <-tracks:
		if kind := audio.Track().Kind(); kind != webrtc.RTPCodecTypeAudio {
			t.Fatalf("the viewer got %s", kind)
		}
		poll.Until(t, "25 audio packets", func() bool { return audio.Stats().Packets >= 25 })
	case <-time.After(poll.Timeout):
		t.Fatal("no audio at the viewer")
	}
	mustStatus(t, s.do(t, http.MethodDelete, r.header.Get("Location"), "", bearer(token)), http.StatusOK)
}
