package actors

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

func newMediaEnv(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	return newMediaEnvWith(t, rtc.Config{LoopbackOnly: true}, mod)
}

// newMediaEnvWith is newMediaEnv with an engine made of media.
func newMediaEnvWith(t *testing.T, media rtc.Config, mod func(*Config)) *testEnv {
	t.Helper()
	engine, err := rtc.NewEngine(media)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() }) // after the rooms (cleanups run last-in first-out)
	return newTestEnv(t, func(c *Config) {
		c.Media = engine
		c.MediaMetrics = rtc.NewMetrics()
		// Generous: a loaded machine under the race detector may take
		// seconds to answer; a request lost in a crash waits this long.
		c.RequestTimeout = 20 * time.Second
		if mod != nil {
			mod(c)
		}
	})
}

// testClient plays a WebSocket client: one ordered queue of what the
// server says (signals, and answers to its own offers), handled by one
// goroutine, as the impolite peer of perfect negotiation.
type testClient struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc
	pc     *webrtc.PeerConnection
	p      *Participant
	info   *JoinInfo
	queue  chan any
	// closed receives the reason when the server removes the client.
	closed chan LeaveReason
	events chan Signal
	tracks chan *webrtc.TrackRemote
	done   chan struct{}
	// gate holds one token, which the loop takes to handle a message: a
	// test takes it (holdQueue) to leave the queue unread, to force glare.
	gate   chan struct{}
	offers atomic.Int32
	// answers counts the client's answers the server has applied: the
	// server's reply comes after all it does on an answer.
	answers atomic.Int32
	// ufrag is the ICE username fragment of the client's first answer.
	// The server never restarts ICE, so every later answer keeps it.
	ufrag string

	// While holdCands is set, candidates go neither way (so ICE cannot
	// connect); heldCands exchanges them once released.
	candMu    sync.Mutex
	holdCands bool
	heldCands []func()
}

// publishCmd adds tracks and offers; senders, when set, receives their
// RTPSenders. unpublishCmd removes tracks and offers.
type (
	publishCmd struct {
		tracks  []webrtc.TrackLocal
		senders chan<- []*webrtc.RTPSender
		// prefer, when set, is the one codec the tracks' transceivers
		// offer (setCodecPreferences).
		prefer *webrtc.RTPCodecCapability
	}
	unpublishCmd struct{ senders []*webrtc.RTPSender }
)

// Signal and Close make testClient an actors.Signaler.
func (c *testClient) Signal(s Signal) {
	if _, ok := s.(SignalOffer); ok {
		c.offers.Add(1)
	}
	select {
	case c.queue <- s:
	default:
		c.t.Errorf("client queue full, dropping %T", s)
	}
}

func (c *testClient) Close(reason LeaveReason) {
	select {
	case c.closed <- reason:
	default:
	}
}

func joinClient(t *testing.T, env *testEnv, room RoomID, identity string, role Role) *testClient {
	t.Helper()
	c, err := tryJoin(t, env, room, identity, role)
	if err != nil {
		t.Fatalf("join %s: %v", identity, err)
	}
	return c
}

func tryJoin(t *testing.T, env *testEnv, room RoomID, identity string, role Role) (*testClient, error) {
	t.Helper()
	return tryJoinHolding(t, env, room, identity, role, false)
}

// tryJoinHolding is tryJoin; with holdCands the client exchanges no ICE
// candidates until releaseCandidates.
func tryJoinHolding(t *testing.T, env *testEnv, room RoomID, identity string, role Role, holdCands bool) (*testClient, error) {
	t.Helper()
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	return tryJoinWith(t, env, room, identity, role, holdCands, api)
}

// tryJoinWith is tryJoinHolding for a client made with api.
func tryJoinWith(t *testing.T, env *testEnv, room RoomID, identity string, role Role, holdCands bool, api *webrtc.API) (*testClient, error) {
	t.Helper()
	c, req := newTestClient(t, identity, role, holdCands, api)
	p, info, err := env.rooms.Join(c.ctx, room, req)
	return c.joined(p, info, err)
}

