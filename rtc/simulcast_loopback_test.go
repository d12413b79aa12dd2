package rtc

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// simulcastRIDs and simulcastSizes are a browser's three layers, as the
// loopback publisher sends them.
var (
	simulcastRIDs  = []string{"q", "h", "f"}
	simulcastSizes = [][2]int{{320, 180}, {640, 360}, {1280, 720}}
)

// simulcastPublisher is a pion client that sends one VP8 camera in three
// rid layers, each frame in two packets whose last payload byte names the
// layer, and a keyframe on a layer when its SSRC is sent a PLI. Like a
// browser, it names each packet's mid and rid in header extensions: pion
// leaves that to its user.
type simulcastPublisher struct {
	tracks       []*webrtc.TrackLocalStaticRTP
	sender       *webrtc.RTPSender
	wantKey      []atomic.Bool
	plis         []atomic.Int32
	midID, ridID uint8
	mid          string
}

func newSimulcastPublisher(t *testing.T, pc *webrtc.PeerConnection) *simulcastPublisher {
	t.Helper()
	p := &simulcastPublisher{wantKey: make([]atomic.Bool, 3), plis: make([]atomic.Int32, 3)}
	for _, rid := range simulcastRIDs {
		tr, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "camera", "PA_pub", webrtc.WithRTPStreamID(rid))
		if err != nil {
			t.Fatal(err)
		}
		p.tracks = append(p.tracks, tr)
	}
	var err error
	if p.sender, err = pc.AddTrack(p.tracks[0]); err != nil {
		t.Fatal(err)
	}
	for _, tr := range p.tracks[1:] {
		if err := p.sender.AddEncoding(tr); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// serveKeyframeRequests reads each layer's RTCP until the sender stops.
func (p *simulcastPublisher) serveKeyframeRequests(wg *sync.WaitGroup) {
	for i, rid := range simulcastRIDs {
		wg.Go(func() {
			for {
				pkts, _, err := p.sender.ReadSimulcastRTCP(rid)
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					if _, ok := pkt.(*rtcp.PictureLossIndication); ok {
						p.plis[i].Add(1)
						p.wantKey[i].Store(true)
					}
				}
			}
		})
	}
}

// negotiated reads the extension ids and the mid the connection agreed on.
func (p *simulcastPublisher) negotiated(t *testing.T, pc *webrtc.PeerConnection) {
	t.Helper()
	for _, x := range p.sender.GetParameters().HeaderExtensions {
		switch x.URI {
		case sdp.SDESMidURI:
			p.midID = uint8(x.ID)
		case sdp.SDESRTPStreamIDURI:
			p.ridID = uint8(x.ID)
		}
	}
	for _, tr := range pc.GetTransceivers() {
		if tr.Sender() == p.sender {
			p.mid = tr.Mid()
		}
	}
	if p.midID == 0 || p.ridID == 0 || p.mid == "" {
		t.Fatalf("mid and rid not negotiated: %d, %d, %q", p.midID, p.ridID, p.mid)
	}
}

