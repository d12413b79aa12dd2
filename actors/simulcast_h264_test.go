package actors

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/internal/promtest"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// layerPacket is what a viewer of a rtctest simulcast camera got in one
// packet.
type layerPacket struct {
	seq       uint16
	layer     int
	paramSets bool // an H.264 STAP-A: the SPS and PPS a keyframe starts with
}

// logLayers keeps what a viewer receives on a track of a rtctest
// simulcast camera, until the track ends; padding has no layer.
func logLayers(tr *webrtc.TrackRemote) *packetLog[layerPacket] {
	return logPackets(tr, func(p *rtp.Packet) (layerPacket, bool) {
		if len(p.Payload) == 0 {
			return layerPacket{}, false
		}
		return layerPacket{seq: p.SequenceNumber, layer: rtctest.SimulcastLayer(p.Payload), paramSets: p.Payload[0]&0x1f == 24}, true
	})
}

// runOf returns how many of the last packets l has come from layer: the
// run since the last packet of another layer.
func runOf(l *packetLog[layerPacket], layer int) int {
	p := l.all()
	n := 0
	for i := len(p) - 1; i >= 0 && p[i].layer == layer; i-- {
		n++
	}
	return n
}

// TestH264SimulcastViewers: a publisher sends an H.264 camera in three
// rid layers. It is one track, its layers' sizes read from their SPS. A
// viewer receives the top layer, and on asking for a small size moves to
// the low one: one stream, its sequence numbers continuous, the low layer
// starting on its parameter sets and IDR, no slice of it before; the
// switch is counted in troupe_rtc_layer_switches_total. A viewer
// that decodes VP8 only is told the camera is skipped (no common codec).
func TestH264SimulcastViewers(t *testing.T) {
	// No bandwidth estimate: the viewer's layer is its own choice, which
	// a loaded machine's estimate could hold lower.
	metrics := rtc.NewMetrics()
	env := newMediaEnvWith(t, rtc.Config{LoopbackOnly: true, NoBandwidthEstimation: true}, func(c *Config) { c.MediaMetrics = metrics })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics)
	createRoom(t, env, "h264sim", nil)
	pub := publishSimulcastWith(t, env, "h264sim", 20*time.Millisecond, rtctest.AddSimulcastH264)

	var camera TrackInfo
	poll.Until(t, "one H.264 track with three layers sized from their SPS", func() bool {
		for _, p := range mustParticipants(t, env, "h264sim") {
			if p.ID != pub.p.ID || len(p.Tracks) != 1 || len(p.Tracks[0].Layers) != 3 {
				continue
			}
			camera = p.Tracks[0]
			for i, l := range camera.Layers {
				size := rtctest.SimulcastSizes[i]
				if l.RID != rtctest.SimulcastRIDs[i] || l.Width != size[0] || l.Height != size[1] {
					return false
				}
			}
			return true
		}
		return false
	})
	if camera.Codec != webrtc.MimeTypeH264 || !camera.Simulcast || camera.Kind != "video" {
		t.Fatalf("the camera is listed as %+v", camera)
	}

	viewer := joinClient(t, env, "h264sim", "viewer", RoleSubscriber)
	tr := viewer.nextTracks(1)["video"]
	if tr == nil || tr.Codec().MimeType != webrtc.MimeTypeH264 {
		t.Fatalf("the viewer got %v, want the H.264 camera", tr)
	}
	got := logLayers(tr)
	poll.Until(t, "the top layer at the viewer", func() bool { return runOf(got, 2) >= 30 })
	if err := viewer.p.SetTrackSettings(context.Background(), camera.ID, TrackSettings{Width: 320, Height: 180}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the low layer at the viewer", func() bool { return runOf(got, 0) >= 30 })

	packets := got.all()
	var runs []int
	for i, p := range packets {
		if i > 0 && p.seq != packets[i-1].seq+1 {
			t.Fatalf("packet %d: sequence number %d after %d", i, p.seq, packets[i-1].seq)
		}
		if len(runs) == 0 || runs[len(runs)-1] != p.layer {
			if len(runs) > 0 && !p.paramSets {
				t.Fatalf("packet %d: layer %d starts without its parameter sets", i, p.layer)
			}
			runs = append(runs, p.layer)
		}
	}
	if !slices.Equal(runs, []int{2, 0}) {
		t.Fatalf("the viewer received the layers %v, want the top then the low one", runs)
	}
	// The one move, to a smaller picture, is counted as such.
	for dir, want := range map[string]float64{"down": 1, "up": 0, "unknown": 0} {
		if got := promtest.Value(t, reg, "troupe_rtc_layer_switches_total", "direction", dir); got != want {
			t.Errorf("troupe_rtc_layer_switches_total{direction=%q} = %v, want %v", dir, got, want)
		}
	}

	joinWithoutH264(t, env, "h264sim", "vp8", pub.p.ID, camera.ID)
}
