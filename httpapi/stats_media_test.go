package httpapi

import (
	"net/http"
	"testing"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/internal/promtest"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestSessionStatsShowLayerAndEstimate: with real media and the
// bandwidth estimate on, the session stats show what a viewer of a
// three-layer camera receives: the server's estimate from its
// transport-cc feedback, an upper layer by index and rid (the estimate
// takes it to the top, a loaded machine's maybe not), then the lowest once
// it asks for a thumbnail, and the camera paused by the viewer with
// that reason. /metrics counts the move down and the estimates.
func TestSessionStatsShowLayerAndEstimate(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"st","name":"Stats"}`)
	defer s.publishSimulcast(t, "st")()
	viewer := s.dialWS(t, "viewer", s.joinToken(t, "st", "viewer", auth.RoleSubscriber))
	viewer.receiver("video")

	var session string
	poll.Until(t, "the session", func() bool {
		session, _ = s.do(t, http.MethodGet, "/api/v1/rooms/st", "").json(t)["active_session_id"].(string)
		return session != ""
	})
	// receiving returns the viewer's receiving object when it shows one
	// track, the camera, as want says.
	var camera string
	receiving := func(want func(receivedTrackJSON) bool) func() bool {
		return func() bool {
			for _, p := range s.sessionStats(t, session).Participants {
				r := p.Receiving
				if p.Identity != "viewer" || r == nil || len(r.Tracks) != 1 {
					continue
				}
				camera = r.Tracks[0].TrackID
				return r.EstimateSource == "twcc" && r.EstimateBps > 0 && want(r.Tracks[0])
			}
			return false
		}
	}
	poll.Until(t, "the viewer on an upper layer, estimated", receiving(func(rt receivedTrackJSON) bool {
		return rt.Layer >= 1 && rt.Layer < len(rtctest.SimulcastRIDs) && rt.RID == rtctest.SimulcastRIDs[rt.Layer] && !rt.Paused && rt.PauseReason == ""
	}))
	down := promtest.Value(t, s.reg, "troupe_rtc_layer_switches_total", "direction", "down")

	viewer.send(map[string]any{"type": "track-settings", "track_id": camera, "width": 160, "height": 90})
	poll.Until(t, "the viewer on the lowest layer", receiving(func(rt receivedTrackJSON) bool {
		return rt.Layer == 0 && rt.RID == "q" && !rt.Paused
	}))
	if got := promtest.Value(t, s.reg, "troupe_rtc_layer_switches_total", "direction", "down"); got <= down {
		t.Fatalf("troupe_rtc_layer_switches_total{direction=\"down\"} = %v after the move down, was %v", got, down)
	}
	if n := promtest.Value(t, s.reg, "troupe_rtc_bandwidth_estimate_bps"); n == 0 {
		t.Fatal("troupe_rtc_bandwidth_estimate_bps has no observation")
	}

	viewer.send(map[string]any{"type": "track-settings", "track_id": camera, "paused": true})
	viewer.waitMsg("track-paused", func(m map[string]any) bool { return m["track_id"] == camera })
	poll.Until(t, "the camera paused by the viewer", receiving(func(rt receivedTrackJSON) bool {
		return rt.Paused && rt.PauseReason == "subscriber"
	}))
}
