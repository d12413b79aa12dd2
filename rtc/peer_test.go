package rtc

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// peerWait bounds every wait of the Peer tests: a bound against a hang,
// as generous as poll's, for -race on busy cores.
const peerWait = poll.Timeout

// peerOwner plays a Peer's owner as the participant actor does: one
// goroutine makes every call on the Peer and handles every event pion
// reports, in order. Its client is a pion peer over loopback.
type peerOwner struct {
	t      *testing.T
	peer   *Peer
	client *webrtc.PeerConnection
	ops    chan func()
	stop   chan struct{}
	done   chan struct{}

	descs         chan webrtc.SessionDescription // OnDescription
	skipped       chan *DownTrack
	serverTracks  chan TrackEvent
	clientTracks  chan *webrtc.TrackRemote
	connected     chan struct{}
	connectedOnce sync.Once

	// peerClosed is set, on the owner's goroutine, once the test closes
	// the server's peer: a client candidate that comes after it has no
	// agent to go to.
	peerClosed bool

	mu        sync.Mutex // guards the following
	closedDTs []*DownTrack
	paused    []TrackPausedEvent
	// toClient are the server's candidates the client has not taken yet:
	// it needs a remote description first, as a browser does.
	toClient []webrtc.ICECandidateInit
}

// newPeerOwner starts a PeerSignaling Peer on engine and its client,
// made with api.
func newPeerOwner(t *testing.T, engine *Engine, api *webrtc.API) *peerOwner {
	t.Helper()
	return newPeerOwnerWith(t, PeerConfig{Engine: engine, Mode: PeerSignaling}, api)
}

// newPeerOwnerWith is newPeerOwner of a Peer made with cfg.
func newPeerOwnerWith(t *testing.T, cfg PeerConfig, api *webrtc.API) *peerOwner {
	t.Helper()
	peer, err := NewPeer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	o := &peerOwner{
		t: t, peer: peer, client: client,
		ops:          make(chan func(), 256),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		descs:        make(chan webrtc.SessionDescription, 16),
		skipped:      make(chan *DownTrack, 4),
		serverTracks: make(chan TrackEvent, 4),
		clientTracks: make(chan *webrtc.TrackRemote, 4),
		connected:    make(chan struct{}),
	}
	go o.loop()
	o.call(func() {
		peer.Start(PeerHandlers{
			OnEvent:        func(ev PeerEvent) { o.post(func() { peer.Handle(ev); o.observe(ev) }) },
			OnDescription:  func(d webrtc.SessionDescription) { o.descs <- d },
			OnTrackSkipped: func(dt *DownTrack) { o.skipped <- dt },
			OnDownTrackClosed: func(dt *DownTrack) {
				o.mu.Lock()
				o.closedDTs = append(o.closedDTs, dt)
				o.mu.Unlock()
			},
		})
	})
	client.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		o.post(func() {
			if o.peerClosed {
				return
			}
			if err := peer.AddCandidate(init); err != nil {
				t.Errorf("server refused the client's candidate: %v", err)
			}
		})
	})
	client.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { o.clientTracks <- tr })
	t.Cleanup(o.close)
	return o
}

func (o *peerOwner) loop() {
	defer close(o.done)
	for {
		select {
		case f := <-o.ops:
			f()
		case <-o.stop:
			return
		}
	}
}

// post has the owner run f, unless it has stopped.
func (o *peerOwner) post(f func()) {
	select {
	case o.ops <- f:
	case <-o.stop:
	}
}

// call has the owner run f and waits for it.
func (o *peerOwner) call(f func()) {
	o.t.Helper()
	ran := make(chan struct{})
	o.post(func() { f(); close(ran) })
	select {
	case <-ran:
	case <-time.After(peerWait):
		o.t.Fatal("the owner did not run a call")
	}
}

func (o *peerOwner) observe(ev PeerEvent) {
	switch ev := ev.(type) {
	case TrackEvent:
		o.serverTracks <- ev
	case CandidateEvent:
		if ev.Candidate != nil {
			o.mu.Lock()
			o.toClient = append(o.toClient, *ev.Candidate)
			if o.client.RemoteDescription() != nil {
				o.flushToClient()
			}
			o.mu.Unlock()
		}
	case ConnectionStateEvent:
		if ev.State == webrtc.PeerConnectionStateConnected {
			o.connectedOnce.Do(func() { close(o.connected) })
		}
	case TrackPausedEvent:
		o.mu.Lock()
		o.paused = append(o.paused, ev)
		o.mu.Unlock()
	case FailureEvent:
		o.t.Errorf("peer failure: %v", ev.Err)
	}
}

