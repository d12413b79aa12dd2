package httpapi

import (
	"fmt"
	"testing"

	"github.com/troupe-media/troupe/httpapi/auth"
)

// TestSimulcastTrackUpdated: a member in the room before a three-layer
// camera is published hears of the track's layers as they are seen: a
// track-updated names the track with its three layers in order, each
// with its rid, its size from the keyframes, a measured bitrate and
// active. Each track-updated says something the one before it (or the
// track-published) did not: a bitrate's wiggle alone is not told.
func TestSimulcastTrackUpdated(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"upd","name":"Simulcast"}`)
	viewer := s.dialWS(t, "viewer", s.joinToken(t, "upd", "viewer", auth.RoleSubscriber))
	viewer.waitMsg("joined", nil)
	defer s.publishSimulcast(t, "upd")()

	published := viewer.waitMsg("track-published", nil)
	track := published["track"].(map[string]any)
	trackID, publisher := track["id"].(string), published["participant_id"].(string)
	viewer.waitMsg("track-updated", func(m map[string]any) bool {
		u := m["track"].(map[string]any)
		return u["id"] == trackID && u["simulcast"] == true && hasCameraLayers(u)
	})

	told := layersTold(track)
	for _, m := range viewer.messages("track-updated") {
		u := m["track"].(map[string]any)
		if m["participant_id"] != publisher || u["id"] != trackID || u["kind"] != "video" || u["source"] != track["source"] {
			t.Fatalf("track-updated %v, want the track %s of %s", m, trackID, publisher)
		}
		now := layersTold(u)
		if now == told {
			t.Fatalf("a track-updated that changes nothing told: %s", now)
		}
		told = now
	}
}

// layersTold is what a change of a track's layers is told for: their
// rids in order, sizes, whether each arrives and has a measured bitrate.
func layersTold(track map[string]any) string {
	layers, _ := track["layers"].([]any)
	out := ""
	for _, l := range layers {
		l := l.(map[string]any)
		out += fmt.Sprintf("%v %vx%v %v %v;", l["rid"], l["width"], l["height"], l["active"], l["bitrate"].(float64) > 0)
	}
	return out
}