// newTestClient makes a client and the request that joins it.
func newTestClient(t *testing.T, identity string, role Role, holdCands bool, api *webrtc.API) (*testClient, JoinRequest) {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &testClient{
		t: t, ctx: ctx, cancel: cancel, pc: pc,
		queue:     make(chan any, 1024),
		closed:    make(chan LeaveReason, 1),
		events:    make(chan Signal, 1024),
		tracks:    make(chan *webrtc.TrackRemote, 16),
		done:      make(chan struct{}),
		gate:      make(chan struct{}, 1),
		holdCands: holdCands,
	}
	c.gate <- struct{}{}
	return c, JoinRequest{Identity: identity, Name: identity, Role: role, Kind: ClientSignaling, Signal: c}
}

// joined starts the client once its join was answered, or closes it.
func (c *testClient) joined(p *Participant, info *JoinInfo, err error) (*testClient, error) {
	t, ctx, pc := c.t, c.ctx, c.pc
	if err != nil {
		c.cancel()
		pc.Close()
		return nil, err
	}
	c.p, c.info = p, info
	identity := info.Participant.Identity
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		c.exchange(func() {
			if err := p.AddCandidate(ctx, ICECandidate{Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex}); err != nil && ctx.Err() == nil && !errors.Is(err, ErrParticipantNotFound) {
				t.Errorf("%s: add candidate: %v", identity, err)
			}
		})
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { c.tracks <- tr })
	go c.loop()
	t.Cleanup(func() {
		c.cancel()
		<-c.done // the loop stops before the connection closes under it
		c.leave()
	})
	return c, nil
}

// exchange passes a candidate on now, or once released.
func (c *testClient) exchange(f func()) {
	c.candMu.Lock()
	if c.holdCands {
		c.heldCands = append(c.heldCands, f)
		c.candMu.Unlock()
		return
	}
	c.candMu.Unlock()
	f()
}

// releaseCandidates exchanges the candidates held so far, and the later
// ones as they come.
func (c *testClient) releaseCandidates() {
	c.candMu.Lock()
	held := c.heldCands
	c.holdCands, c.heldCands = false, nil
	c.candMu.Unlock()
	for _, f := range held {
		f()
	}
}

func (c *testClient) leave() {
	if c.p != nil {
		c.p.Leave(context.Background(), ReasonLeft)
	}
	c.pc.Close()
}

func (c *testClient) loop() {
	defer close(c.done)
	for {
		select {
		case <-c.ctx.Done():
			return
		case item := <-c.queue:
			select {
			case <-c.gate:
			case <-c.ctx.Done():
				return
			}
			c.handle(item)
			c.gate <- struct{}{}
		}
	}
}

// holdQueue returns once the loop has finished the message it was
// handling, and keeps it from handling another until releaseQueue.
func (c *testClient) holdQueue() { <-c.gate }

func (c *testClient) releaseQueue() { c.gate <- struct{}{} }

func (c *testClient) handle(item any) {
	switch m := item.(type) {
	case publishCmd:
		var senders []*webrtc.RTPSender
		for _, tr := range m.tracks {
			sender, err := c.addTrack(tr)
			if err != nil {
				c.failf("add track: %v", err)
				return
			}
			senders = append(senders, sender)
			go drainRTCP(sender)
			if m.prefer != nil {
				if err := c.preferCodec(sender, *m.prefer); err != nil {
					c.failf("codec preferences: %v", err)
					return
				}
			}
		}
		if m.senders != nil {
			m.senders <- senders
		}
		c.offer()
	case unpublishCmd:
		for _, sender := range m.senders {
			if err := c.pc.RemoveTrack(sender); err != nil {
				c.failf("remove track: %v", err)
				return
			}
		}
		c.offer()
	case SignalAnswer:
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
			c.failf("apply answer: %v", err)
		}
	case SignalOffer:
		if c.pc.SignalingState() != webrtc.SignalingStateStable {
			return // impolite: our own offer wins; the server offers again
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
			c.failf("apply server offer: %v", err)
			return
		}
		answer, err := c.pc.CreateAnswer(nil)
		if err == nil {
			err = c.pc.SetLocalDescription(answer)
		}
		if err == nil {
			c.checkUfrag(answer.SDP)
			err = c.p.Answer(c.ctx, answer.SDP)
		}
		if err != nil {
			if !errors.Is(err, ErrParticipantNotFound) { // removed while the offer was on its way: nothing to answer
				c.failf("answer server offer: %v", err)
			}
			return
		}
		c.answers.Add(1)
	case SignalCandidate:
		if m.Candidate.Candidate == "" {
			return
		}
		c.exchange(func() {
			if err := c.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid, SDPMLineIndex: m.Candidate.SDPMLineIndex}); err != nil {
				c.t.Logf("server candidate: %v", err)
			}
		})
	case Signal:
		c.events <- m
	}
}

