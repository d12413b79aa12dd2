package httpapi

import (
	"net/http"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// TestSignalingSubscribe: a viewer whose join token, minted by the API,
// says auto_subscribe false is sent nothing of the camera published in
// its room until it subscribes to it; once it unsubscribes, the server
// offers the camera away and the viewer receives nothing.
func TestSignalingSubscribe(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"pick","name":"Pick"}`)
	defer s.publishSimulcast(t, "pick")()
	r := s.do(t, http.MethodPost, "/api/v1/rooms/pick/tokens", `{"identity":"viewer","role":"subscriber","auto_subscribe":false}`)
	mustStatus(t, r, http.StatusOK)
	viewer := s.dialWS(t, "viewer", r.json(t)["token"].(string))

	var camera string
	receiving := -1 // the tracks the viewer receives, as the list says
	look := func() {
		camera, receiving = "", -1
		for _, p := range s.participants(t, "pick") {
			switch p["identity"] {
			case "encoder":
				if tracks := p["tracks"].([]any); len(tracks) == 1 {
					camera = tracks[0].(map[string]any)["id"].(string)
				}
			case "viewer":
				if rx, ok := p["receiving"].(map[string]any); ok {
					receiving = len(rx["tracks"].([]any))
				}
			}
		}
	}
	poll.Until(t, "the camera published", func() bool { look(); return camera != "" && receiving >= 0 })
	// The room has handled the camera's publication: what it sent the
	// viewer's actor for it is ahead of this message there.
	viewer.send(map[string]any{"type": "track-settings", "track_id": camera})
	e := viewer.waitMsg("error", func(m map[string]any) bool { return m["request"] == "track-settings" })
	if e["code"] != "signaling_state" || viewer.count("offer") != 0 || receiving != 0 {
		t.Fatalf("before subscribing: %v, %d offers, receiving %d tracks", e, viewer.count("offer"), receiving)
	}

	viewer.send(map[string]any{"type": "subscribe", "track_id": camera})
	rx := viewer.receiver("video")
	// The camera's payloads are not rtctest.Sender's: the receiver counts
	// them as corrupt.
	poll.Until(t, "25 packets of the camera", func() bool {
		st := rx.Stats()
		return st.Packets+st.Corrupt >= 25
	})
	if look(); receiving != 1 {
		t.Fatalf("receiving %d tracks after subscribing to one", receiving)
	}

	offers := viewer.count("offer")
	viewer.send(map[string]any{"type": "unsubscribe", "track_id": camera})
	poll.Until(t, "an offer without the camera", func() bool { return viewer.count("offer") > offers })
	poll.Until(t, "the viewer receives nothing", func() bool { look(); return receiving == 0 })
	if n := viewer.count("error"); n != 1 {
		t.Fatalf("%d errors, want the one asked for", n)
	}
}
