package rtc

import (
	"testing"

	"github.com/pion/webrtc/v4"
)

// BenchmarkNewPeerConnection is the server's share of a join's media setup:
// a peer connection, a transceiver and the offer (which starts ICE
// gathering on the shared port), then its close.
func BenchmarkNewPeerConnection(b *testing.B) {
	e := testEngine(b, defaultInterceptors)
	b.Cleanup(func() { e.Close() })
	b.ReportAllocs()
	for b.Loop() {
		pc, err := e.NewPeerConnection()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			b.Fatal(err)
		}
		offer, err := pc.CreateOffer(nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := pc.SetLocalDescription(offer); err != nil {
			b.Fatal(err)
		}
		if err := pc.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
