package rtc

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// holdICEStart keeps the server's ICE transport from starting until the
// returned release is called (the test's cleanup calls it too): it holds
// pion's chain of operations, where the transport starts after the first
// exchange, in the negotiationneeded event that the Peer's first source
// fires on it. A late-scheduled goroutine on a loaded machine does the
// same. Call it before the Peer's first source.
func holdICEStart(t *testing.T, o *peerOwner) (entered <-chan struct{}, release func()) {
	t.Helper()
	in, out := make(chan struct{}), make(chan struct{})
	first := true
	o.peer.pc.OnNegotiationNeeded(func() {
		if !first {
			return
		}
		first = false // the chain runs one operation at a time
		close(in)
		<-out
	})
	released := false
	release = func() {
		if !released {
			released = true
			close(out)
		}
	}
	t.Cleanup(release)
	return in, release
}

// The Peer offers a source as the client offers a track (glare): the Peer
// drops its offer and answers the client's. The client offers again at
// once, before the server's ICE transport has started (it starts on one
// of pion's goroutines after the first exchange): pion would take that
// offer for an ICE restart, since its agent has no remote credentials to
// compare with yet, and answer with new credentials of its own, where a
// browser refuses the answer ("ICE restart" not asked for) and a pion
// client keeps checking with the old ones. The Peer waits for its
// transport instead, refuses the offer when it does not start in time, and
// every description it sends carries the credentials of its first.
func TestPeerKeepsICECredentialsThroughGlare(t *testing.T) {
	o, release := heldPeerWithSource(t)
	dropped := o.nextDesc(webrtc.SDPTypeOffer)
	ufrag := ufragOf(dropped.SDP)

	// The client's offer crosses the Peer's, which it ignores (impolite).
	first := o.localOffer()
	answer := o.applyOffer(first.SDP)
	if got := o.nextDesc(webrtc.SDPTypeAnswer); got.SDP != answer {
		t.Fatal("the answer sent differs from the one returned")
	}
	if got := ufragOf(answer); got != ufrag {
		t.Fatalf("the answer after the glare has ufrag %s, the dropped offer %s", got, ufrag)
	}
	o.setRemote(webrtc.SDPTypeAnswer, answer)

	// At once a track of its own, while the server's transport is held.
	offerBeforeICEStart(t, o, release, ufrag)

	// The offer the glare dropped comes again, in the same session.
	offer, _ := o.answerServer()
	if got := ufragOf(offer); got != ufrag {
		t.Fatalf("the server's offer after the glare has ufrag %s, the session's is %s", got, ufrag)
	}
	if sectionOf(t, offer, "TR_v") == nil {
		t.Fatal("the offer after the glare does not send the source")
	}
	rx := o.receive()
	waitPackets(t, "the source at the client", 20, rx.packets.Load)
}

// The client answers the Peer's first offer, then offers a track of its
// own at once, before the server's ICE transport has started: the same
// wait, and the client's connection comes up with the session's
// credentials and gets the source.
func TestPeerKeepsICECredentialsOnEarlyOffer(t *testing.T) {
	o, release := heldPeerWithSource(t)
	offer, _ := o.answerServer()

	offerBeforeICEStart(t, o, release, ufragOf(offer))
	rx := o.receive()
	waitPackets(t, "the source at the client", 20, rx.packets.Load)
}

// offerBeforeICEStart has the client offer a track of its own while the
// server's ICE transport is held (holdICEStart) after the first exchange:
// the offer is refused, changing nothing; once release has let the
// transport start, the same offer is answered with ufrag, the session's,
// and the connection comes up.
func offerBeforeICEStart(t *testing.T, o *peerOwner, release func(), ufrag string) {
	t.Helper()
	addClientMic(t, o)
	offer := o.localOffer()
	var early string
	var err error
	o.call(func() { early, err = o.peer.ApplyOffer(offer.SDP) })
	switch {
	case err == nil:
		t.Fatalf("an offer before the server's ICE transport started was answered, with ufrag %s (the session's is %s)", ufragOf(early), ufrag)
	case !errors.Is(err, ErrNegotiationState):
		t.Fatalf("the early offer was refused with %v, want ErrNegotiationState", err)
	}
	o.noDesc()
	if got := ufragOf(o.peer.pc.LocalDescription().SDP); got != ufrag {
		t.Fatalf("the refused offer changed the server's ufrag from %s to %s", ufrag, got)
	}
	if s := o.peer.pc.SignalingState(); s != webrtc.SignalingStateStable {
		t.Fatalf("the refused offer left the server in %s", s)
	}

	// Once the transport has started, the same offer is answered with the
	// session's credentials.
	release()
	poll.Until(t, "the server's ICE transport started", func() bool {
		return o.peer.ICEConnectionState() != webrtc.ICEConnectionStateNew
	})
	answer := o.applyOffer(offer.SDP)
	// ICE may have connected meanwhile, and the Peer offered what it held
	// back: that offer crossed the client's, and was dropped.
	for {
		d := <-o.descs // applyOffer returned: the answer is queued
		if got := ufragOf(d.SDP); got != ufrag {
			t.Fatalf("the server's %s has ufrag %s, the session's is %s", d.Type, got, ufrag)
		}
		if d.Type == webrtc.SDPTypeAnswer {
			if d.SDP != answer {
				t.Fatal("the answer sent differs from the one returned")
			}
			break
		}
	}
	o.setRemote(webrtc.SDPTypeAnswer, answer)
	o.waitConnected()
}

// heldPeerWithSource starts a Peer with a short ICEStartTimeout (the
// tests wait it out once), whose client has a section that receives, and
// has it send a fed VP8 source as "TR_v", its ICE transport held from
// starting until release (holdICEStart).
func heldPeerWithSource(t *testing.T) (o *peerOwner, release func()) {
	t.Helper()
	engine := testEngine(t, defaultInterceptors)
	t.Cleanup(func() { _ = engine.Close() })
	src := newTestSource(t, vp8Codec)
	src.feed(t)
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	o = newPeerOwnerWith(t, PeerConfig{Engine: engine, Mode: PeerSignaling, ICEStartTimeout: 100 * time.Millisecond}, api)
	entered, release := holdICEStart(t, o)
	recvOnlyVideo(t, o)
	o.addSource("TR_v", "PA_pub", src.f)
	select {
	case <-entered:
	case <-time.After(peerWait):
		t.Fatal("the server's connection fired no negotiationneeded")
	}
	return o, release
}