// addTrack adds a track on a section of the client's own, never on one
// the server made to send it a track: pion's AddTrack would take such a
// section, whose codecs pion took from the server's offer (the codec of
// the server's track alone), where a browser offers all of its own.
func (c *testClient) addTrack(tr webrtc.TrackLocal) (*webrtc.RTPSender, error) {
	for _, x := range c.pc.GetTransceivers() {
		if x.Kind() == tr.Kind() && x.Sender() == nil && strings.HasPrefix(x.Mid(), "s") {
			t, err := c.pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
			if err != nil {
				return nil, err
			}
			return t.Sender(), nil
		}
	}
	return c.pc.AddTrack(tr)
}

// preferCodec makes the transceiver of sender offer codec alone.
func (c *testClient) preferCodec(sender *webrtc.RTPSender, codec webrtc.RTPCodecCapability) error {
	for _, tr := range c.pc.GetTransceivers() {
		if tr.Sender() == sender {
			return tr.SetCodecPreferences([]webrtc.RTPCodecParameters{{RTPCodecCapability: codec}})
		}
	}
	return errors.New("no transceiver for the sender")
}

// offer sends the client's offer; the answer comes back as a
// SignalAnswer, in order.
func (c *testClient) offer() {
	offer, err := c.pc.CreateOffer(nil)
	if err == nil {
		err = c.pc.SetLocalDescription(offer)
	}
	if err != nil {
		c.failf("client offer: %v", err)
		return
	}
	go func() {
		if _, err := c.p.Offer(c.ctx, offer.SDP); err != nil && !errors.Is(err, ErrParticipantNotFound) {
			c.failf("server refused offer: %v", err)
		}
	}()
}

// checkUfrag fails the test if the client's ICE credentials changed: pion
// restarts ICE on an offer it takes while its transport is still starting
// (see rtc.Peer.negotiate), and the connection never comes up.
func (c *testClient) checkUfrag(answer string) {
	_, rest, ok := strings.Cut(answer, "a=ice-ufrag:")
	if !ok {
		return
	}
	ufrag, _, _ := strings.Cut(rest, "\r\n")
	switch {
	case c.ufrag == "":
		c.ufrag = ufrag
	case ufrag != c.ufrag:
		c.failf("%s restarted ICE answering a renegotiation (ufrag %s, then %s)", c.p.ID, c.ufrag, ufrag)
	}
}

// failf reports a negotiation error, unless the client is gone: once it
// has left (or the test ends), the server closes its side and pion closes
// the client's connection on the DTLS close_notify, under whatever the
// loop is still handling.
func (c *testClient) failf(format string, args ...any) {
	if c.ctx.Err() != nil || c.pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
		return
	}
	c.t.Errorf(format, args...)
}

func drainRTCP(s *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}

// publishAV publishes a VP8 and an Opus track and sends synthetic media on
// both until the test ends.
func (c *testClient) publishAV() (video, audio *rtctest.Sender) {
	c.t.Helper()
	vt, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", string(c.p.ID))
	if err != nil {
		c.t.Fatal(err)
	}
	at, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", string(c.p.ID))
	if err != nil {
		c.t.Fatal(err)
	}
	c.queue <- publishCmd{tracks: []webrtc.TrackLocal{vt, at}}
	video = &rtctest.Sender{Track: vt, PayloadSize: 1000, KeyframeEvery: 30, TimestampStep: 3000}
	audio = &rtctest.Sender{Track: at, PayloadSize: 160, TimestampStep: 960}
	c.sendUntilEnd(video, 10*time.Millisecond)
	c.sendUntilEnd(audio, 20*time.Millisecond)
	return video, audio
}

// sendUntilEnd sends s's synthetic media, a packet every interval, until
// the test ends.
func (c *testClient) sendUntilEnd(s *rtctest.Sender, every time.Duration) {
	ctx, cancel := context.WithCancel(c.ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(ctx, 0, every) })
	c.t.Cleanup(func() { cancel(); wg.Wait() })
}

// waitRemoved waits until the server removes c, and checks why.
func (c *testClient) waitRemoved(want LeaveReason) {
	c.t.Helper()
	select {
	case got := <-c.closed:
		if got != want {
			c.t.Errorf("%s removed for %q, want %q", c.p.ID, got, want)
		}
	case <-time.After(poll.Timeout):
		c.t.Fatalf("%s was not removed (want %q)", c.p.ID, want)
	}
}