// close closes the Peer on its owner's goroutine, then the owner and the
// client.
func (o *peerOwner) close() {
	select {
	case <-o.done:
	default:
		o.call(func() {
			o.peerClosed = true
			if err := o.peer.Close(); err != nil {
				o.t.Errorf("close peer: %v", err)
			}
		})
		close(o.stop)
		<-o.done
	}
	if err := o.client.Close(); err != nil {
		o.t.Errorf("close client: %v", err)
	}
}

func (o *peerOwner) closedDownTracks() []*DownTrack {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*DownTrack(nil), o.closedDTs...)
}

// addSource has the Peer send src to the client.
func (o *peerOwner) addSource(id, streamID string, src *Forwarder) {
	o.t.Helper()
	var err error
	o.call(func() { err = o.peer.AddSource(id, streamID, src) })
	if err != nil {
		o.t.Fatalf("add source %s: %v", id, err)
	}
}

// nextDesc returns the next description the Peer gave its client.
func (o *peerOwner) nextDesc(want webrtc.SDPType) webrtc.SessionDescription {
	o.t.Helper()
	select {
	case d := <-o.descs:
		if d.Type != want {
			o.t.Fatalf("the peer sent an %s, want an %s", d.Type, want)
		}
		return d
	case <-time.After(peerWait):
		o.t.Fatalf("the peer sent no %s", want)
	}
	return webrtc.SessionDescription{}
}

// noDesc fails if the Peer has given its client a description not read yet.
func (o *peerOwner) noDesc() {
	o.t.Helper()
	select {
	case d := <-o.descs:
		o.t.Fatalf("the peer sent an %s", d.Type)
	default:
	}
}

// clientOffer makes the client's offer and has the Peer answer it; the
// answer comes back both ways, the same. It returns the client's offer.
func (o *peerOwner) clientOffer() webrtc.SessionDescription {
	o.t.Helper()
	offer := o.localOffer()
	answer := o.applyOffer(offer.SDP)
	if got := o.nextDesc(webrtc.SDPTypeAnswer); got.SDP != answer {
		o.t.Fatal("the answer sent differs from the one returned")
	}
	o.setRemote(webrtc.SDPTypeAnswer, answer)
	return offer
}

func (o *peerOwner) localOffer() webrtc.SessionDescription {
	o.t.Helper()
	offer, err := o.client.CreateOffer(nil)
	if err != nil {
		o.t.Fatal(err)
	}
	if err := o.client.SetLocalDescription(offer); err != nil {
		o.t.Fatal(err)
	}
	return offer
}

func (o *peerOwner) applyOffer(offer string) string {
	o.t.Helper()
	var answer string
	var err error
	o.call(func() { answer, err = o.peer.ApplyOffer(offer) })
	if err != nil {
		o.t.Fatalf("apply the client's offer: %v", err)
	}
	return answer
}

func (o *peerOwner) setRemote(typ webrtc.SDPType, s string) {
	o.t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.client.SetRemoteDescription(webrtc.SessionDescription{Type: typ, SDP: s}); err != nil {
		o.t.Fatalf("client: apply the server's %s: %v", typ, err)
	}
	o.flushToClient()
}

// flushToClient gives the client the server's candidates. mu is held.
func (o *peerOwner) flushToClient() {
	for _, c := range o.toClient {
		if err := o.client.AddICECandidate(c); err != nil {
			o.t.Errorf("client refused a server candidate: %v", err)
		}
	}
	o.toClient = nil
}

// answerServer has the client answer the Peer's next offer, and returns
// the offer and the answer.
func (o *peerOwner) answerServer() (offer, answer string) {
	o.t.Helper()
	offer = o.nextDesc(webrtc.SDPTypeOffer).SDP
	o.setRemote(webrtc.SDPTypeOffer, offer)
	a, err := o.client.CreateAnswer(nil)
	if err != nil {
		o.t.Fatal(err)
	}
	if err := o.client.SetLocalDescription(a); err != nil {
		o.t.Fatal(err)
	}
	o.call(func() { err = o.peer.ApplyAnswer(a.SDP) })
	if err != nil {
		o.t.Fatalf("apply the client's answer: %v", err)
	}
	return offer, a.SDP
}

