package rtc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// A client that publishes on a section that only sends gets the section
// of a source that went back for the next one: its description does not
// grow by a section for every source that ever came to its room (a
// member that stays while others come and go would pass the size a
// description may have).
func TestPeerReusesFreedSectionsOfAPublisher(t *testing.T) {
	o, src, _ := newPeerTest(t)
	if _, err := o.client.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	o.clientOffer()
	o.waitConnected()

	const sources = 4
	var offer string
	for i := range sources {
		id := fmt.Sprintf("TR_%d", i)
		o.addSource(id, "PA_pub", src.f)
		offer, _ = o.answerServer()
		rx := o.receive()
		if rx.track.ID() != id {
			t.Fatalf("the client got track %s, want %s", rx.track.ID(), id)
		}
		waitPackets(t, id+"'s packets at the client", 5, rx.packets.Load)
		o.call(func() { o.peer.RemoveSource(id) })
		o.answerServer()
		select {
		case <-rx.ended:
		case <-time.After(peerWait):
			t.Fatalf("the client's receiver of %s did not end", id)
		}
	}
	// The client's own section and one of the server's.
	if n := strings.Count(offer, "\nm="); n != 2 {
		t.Errorf("after %d sources, one at a time, the offer has %d sections, want 2:\n%s", sources, n, offer)
	}
}