// receive starts a checking receiver on each of the next n tracks, keyed
// by kind.
func (c *testClient) receive(n int) map[string]*rtctest.Receiver {
	c.t.Helper()
	return c.receiveKeyed(n, func(tr *webrtc.TrackRemote) string { return tr.Kind().String() })
}

// receiveKeyed starts a checking receiver on each of the next n tracks,
// and returns them by key(track).
func (c *testClient) receiveKeyed(n int, key func(*webrtc.TrackRemote) string) map[string]*rtctest.Receiver {
	c.t.Helper()
	out := make(map[string]*rtctest.Receiver)
	for range n {
		select {
		case tr := <-c.tracks:
			r := rtctest.NewReceiver(tr)
			go r.Run()
			out[key(tr)] = r
		case <-time.After(poll.Timeout): // generous: -race on 2 busy cores
			c.t.Fatalf("%s: got %d of %d tracks", c.p.ID, len(out), n)
		}
	}
	return out
}

// waitEvent returns the next event of type T, skipping others.
func waitEvent[T Signal](t *testing.T, c *testClient, match func(T) bool) T {
	t.Helper()
	deadline := time.After(poll.Timeout)
	for {
		select {
		case s := <-c.events:
			if e, ok := s.(T); ok && (match == nil || match(e)) {
				return e
			}
		case <-deadline:
			var zero T
			t.Fatalf("%s: no %T event", c.p.ID, zero)
			return zero
		}
	}
}

func waitPackets(t *testing.T, what string, r *rtctest.Receiver, n int) {
	t.Helper()
	poll.Until(t, what, func() bool { return r.Stats().Packets >= n })
}

func checkStream(t *testing.T, what string, r *rtctest.Receiver) {
	t.Helper()
	s := r.Stats()
	if s.Packets > 0 && !s.StartsDecodable {
		t.Errorf("%s: the stream starts on a packet the decoder cannot start on (not a keyframe)", what)
	}
	if s.Corrupt > 0 || s.OutOfOrder > 0 {
		t.Errorf("%s: %d corrupt, %d out of order of %d", what, s.Corrupt, s.OutOfOrder, s.Packets)
	}
	if lost := s.Lost(); float64(lost) > 0.01*float64(s.Packets) {
		t.Errorf("%s: lost %d of %d", what, lost, s.Packets)
	}
}

func createRoom(t *testing.T, env *testEnv, id RoomID, cfg *actorpb.ConfigPatch) {
	t.Helper()
	if _, err := env.rooms.Create(context.Background(), id, &actorpb.RoomPatch{Name: ptr(string(id)), Config: cfg}); err != nil {
		t.Fatal(err)
	}
}

func TestPublishSubscribeAndLeave(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "stage", nil)

	sub1 := joinClient(t, env, "stage", "sub1", RoleSubscriber)
	sub2 := joinClient(t, env, "stage", "sub2", RoleSubscriber)
	pub := joinClient(t, env, "stage", "pub", RolePublisher)
	if len(pub.info.Others) != 2 {
		t.Fatalf("publisher saw %d others, want 2", len(pub.info.Others))
	}
	waitEvent[SignalParticipantJoined](t, sub1, func(e SignalParticipantJoined) bool { return e.Participant.Identity == "pub" })
	pub.publishAV()

	rx1, rx2 := sub1.receive(2), sub2.receive(2)
	for _, rx := range []map[string]*rtctest.Receiver{rx1, rx2} {
		waitPackets(t, "video", rx["video"], 100)
		waitPackets(t, "audio", rx["audio"], 50)
	}
	// A late joiner gets the tracks already published.
	late := joinClient(t, env, "stage", "late", RoleSubscriber)
	if len(late.info.Others) != 3 || len(late.info.Others[2].Tracks) != 2 {
		t.Fatalf("late joiner saw %+v", late.info.Others)
	}
	rx3 := late.receive(2)
	waitPackets(t, "late video", rx3["video"], 50)

	list, err := env.rooms.Participants(context.Background(), "stage")
	if err != nil || len(list) != 4 {
		t.Fatalf("participants: %d, %v", len(list), err)
	}
	info, err := env.rooms.Get(context.Background(), "stage")
	if err != nil || info.ParticipantCount != 4 {
		t.Fatalf("participant_count %v, %v", info, err)
	}
	if got := testutil.ToFloat64(env.rooms.metrics.participants); got != 4 {
		t.Fatalf("troupe_participants = %v, want 4", got)
	}
	for name, rx := range map[string]map[string]*rtctest.Receiver{"sub1": rx1, "sub2": rx2, "late": rx3} {
		checkStream(t, name+" video", rx["video"])
		checkStream(t, name+" audio", rx["audio"])
	}

	// The publisher leaves: everyone is told, and the tracks go.
	if err := pub.p.Leave(context.Background(), ReasonLeft); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testClient{sub1, sub2, late} {
		waitEvent[SignalTrackUnpublished](t, c, nil)
		left := waitEvent[SignalParticipantLeft](t, c, func(e SignalParticipantLeft) bool { return e.Identity == "pub" })
		if left.Reason != ReasonLeft {
			t.Errorf("leave reason %q", left.Reason)
		}
	}
	pub.waitRemoved(ReasonLeft)
	poll.Until(t, "participant count 3", func() bool {
		info, err := env.rooms.Get(context.Background(), "stage")
		return err == nil && info.ParticipantCount == 3
	})
	if got := testutil.ToFloat64(env.rooms.metrics.participants); got != 3 {
		t.Fatalf("troupe_participants = %v after a leave, want 3", got)
	}
	if got := testutil.ToFloat64(env.rooms.metrics.leaves.WithLabelValues(string(ReasonLeft))); got != 1 {
		t.Fatalf("leaves{reason=left} = %v, want 1", got)
	}
}

