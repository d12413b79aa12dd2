package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/actors/actorstest"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// publishSimulcast publishes a VP8 camera in three rid layers
// (rtctest.SimulcastSender) through WHIP, and returns what stops it.
func (s *stack) publishSimulcast(t *testing.T, room string) (stop func()) {
	return s.publishSimulcastBy(t, room, false)
}

// publishSimulcastBy is publishSimulcast; bySSRC offers the layers told
// apart by SSRC alone (rtctest.SimulcastBySSRC), their packets naming no
// layer, and checks that the answer names none either.
func (s *stack) publishSimulcastBy(t *testing.T, room string, bySSRC bool) (stop func()) {
	t.Helper()
	pc, camera := simulcastCamera(t)
	offer := gatheredOffer(t, pc)
	if bySSRC {
		camera.Unnamed = true
		var err error
		if offer, err = rtctest.SimulcastBySSRC(offer, camera.SSRCs(), false); err != nil {
			t.Fatal(err)
		}
	}
	r := s.whipPost(t, "/whip/"+room, s.joinToken(t, room, "encoder", auth.RolePublisher), "application/sdp", offer)
	mustStatus(t, r, http.StatusCreated)
	if bySSRC && (strings.Contains(string(r.body), "a=rid:") || strings.Contains(string(r.body), "a=simulcast:") || strings.Contains(string(r.body), sdp.SDESMidURI)) {
		t.Fatalf("the answer to an offer by SSRC names layers or mids:\n%s", r.body)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
		t.Fatal(err)
	}
	if err := camera.Negotiated(pc); err != nil {
		t.Fatal(err)
	}
	return runCamera(t, camera, pc)
}

// simulcastCamera returns a new client peer with a VP8 camera in three
// rid layers (rtctest.AddSimulcast).
func simulcastCamera(t *testing.T) (*webrtc.PeerConnection, *rtctest.SimulcastSender) {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	camera, err := rtctest.AddSimulcast(pc, "cam")
	if err != nil {
		t.Fatal(err)
	}
	return pc, camera
}

// runCamera sends camera's layers on pc, and serves their keyframe
// requests, until stop, which also closes pc.
func runCamera(t *testing.T, camera *rtctest.SimulcastSender, pc *webrtc.PeerConnection) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range rtctest.SimulcastRIDs {
		wg.Go(func() { camera.ServeKeyframeRequests(i) })
	}
	wg.Go(func() {
		if err := camera.Run(ctx, 20*time.Millisecond); err != nil {
			t.Errorf("publish: %v", err)
		}
	})
	return func() {
		cancel()
		_ = pc.Close()
		wg.Wait()
	}
}

// TestSimulcastIsOneTrack: a WHIP client publishes a VP8 camera in three
// rid layers. The REST API and signaling list one video track with its
// three layers (rid, size from the keyframes, measured bitrate), and a
// viewer receives one video track.
func TestSimulcastIsOneTrack(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"sim","name":"Simulcast"}`)
	defer s.publishSimulcast(t, "sim")()
	s.checkOneSimulcastTrack(t, "sim")
}

// checkOneSimulcastTrack checks that room's camera, published by
// publishSimulcast, is one track in REST and signaling, and that a viewer
// receives one video track of it.
func (s *stack) checkOneSimulcastTrack(t *testing.T, room string) {
	t.Helper()
	// REST: one track, three layers in order, each as received.
	var track map[string]any
	poll.Until(t, "one video track with three measured layers", func() bool {
		list := s.participants(t, room)
		if len(list) != 1 {
			return false
		}
		tracks := list[0]["tracks"].([]any)
		if len(tracks) != 1 {
			return false
		}
		track = tracks[0].(map[string]any)
		return hasCameraLayers(track)
	})
	if track["kind"] != "video" || track["simulcast"] != true || track["codec"] != webrtc.MimeTypeVP8 {
		t.Fatalf("track %v", track)
	}

	// Signaling: the viewer hears of one track and receives one.
	viewer := s.dialWS(t, "viewer", s.joinToken(t, room, "viewer", auth.RoleSubscriber))
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

// hasCameraLayers reports whether track, as the API lists it, has the
// three layers of rtctest's camera in order, each as received: its rid,
// its size from the keyframes, a measured bitrate, and active.
func hasCameraLayers(track map[string]any) bool {
	layers, _ := track["layers"].([]any)
	if len(layers) != len(rtctest.SimulcastRIDs) {
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
}

// TestSimulcastQualityCap: in a room whose quality is 360p a viewer gets
// the 640x360 layer of a three-layer camera; raising the room's quality
// to 1080p moves it to the 1280x720 one. The layers differ in packet
// size, so the viewer's bytes per packet tell which one it gets.
func TestSimulcastQualityCap(t *testing.T) {
	s, _, bytesPerPacket := simulcastViewer(t, "cap", "360p")
	// The layers' packets are about 140, 440 and 740 bytes.
	poll.Until(t, "the 360p layer", func() bool {
		n := bytesPerPacket()
		return n > 300 && n < 600
	})
	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/cap", `{"config":{"quality":"1080p"}}`), http.StatusOK)
	poll.Until(t, "the 720p layer", func() bool { return bytesPerPacket() > 650 })
}

// simulcastViewer starts a stack with room of quality, a three-layer
// camera publishing there and a viewer receiving it, and returns them with
// the viewer's bytes per packet (viewerBytesPerPacket). It checks for
// leaks when the test ends. The engine makes no bandwidth estimate: the
// tests that use it check the layer that caps and settings choose, and on
// a loaded machine the estimate may hold the viewer below it (the layer
// choice by estimate has tests of its own in rtc and actors).
func simulcastViewer(t *testing.T, room, quality string) (*stack, *wsClient, func() uint64) {
	t.Helper()
	checkLeaks(t)
	s := serveStack(t, actorstest.StartMedia(t, func(c *rtc.Config) { c.NoBandwidthEstimation = true }, nil), nil)
	s.createRoom(t, `{"id":"`+room+`","name":"Simulcast","config":{"quality":"`+quality+`"}}`)
	t.Cleanup(s.publishSimulcast(t, room))
	viewer := s.dialWS(t, "viewer", s.joinToken(t, room, "viewer", auth.RoleSubscriber))
	viewer.receiver("video")
	return s, viewer, s.viewerBytesPerPacket(t, room, "viewer")
}

// viewerBytesPerPacket returns what measures, from the session's stats,
// the mean size of the next 25 packets sent to the participant identity
// in room. A SimulcastSender's layers differ in packet size (about 140,
// 440 and 740 bytes), so that tells which layer it gets.
func (s *stack) viewerBytesPerPacket(t *testing.T, room, identity string) func() uint64 {
	t.Helper()
	var session string
	poll.Until(t, "the session", func() bool {
		session, _ = s.do(t, http.MethodGet, "/api/v1/rooms/"+room, "").json(t)["active_session_id"].(string)
		return session != ""
	})
	sent := func() (packets, bytes uint64) {
		for _, p := range s.sessionStats(t, session).Participants {
			if p.Identity == identity {
				return p.PacketsOut, p.BytesOut
			}
		}
		return 0, 0
	}
	return func() uint64 {
		p0, b0 := sent()
		var p1, b1 uint64
		poll.Until(t, "25 packets to "+identity, func() bool {
			p1, b1 = sent()
			return p1 >= p0+25
		})
		return (b1 - b0) / (p1 - p0)
	}
}
