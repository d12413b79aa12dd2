package rtc

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// recording keeps every packet a client receives on one track.
type recording struct {
	mu      sync.Mutex
	packets []sentPacket
}

func (r *recording) run(tr *webrtc.TrackRemote) {
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.packets = append(r.packets, sentPacket{hdr: pkt.Header.Clone(), payload: append([]byte(nil), pkt.Payload...)})
		r.mu.Unlock()
	}
}

func (r *recording) get() []sentPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sentPacket(nil), r.packets...)
}

// layersIn lists the layers of packets in the order they came, one entry
// per run of one layer; padding, which has no layer, is left out.
func layersIn(packets []sentPacket) []int {
	var out []int
	for _, p := range packets {
		if len(p.payload) == 0 {
			continue
		}
		if l := layerOfPacket(p); len(out) == 0 || out[len(out)-1] != l {
			out = append(out, l)
		}
	}
	return out
}

// TestLoopbackSimulcast: a pion publisher sends a VP8 camera in three rid
// layers to the server, which makes one Track of them. A subscriber
// receives the top layer alone; another asks for the lowest and moves to
// it on a keyframe asked of that layer's SSRC; both see one stream, with
// sequence numbers, timestamps and picture ids continuous packet by
// packet.
func TestLoopbackSimulcast(t *testing.T) {
	loopbackSimulcast(t, rtctest.AddSimulcast, rtctest.VP8, nil)
}

// TestLoopbackSimulcastH264 is TestLoopbackSimulcast with an H.264
// camera, packetized as pion does: the layers' sizes come from their
// SPS, and the switching subscriber's low layer starts on the STAP-A of
// its parameter sets, never on a slice of a frame before its IDR.
func TestLoopbackSimulcastH264(t *testing.T) {
	loopbackSimulcast(t, rtctest.AddSimulcastH264, rtctest.H264, nil)
}

// loopbackSimulcast runs TestLoopbackSimulcast with a camera that add
// adds, in codec. offer, when set, makes the publisher's offer out of
// the one its pion makes, and the publisher's camera names none of its
// packets' layers (simulcast by SSRC).
func loopbackSimulcast(t *testing.T, add func(*webrtc.PeerConnection, string) (*rtctest.SimulcastSender, error), codec webrtc.RTPCodecCapability, offer func(desc string, camera *rtctest.SimulcastSender) string) {
	// No bandwidth estimate: the layers are the subscribers' choice. On a
	// loaded machine the delay-based estimate may move the top subscriber
	// down (TestLoopbackBandwidthLayers tests that).
	engine, api, ctx, wg := loopbackRig(t, func(c *Config) { c.NoBandwidthEstimation = true })
	// The Track looks at its layers when the test says: a loaded machine
	// may hold the camera back for longer than the checks a layer may go
	// without packets before it counts as stopped (LayerIdleChecks), and
	// move the top subscriber down a layer.
	clk := clock.NewManual(time.Now())

	pub := newPeerOwner(t, engine, api)
	camera, err := add(pub.client, "PA_pub")
	if err != nil {
		t.Fatal(err)
	}
	if offer == nil {
		pub.clientOffer()
	} else {
		camera.Unnamed = true
		pub.mungedOffer(offer(pub.localOffer().SDP, camera))
	}
	pub.waitConnected()
	if err := camera.Start(ctx, pub.client, 20*time.Millisecond, wg, func(err error) { t.Errorf("publish: %v", err) }); err != nil {
		t.Fatal(err)
	}

	// The server's side: one Forwarder per layer, one Track of them.
	track := serverSimulcast(t, pub, engine, nil, clk)
	poll.Until(t, "the layers in order of size, each active", func() bool {
		clk.Advance(DefaultLayerCheckInterval) // a check: the layers' rates and activity
		l := track.Layers()
		for i, rid := range rtctest.SimulcastRIDs {
			size := rtctest.SimulcastSizes[i]
			if l[i].RID != rid || l[i].Width != size[0] || l[i].Height != size[1] || l[i].Bitrate == 0 || !l[i].Active {
				return false
			}
		}
		return true
	})

	subscribe := func() (*peerOwner, *DownTrack, *recording) {
		return subscribeLoopback(t, PeerConfig{Engine: engine, Mode: PeerSignaling}, api, track, wg)
	}
	_, top, topRec := subscribe()
	_, low, lowRec := subscribe()
	poll.Until(t, "both subscribers on the top layer", func() bool {
		return len(topRec.get()) >= 20 && len(lowRec.get()) >= 20
	})

	plisBefore := camera.PLIs(0)
	low.SetTargetLayer(0)
	poll.Until(t, "the low layer at its subscriber", func() bool {
		p := lowRec.get()
		return len(p) > 0 && layerOfPacket(p[len(p)-1]) == 0 && low.Layer().Current == 0
	})
	if camera.PLIs(0) == plisBefore {
		t.Fatal("the switch did not ask the low layer's SSRC for a keyframe")
	}
	n := len(lowRec.get())
	poll.Until(t, "more of the low layer", func() bool { return len(lowRec.get()) >= n+20 })

	if got := layersIn(topRec.get()); len(got) != 1 || got[0] != 2 {
		t.Fatalf("the top subscriber received layers %v, want the top alone", got)
	}
	if got := layersIn(lowRec.get()); len(got) != 2 || got[0] != 2 || got[1] != 0 {
		t.Fatalf("the switching subscriber received layers %v, want the top then the low one", got)
	}
	checkContinuousIn(t, codec.MimeType, topRec.get())
	checkContinuousIn(t, codec.MimeType, lowRec.get())
	if st := top.Stats(); st.LayerSwitches != 0 {
		t.Fatalf("the top subscriber switched %d times", st.LayerSwitches)
	}
	if st := low.Stats(); st.LayerSwitches != 1 || st.LayerSwitchesDown != 1 || st.LayerSwitchesUp != 0 {
		t.Fatalf("the switching subscriber switched %d times, %d down and %d up; want once, down", st.LayerSwitches, st.LayerSwitchesDown, st.LayerSwitchesUp)
	}
}