// A subscriber that joins a room with two tracks is offered the first, then
// the second once the first exchange is done. That second offer waits for
// ICE to connect: a pion client that takes it earlier restarts ICE and
// never connects (see rtc.Peer.negotiate). Holding the client's
// candidates keeps ICE from connecting.
func TestRenegotiationWaitsForICE(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "r", nil)
	pub := joinClient(t, env, "r", "pub", RolePublisher)
	pub.publishAV()
	poll.Until(t, "two tracks published", func() bool {
		list, err := env.rooms.Participants(context.Background(), "r")
		return err == nil && len(list) == 1 && len(list[0].Tracks) == 2
	})

	sub, err := tryJoinHolding(t, env, "r", "sub", RoleSubscriber, true)
	if err != nil {
		t.Fatal(err)
	}
	// Both tracks were sent to the subscriber's actor when it joined, before
	// its answer: once the server has applied the answer, an offer that did
	// not wait for ICE would have been signalled.
	poll.Until(t, "the first exchange", func() bool { return sub.answers.Load() == 1 })
	if n := sub.offers.Load(); n != 1 {
		t.Fatalf("%d offers before ICE connected, want 1", n)
	}
	sub.releaseCandidates()
	rx := sub.receive(2)
	waitPackets(t, "video", rx["video"], 20)
	waitPackets(t, "audio", rx["audio"], 10)
}

func TestJoinRules(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "small", &actorpb.ConfigPatch{MaxParticipants: ptr(uint32(1))})
	joinClient(t, env, "small", "first", RolePublisher)
	if _, err := tryJoin(t, env, "small", "second", RolePublisher); !errors.Is(err, ErrRoomFull) {
		t.Fatalf("full room: %v", err)
	}
	// The same identity replaces its old connection instead of being refused.
	first := joinClient(t, env, "small", "first", RolePublisher)
	_ = first

	createRoom(t, env, "locked", &actorpb.ConfigPatch{Locked: ptr(true)})
	if _, err := tryJoin(t, env, "locked", "p", RolePublisher); !errors.Is(err, ErrRoomLocked) {
		t.Fatalf("locked room: %v", err)
	}
	joinClient(t, env, "locked", "mod", RoleModerator)

	createRoom(t, env, "over", nil)
	if _, err := env.rooms.End(ctx, "over"); err != nil {
		t.Fatal(err)
	}
	if _, err := tryJoin(t, env, "over", "p", RolePublisher); !errors.Is(err, ErrRoomEnded) {
		t.Fatalf("ended room: %v", err)
	}
	if _, err := tryJoin(t, env, "nowhere", "p", RolePublisher); !errors.Is(err, ErrRoomNotFound) {
		t.Fatalf("missing room: %v", err)
	}

	future := time.Now().Add(time.Hour)
	createRoom(t, env, "later", &actorpb.ConfigPatch{JoinFrom: timestamp(future)})
	if _, err := tryJoin(t, env, "later", "p", RolePublisher); !errors.Is(err, ErrOutsideJoinWindow) {
		t.Fatalf("before join_from: %v", err)
	}
	// Each refusal is counted by its reason.
	for reason, want := range map[string]float64{
		"room_full": 1, "room_locked": 1, "room_ended": 1, "room_not_found": 1, "outside_join_window": 1,
	} {
		if got := testutil.ToFloat64(env.rooms.metrics.joinsRefused.WithLabelValues(reason)); got != want {
			t.Errorf("joins refused for %s: %v, want %v", reason, got, want)
		}
	}
}

