package actors

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/actors/actorpb"
)

// TestSimulcastPublisherToldLayersNeeded: a WebSocket publisher of a
// three-layer camera is told which layers someone receives: the lowest
// alone while nobody watches, the 640x360 one too for a viewer in a 360p
// room, and the lowest alone again once the viewer has left. The layers
// are one track, named by its own section's mid.
func TestSimulcastPublisherToldLayersNeeded(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "sim", &actorpb.ConfigPatch{Quality: ptr("360p")})
	pub := publishSimulcast(t, env, "sim", 20*time.Millisecond)

	var mid string
	for _, tr := range pub.pc.GetTransceivers() {
		if tr.Sender() != nil && tr.Kind() == webrtc.RTPCodecTypeVideo {
			mid = tr.Mid()
		}
	}
	layers := func(active, paused []string) func(SignalLayers) bool {
		return func(e SignalLayers) bool {
			return e.Mid == mid && slices.Equal(e.Active, active) && slices.Equal(e.Paused, paused)
		}
	}
	first := waitEvent(t, pub, layers([]string{"q"}, []string{"h", "f"}))
	list, err := env.rooms.Participants(context.Background(), "sim")
	if err != nil || len(list) != 1 || len(list[0].Tracks) != 1 || list[0].Tracks[0].ID != first.TrackID {
		t.Fatalf("participants %+v, %v: want the one track %s", list, err, first.TrackID)
	}

	viewer := joinClient(t, env, "sim", "viewer", RoleSubscriber)
	viewer.receive(1)
	waitEvent(t, pub, layers([]string{"q", "h"}, []string{"f"}))
	viewer.leave()
	waitEvent(t, pub, layers([]string{"q"}, []string{"h", "f"}))
}
