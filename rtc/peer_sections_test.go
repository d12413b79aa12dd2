package rtc

import (
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/rtc/rtctest"
)

// sectionsOwner is a peerOwner whose client publishes a camera and a mic
// on sections that send and receive, as the web page does, and is
// connected; clientMids are the mids of the client's sections.
func sectionsOwner(t *testing.T) (o *peerOwner, video *testSource, clientMids map[string]bool) {
	t.Helper()
	o, video, _ = newPeerTest(t)
	for _, c := range []webrtc.RTPCodecCapability{rtctest.VP8, rtctest.Opus} {
		track, err := webrtc.NewTrackLocalStaticRTP(c, "own", "client")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.client.AddTrack(track); err != nil {
			t.Fatal(err)
		}
	}
	offer := o.clientOffer()
	clientMids = make(map[string]bool)
	for mid, dir := range sectionDirections(parseSDP(t, offer.SDP)) {
		if dir != webrtc.RTPTransceiverDirectionSendrecv {
			t.Fatalf("the client's section %s is %s, want sendrecv", mid, dir)
		}
		clientMids[mid] = true
	}
	if len(clientMids) != 2 {
		t.Fatalf("the client offered %d sections, want 2", len(clientMids))
	}
	o.waitConnected()
	return o, video, clientMids
}

func parseSDP(t *testing.T, s string) *sdp.SessionDescription {
	t.Helper()
	d := &sdp.SessionDescription{}
	if err := d.UnmarshalString(s); err != nil {
		t.Fatal(err)
	}
	return d
}

// serverMid returns the mid of the section of offer that sends track id,
// which must be one of the server's.
func serverMid(t *testing.T, offer, id string, clientMids map[string]bool) string {
	t.Helper()
	md := sectionOf(t, offer, id)
	if md == nil {
		t.Fatalf("the offer has no section for %s:\n%s", id, offer)
	}
	mid, _ := md.Attribute(sdp.AttrKeyMID)
	if clientMids[mid] {
		t.Fatalf("%s went on the client's own section %s:\n%s", id, mid, offer)
	}
	return mid
}

// addAndAnswer has the Peer send src as id, has the client answer the
// offer that follows, and returns the mid of the source's section.
func addAndAnswer(t *testing.T, o *peerOwner, id string, src *Forwarder, clientMids map[string]bool) string {
	t.Helper()
	o.addSource(id, "PA_pub", src)
	offer, _ := o.answerServer()
	return serverMid(t, offer, id, clientMids)
}

// receiveTrack returns the client's receiver of the next track, which
// must be id's, once packets flow on it.
func receiveTrack(t *testing.T, o *peerOwner, id string) *clientRx {
	t.Helper()
	rx := o.receive()
	if rx.track.ID() != id {
		t.Fatalf("the client got track %s, want %s", rx.track.ID(), id)
	}
	waitPackets(t, id+"'s packets at the client", 5, rx.packets.Load)
	return rx
}

func waitEnded(t *testing.T, rx *clientRx) {
	t.Helper()
	select {
	case <-rx.ended:
	case <-time.After(peerWait):
		t.Fatalf("the client's receiver of %s did not end", rx.track.ID())
	}
}

// A client that publishes on sections that send and receive never gets a
// source on them, also once the server has renegotiated: the client's
// answer then reads sendonly on them, while pion judges them by the
// client's last offer, where they read sendrecv. Each source gets a
// section of the server's; a section whose source went is given again,
// but only once its removal has been negotiated (the client's receiver
// has ended, so the next source is a new track to it).
func TestPeerKeepsSourcesOffTheClientsSections(t *testing.T) {
	o, video, clientMids := sectionsOwner(t)
	audio := newTestSource(t, opusCodec)

	v1 := addAndAnswer(t, o, "TR_v1", video.f, clientMids)
	rx1 := receiveTrack(t, o, "TR_v1")
	// From here on the current remote description is the client's answer.
	addAndAnswer(t, o, "TR_a1", audio.f, clientMids)
	v2 := addAndAnswer(t, o, "TR_v2", video.f, clientMids)
	rx2 := receiveTrack(t, o, "TR_v2")
	addAndAnswer(t, o, "TR_a2", audio.f, clientMids)

	var err error
	o.call(func() {
		o.peer.RemoveSource("TR_v1")
		err = o.peer.AddSource("TR_v3", "PA_pub", video.f)
	})
	if err != nil {
		t.Fatal(err)
	}
	o.answerServer() // the removal's, made before TR_v3 came
	offer, _ := o.answerServer()
	if v3 := serverMid(t, offer, "TR_v3", clientMids); v3 == v1 || v3 == v2 {
		t.Fatalf("TR_v3 went on section %s, whose source's removal the client had not been told of (TR_v1 %s, TR_v2 %s)", v3, v1, v2)
	}
	waitEnded(t, rx1)
	receiveTrack(t, o, "TR_v3")

	o.call(func() { o.peer.RemoveSource("TR_v2") })
	o.answerServer()
	waitEnded(t, rx2)
	if v4 := addAndAnswer(t, o, "TR_v4", video.f, clientMids); v4 != v1 && v4 != v2 {
		t.Errorf("TR_v4 got a new section %s, want one of those freed, %s or %s", v4, v1, v2)
	}
	receiveTrack(t, o, "TR_v4")
}

// A section of the server's whose source went is the client's once the
// client sends on it: pion's AddTrack takes it for a track of the
// client's, as a browser's addTrack does (the web page's screen share),
// and the client offers to send on it. The next source gets a section of
// its own, not that one.
func TestPeerKeepsSourcesOffServerSectionsTheClientTook(t *testing.T) {
	o, video, clientMids := sectionsOwner(t)

	freed := addAndAnswer(t, o, "TR_v1", video.f, clientMids)
	rx := receiveTrack(t, o, "TR_v1")
	o.call(func() { o.peer.RemoveSource("TR_v1") })
	o.answerServer()
	waitEnded(t, rx)

	screen, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "screen", "client")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := o.client.AddTrack(screen)
	if err != nil {
		t.Fatal(err)
	}
	var took string
	for _, tr := range o.client.GetTransceivers() {
		if tr.Sender() == sender {
			took = tr.Mid()
		}
	}
	if took != freed {
		t.Fatalf("the client's new track went on section %q, want the freed %s", took, freed)
	}
	offer := o.clientOffer()
	if dir := sectionDirections(parseSDP(t, offer.SDP))[freed]; dir != webrtc.RTPTransceiverDirectionSendonly {
		t.Fatalf("the client offers section %s as %s, want sendonly", freed, dir)
	}

	clientMids[freed] = true
	addAndAnswer(t, o, "TR_v2", video.f, clientMids)
	receiveTrack(t, o, "TR_v2")
}