func TestKickMuteAndRoomEnd(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "class", nil)
	pub := joinClient(t, env, "class", "teacher", RolePublisher)
	sub := joinClient(t, env, "class", "student", RoleSubscriber)
	video, audio := pub.publishAV()
	rx := sub.receive(2)
	waitPackets(t, "audio", rx["audio"], 25)

	// Muting audio through the API: forwarding stops, everyone is told.
	if err := env.rooms.MuteParticipant(ctx, "class", pub.p.ID, "audio", true); err != nil {
		t.Fatal(err)
	}
	m := waitEvent[SignalTrackMuted](t, pub, nil)
	if !m.Muted || !m.ByServer {
		t.Fatalf("publisher told %+v", m)
	}
	waitEvent[SignalTrackMuted](t, sub, nil)
	// The forwarder is muted before anyone is told, so no audio sent from
	// now on may arrive, however late; video sent from now on comes, and
	// once it has, the path has carried what was sent after the mute.
	audioMuted, videoMuted := audio.Sent(), video.Sent()
	poll.Until(t, "video sent after the audio mute", func() bool { return rx["video"].Stats().Last >= videoMuted+10 })
	if last := rx["audio"].Stats().Last; last >= audioMuted {
		t.Fatalf("muted audio still forwarded: packet %d, sent after the mute (from packet %d)", last, audioMuted)
	}
	before := rx["audio"].Stats().Packets
	if err := env.rooms.MuteParticipant(ctx, "class", pub.p.ID, "audio", false); err != nil {
		t.Fatal(err)
	}
	waitPackets(t, "audio after unmute", rx["audio"], before+10)

	if err := env.rooms.MuteParticipant(ctx, "class", "PA_nobody", "audio", true); !errors.Is(err, ErrParticipantNotFound) {
		t.Fatalf("mute unknown participant: %v", err)
	}

	if err := env.rooms.Kick(ctx, "class", sub.p.ID); err != nil {
		t.Fatal(err)
	}
	sub.waitRemoved(ReasonKicked)
	left := waitEvent[SignalParticipantLeft](t, pub, nil)
	if left.Reason != ReasonKicked {
		t.Fatalf("others told %q", left.Reason)
	}

	if _, err := env.rooms.End(ctx, "class"); err != nil {
		t.Fatal(err)
	}
	pub.waitRemoved(ReasonRoomEnded)
}

// A panic in a goroutine a participant owns removes that participant; the
// others keep receiving on the same tracks, without a loss.
func TestParticipantFailureStaysInside(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "r", nil)
	victim := joinClient(t, env, "r", "victim", RolePublisher)
	steady := joinClient(t, env, "r", "steady", RolePublisher)
	viewer := joinClient(t, env, "r", "viewer", RoleSubscriber)
	victim.publishAV()
	steady.publishAV()

	// The viewer gets four tracks; find the steady publisher's video.
	var steadyVideo *rtctest.Receiver
	for range 4 {
		select {
		case tr := <-viewer.tracks:
			r := rtctest.NewReceiver(tr)
			go r.Run()
			if tr.StreamID() == string(steady.p.ID) && tr.Kind() == webrtc.RTPCodecTypeVideo {
				steadyVideo = r
			}
		case <-time.After(poll.Timeout):
			t.Fatal("viewer did not get four tracks")
		}
	}
	if steadyVideo == nil {
		t.Fatal("no video from the steady publisher")
	}
	waitPackets(t, "steady video", steadyVideo, 50)

	// What rtc's OnFailure does when a read loop panics.
	env.rooms.system.Root.Send(victim.p.pid, &ownedFailure{err: errors.New("injected read loop panic")})
	left := waitEvent[SignalParticipantLeft](t, viewer, func(e SignalParticipantLeft) bool { return e.Identity == "victim" })
	if left.Reason != ReasonFailed {
		t.Fatalf("reason %q, want %q", left.Reason, ReasonFailed)
	}
	mark := steadyVideo.Stats().Packets
	waitPackets(t, "steady video after the failure", steadyVideo, mark+50)
	// Told by what arrived, not by when: a loaded machine delays packets
	// without any failure. A read loop stopped by the failure would lose
	// packets or end the stream; steady tracks renegotiated would come
	// to the viewer as new tracks.
	checkStream(t, "steady video", steadyVideo)
	select {
	case tr := <-viewer.tracks:
		t.Errorf("the viewer got a new track %s/%s after the failure", tr.StreamID(), tr.Kind())
	default:
	}
	list, err := env.rooms.Participants(context.Background(), "r")
	if err != nil || len(list) != 2 {
		t.Fatalf("participants after failure: %d %v", len(list), err)
	}
}

