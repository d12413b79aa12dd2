package httpapi

import (
	"context"
	"slices"
	"testing"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestBandwidthRecoversStoppedLayer: the only viewer of a three-layer
// camera, on a link the test narrows below the middle layer, is held to
// the lowest by its estimate, so nobody needs the upper layers and the
// publisher, which obeys the layers messages as the web page does, stops
// sending them. With the link whole again the viewer must get the top
// layer back, which it can only once the publisher is told to send it
// again and its keyframe comes: the estimate cannot climb on a layer
// that does not arrive. It runs without the race detector, whose delays
// on a loaded machine may keep the estimate from climbing back to the
// top layer (as in rtc's loopback tests).
func TestBandwidthRecoversStoppedLayer(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("tens of seconds of media, and an estimate that must climb back to the top layer")
	}
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"rec","name":"Recovery"}`)

	pub := s.dialWS(t, "camera", s.joinToken(t, "rec", "camera", auth.RolePublisher))
	pub.waitMsg("joined", nil)
	cam, err := client.NewSimulcastCamera(client.CameraConfig{StreamID: "camera", FPS: 30, MaxPayloadBytes: 1100, Layers: []client.Layer{
		{RID: "q", Width: 320, Height: 180, BitrateKbps: 150},
		{RID: "h", Width: 640, Height: 360, BitrateKbps: 500},
		{RID: "f", Width: 1280, Height: 720, BitrateKbps: 1500},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := pub.PublishSimulcast(ctx, cam); err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- cam.Run(ctx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("camera: %v", err)
		}
	}()

	api, link, err := rtctest.ClientAPIWithShaper()
	if err != nil {
		t.Fatal(err)
	}
	viewer := s.dialWSWith(t, "viewer", s.joinToken(t, "rec", "viewer", auth.RoleSubscriber), api)
	viewer.receiver("video")
	rid := func() string {
		for _, p := range s.participants(t, "rec") {
			if r, _ := p["receiving"].(map[string]any); p["identity"] == "viewer" && r != nil {
				if tracks, _ := r["tracks"].([]any); len(tracks) == 1 {
					tr := tracks[0].(map[string]any)
					if tr["paused"] == true {
						return ""
					}
					return tr["rid"].(string)
				}
			}
		}
		return ""
	}
	// The estimate climbs to the top layer as fast as the media and the
	// probes allow, which a loaded machine slows.
	poll.Within(t, 2*poll.Timeout, "the viewer on the top layer", func() bool { return rid() == "f" })

	// told finds, among the layers messages the publisher got after the
	// first n, one whose list names the top layer.
	told := func(n int, list string) map[string]any {
		for _, m := range pub.messages(msgLayers)[n:] {
			if slices.Contains(anyStrings(m[list]), "f") {
				return m
			}
		}
		return nil
	}

	// Narrow: between the lowest layer and the middle one. The viewer
	// on the top layer had the camera send it; now nobody needs it.
	before := len(pub.messages(msgLayers))
	link.SetRate(300_000)
	poll.Within(t, 2*poll.Timeout, "the viewer held to the lowest layer", func() bool { return rid() == "q" })
	var stopped map[string]any
	poll.Until(t, "the publisher told nobody needs the top layer", func() bool {
		stopped = told(before, "paused")
		return stopped != nil
	})
	poll.Until(t, "the camera's top layer stopped", func() bool { return cam.Paused(2) })
	t.Logf("held down: the publisher told %v active, %v paused", stopped["active"], stopped["paused"])

	// Whole again: the viewer climbs back, and the top layer is sent again.
	before = len(pub.messages(msgLayers))
	link.SetRate(0)
	poll.Within(t, 3*poll.Timeout, "the viewer on the top layer again", func() bool { return rid() == "f" })
	if cam.Paused(2) {
		t.Fatal("the viewer is on the top layer while the camera does not send it")
	}
	if told(before, "active") == nil {
		t.Fatalf("layers messages since the link was whole %v: none asks for the top layer", pub.messages(msgLayers)[before:])
	}
}

// anyStrings is a JSON list of strings as decoded into any.
func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s, ok := s.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