func (o *peerOwner) waitConnected() {
	o.t.Helper()
	select {
	case <-o.connected:
	case <-time.After(peerWait):
		o.t.Fatal("the connection did not come up")
	}
}

// receive returns the client's next track, read until it ends.
func (o *peerOwner) receive() *clientRx {
	o.t.Helper()
	select {
	case tr := <-o.clientTracks:
		rx := &clientRx{track: tr, ended: make(chan struct{})}
		go rx.run()
		return rx
	case <-time.After(peerWait):
		o.t.Fatal("the client got no track")
	}
	return nil
}

// clientRx counts what the client receives on one track.
type clientRx struct {
	track   *webrtc.TrackRemote
	packets atomic.Int64
	ended   chan struct{}
}

func (r *clientRx) run() {
	defer close(r.ended)
	for {
		if _, _, err := r.track.ReadRTP(); err != nil {
			return
		}
		r.packets.Add(1)
	}
}

// testSource is a Forwarder fed with VP8 (or only made, for another
// codec), as a publisher's track would be.
type testSource struct {
	f     *Forwarder
	track *chanTrack
	stop  func() // stops feeding it, and waits
}

func newTestSource(t *testing.T, codec webrtc.RTPCodecParameters) *testSource {
	t.Helper()
	s := &testSource{track: newChanTrack(codec), stop: func() {}}
	f, err := NewForwarder(ForwarderConfig{Track: s.track, RTCP: &rtcpSink{}})
	if err != nil {
		t.Fatal(err)
	}
	s.f = f
	t.Cleanup(func() { _ = f.Close() })
	return s
}

// feed feeds the source VP8 frames, a keyframe every ten, until stop or
// the end of the test.
func (s *testSource) feed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	s.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(s.stop)
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond) // the frame rate, not a wait
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			pkt := rawRTP(t, 96, uint16(i), uint32(3000*i), i%10 == 0, rtctest.CounterPayload(uint32(i), 100))
			select {
			case s.track.in <- pkt:
			case <-ctx.Done():
				return
			}
		}
	})
}

// newPeerTest starts an engine, a VP8 source fed until the test ends, and
// a Peer's owner whose client takes codecs (pion's defaults if none).
func newPeerTest(t *testing.T, codecs ...webrtc.RTPCodecCapability) (*peerOwner, *testSource, *Engine) {
	t.Helper()
	engine := testEngine(t, defaultInterceptors)
	t.Cleanup(func() { _ = engine.Close() }) // last: cleanups run last-in first-out
	src := newTestSource(t, vp8Codec)
	src.feed(t)
	api, err := rtctest.ClientAPIWithCodecs(codecs...)
	if err != nil {
		t.Fatal(err)
	}
	return newPeerOwner(t, engine, api), src, engine
}

// h264Codec is constrained baseline H.264 at the engine's payload type.
var h264Codec = webrtc.RTPCodecParameters{RTPCodecCapability: rtctest.H264, PayloadType: 104}

// sectionOf returns the media section of desc that carries track id, or nil.
func sectionOf(t *testing.T, desc, id string) *sdp.MediaDescription {
	t.Helper()
	return findSection(t, desc, func(md *sdp.MediaDescription) bool {
		msid, ok := md.Attribute("msid")
		return ok && strings.HasSuffix(msid, " "+id)
	})
}

func ufragOf(desc string) string {
	_, rest, _ := strings.Cut(desc, "a=ice-ufrag:")
	ufrag, _, _ := strings.Cut(rest, "\r\n")
	return ufrag
}

func waitPackets(t *testing.T, what string, n int64, count func() int64) {
	t.Helper()
	poll.Until(t, what, func() bool { return count() >= n })
}

// addClientMic adds an Opus track to the client, for its next offer.
func addClientMic(t *testing.T, o *peerOwner) *webrtc.TrackLocalStaticRTP {
	t.Helper()
	audio, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "mic", "client")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.client.AddTrack(audio); err != nil {
		t.Fatal(err)
	}
	return audio
}

// recvOnlyVideo gives the client a section to offer that sends nothing.
func recvOnlyVideo(t *testing.T, o *peerOwner) {
	t.Helper()
	if _, err := o.client.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
}

