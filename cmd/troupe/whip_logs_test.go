package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
)

// A WHIP publish and a WHEP view, each connected as it should be, log no
// warning: the offer check's peer connection, closed at once, makes pion
// report its transports' start as failed, which is logged at debug.
func TestWHIPAndWHEPJoinsLogNoWarning(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.LogLevel, cfg.LogFormat = "debug", "json"
	s := startServer(t, cfg)
	s.mustDo(http.StatusCreated, http.MethodPost, "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	publish(t, s, "r1", "pub")

	viewer := loopbackPeer(t)
	if _, err := viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	tok := s.mustDo(http.StatusOK, http.MethodPost, "/api/v1/rooms/r1/tokens", `{"identity":"viewer","role":"subscriber"}`)
	answer, _ := postSDP(t, s, "/whep/r1", tok["token"].(string), gatheredOffer(t, viewer))
	if err := viewer.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the viewer's peer connection to come up", func() bool {
		return viewer.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	// Both offer checks' peer connections have had their start refused.
	poll.Until(t, "the offer checks' transports to end", func() bool {
		return strings.Count(s.log.String(), `"msg":"Failed to start manager: `) >= 2
	})
	for _, line := range strings.Split(strings.TrimSpace(s.log.String()), "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("%s", line)
		}
	}
}
