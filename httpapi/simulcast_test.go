package httpapi

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestSimulcastIsOneTrack: a WHIP client publishes a VP8 camera in three
// rid layers. The REST API and signaling list one video track with its
// three layers (rid, size from the keyframes, measured bitrate), and a
// viewer receives one video track, fed from the top layer.
func TestSimulcastIsOneTrack(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"sim","name":"Simulcast"}`)

	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	camera, err := rtctest.AddSimulcast(pc, "cam")
	if err != nil {
		t.Fatal(err)
	}
	r := s.whipPost(t, "/whip/sim", s.joinToken(t, "sim", "encoder", auth.RolePublisher), "application/sdp", gatheredOffer(t, pc))
	mustStatus(t, r, http.StatusCreated)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
		t.Fatal(err)
	}
	if err := camera.Negotiated(pc); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stop()
		_ = pc.Close()
		wg.Wait()
	}()
	for i := range rtctest.SimulcastRIDs {
		wg.Go(func() { camera.ServeKeyframeRequests(i) })
	}
	wg.Go(func() {
		if err := camera.Run(ctx, 20*time.Millisecond); err != nil {
			t.Errorf("publish: %v", err)
		}
	})

	// REST: one track, three layers in order, each as received.
	var track map[string]any
	poll.Until(t, "one video track with three measured layers", func() bool {
		list := s.participants(t, "sim")
		if len(list) != 1 {
			return false
		}
		tracks := list[0]["tracks"].([]any)
		if len(tracks) != 1 {
			return false
		}
		track = tracks[0].(map[string]any)
		layers, _ := track["layers"].([]any)
		if len(layers) != 3 {
			return false
		}
		for i, l := range layers {
			l := l.(map[string]any)
			size := rtctest.SimulcastSizes[i]
			if l["rid"] != rtctest.SimulcastRIDs[i] || l["width"] != float64(size[0]) || l["height"] != float64(size[1]) ||
				l["bitrate"].(float64) <= 0 || l["active"] != true {
				return false
			}
		}
		return true
	})
	if track["kind"] != "video" || track["simulcast"] != true || track["codec"] != webrtc.MimeTypeVP8 {
		t.Fatalf("track %v", track)
	}

	// Signaling: the viewer hears of one track and receives one.
	viewer := s.dialWS(t, "viewer", s.joinToken(t, "sim", "viewer", auth.RoleSubscriber))
	joined := viewer.waitMsg("joined", nil)
	others := joined["participants"].([]any)
	if len(others) != 1 || len(others[0].(map[string]any)["tracks"].([]any)) != 1 {
		t.Fatalf("joined lists %v", others)
	}
	listed := others[0].(map[string]any)["tracks"].([]any)[0].(map[string]any)
	if layers, _ := listed["layers"].([]any); len(layers) != 3 || listed["simulcast"] != true {
		t.Fatalf("joined lists the track as %v", listed)
	}
	rx := viewer.receiver("video")
	// The camera's payloads are not rtctest.Sender's: the receiver counts
	// them as corrupt.
	poll.Until(t, "50 video packets at the viewer", func() bool {
		st := rx.Stats()
		return st.Packets+st.Corrupt >= 50
	})
	var offer sdp.SessionDescription
	if err := offer.UnmarshalString(viewer.PeerConnection().RemoteDescription().SDP); err != nil {
		t.Fatal(err)
	}
	video := 0
	for _, md := range offer.MediaDescriptions {
		if _, sends := md.Attribute("msid"); md.MediaName.Media == "video" && sends {
			video++
		}
	}
	if video != 1 {
		t.Fatalf("the server sends the viewer %d video sections, want 1", video)
	}
}
