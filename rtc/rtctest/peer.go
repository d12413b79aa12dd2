package rtctest

import (
	"testing"

	"github.com/pion/webrtc/v4"
)

// LoopbackPeer is a peer connection of ClientAPI, closed when the test
// ends.
func LoopbackPeer(t testing.TB) *webrtc.PeerConnection {
	t.Helper()
	api, err := ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}