// The client offers first, publishing a track: the answer comes back as
// the result and as a description to send, the connection comes up, and
// the client's track reaches the owner, whose forwarder reads it and asks
// the client for keyframes through the Peer.
func TestPeerFirstExchange(t *testing.T) {
	engine := testEngine(t, defaultInterceptors)
	defer engine.Close()
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	o := newPeerOwner(t, engine, api)
	track, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "camera", "client")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := o.client.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	o.clientOffer()
	o.waitConnected()
	o.noDesc()

	src := &rtctest.Sender{Track: track, PayloadSize: 200, KeyframeEvery: 10, TimestampStep: 3000}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { src.ServeKeyframeRequests(sender) })
	wg.Go(func() { _ = src.Run(ctx, 0, 5*time.Millisecond) })

	var ev TrackEvent
	select {
	case ev = <-o.serverTracks:
	case <-time.After(peerWait):
		t.Fatal("the server got no track")
	}
	fwd, err := NewForwarder(ForwarderConfig{Track: ev.Track, RTCP: o.peer})
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()
	waitPackets(t, "packets forwarded", 20, func() int64 { return int64(fwd.Stats().Packets) })
	if !fwd.RequestKeyframe() {
		t.Fatal("a keyframe request through the peer failed")
	}
	// The client's sender stops with the client, which ends the RTCP loop.
	o.close()
}

// connectedWithSource brings a client up on a section of its own that
// receives, then has the Peer send it src as "TR_v" and the client answer
// the Peer's offer. It returns the client's receiver of the track.
func connectedWithSource(t *testing.T, o *peerOwner, src *testSource) *clientRx {
	t.Helper()
	recvOnlyVideo(t, o)
	o.clientOffer()
	o.waitConnected()
	o.addSource("TR_v", "PA_pub", src.f)
	offer, _ := o.answerServer()
	md := sectionOf(t, offer, "TR_v")
	if md == nil {
		t.Fatal("the offer has no section for the source")
	}
	if mid, _ := md.Attribute(sdp.AttrKeyMID); mid != "s1" {
		t.Fatalf("the source's section has mid %q, want the server's own s1", mid)
	}
	rx := o.receive()
	if rx.track.ID() != "TR_v" || rx.track.StreamID() != "PA_pub" {
		t.Fatalf("client got track %s of stream %s", rx.track.ID(), rx.track.StreamID())
	}
	waitPackets(t, "packets at the client", 20, rx.packets.Load)
	return rx
}

// A source added once the connection is up is offered by the Peer at
// once, on a section of the server's own, and flows; removed, it is
// offered away and the client's receiver ends.
func TestPeerOffersAndRemovesSource(t *testing.T) {
	o, src, _ := newPeerTest(t)
	rx := connectedWithSource(t, o, src)

	o.call(func() { o.peer.RemoveSource("TR_v") })
	if closed := o.closedDownTracks(); len(closed) != 1 || closed[0].ID() != "TR_v" {
		t.Fatalf("down-tracks closed: %v", closed)
	}
	if n := src.f.Subscribers(); n != 0 {
		t.Fatalf("the source still has %d subscribers", n)
	}
	offer, _ := o.answerServer()
	if md := sectionOf(t, offer, "TR_v"); md != nil {
		t.Fatal("the offer after the removal still sends the source")
	}
	select {
	case <-rx.ended:
	case <-time.After(peerWait):
		t.Fatal("the client's receiver did not end")
	}
	o.noDesc()
}

// After the first exchange, the Peer holds its next offer until ICE has
// connected: a pion client that takes it earlier restarts ICE. A source
// added as the first exchange ends, before the client has the answer,
// comes while ICE cannot be up.
func TestPeerHoldsOfferUntilICEConnects(t *testing.T) {
	o, src, _ := newPeerTest(t)
	recvOnlyVideo(t, o)
	offer := o.localOffer()
	var answer string
	var offerErr, addErr error
	o.call(func() {
		answer, offerErr = o.peer.ApplyOffer(offer.SDP)
		// Before the client even has the answer: ICE cannot be up.
		addErr = o.peer.AddSource("TR_v", "PA_pub", src.f)
	})
	if offerErr != nil || addErr != nil {
		t.Fatalf("apply offer: %v; add source: %v", offerErr, addErr)
	}
	o.nextDesc(webrtc.SDPTypeAnswer)
	o.noDesc() // held
	o.setRemote(webrtc.SDPTypeAnswer, answer)
	_, second := o.answerServer()
	if first := ufragOf(offer.SDP); ufragOf(second) != first {
		t.Fatalf("the client restarted ICE: ufrag %s, then %s", first, ufragOf(second))
	}
	rx := o.receive()
	waitPackets(t, "packets at the client", 20, rx.packets.Load)
}

