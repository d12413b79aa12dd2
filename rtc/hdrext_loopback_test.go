package rtc

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
)

// extClientAPI is a pion client that negotiates the given header
// extensions, in that order, for both kinds: the order decides the ids
// it offers.
func extClientAPI(t *testing.T, uris ...string) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	for _, uri := range uris {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, kind); err != nil {
				t.Fatal(err)
			}
		}
	}
	var s webrtc.SettingEngine
	s.SetIncludeLoopbackCandidate(true)
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	s.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(s))
}

// extID is the id uri has among exts, 0 for none.
func extID(exts []webrtc.RTPHeaderExtensionParameter, uri string) uint8 {
	for _, x := range exts {
		if x.URI == uri {
			return uint8(x.ID)
		}
	}
	return 0
}

// TestLoopbackHeaderExtensions: a pion publisher sends audio with its
// level and video with its orientation under ids of its own; a pion
// subscriber, whose connection the server numbers differently, gets both
// under its own ids, beside the transport-cc the server writes itself.
func TestLoopbackHeaderExtensions(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	engine := testEngine(t, defaultInterceptors)
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
		_ = engine.Close()
	}()

	// The publisher numbers abs-send-time first, so that its ids differ
	// from the server's.
	pub, err := extClientAPI(t, sdp.ABSSendTimeURI, VideoOrientationURI, AudioLevelURI).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, pub.Close)
	videoTrack, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "pub")
	audioTrack, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	videoSender, err := pub.AddTrack(videoTrack)
	if err != nil {
		t.Fatal(err)
	}
	audioSender, err := pub.AddTrack(audioTrack)
	if err != nil {
		t.Fatal(err)
	}
	serverPub, err := engine.NewPeerConnection()
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, serverPub.Close)
	forwarders := make(chan *Forwarder, 2)
	serverPub.OnTrack(func(track *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		f, err := NewForwarder(ForwarderConfig{Track: track, RTCP: serverPub, Engine: engine, HeaderExtensions: r.GetParameters().HeaderExtensions})
		if err != nil {
			t.Error(err)
			return
		}
		forwarders <- f
	})
	negotiate(ctx, t, pub, serverPub)
	pubLevelID := extID(audioSender.GetParameters().HeaderExtensions, AudioLevelURI)
	pubCVOID := extID(videoSender.GetParameters().HeaderExtensions, VideoOrientationURI)
	if pubLevelID == 0 || pubCVOID == 0 {
		t.Fatalf("publisher negotiated audio level %d, orientation %d", pubLevelID, pubCVOID)
	}

	// The publisher sends 20 ms of each until the test ends: audio at
	// -20 dBov, voiced; video keyframes turned 270 degrees (CVO 3).
	stop := make(chan struct{})
	var sending sync.WaitGroup
	sending.Add(1)
	go func() {
		defer sending.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := uint16(0); ; i++ {
			a := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: i, Timestamp: uint32(i) * 960}, Payload: []byte{0xfc, 1, 2, 3}}
			_ = a.Header.SetExtension(pubLevelID, []byte{0x80 | 20})
			v := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: i, Timestamp: uint32(i) * 1800, Marker: true}, Payload: []byte{0x10, 0x00, 0x9d, 0x01, 0x2a, 16, 0, 16, 0}}
			_ = v.Header.SetExtension(pubCVOID, []byte{3})
			if audioTrack.WriteRTP(&a) != nil || videoTrack.WriteRTP(&v) != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer sending.Wait()
	defer close(stop)

	var fa, fv *Forwarder
	for fa == nil || fv == nil {
		select {
		case f := <-forwarders:
			closers = append(closers, f.Close)
			if f.Kind() == webrtc.RTPCodecTypeAudio {
				fa = f
			} else {
				fv = f
			}
		case <-ctx.Done():
			t.Fatal("no tracks at the server")
		}
	}

	// The subscriber, on a connection whose estimator runs, so that the
	// server writes transport-cc on what it sends.
	serverSub, est, err := engine.newPeerConnection()
	if err != nil {
		t.Fatal(err)
	}
	closers = append(closers, serverSub.Close)
	est.setActive(true)
	var dts []*DownTrack
	for _, f := range []*Forwarder{fa, fv} {
		dt, err := NewDownTrack(DownTrackConfig{ID: f.Kind().String(), StreamID: "pub", Codec: f.Codec().RTPCodecCapability, RTCP: serverSub})
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, dt.Close)
		if _, err := serverSub.AddTrack(dt); err != nil {
			t.Fatal(err)
		}
		dts = append(dts, dt)
	}
	sub, err := extClientAPI(t, sdp.TransportCCURI, AudioLevelURI, VideoOrientationURI).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	var reading sync.WaitGroup
	// The readers end when the subscriber's connection closes.
	closers = append(closers, func() error { reading.Wait(); return nil }, sub.Close)
	type arrival struct {
		kind webrtc.RTPCodecType
		// ids are the subscriber's, as it negotiated them.
		levelID, cvoID, twccID uint8
		hdr                    rtp.Header
	}
	arrivals := make(chan arrival, 2)
	sub.OnTrack(func(track *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		reading.Add(1)
		defer reading.Done()
		exts := r.GetParameters().HeaderExtensions
		sent := false
		for {
			p, _, err := track.ReadRTP()
			if err != nil {
				return
			}
			if !sent {
				sent = true
				arrivals <- arrival{
					kind: track.Kind(), levelID: extID(exts, AudioLevelURI), cvoID: extID(exts, VideoOrientationURI),
					twccID: extID(exts, sdp.TransportCCURI), hdr: p.Header.Clone(),
				}
			}
		}
	})
	negotiate(ctx, t, serverSub, sub)
	for i, f := range []*Forwarder{fa, fv} {
		dts[i].TransportReady()
		if err := f.AddSubscriber(dts[i]); err != nil {
			t.Fatal(err)
		}
	}

	for got := 0; got < 2; got++ {
		var a arrival
		select {
		case a = <-arrivals:
		case <-ctx.Done():
			t.Fatalf("%d of 2 tracks arrived at the subscriber", got)
		}
		if a.twccID == 0 || len(a.hdr.GetExtension(a.twccID)) != 2 {
			t.Errorf("%s: no transport-cc under the subscriber's id %d: %v", a.kind, a.twccID, a.hdr.Extensions)
		}
		switch a.kind {
		case webrtc.RTPCodecTypeAudio:
			if a.levelID == 0 || a.levelID == pubLevelID {
				t.Fatalf("the subscriber's audio level id %d, the publisher's %d: nothing to remap", a.levelID, pubLevelID)
			}
			if got := a.hdr.GetExtension(a.levelID); len(got) != 1 || got[0] != 0x80|20 {
				t.Errorf("audio level under the subscriber's id %d: %x, want %x", a.levelID, got, 0x80|20)
			}
		case webrtc.RTPCodecTypeVideo:
			if a.cvoID == 0 || a.cvoID == pubCVOID {
				t.Fatalf("the subscriber's orientation id %d, the publisher's %d: nothing to remap", a.cvoID, pubCVOID)
			}
			if got := a.hdr.GetExtension(a.cvoID); len(got) != 1 || got[0] != 3 {
				t.Errorf("orientation under the subscriber's id %d: %x, want 03", a.cvoID, got)
			}
		}
	}
	if l := fa.AudioLevel(); l.Updates == 0 || l.DBov != 20 || !l.VoiceKnown {
		t.Errorf("the audio forwarder's level: %+v, want -20 dBov, voiced", l)
	}
}
