package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/internal/promtest"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestBandwidthPausesTrack: a viewer of a three-layer camera on a link
// the test cuts below the lowest layer is told track-paused for
// bandwidth, and the room's participant list shows its estimate and the
// camera paused for it, with the layer's rid and the pause's reason; with
// the link whole again it is told track-resumed. The bandwidth metrics
// count the pause, the resume and the estimates.
func TestBandwidthPausesTrack(t *testing.T) {
	if testing.Short() {
		t.Skip("takes tens of seconds of media")
	}
	metrics := rtc.NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics)
	env := newMediaEnv(t, func(c *Config) { c.MediaMetrics = metrics })
	createRoom(t, env, "bw", nil)
	pub := publishSimulcast(t, env, "bw", 10*time.Millisecond)

	api, link, err := rtctest.ClientAPIWithShaper()
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := tryJoinWith(t, env, "bw", "viewer", RoleSubscriber, false, api)
	if err != nil {
		t.Fatal(err)
	}
	viewer.receive(1)
	receiving := func() *Receiving {
		list, err := env.rooms.Participants(context.Background(), "bw")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list {
			if p.ID == viewer.p.ID {
				return p.Receiving
			}
		}
		t.Fatal("the viewer is not in the list")
		return nil
	}
	// The estimate climbs to the top layer at the rate the media and the
	// probes allow, which the race detector on a loaded machine slows.
	poll.Within(t, 2*poll.Timeout, "the viewer's estimate from transport-cc, on the top layer", func() bool {
		r := receiving()
		return r != nil && r.EstimateSource == string(rtc.EstimateTWCC) && r.EstimateBps > 0 &&
			len(r.Tracks) == 1 && r.Tracks[0].Layer == 2 && r.Tracks[0].RID == "f" && !r.Tracks[0].Paused
	})

	link.SetRate(60_000)
	paused := waitEvent(t, viewer, func(SignalTrackPaused) bool { return true })
	if !paused.Paused || paused.Reason != PauseReasonBandwidth || paused.ParticipantID != pub.p.ID {
		t.Fatalf("first pause event %+v, want the publisher's camera paused for bandwidth", paused)
	}
	if r := receiving(); len(r.Tracks) != 1 || r.Tracks[0].TrackID != paused.TrackID || !r.Tracks[0].Paused || r.Tracks[0].PauseReason != PauseReasonBandwidth {
		t.Fatalf("receiving %+v after the pause of %s", r, paused.TrackID)
	}
	// Counted before the viewer is told.
	if n := promtest.Value(t, reg, "troupe_rtc_bandwidth_paused_tracks"); n != 1 {
		t.Errorf("troupe_rtc_bandwidth_paused_tracks = %v while paused, want 1", n)
	}
	if n := promtest.Value(t, reg, "troupe_rtc_bandwidth_layer_changes_total", "direction", "down"); n < 1 {
		t.Errorf("troupe_rtc_bandwidth_layer_changes_total{direction=\"down\"} = %v after a pause", n)
	}
	if n := promtest.Value(t, reg, "troupe_rtc_bandwidth_estimate_bps"); n == 0 {
		t.Error("troupe_rtc_bandwidth_estimate_bps has no observation")
	}
	upBefore := promtest.Value(t, reg, "troupe_rtc_bandwidth_layer_changes_total", "direction", "up")

	link.SetRate(0)
	// The resume waits out the hold that failed tries on the cut link
	// made longer (at most 16 s), so the wait is longer than waitEvent's.
	poll.Within(t, 2*poll.Timeout, "track-resumed", func() bool {
		select {
		case s := <-viewer.events:
			e, ok := s.(SignalTrackPaused)
			return ok && !e.Paused && e.TrackID == paused.TrackID && e.Reason == PauseReasonBandwidth
		default:
			return false
		}
	})
	if n := promtest.Value(t, reg, "troupe_rtc_bandwidth_layer_changes_total", "direction", "up"); n <= upBefore {
		t.Errorf("troupe_rtc_bandwidth_layer_changes_total{direction=\"up\"} = %v after the resume, was %v", n, upBefore)
	}
}

// publishSimulcast joins a publisher to room whose client sends a VP8
// camera in rtctest's three layers, a frame every interval, until the
// test ends.
func publishSimulcast(t *testing.T, env *testEnv, room RoomID, interval time.Duration) *testClient {
	t.Helper()
	return publishSimulcastWith(t, env, room, interval, rtctest.AddSimulcast)
}

// publishSimulcastWith is publishSimulcast with the camera add adds.
func publishSimulcastWith(t *testing.T, env *testEnv, room RoomID, interval time.Duration,
	add func(*webrtc.PeerConnection, string) (*rtctest.SimulcastSender, error)) *testClient {
	t.Helper()
	pub := joinClient(t, env, room, "pub", RolePublisher)
	camera, err := add(pub.pc, string(pub.p.ID))
	if err != nil {
		t.Fatal(err)
	}
	pub.queue <- publishCmd{} // the client offers the camera
	poll.Until(t, "the publisher connected", func() bool {
		return pub.pc.ConnectionState() == webrtc.PeerConnectionStateConnected && pub.pc.SignalingState() == webrtc.SignalingStateStable
	})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		stop()
		_ = pub.pc.Close() // ends the RTCP readers
		wg.Wait()
	})
	if err := camera.Start(ctx, pub.pc, interval, &wg, func(err error) { t.Errorf("publish: %v", err) }); err != nil {
		t.Fatal(err)
	}
	return pub
}
