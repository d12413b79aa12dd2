package httpapi

import (
	"net/http"
	"slices"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/actors/actorstest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// whepPacket is one packet a WHEP viewer of a rtctest simulcast camera
// received.
type whepPacket struct {
	ssrc     uint32
	seq      uint16
	layer    int
	keyframe bool // the first packet of a VP8 keyframe
}

// TestWHEPViewerOfSimulcast: a WHEP viewer, one video section, of a VP8
// camera in three layers receives one track: the layer the room's
// quality allows (360p: the 640x360 one), then, once the room's quality
// is raised, the top one, switched on its keyframe, as one stream of one
// SSRC with continuous sequence numbers. The session stats show the layer
// it gets. The room's quality caps a WHEP viewer as any subscriber (what
// the viewer asks itself is TestWHEPViewerSettings').
func TestWHEPViewerOfSimulcast(t *testing.T) {
	checkLeaks(t)
	// No bandwidth estimate: the layer is the room's choice, which a
	// loaded machine's estimate could hold lower.
	s := serveStack(t, actorstest.StartMedia(t, func(c *rtc.Config) { c.NoBandwidthEstimation = true }, nil), nil)
	s.createRoom(t, `{"id":"whepsim","name":"WHEP simulcast","config":{"quality":"360p"}}`)
	t.Cleanup(s.publishSimulcast(t, "whepsim"))
	// The room's quality picks a layer by size: the layers' sizes come
	// with their first keyframes.
	s.waitLayersSized(t, "whepsim")

	rx, _, _, r := s.watchWHEP(t, "whepsim", "viewer", "")
	mustStatus(t, r, http.StatusCreated)
	run := rx.run

	poll.Until(t, "the 360p layer at the viewer", func() bool { return run(1) >= 30 })
	var session string
	poll.Until(t, "the session stats showing the layer", func() bool {
		session, _ = s.do(t, http.MethodGet, "/api/v1/rooms/whepsim", "").json(t)["active_session_id"].(string)
		if session == "" {
			return false
		}
		for _, p := range s.sessionStats(t, session).Participants {
			if rx := p.Receiving; p.Identity == "viewer" && rx != nil && len(rx.Tracks) == 1 {
				return rx.Tracks[0].Layer == 1 && rx.Tracks[0].RID == "h"
			}
		}
		return false
	})
	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/whepsim", `{"config":{"quality":"1080p"}}`), http.StatusOK)
	poll.Until(t, "the top layer at the viewer", func() bool { return run(2) >= 30 })

	if layers := rx.layers(t); !slices.Equal(layers, []int{1, 2}) {
		t.Fatalf("the viewer received the layers %v, want the 360p one then the top", layers)
	}
	if n := len(rx.tracks); n != 1 {
		t.Fatalf("the viewer got %d tracks, want 1", n)
	}
}

// waitLayersSized waits until room's one publisher shows one track of
// three layers, each with its size (which comes with its first keyframe).
func (s *stack) waitLayersSized(t *testing.T, room string) {
	t.Helper()
	poll.Until(t, "the camera's three layers sized", func() bool {
		list := s.participants(t, room)
		if len(list) != 1 || len(list[0]["tracks"].([]any)) != 1 {
			return false
		}
		layers, _ := list[0]["tracks"].([]any)[0].(map[string]any)["layers"].([]any)
		return len(layers) == 3 && !slices.ContainsFunc(layers, func(l any) bool { return l.(map[string]any)["width"] == float64(0) })
	})

}

// whepReceiver collects what a WHEP viewer's peer receives of a rtctest
// simulcast camera.
type whepReceiver struct {
	tracks  chan struct{}
	packets chan whepPacket
	got     []whepPacket // taken from packets by run
}

// receiveWHEP reads every track pc receives into a whepReceiver.
func receiveWHEP(t *testing.T, pc *webrtc.PeerConnection) *whepReceiver {
	rx := &whepReceiver{tracks: make(chan struct{}, 4), packets: make(chan whepPacket, 4096)}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		rx.tracks <- struct{}{}
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if len(p.Payload) < 5 {
				continue // padding
			}
			// rtctest's VP8: S in the descriptor's first byte, the
			// frame tag's P bit (clear on a keyframe) after the 15-bit
			// picture id.
			key := p.Payload[0]&0x10 != 0 && p.Payload[4]&0x01 == 0
			select {
			case rx.packets <- whepPacket{ssrc: p.SSRC, seq: p.SequenceNumber, layer: rtctest.SimulcastLayer(p.Payload), keyframe: key}:
			default:
				t.Error("the test kept up with no more packets")
				return
			}
		}
	})
	return rx
}

// run returns how many of the last packets the viewer got come from
// layer.
func (rx *whepReceiver) run(layer int) int {
	for more := true; more; {
		select {
		case p := <-rx.packets:
			rx.got = append(rx.got, p)
		default:
			more = false
		}
	}
	n := 0
	for i := len(rx.got) - 1; i >= 0 && rx.got[i].layer == layer; i-- {
		n++
	}
	return n
}

// layers checks that the packets taken so far are one stream, of one
// SSRC and continuous sequence numbers, each of whose layers starts on a
// keyframe, and returns its layers in order.
func (rx *whepReceiver) layers(t *testing.T) []int {
	t.Helper()
	var layers []int
	for i, p := range rx.got {
		if i > 0 {
			q := rx.got[i-1]
			if p.ssrc != q.ssrc || p.seq != q.seq+1 {
				t.Fatalf("packet %d: SSRC %d sequence number %d after %d, %d", i, p.ssrc, p.seq, q.ssrc, q.seq)
			}
		}
		if len(layers) == 0 || layers[len(layers)-1] != p.layer {
			if len(layers) > 0 && !p.keyframe {
				t.Fatalf("packet %d: layer %d starts on a delta frame", i, p.layer)
			}
			layers = append(layers, p.layer)
		}
	}
	return layers
}