// run sends a frame on every layer each interval until ctx ends; every
// 100th frame is a keyframe, besides those asked for.
func (p *simulcastPublisher) run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := uint32(0); ; n++ {
		for i := range p.tracks {
			key := n%100 == 0 || p.wantKey[i].Swap(false)
			if err := p.writeFrame(i, n, key); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// writeFrame writes frame n of layer i in two packets: a 15-bit picture
// id, a keyframe header with the layer's size when key, and the layer's
// number as the last byte. Higher layers send more bytes.
func (p *simulcastPublisher) writeFrame(i int, n uint32, key bool) error {
	for part := uint32(0); part < 2; part++ {
		payload := []byte{0x80, 0x80}
		payload = binary.BigEndian.AppendUint16(payload, 0x8000|uint16(n+uint32(i)*1000)&0x7fff)
		if part == 0 {
			payload[0] |= 0x10
			if key {
				payload = append(payload, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a)
				payload = binary.LittleEndian.AppendUint16(payload, uint16(simulcastSizes[i][0]))
				payload = binary.LittleEndian.AppendUint16(payload, uint16(simulcastSizes[i][1]))
			} else {
				payload = append(payload, 0x01)
			}
		}
		payload = append(payload, make([]byte, 100+300*i)...)
		payload = append(payload, byte('0'+i))
		pkt := &rtp.Packet{
			Header: rtp.Header{
				Version: 2, Marker: part == 1,
				SequenceNumber: uint16(2*n + part + uint32(i)*20000),
				Timestamp:      n*3000 + uint32(i)*0x30000000,
			},
			Payload: payload,
		}
		if err := pkt.Header.SetExtension(p.midID, []byte(p.mid)); err != nil {
			return err
		}
		if err := pkt.Header.SetExtension(p.ridID, []byte(simulcastRIDs[i])); err != nil {
			return err
		}
		if err := p.tracks[i].WriteRTP(pkt); err != nil {
			return err
		}
	}
	return nil
}

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
// per run of one layer.
func layersIn(packets []sentPacket) []int {
	var out []int
	for _, p := range packets {
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
	engine := testEngine(t, defaultInterceptors)
	t.Cleanup(func() { _ = engine.Close() })
	api := clientAPI(t, false)
	var wg sync.WaitGroup
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(wg.Wait)
	t.Cleanup(stop)

	pub := newPeerOwner(t, engine, api)
	camera := newSimulcastPublisher(t, pub.client)
	pub.clientOffer()
	pub.waitConnected()
	camera.negotiated(t, pub.client)
	camera.serveKeyframeRequests(&wg)
	wg.Go(func() {
		if err := camera.run(ctx, 20*time.Millisecond); err != nil {
			t.Errorf("publish: %v", err)
		}
	})

	// The server's side: one Forwarder per layer, one Track of them.
	var track *Track
	for range simulcastRIDs {
		var ev TrackEvent
		select {
		case ev = <-pub.serverTracks:
		case <-time.After(peerWait):
			t.Fatal("the server got fewer than three layers")
		}
		fwd, err := NewForwarder(ForwarderConfig{Track: ev.Track, RTCP: pub.peer, Engine: engine})
		if err != nil {
			t.Fatal(err)
		}
		if track == nil {
			if track, err = NewTrack(TrackConfig{Layer: fwd, RID: ev.Track.RID()}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = track.Close() })
		} else if err := track.AddLayer(fwd, ev.Track.RID()); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "the layers in order of size", func() bool {
		l := track.Layers()
		for i, rid := range simulcastRIDs {
			if l[i].RID != rid || l[i].Width != simulcastSizes[i][0] || l[i].Height != simulcastSizes[i][1] || l[i].Bitrate == 0 {
				return false
			}
		}
		return true
	})

	subscribe := func() (*peerOwner, *DownTrack, *recording) {
		o := newPeerOwner(t, engine, api)
		recvOnlyVideo(t, o)
		o.clientOffer()
		o.waitConnected()
		var dt *DownTrack
		var err error
		o.call(func() {
			if err = o.peer.AddSource("TR_cam", "PA_pub", track); err == nil {
				dt = o.peer.sends["TR_cam"].dt
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		o.answerServer()
		rec := &recording{}
		select {
		case tr := <-o.clientTracks:
			wg.Go(func() { rec.run(tr) })
		case <-time.After(peerWait):
			t.Fatal("the subscriber got no track")
		}
		return o, dt, rec
	}
	_, top, topRec := subscribe()
	_, low, lowRec := subscribe()
	poll.Until(t, "both subscribers on the top layer", func() bool {
		return len(topRec.get()) >= 20 && len(lowRec.get()) >= 20
	})

	plisBefore := camera.plis[0].Load()
	low.SetTargetLayer(0)
	poll.Until(t, "the low layer at its subscriber", func() bool {
		p := lowRec.get()
		return len(p) > 0 && layerOfPacket(p[len(p)-1]) == 0 && low.Layer().Current == 0
	})
	if camera.plis[0].Load() == plisBefore {
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
	checkContinuous(t, topRec.get())
	checkContinuous(t, lowRec.get())
	if st := top.Stats(); st.LayerSwitches != 0 {
		t.Fatalf("the top subscriber switched %d times", st.LayerSwitches)
	}
	if st := low.Stats(); st.LayerSwitches != 1 {
		t.Fatalf("the switching subscriber switched %d times", st.LayerSwitches)
	}
}
