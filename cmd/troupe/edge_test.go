package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// publishVideo joins room through s by WHIP with a pion peer on loopback
// UDP that sends synthetic VP8 until the test ends.
func publishVideo(t *testing.T, s *testServer, room string) {
	t.Helper()
	tok := s.mustDo(200, "POST", "/api/v1/rooms/"+room+"/tokens", `{"identity":"pub","role":"publisher"}`)["token"].(string)
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pc.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	sender := &rtctest.Sender{Track: track, PayloadSize: 202, TimestampStep: 3000}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		pc.Close() // ends the keyframe requests' reader
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		sender.ServeKeyframeRequests(rs)
	}()
	answer := sdpExchange(t, s, "/whip/"+room, tok, pc)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sender.Run(ctx, 1<<30, 5*time.Millisecond) // until canceled
	}()
	// A WHEP viewer gets the tracks published when it joins.
	poll.Until(t, "pub's track to be published", func() bool {
		status, v := s.do("GET", "/api/v1/rooms/"+room+"/participants", "")
		return status == http.StatusOK && strings.Contains(fmt.Sprint(v), "kind:video")
	})
}

// sdpExchange posts pc's gathered offer to a WHIP or WHEP path and
// returns the answer.
func sdpExchange(t *testing.T, s *testServer, path, token string, pc *webrtc.PeerConnection) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	offer, err := rtctest.GatheredOffer(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", s.url+path, strings.NewReader(offer))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s %v", path, resp.StatusCode, answer, err)
	}
	return string(answer)
}

// edgeClientAPI is a pion API on loopback whose ICE uses only the network
// types given.
func edgeClientAPI(t *testing.T, types ...webrtc.NetworkType) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes(types)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

// watch subscribes to room through s by WHEP with a peer of api made with
// conf, waits for video to flow, and returns the peer's selected candidate
// pair.
func watch(t *testing.T, s *testServer, room string, api *webrtc.API, conf webrtc.Configuration) *webrtc.ICECandidatePair {
	t.Helper()
	tok := s.mustDo(200, "POST", "/api/v1/rooms/"+room+"/tokens", `{"identity":"viewer","role":"subscriber"}`)["token"].(string)
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	tc, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	if err != nil {
		t.Fatal(err)
	}
	tracks := make(chan *rtctest.Receiver, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		r := rtctest.NewReceiver(tr)
		tracks <- r
		wg.Add(1)
		defer wg.Done()
		r.Run()
	})
	answer := sdpExchange(t, s, "/whep/"+room, tok, pc)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	var r *rtctest.Receiver
	poll.Until(t, "the viewer's video track", func() bool {
		select {
		case r = <-tracks:
			return true
		default:
			return false
		}
	})
	poll.Until(t, "100 video packets at the viewer", func() bool { return r.Stats().Packets >= 100 })
	checkIntact(t, r)
	pair, err := tc.Receiver().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected candidate pair: %v, %v", pair, err)
	}
	return pair
}

func checkIntact(t *testing.T, r *rtctest.Receiver) {
	t.Helper()
	if st := r.Stats(); st.Corrupt > 0 || st.OutOfOrder > 0 {
		t.Errorf("%d packets damaged, %d out of order", st.Corrupt, st.OutOfOrder)
	}
}

// A client whose ICE may use TCP only connects through the server's ICE
// TCP port and gets media.
func TestICEOverTCP(t *testing.T) {
	s := startServer(t, testConfig(t.TempDir()))
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	publishVideo(t, s, "r1")
	pair := watch(t, s, "r1", edgeClientAPI(t, webrtc.NetworkTypeTCP4), webrtc.Configuration{})
	if pair.Local.Protocol != webrtc.ICEProtocolTCP || pair.Remote.Protocol != webrtc.ICEProtocolTCP || pair.Remote.TCPType != "passive" {
		t.Fatalf("selected pair %s, want TCP to the server's passive candidate", pair)
	}
}

// Without ICE over TCP, the server offers no TCP candidate.
func TestICEOverTCPOff(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.RTCTCPPort = rtcTCPOff
	s := startServer(t, cfg)
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	tok := s.mustDo(200, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"viewer","role":"subscriber"}`)["token"].(string)
	pc, err := edgeClientAPI(t, webrtc.NetworkTypeUDP4).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	answer := sdpExchange(t, s, "/whep/r1", tok, pc)
	if !strings.Contains(answer, " udp ") || strings.Contains(strings.ToLower(answer), " tcp ") {
		t.Fatalf("answer's candidates, want UDP only:\n%s", answer)
	}
}