func TestWHIPPublishWHEPView(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "broadcast", nil)
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}

	// WHIP: send-only, one offer, all candidates in the answer.
	pubPC, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pubPC.Close()
	vt, _ := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "v", "whip")
	if _, err := pubPC.AddTransceiverFromTrack(vt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	whip, _, err := env.rooms.Join(ctx, "broadcast", JoinRequest{Identity: "encoder", Role: RolePublisher, Kind: ClientWHIP})
	if err != nil {
		t.Fatal(err)
	}
	offerAndApply(t, pubPC, whip)
	if _, err := whip.Offer(ctx, pubPC.LocalDescription().SDP); !errors.Is(err, ErrSignalingState) {
		t.Fatalf("second WHIP offer: %v", err)
	}
	sendCtx, stop := context.WithCancel(ctx)
	defer stop()
	sender := &rtctest.Sender{Track: vt, PayloadSize: 800, KeyframeEvery: 30, TimestampStep: 3000}
	go sender.Run(sendCtx, 0, 10*time.Millisecond)

	// WHEP: receive-only.
	viewPC, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer viewPC.Close()
	if _, err := viewPC.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	tracks := make(chan *webrtc.TrackRemote, 1)
	viewPC.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })
	whep, _, err := env.rooms.Join(ctx, "broadcast", JoinRequest{Identity: "viewer", Role: RoleSubscriber, Kind: ClientWHEP})
	if err != nil {
		t.Fatal(err)
	}
	offerAndApply(t, viewPC, whep)
	select {
	case tr := <-tracks:
		r := rtctest.NewReceiver(tr)
		go r.Run()
		waitPackets(t, "WHEP video", r, 50)
		checkStream(t, "WHEP video", r)
	case <-time.After(poll.Timeout):
		t.Fatal("WHEP viewer got no track")
	}

	// A WHEP offer that wants to send, or a WHIP one from a subscriber, is refused.
	if _, _, err := env.rooms.Join(ctx, "broadcast", JoinRequest{Identity: "x", Role: RoleSubscriber, Kind: ClientWHIP}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("WHIP as subscriber: %v", err)
	}
	bad, _, err := env.rooms.Join(ctx, "broadcast", JoinRequest{Identity: "y", Role: RoleSubscriber, Kind: ClientWHEP})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Offer(ctx, pubPC.LocalDescription().SDP); !errors.Is(err, ErrInvalidSDP) {
		t.Fatalf("send-only offer to WHEP: %v", err)
	}
	for _, p := range []*Participant{whip, whep, bad} {
		if err := p.Leave(ctx, ReasonLeft); err != nil {
			t.Fatal(err)
		}
	}
}

