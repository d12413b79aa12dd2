package rtc

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestLoopbackREMBLayers: a subscriber without transport-cc is offered
// goog-remb on its video, and the REMB it sends picks its layer: a
// receiver estimate between the low and the middle layers brings it
// down to the low one, a generous one back up to the top.
func TestLoopbackREMBLayers(t *testing.T) {
	if testing.Short() {
		t.Skip("takes seconds of media")
	}
	m, engine, _, ctx, wg, cam := simulcastRig(t)
	rates := measuredLayers(t, cam)

	rembAPI, err := rtctest.ClientAPIWithoutTWCC()
	if err != nil {
		t.Fatal(err)
	}
	sub := newPeerOwnerWith(t, PeerConfig{Engine: engine, Mode: PeerSignaling, Metrics: m}, rembAPI)
	recvOnlyVideo(t, sub)
	if own := sub.clientOffer(); !strings.Contains(own.SDP, "goog-remb") {
		t.Fatal("the client's own offer lacks goog-remb: the test client is not what it should be")
	}
	sub.waitConnected()
	var video *DownTrack
	sub.call(func() {
		if err = sub.peer.AddSource("TR_cam", "PA_pub", cam); err == nil {
			video = sub.peer.sends["TR_cam"].dt
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	offer, _ := sub.answerServer()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		t.Fatal(err)
	}
	for _, md := range d.MediaDescriptions {
		if md.MediaName.Media != "video" {
			continue
		}
		var remb, twccExt bool
		for _, a := range md.Attributes {
			remb = remb || (a.Key == "rtcp-fb" && strings.HasSuffix(a.Value, " goog-remb"))
			twccExt = twccExt || (a.Key == "extmap" && strings.Contains(a.Value, sdp.TransportCCURI))
		}
		if !remb {
			t.Fatalf("the server's video section offers no goog-remb:\n%s", offer)
		}
		if twccExt {
			t.Fatal("transport-cc negotiated with a client that has none")
		}
	}
	tr, rec := recordFirstTrack(t, sub, wg)

	// The client's receiver estimate, sent ten times a second as a
	// browser does while it changes.
	var estimate atomic.Uint64
	estimate.Store((rates[0].Bitrate + rates[1].Bitrate) / 2)
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			remb := &rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: float32(estimate.Load()), SSRCs: []uint32{uint32(tr.SSRC())}}
			if err := sub.client.WriteRTCP([]rtcp.Packet{remb}); err != nil {
				return // the connection closed
			}
		}
	})
	layer := func() int { return video.Layer().Current }
	poll.Until(t, "the low layer, by the client's REMB", func() bool {
		// The layers' rates are measured as they arrive, and on a loaded
		// machine they move (a keyframe burst, a publisher slowed down):
		// the client's estimate follows them, so that it stays between the
		// two lowest layers rather than below what the lowest now costs.
		l := cam.Layers()
		if mid := (l[0].Bitrate + l[1].Bitrate) / 2; mid > estimate.Load()*6/5 || mid < estimate.Load()*5/6 {
			estimate.Store(mid)
		}
		// REMB's mantissa has 18 bits: the figure comes back rounded.
		b, want := sub.peer.Bandwidth(), float64(estimate.Load())
		return layer() == 0 && b.Source == EstimateREMB && math.Abs(float64(b.Estimate)-want) < want/100
	})
	estimate.Store(20_000_000)
	poll.Until(t, "the top layer, by the client's REMB", func() bool { return layer() == 2 })
	if n := m.bwe.down.Load(); n == 0 {
		t.Fatal("no move down counted")
	}
	checkContinuous(t, rec.get())
}

// recordFirstTrack waits for the first track sub's client receives and
// records its packets on a goroutine of wg.
func recordFirstTrack(t *testing.T, sub *peerOwner, wg *sync.WaitGroup) (*webrtc.TrackRemote, *recording) {
	t.Helper()
	var tr *webrtc.TrackRemote
	select {
	case tr = <-sub.clientTracks:
	case <-time.After(peerWait):
		t.Fatal("the subscriber got no track")
	}
	rec := &recording{}
	wg.Go(func() { rec.run(tr) })
	return tr, rec
}

// nextForwarder waits for the next track the server gets from pub and
// returns it with a Forwarder of it, counted in m.
func nextForwarder(t *testing.T, pub *peerOwner, engine *Engine, m *Metrics) (TrackEvent, *Forwarder) {
	t.Helper()
	var ev TrackEvent
	select {
	case ev = <-pub.serverTracks:
	case <-time.After(peerWait):
		t.Fatal("the server got fewer tracks than the client sent")
	}
	fwd, err := NewForwarder(ForwarderConfig{Track: ev.Track, RTCP: pub.peer, Engine: engine, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return ev, fwd
}

// serverSimulcast returns the Track the server makes of pub's camera in
// rtctest's three layers: one Forwarder per layer, counted in m, the Track
// on clk (nil: the system clock).
func serverSimulcast(t *testing.T, pub *peerOwner, engine *Engine, m *Metrics, clk clock.Clock) *Track {
	t.Helper()
	var track *Track
	for range rtctest.SimulcastRIDs {
		ev, fwd := nextForwarder(t, pub, engine, m)
		if track == nil {
			var err error
			if track, err = NewTrack(TrackConfig{Layer: fwd, RID: ev.Track.RID(), Clock: clk}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = track.Close() })
		} else if err := track.AddLayer(fwd, ev.Track.RID()); err != nil {
			t.Fatal(err)
		}
	}
	return track
}

// measuredLayers returns the three layers of track once each has a
// measured bitrate.
func measuredLayers(t *testing.T, track *Track) []LayerInfo {
	t.Helper()
	poll.Until(t, "three layers measured", func() bool {
		l := track.Layers()
		return len(l) == 3 && l[0].Bitrate > 0 && l[1].Bitrate > 0 && l[2].Bitrate > 0
	})
	return track.Layers()
}