// Both sides offer at once: the Peer drops its offer, answers the
// client's, and offers again; the client, impolite, ignores the dropped
// offer. Media then flows both ways.
func TestPeerGlare(t *testing.T) {
	o, src, _ := newPeerTest(t)
	recvOnlyVideo(t, o)
	o.clientOffer()
	o.waitConnected()

	o.addSource("TR_v", "PA_pub", src.f)
	// The client offers a track of its own with the Peer's offer unread.
	audio := addClientMic(t, o)
	clientOffer := o.localOffer()
	answer := o.applyOffer(clientOffer.SDP)

	dropped := o.nextDesc(webrtc.SDPTypeOffer)
	if o.client.SignalingState() != webrtc.SignalingStateHaveLocalOffer {
		t.Fatalf("client in %s", o.client.SignalingState())
	}
	if sectionOf(t, dropped.SDP, "TR_v") == nil {
		t.Fatal("the dropped offer did not send the source")
	}
	if got := o.nextDesc(webrtc.SDPTypeAnswer); got.SDP != answer {
		t.Fatal("the answer sent differs from the one returned")
	}
	o.setRemote(webrtc.SDPTypeAnswer, answer)
	again, _ := o.answerServer()
	if sectionOf(t, again, "TR_v") == nil {
		t.Fatal("the offer after the glare does not send the source")
	}

	mic := &rtctest.Sender{Track: audio, PayloadSize: 100, TimestampStep: 960}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { _ = mic.Run(ctx, 0, 10*time.Millisecond) })
	rx := o.receive()
	waitPackets(t, "the source at the client", 20, rx.packets.Load)
	select {
	case ev := <-o.serverTracks:
		if ev.Track.Kind() != webrtc.RTPCodecTypeAudio {
			t.Fatalf("the server got a %s track", ev.Track.Kind())
		}
	case <-time.After(peerWait):
		t.Fatal("the server got no track from the client")
	}
}

// A client that cannot decode H.264 answers the section that sends an
// H.264 source without it: the source is skipped and the owner told, and
// the client's other source goes on.
func TestPeerSkipsSourceWithoutCommonCodec(t *testing.T) {
	o, vp8, _ := newPeerTest(t, rtctest.VP8, rtctest.Opus)
	h264 := newTestSource(t, h264Codec)
	rx := connectedWithSource(t, o, vp8)

	o.addSource("TR_h", "PA_cam", h264.f)
	offer, _ := o.answerServer()
	if codecs := SectionCodecs(sectionOf(t, offer, "TR_h")); len(codecs) == 0 || !CodecFits(codecs[0], rtctest.H264) {
		t.Fatalf("the H.264 source's section offers %v first", codecs)
	}
	select {
	case dt := <-o.skipped:
		if dt.ID() != "TR_h" || dt.StreamID() != "PA_cam" || dt.Codec().MimeType != webrtc.MimeTypeH264 {
			t.Fatalf("skipped %s of %s in %s", dt.ID(), dt.StreamID(), dt.Codec().MimeType)
		}
	case <-time.After(peerWait):
		t.Fatal("no source skipped")
	}
	if n := h264.f.Subscribers(); n != 0 {
		t.Fatalf("the skipped source still has %d subscribers", n)
	}
	mark := rx.packets.Load()
	waitPackets(t, "the VP8 source after the skip", mark+20, rx.packets.Load)
}

// Closing the Peer closes its down-tracks, detaches them from their
// sources, and leaves no goroutine behind once the client and the engine
// are closed too.
func TestPeerCloseLeavesNothing(t *testing.T) {
	leaktest.Check(t)
	o, src, engine := newPeerTest(t)
	rx := connectedWithSource(t, o, src)

	o.close()
	if closed := o.closedDownTracks(); len(closed) != 1 || closed[0].ID() != "TR_v" {
		t.Fatalf("down-tracks closed: %v", closed)
	}
	if n := src.f.Subscribers(); n != 0 {
		t.Fatalf("the source still has %d subscribers", n)
	}
	select {
	case <-rx.ended:
	case <-time.After(peerWait):
		t.Fatal("the client's receiver did not end")
	}
	src.stop()
	if err := src.f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := engine.Close(); err != nil {
		t.Fatal(err)
	}
}