func offerAndApply(t *testing.T, pc *webrtc.PeerConnection, p *Participant) {
	t.Helper()
	offer, err := rtctest.GatheredOffer(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := p.Offer(context.Background(), offer)
	if err != nil {
		t.Fatalf("offer: %v", err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
}

func TestBadSignalingChangesNothing(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	c := joinClient(t, env, "r", "c", RolePublisher)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"empty offer", func() error { _, err := c.p.Offer(ctx, ""); return err }, ErrInvalidSDP},
		{"garbage offer", func() error { _, err := c.p.Offer(ctx, "v=0\r\nthis is not sdp"); return err }, ErrInvalidSDP},
		{"no media", func() error {
			_, err := c.p.Offer(ctx, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
			return err
		}, ErrInvalidSDP},
		{"unexpected answer", func() error { return c.p.Answer(ctx, "v=0\r\n") }, ErrInvalidSDP},
		{"huge candidate", func() error { return c.p.AddCandidate(ctx, ICECandidate{Candidate: string(make([]byte, 2000))}) }, ErrInvalidSDP},
		{"mute unknown track", func() error { return c.p.SetMuted(ctx, "TR_nope", "", true) }, ErrSignalingState},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if c.pc.SignalingState() != webrtc.SignalingStateStable {
		t.Fatal("bad input changed the client's state")
	}
	// The participant still works: it can publish.
	c.publishAV()
	list, err := env.rooms.Participants(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "tracks published after bad input", func() bool {
		list, err = env.rooms.Participants(ctx, "r")
		return err == nil && len(list[0].Tracks) == 2
	})
	if _, err := env.rooms.Participants(ctx, "missing"); !errors.Is(err, ErrRoomNotFound) {
		t.Fatalf("participants of a missing room: %v", err)
	}
}

// Both sides offer at once: the server drops its offer, answers the
// client's, then offers again; both directions end up flowing. In the
// audio case the server's dropped offer had given its first mid to an
// audio track while the client's offer gives the same first mid to video:
// the server's own mids must not collide with the client's.
func TestGlare(t *testing.T) {
	for _, tc := range []struct {
		name      string
		publishAV bool // else A publishes audio only
	}{{"audio and video", true}, {"audio only against a video offer", false}} {
		t.Run(tc.name, func(t *testing.T) {
			env := newMediaEnv(t, nil)
			createRoom(t, env, "g", nil)
			a := joinClient(t, env, "g", "a", RolePublisher)
			b := joinClient(t, env, "g", "b", RolePublisher)
			wantAtB := 2
			if tc.publishAV {
				a.publishAV()
			} else {
				at, _ := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", string(a.p.ID))
				a.queue <- publishCmd{tracks: []webrtc.TrackLocal{at}}
				audio := &rtctest.Sender{Track: at, PayloadSize: 160, TimestampStep: 960}
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				go audio.Run(ctx, 0, 20*time.Millisecond)
				wantAtB = 1
			}
			// B holds its queue so the server's offer (A's tracks) and B's
			// own offer cross.
			b.holdQueue()
			poll.Until(t, "server offer to b", func() bool { return b.offers.Load() > 0 })
			vt, _ := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", string(b.p.ID))
			// B makes its offer while the server's sits unread in its queue.
			if _, err := b.pc.AddTrack(vt); err != nil {
				t.Fatal(err)
			}
			offer, err := b.pc.CreateOffer(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.pc.SetLocalDescription(offer); err != nil {
				t.Fatal(err)
			}
			if _, err := b.p.Offer(context.Background(), offer.SDP); err != nil {
				t.Fatalf("offer in glare: %v", err)
			}
			b.releaseQueue()
			sender := &rtctest.Sender{Track: vt, PayloadSize: 500, KeyframeEvery: 30, TimestampStep: 3000}
			sendCtx, stop := context.WithCancel(context.Background())
			defer stop()
			go sender.Run(sendCtx, 0, 10*time.Millisecond)

			rxB := b.receive(wantAtB) // A's tracks, after the server's second offer
			waitPackets(t, "b gets a's audio", rxB["audio"], 20)
			rxA := a.receive(1) // B's video
			waitPackets(t, "a gets b's video", rxA["video"], 30)
		})
	}
}

// A member's join reply, which lists everyone already in the room, is
// not kept for as long as the member stays: kept, it made a room's memory
// grow with the square of its size.
func TestJoinReplyIsNotKept(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "r", nil)
	joinClient(t, env, "r", "first", RoleSubscriber)
	second := joinClient(t, env, "r", "second", RoleSubscriber)
	if len(second.info.Others) != 1 {
		t.Fatalf("second's reply lists %d others, want 1", len(second.info.Others))
	}
	freed := make(chan struct{})
	runtime.AddCleanup(&second.info.Others[0], func(ch chan struct{}) { close(ch) }, freed)
	second.info = nil
	// Kept forever is the fault; a loaded machine may take long to finish
	// the join's work that still holds it, and to collect it.
	deadline := time.After(time.Minute)
	for {
		runtime.GC()
		select {
		case <-freed:
			return // and both are still in the room
		case <-deadline:
			t.Fatal("the join reply outlives the join: the room or a participant still references it")
		case <-time.After(20 * time.Millisecond):
		}
	}
}
