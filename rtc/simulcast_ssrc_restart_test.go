package rtc

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestLoopbackSimulcastBySSRCICERestart: a WHIP camera whose layers are
// told apart by SSRC alone (a=ssrc-group:SIM, no rids, no mid or rid
// header extension) restarts ICE with a trickle ICE fragment of new
// credentials, as a WHIP PATCH carries it. The server applies its offer
// again under the new credentials, in the rid form it read it in (the
// same mid, the same rids), and every layer goes on: each layer's
// packets keep coming to its Forwarder, in order of size still, and a
// subscriber goes on receiving the camera (what was sent while ICE
// connected again is lost: no continuity is asked).
func TestLoopbackSimulcastBySSRCICERestart(t *testing.T) {
	engine, api, ctx, wg := loopbackRig(t, func(c *Config) { c.NoBandwidthEstimation = true })
	pub := newPeerOwnerWith(t, PeerConfig{Engine: engine, Mode: PeerWHIP}, api)
	camera, err := rtctest.AddSimulcast(pub.client, "PA_pub")
	if err != nil {
		t.Fatal(err)
	}
	camera.Unnamed = true
	// A WHIP answer is the reply to the offer, not a description sent.
	offer := withoutRIDs(t, pub.localOffer().SDP, camera.SSRCs(), true)
	answer := pub.applyOffer(offer)
	checkInClientTerms(t, offer, answer)
	pub.setRemote(webrtc.SDPTypeAnswer, answer)
	pub.waitConnected()
	if err := camera.Start(ctx, pub.client, 20*time.Millisecond, wg, func(err error) { t.Errorf("publish: %v", err) }); err != nil {
		t.Fatal(err)
	}
	var layers []*Forwarder
	var track *Track
	for range rtctest.SimulcastRIDs {
		ev, fwd := nextForwarder(t, pub, engine, nil)
		layers = append(layers, fwd)
		if track == nil {
			if track, err = NewTrack(TrackConfig{Layer: fwd, RID: ev.Track.RID()}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = track.Close() })
		} else if err := track.AddLayer(fwd, ev.Track.RID()); err != nil {
			t.Fatal(err)
		}
	}
	_, _, rec := subscribeLoopback(t, PeerConfig{Engine: engine, Mode: PeerSignaling}, api, track, wg)
	poll.Until(t, "the camera at the subscriber", func() bool { return len(rec.get()) >= 20 })
	before := pub.serverRemote(t)
	ssrcs := layerSSRCs(track)

	// The client restarts ICE; its candidates go in the fragment, as a
	// WHIP client sends them, not trickled one by one.
	pub.client.OnICECandidate(func(*webrtc.ICECandidate) {})
	restart, err := pub.client.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pub.client)
	if err := pub.client.SetLocalDescription(restart); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-time.After(peerWait):
		t.Fatal("the client did not gather its new candidates")
	}
	frag, err := ICEFragmentOf(pub.client.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	mark := make([]uint64, len(layers))
	for i, l := range layers {
		mark[i] = l.Stats().Packets
	}
	received := len(rec.get())
	var update ICEUpdate
	pub.call(func() { update, err = pub.peer.ApplyICEFragment(frag.String()) })
	if err != nil || update.Restart == nil {
		t.Fatalf("the restart fragment: %+v, %v", update, err)
	}
	server := update.Restart
	pub.mu.Lock()
	err = pub.client.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer,
		SDP: withICECredentials(pub.client.CurrentRemoteDescription().SDP, server.Ufrag, server.Pwd)})
	for _, c := range server.Sections[0].Candidates {
		if err == nil {
			err = pub.client.AddICECandidate(webrtc.ICECandidateInit{Candidate: c})
		}
	}
	pub.mu.Unlock()
	if err != nil {
		t.Fatalf("the client takes the server's restart: %v", err)
	}
	if n := pub.peer.ICERestarts(); n != 1 {
		t.Errorf("%d ICE restarts counted, want 1", n)
	}

	// What pion read of the client is what it read before, but the
	// credentials: the same sections, mids, rids and header extensions.
	after := withICECredentials(pub.serverRemote(t), frag.Ufrag, frag.Pwd) // without its candidates
	if want := withICECredentials(before, frag.Ufrag, frag.Pwd); after != want {
		t.Errorf("the offer the restart applied:\n%s\nwant the first one's rid form with the new credentials:\n%s", after, want)
	}
	for i, l := range layers {
		poll.Until(t, "layer "+rtctest.SimulcastRIDs[i]+"'s packets after the restart", func() bool { return l.Stats().Packets >= mark[i]+50 })
	}
	poll.Until(t, "the camera at the subscriber after the restart", func() bool { return len(rec.get()) >= received+50 })
	if got := layerSSRCs(track); !slices.Equal(got, ssrcs) {
		t.Errorf("the layers after the restart: SSRCs %v, want %v", got, ssrcs)
	}
	for i, l := range track.Layers() {
		if l.RID != rtctest.SimulcastRIDs[i] || l.Width != rtctest.SimulcastSizes[i][0] || !l.Active {
			t.Errorf("layer %d after the restart: %+v", i, l)
		}
	}
}

// serverRemote returns the client's description as the server's pion
// has it.
func (o *peerOwner) serverRemote(t *testing.T) string {
	t.Helper()
	var d string
	o.call(func() { d = o.peer.pc.RemoteDescription().SDP })
	return d
}

// layerSSRCs returns the SSRCs of track's layers, lowest first.
func layerSSRCs(track *Track) []uint32 {
	var out []uint32
	for _, l := range track.Layers() {
		out = append(out, l.SSRC)
	}
	return out
}
