package actors

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/rtc"
)

// Messages a participant actor takes.
type (
	// From its handle.
	clientOffer     struct{ sdp string }
	clientAnswer    struct{ sdp string }
	clientCandidate struct{ c ICECandidate }
	setMuted        struct {
		trackID, kind   string
		muted, byServer bool
	}
	// From its room.
	subscribe struct {
		track TrackInfo
		fwd   *rtc.Forwarder
	}
	unsubscribe struct{ trackID string }
	// From pion's and rtc's goroutines.
	remoteTrack struct {
		track    *webrtc.TrackRemote
		receiver *webrtc.RTPReceiver
	}
	publishedEnded  struct{ trackID string }
	localCandidate  struct{ c *webrtc.ICECandidate }
	connectionState struct{ state webrtc.PeerConnectionState }
	iceState        struct{ state webrtc.ICEConnectionState }
	ownedFailure    struct{ err error }
)

// maxSDPSize bounds an offer or answer; real ones are a few KiB.
const maxSDPSize = 64 << 10

// gatherTimeout bounds the wait for the server's candidates when a WHIP or
// WHEP answer must carry them all. With the UDP mux, gathering takes a
// moment: host candidates only, from one socket.
const gatherTimeout = 3 * time.Second

// participantActor owns one participant's peer connection, the read loops
// of the tracks it publishes (through their forwarders) and the
// down-tracks it receives. It negotiates as the polite peer: when its own
// offer collides with the client's, it rolls its offer back, answers, and
// offers again once the connection is stable.
type participantActor struct {
	deps   *Rooms
	roomID string
	info   ParticipantInfo
	kind   ClientKind
	signal Signaler
	pc     *webrtc.PeerConnection
	log    *slog.Logger
	self   *actor.PID
	root   *actor.RootContext

	published map[string]*publishedTrack // by track id
	received  map[string]*receivedTrack  // by track id
	// whepSlots are a WHEP client's receivers, one per m-line it offered.
	whepSlots []*receivedTrack
	// available lists the room's tracks a WHEP slot may switch to.
	available []subscribe

	stats *mediaStats // shared with the room
	mids  int         // the server's mids given so far
	// ownMids are the mids of the sections the server created to send
	// tracks (see nameMid and addSendTrack).
	ownMids map[string]bool
	// offeredTracks maps the mid of each section of the offer out that
	// sends a track to the track's id; agreedTracks does so for the last
	// completed exchange. A section's track changes when a section freed
	// by an ended track is reused, so a description is checked against
	// the tracks its sections were about (skipDeclined).
	offeredTracks, agreedTracks map[string]string

	offered        bool // a WHIP/WHEP client has made its one offer
	awaitingAnswer bool // our offer is out
	// pendingOffer is the offer we sent, applied locally only when its
	// answer comes: pion cannot roll back a local offer, and this way
	// there is nothing to roll back when the client's offer collides.
	pendingOffer     *webrtc.SessionDescription
	needsNegotiation bool // tracks changed while we could not offer
	pendingRemote    []webrtc.ICECandidateInit
	// iceUp is set once ICE has connected: the client's ICE agent has
	// then taken our credentials (it answered our checks or sent its
	// own). See negotiate.
	iceUp bool
	// leaving is set when the actor stops: the forwarders it closes then
	// have not ended on their own (see watchTrackEnd).
	leaving atomic.Bool
}

type publishedTrack struct {
	info TrackInfo
	fwd  *rtc.Forwarder
}

type receivedTrack struct {
	track  TrackInfo // the source it receives now; zero for an idle WHEP slot
	dt     *rtc.DownTrack
	sender *webrtc.RTPSender
}

func newParticipantActor(deps *Rooms, roomID string, info ParticipantInfo, req JoinRequest, pc *webrtc.PeerConnection, stats *mediaStats) *participantActor {
	return &participantActor{
		deps: deps, roomID: roomID, info: info, kind: req.Kind, signal: req.Signal, pc: pc, stats: stats,
		log:       deps.cfg.Logger.With("room", roomID, "participant", info.ID),
		published: make(map[string]*publishedTrack),
		received:  make(map[string]*receivedTrack),
		ownMids:   make(map[string]bool),
	}
}

func (p *participantActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.started(ctx)
	case *actor.Stopping:
		p.stopping()
	case *clientOffer:
		sdp, err := p.clientOffer(ctx, m.sdp)
		ctx.Respond(&participantReply{sdp: sdp, err: err})
	case *clientAnswer:
		ctx.Respond(&participantReply{err: p.clientAnswer(m.sdp)})
	case *clientCandidate:
		ctx.Respond(&participantReply{err: p.addCandidate(m.c)})
	case *setMuted:
		err := p.setMuted(ctx, m)
		if ctx.Sender() != nil {
			ctx.Respond(&participantReply{err: err})
		}
	case *subscribe:
		p.subscribe(m)
	case *unsubscribe:
		p.unsubscribe(m.trackID)
	case *remoteTrack:
		p.publish(ctx, m)
	case *publishedEnded:
		p.publishedEnded(ctx, m.trackID)
	case *localCandidate:
		p.sendCandidate(m.c)
	case *connectionState:
		p.connectionState(ctx, m.state)
	case *iceState:
		p.iceState(m.state)
	case *ownedFailure:
		// A goroutine this participant owns crashed: fail like the actor
		// itself would, so supervision removes this participant alone.
		panic(m.err)
	}
}

func (p *participantActor) started(ctx actor.Context) {
	p.self, p.root = ctx.Self(), p.deps.system.Root
	self, root := p.self, p.root
	p.pc.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		root.Send(self, &remoteTrack{track: t, receiver: r})
	})
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		root.Send(self, &connectionState{state: s})
	})
	p.pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		root.Send(self, &iceState{state: s})
	})
	if p.kind == ClientSignaling {
		p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			root.Send(self, &localCandidate{c: c})
		})
	}
}

// stopping releases everything the participant owns. The room has already
// been told (or will learn from Terminated) and tells the others.
func (p *participantActor) stopping() {
	p.leaving.Store(true)
	for _, t := range p.published {
		if err := t.fwd.Close(); err != nil {
			p.log.Debug("close forwarder", "err", err)
		}
	}
	for _, r := range p.allReceived() {
		if src := r.dt.Source(); src != nil {
			src.RemoveSubscriber(r.dt)
		}
		r.dt.Close()
	}
	if err := p.pc.Close(); err != nil {
		p.log.Debug("close peer connection", "err", err)
	}
}

func (p *participantActor) allReceived() []*receivedTrack {
	out := make([]*receivedTrack, 0, len(p.received)+len(p.whepSlots))
	for _, r := range p.received {
		out = append(out, r)
	}
	return append(out, p.whepSlots...)
}

func parseSDP(kind webrtc.SDPType, s string) (webrtc.SessionDescription, error) {
	if len(s) == 0 || len(s) > maxSDPSize {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %s must be 1 to %d bytes", ErrInvalidSDP, kind, maxSDPSize)
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(s); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	if len(parsed.MediaDescriptions) == 0 {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %s has no media sections", ErrInvalidSDP, kind)
	}
	return webrtc.SessionDescription{Type: kind, SDP: s}, nil
}

func (p *participantActor) clientOffer(ctx actor.Context, s string) (string, error) {
	offer, err := parseSDP(webrtc.SDPTypeOffer, s)
	if err != nil {
		return "", err
	}
	if p.kind != ClientSignaling {
		if p.offered {
			return "", fmt.Errorf("%w: a %s session takes one offer", ErrSignalingState, p.kind)
		}
		if err := checkDirections(p.kind, offer.SDP); err != nil {
			return "", err
		}
	}
	parsed, err := parseDesc(offer.SDP)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	if p.awaitingAnswer {
		// Glare, and we are the polite peer: our offer was never applied
		// locally (see negotiate), so dropping it is all a rollback takes.
		p.awaitingAnswer, p.pendingOffer, p.needsNegotiation = false, nil, true
	}
	p.skipDeclined(parsed, nil, p.agreedTracks)
	if err := p.pc.SetRemoteDescription(offer); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	p.offered = true
	p.flushCandidates()
	if p.kind == ClientWHEP {
		if err := p.attachWHEPSlots(parsed); err != nil {
			return "", err
		}
	}
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	var gathered <-chan struct{}
	if p.kind != ClientSignaling {
		gathered = webrtc.GatheringCompletePromise(p.pc)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("apply answer: %w", err)
	}
	if gathered != nil {
		// WHIP and WHEP answers carry every candidate: no trickle back.
		select {
		case <-gathered:
		case <-time.After(gatherTimeout):
			p.log.Warn("ICE gathering did not complete; answering with what there is")
		}
	}
	answerSDP := p.pc.LocalDescription().SDP
	p.agreedTracks = p.liveTracks(midsOf(parsed))
	if p.kind == ClientSignaling {
		p.signal.Signal(SignalAnswer{SDP: answerSDP})
	}
	if p.needsNegotiation {
		p.negotiate()
	}
	return answerSDP, nil
}

// checkDirections refuses a WHIP offer that wants to receive or a WHEP
// offer that wants to send.
func checkDirections(kind ClientKind, s string) error {
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(s); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	want, bad := "sendonly", "recvonly"
	if kind == ClientWHEP {
		want, bad = "recvonly", "sendonly"
	}
	media := 0
	for _, md := range parsed.MediaDescriptions {
		if md.MediaName.Media != "audio" && md.MediaName.Media != "video" {
			continue
		}
		media++
		for _, a := range md.Attributes {
			if a.Key == bad || a.Key == "sendrecv" && kind == ClientWHEP {
				return fmt.Errorf("%w: a %s offer's media must be %s", ErrInvalidSDP, kind, want)
			}
		}
	}
	if media == 0 {
		return fmt.Errorf("%w: the offer has no audio or video", ErrInvalidSDP)
	}
	return nil
}

func (p *participantActor) clientAnswer(s string) error {
	answer, err := parseSDP(webrtc.SDPTypeAnswer, s)
	if err != nil {
		return err
	}
	if !p.awaitingAnswer {
		return fmt.Errorf("%w: no offer is waiting for an answer", ErrSignalingState)
	}
	parsed, err := parseDesc(answer.SDP)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	ours, err := parseDesc(p.pendingOffer.SDP)
	if err != nil {
		return fmt.Errorf("actors: own offer: %w", err)
	}
	if rejectsAll(parsed) {
		// The client took none of the sections (it can decode none of
		// the tracks offered): there is no transport to apply. pion
		// would take the answer half-way and never start ICE after, so
		// it is not applied; the tracks are skipped, and those that came
		// since are offered anew.
		p.awaitingAnswer, p.pendingOffer = false, nil
		p.skipDeclined(parsed, ours, p.offeredTracks)
		if len(p.received) > 0 {
			p.negotiate()
		}
		return nil
	}
	if err := p.pc.SetLocalDescription(*p.pendingOffer); err != nil {
		// Our offer went stale (the connection changed since): offer anew.
		p.awaitingAnswer, p.pendingOffer = false, nil
		p.negotiate()
		return fmt.Errorf("%w: the offer answered is stale; a new one follows", ErrSignalingState)
	}
	// Before the answer starts the senders: pion would refuse all of it
	// for one track whose codec the client did not take.
	p.skipDeclined(parsed, ours, p.offeredTracks)
	if err := p.pc.SetRemoteDescription(answer); err != nil {
		// The answer is bad; undo our half so the next offer starts clean.
		p.log.Warn("client answer refused", "err", err)
		p.awaitingAnswer, p.pendingOffer, p.needsNegotiation = false, nil, true
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	p.awaitingAnswer, p.pendingOffer = false, nil
	p.agreedTracks = p.liveTracks(p.offeredTracks)
	p.flushCandidates()
	if p.needsNegotiation {
		p.negotiate()
	}
	return nil
}

// parseDesc parses an SDP for the actor to read. pion's own parse
// (SessionDescription.Unmarshal) stores its result in the description,
// which pion's goroutines read in the copies it keeps.
func parseDesc(s string) (*sdp.SessionDescription, error) {
	d := &sdp.SessionDescription{}
	if err := d.UnmarshalString(s); err != nil {
		return nil, err
	}
	return d, nil
}

// rejectsAll reports whether every media section of d is rejected (port 0).
func rejectsAll(d *sdp.SessionDescription) bool {
	for _, md := range d.MediaDescriptions {
		if md.MediaName.Port.Value != 0 {
			return false
		}
	}
	return true
}

// negotiate sends the client a new offer, or notes that one is due once
// the current exchange completes or, after the first exchange, once ICE
// has connected. pion starts the ICE transport on a goroutine of its own
// after the first exchange; a pion client that takes a new offer before
// then has no remote credentials to compare it with, takes it for an ICE
// restart and answers with new credentials, which our pion, not started
// either, overwrites with the old ones when it starts: the connection
// never comes up. Once ICE has connected, both agents have started.
func (p *participantActor) negotiate() {
	if p.kind != ClientSignaling {
		return // WHIP and WHEP sessions never renegotiate
	}
	if p.awaitingAnswer || p.pc.SignalingState() != webrtc.SignalingStateStable ||
		(!p.iceUp && p.pc.CurrentRemoteDescription() != nil) {
		p.needsNegotiation = true
		return
	}
	p.needsNegotiation = false
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.log.Warn("create offer", "err", err)
		return
	}
	// Each track is offered in its own codec, whatever the client's own
	// sections narrowed pion's codec list to (see rtc.OfferSendCodecs).
	// pion applies only the offer it made, so that one stays the local
	// description: pion takes the codecs the answer agrees to from the
	// answer, and reads no codec from its own side.
	sent := offer.SDP
	if rewritten, err := rtc.OfferSendCodecs(offer.SDP, p.sendCodecs()); err != nil {
		p.log.Warn("offer the tracks' codecs", "err", err)
	} else {
		sent = rewritten
	}
	p.pendingOffer, p.awaitingAnswer = &offer, true
	p.offeredTracks = p.liveTracks(nil)
	p.signal.Signal(SignalOffer{SDP: sent})
}

func (p *participantActor) addCandidate(c ICECandidate) error {
	if len(c.Candidate) > 1024 {
		return fmt.Errorf("%w: candidate too long", ErrInvalidSDP)
	}
	init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	if p.pc.RemoteDescription() == nil {
		if len(p.pendingRemote) >= 64 {
			return fmt.Errorf("%w: too many candidates before an offer", ErrSignalingState)
		}
		p.pendingRemote = append(p.pendingRemote, init)
		return nil
	}
	if err := p.pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrInvalidSDP, err)
	}
	return nil
}

func (p *participantActor) flushCandidates() {
	for _, c := range p.pendingRemote {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.log.Debug("queued candidate refused", "err", err)
		}
	}
	p.pendingRemote = nil
}

func (p *participantActor) sendCandidate(c *webrtc.ICECandidate) {
	if c == nil {
		p.signal.Signal(SignalCandidate{})
		return
	}
	init := c.ToJSON()
	p.signal.Signal(SignalCandidate{Candidate: ICECandidate{
		Candidate: init.Candidate, SDPMid: init.SDPMid, SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment,
	}})
}

func (p *participantActor) connectionState(ctx actor.Context, s webrtc.PeerConnectionState) {
	p.log.Debug("connection state", "state", s.String())
	switch s {
	case webrtc.PeerConnectionStateConnected:
		// SRTP is up: the down-tracks ask for the keyframes they start on.
		for _, r := range p.allReceived() {
			r.dt.TransportReady()
		}
	case webrtc.PeerConnectionStateFailed:
		ctx.Send(ctx.Parent(), &removeParticipant{id: p.info.ID, reason: ReasonConnectionFailed})
	}
}

// iceState sends the offer held back until ICE connected (see negotiate).
func (p *participantActor) iceState(s webrtc.ICEConnectionState) {
	if p.iceUp || (s != webrtc.ICEConnectionStateConnected && s != webrtc.ICEConnectionStateCompleted) {
		return
	}
	p.iceUp = true
	if p.needsNegotiation {
		p.negotiate()
	}
}

// publish starts forwarding a track the client sends.
func (p *participantActor) publish(ctx actor.Context, m *remoteTrack) {
	if !p.info.Role.canPublish() || p.kind == ClientWHEP {
		p.log.Warn("refusing a track from a participant that may not publish")
		if err := m.receiver.Stop(); err != nil {
			p.log.Debug("stop receiver", "err", err)
		}
		return
	}
	root, self := p.root, p.self
	fwd, err := rtc.NewForwarder(rtc.ForwarderConfig{
		Track:   m.track,
		RTCP:    p.pc,
		Engine:  p.deps.cfg.Media,
		Metrics: p.deps.cfg.MediaMetrics,
		Logger:  p.log,
		OnFailure: func(err error) {
			root.Send(self, &ownedFailure{err: err})
		},
	})
	if err != nil {
		p.log.Warn("forward track", "err", err)
		return
	}
	info := TrackInfo{
		ID:        newTrackID(),
		Kind:      m.track.Kind().String(),
		Codec:     m.track.Codec().MimeType,
		StreamID:  p.info.ID,
		Simulcast: m.track.RID() != "",
	}
	p.published[info.ID] = &publishedTrack{info: info, fwd: fwd}
	p.stats.addUp(fwd)
	p.log.Info("track published", "track", info.ID, "kind", info.Kind, "codec", info.Codec)
	ctx.Send(ctx.Parent(), &trackPublished{participantID: p.info.ID, track: info, fwd: fwd})
	go p.watchTrackEnd(info.ID, fwd)
}

// watchTrackEnd tells the participant when a track's read loop ends on
// its own (the client stopped sending it). It ends when the forwarder
// does, which the participant closes when it stops.
func (p *participantActor) watchTrackEnd(trackID string, fwd *rtc.Forwarder) {
	<-fwd.Done()
	if fwd.Err() == nil && !p.leaving.Load() {
		p.root.Send(p.self, &publishedEnded{trackID: trackID})
	}
}

// publishedEnded removes a track the client no longer sends: its
// forwarder is closed and folded into the participant's totals, which
// frees its packet cache, and the room unpublishes it. The room hears of
// it after any mute of the track this actor sent, and no mute after.
func (p *participantActor) publishedEnded(ctx actor.Context, trackID string) {
	t, ok := p.published[trackID]
	if !ok {
		return
	}
	delete(p.published, trackID)
	if err := t.fwd.Close(); err != nil {
		p.log.Debug("close forwarder", "err", err)
	}
	p.stats.endUp(t.fwd)
	p.log.Info("track ended", "track", trackID)
	ctx.Send(ctx.Parent(), &trackEnded{participantID: p.info.ID, trackID: trackID})
}

// subscribe sends one of the room's tracks to the client.
func (p *participantActor) subscribe(m *subscribe) {
	if p.kind == ClientWHEP {
		p.available = append(p.available, *m)
		p.fillWHEPSlots()
		return
	}
	if _, ok := p.received[m.track.ID]; ok {
		return
	}
	dt, err := p.newDownTrack(m.track.ID, m.track.StreamID, m.fwd.Codec().RTPCodecCapability)
	if err != nil {
		p.log.Warn("down-track", "err", err)
		return
	}
	sender, err := p.addSendTrack(dt)
	if err != nil {
		dt.Close()
		p.stats.endDown(dt)
		p.log.Warn("add track", "err", err)
		return
	}
	p.nameMid(sender)
	if err := m.fwd.AddSubscriber(dt); err != nil {
		p.log.Debug("source gone before subscribing", "track", m.track.ID, "err", err)
	}
	p.received[m.track.ID] = &receivedTrack{track: m.track, dt: dt, sender: sender}
	p.negotiate()
}

// addSendTrack adds dt to the connection on a section of the server's
// own: one that sent an ended track, or a new one. pion's AddTrack would
// rather take a section the client sends on, whose codecs are the
// client's (an H.264-only camera's section cannot carry VP8), so while
// the client has a section of dt's kind that pion could take, the track
// gets a new section instead.
func (p *participantActor) addSendTrack(dt *rtc.DownTrack) (*webrtc.RTPSender, error) {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Kind() != dt.Kind() || tr.Sender() != nil || tr.Mid() == "" || p.ownMids[tr.Mid()] {
			continue
		}
		tr, err := p.pc.AddTransceiverFromTrack(dt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		return tr.Sender(), nil
	}
	return p.pc.AddTrack(dt)
}

// nameMid gives a transceiver the server created a mid of the server's
// own ("s1", "s2"...). pion would number it, and the number can collide
// with the next one the client picks: an offer of ours dropped on glare
// has already used it, and the client never saw it. Clients number their
// mids, so ours never meet theirs.
func (p *participantActor) nameMid(sender *webrtc.RTPSender) {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() != sender || tr.Mid() != "" {
			continue
		}
		p.mids++
		mid := fmt.Sprintf("s%d", p.mids)
		if err := tr.SetMid(mid); err != nil {
			p.log.Debug("name mid", "err", err)
			return
		}
		p.ownMids[mid] = true
		return
	}
}

func (p *participantActor) newDownTrack(id, streamID string, codec webrtc.RTPCodecCapability) (*rtc.DownTrack, error) {
	root, self := p.root, p.self
	dt, err := rtc.NewDownTrack(rtc.DownTrackConfig{
		ID: id, StreamID: streamID, Codec: codec,
		RTCP:    p.pc,
		Metrics: p.deps.cfg.MediaMetrics,
		Logger:  p.log,
		OnFailure: func(err error) {
			root.Send(self, &ownedFailure{err: err})
		},
	})
	if err != nil {
		return nil, err
	}
	p.stats.addDown(dt)
	if p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		dt.TransportReady() // a track added to a connection that is up
	}
	return dt, nil
}

func (p *participantActor) unsubscribe(trackID string) {
	if p.kind == ClientWHEP {
		p.dropAvailable(trackID)
		return
	}
	if _, ok := p.received[trackID]; !ok {
		return
	}
	p.dropReceived(trackID)
	p.negotiate()
}

// dropReceived stops sending a track to the client and lets its
// down-track go; the next offer tells the client.
func (p *participantActor) dropReceived(trackID string) {
	r := p.received[trackID]
	delete(p.received, trackID)
	if src := r.dt.Source(); src != nil {
		src.RemoveSubscriber(r.dt)
	}
	if err := p.pc.RemoveTrack(r.sender); err != nil {
		p.log.Debug("remove track", "err", err)
	}
	r.dt.Close()
	p.stats.endDown(r.dt)
}

// midOf returns the mid of the transceiver that carries sender, or "".
func (p *participantActor) midOf(sender *webrtc.RTPSender) string {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() == sender {
			return tr.Mid()
		}
	}
	return ""
}

// sendCodecs maps the mid of each section that sends a track to the
// track's codec. A section the client sends on too (a client may take one
// of ours for a track of its own) is left out: its codecs are also those
// the client sends in.
func (p *participantActor) sendCodecs() map[string]webrtc.RTPCodecCapability {
	clientSends := map[string]bool{}
	if rd := p.pc.RemoteDescription(); rd != nil {
		if d, err := parseDesc(rd.SDP); err == nil {
			for _, md := range d.MediaDescriptions {
				mid, _ := md.Attribute(sdp.AttrKeyMID)
				_, recvonly := md.Attribute("recvonly")
				_, inactive := md.Attribute("inactive")
				clientSends[mid] = !recvonly && !inactive
			}
		}
	}
	out := make(map[string]webrtc.RTPCodecCapability, len(p.received))
	for _, r := range p.received {
		if mid := p.midOf(r.sender); mid != "" && !clientSends[mid] {
			out[mid] = r.dt.Codec()
		}
	}
	return out
}

// skipDeclined stops offering the tracks whose sections in the client's
// description d do not take their codec (the client cannot decode it, or
// rejected the section), and tells the client which tracks it will not
// get. It checks the sections of expected (mid to track id) that still
// send the same track; the other tracks go on. When d answers ours, ours
// gives the mid of a section the client rejected without one.
func (p *participantActor) skipDeclined(d, ours *sdp.SessionDescription, expected map[string]string) {
	byMid := make(map[string]*sdp.MediaDescription, len(d.MediaDescriptions))
	for i, md := range d.MediaDescriptions {
		mid, ok := md.Attribute(sdp.AttrKeyMID)
		if !ok && ours != nil && i < len(ours.MediaDescriptions) {
			mid, _ = ours.MediaDescriptions[i].Attribute(sdp.AttrKeyMID)
		}
		if mid != "" {
			byMid[mid] = md
		}
	}
	for mid, id := range expected {
		r, ok := p.received[id]
		if !ok || p.midOf(r.sender) != mid {
			continue // gone since, or its section sends another track now
		}
		md, ok := byMid[mid]
		if !ok || rtc.SectionAccepts(md, r.dt.Codec()) {
			continue
		}
		p.log.Info("track skipped: the client does not take its codec", "track", id, "codec", r.dt.Codec().MimeType)
		p.dropReceived(id)
		p.signal.Signal(SignalTrackSkipped{
			ParticipantID: r.track.StreamID, TrackID: id, Codec: r.track.Codec,
			Reason: SkipCodecNotSupported,
		})
	}
}

// liveTracks maps the mid of each section that sends a track to the
// track's id; with only set, the sections of only's mids alone.
func (p *participantActor) liveTracks(only map[string]string) map[string]string {
	out := make(map[string]string, len(p.received))
	for id, r := range p.received {
		mid := p.midOf(r.sender)
		if _, ok := only[mid]; mid != "" && (only == nil || ok) {
			out[mid] = id
		}
	}
	return out
}

// midsOf returns the mids of d's sections, as a set in liveTracks' form.
func midsOf(d *sdp.SessionDescription) map[string]string {
	out := make(map[string]string, len(d.MediaDescriptions))
	for _, md := range d.MediaDescriptions {
		if mid, ok := md.Attribute(sdp.AttrKeyMID); ok {
			out[mid] = ""
		}
	}
	return out
}

// attachWHEPSlots gives each receiver the WHEP client offered a down-track
// in a codec its section lists: the codec of a published track of its
// kind when the section lists one, else the section's first codec that
// the server forwards, for the tracks to come. A section that lists none
// gets no down-track, and an offer none of whose sections does, or that
// can show none of the room's tracks, is refused with ErrNoCommonCodec.
func (p *participantActor) attachWHEPSlots(offer *sdp.SessionDescription) error {
	sections := make(map[string]*sdp.MediaDescription, len(offer.MediaDescriptions))
	for _, md := range offer.MediaDescriptions {
		if mid, ok := md.Attribute(sdp.AttrKeyMID); ok {
			sections[mid] = md
		}
	}
	claimed := make(map[string]bool)
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Sender() != nil {
			continue
		}
		md, ok := sections[tr.Mid()]
		if !ok {
			continue
		}
		offered := rtc.SectionCodecs(md)
		if len(offered) == 0 {
			p.log.Info("WHEP section left idle: no codec in common", "mid", tr.Mid())
			continue
		}
		codec := offered[0]
	pick:
		for _, a := range p.available {
			if claimed[a.track.ID] || a.fwd.Kind() != tr.Kind() {
				continue
			}
			for _, c := range offered {
				if rtc.CodecFits(a.fwd.Codec().RTPCodecCapability, c) {
					codec, claimed[a.track.ID] = a.fwd.Codec().RTPCodecCapability, true
					break pick
				}
			}
		}
		dt, err := p.newDownTrack(newTrackID(), "troupe-"+p.roomID, codec)
		if err != nil {
			p.log.Warn("down-track", "err", err)
			continue
		}
		// AddTrack takes the transceiver the offer made, which has no
		// sender yet.
		sender, err := p.pc.AddTrack(dt)
		if err != nil {
			dt.Close()
			p.stats.endDown(dt)
			p.log.Warn("add WHEP track", "err", err)
			continue
		}
		p.whepSlots = append(p.whepSlots, &receivedTrack{dt: dt, sender: sender})
	}
	if len(p.whepSlots) == 0 {
		return fmt.Errorf("%w: the offer lists no codec Troupe forwards (%s)", ErrNoCommonCodec, forwardedCodecs())
	}
	p.fillWHEPSlots()
	if len(p.available) > 0 {
		for _, s := range p.whepSlots {
			if s.track.ID != "" {
				return nil
			}
		}
		return fmt.Errorf("%w: the room's tracks are in %s, and the offer lists none of them", ErrNoCommonCodec, trackCodecs(p.available))
	}
	return nil
}

// fillWHEPSlots feeds every idle slot from an available track of its kind
// and codec that no other slot shows.
func (p *participantActor) fillWHEPSlots() {
	shown := make(map[string]bool)
	for _, s := range p.whepSlots {
		if s.track.ID != "" {
			shown[s.track.ID] = true
		}
	}
	for _, s := range p.whepSlots {
		if s.track.ID != "" {
			continue
		}
		for _, a := range p.available {
			if shown[a.track.ID] || a.fwd.Kind() != s.dt.Kind() || !rtc.CodecFits(a.fwd.Codec().RTPCodecCapability, s.dt.Codec()) {
				continue
			}
			if err := s.dt.SwitchSource(a.fwd); err != nil {
				continue
			}
			s.track = a.track
			shown[a.track.ID] = true
			break
		}
	}
}

func (p *participantActor) dropAvailable(trackID string) {
	for i, a := range p.available {
		if a.track.ID == trackID {
			p.available = append(p.available[:i], p.available[i+1:]...)
			break
		}
	}
	for _, s := range p.whepSlots {
		if s.track.ID == trackID {
			s.track = TrackInfo{}
		}
	}
	p.fillWHEPSlots()
}

// forwardedCodecs names the codecs the server forwards, for an error.
func forwardedCodecs() string {
	var names []string
	for _, c := range rtc.ForwardedCodecs() {
		if !slices.Contains(names, c.MimeType) {
			names = append(names, c.MimeType)
		}
	}
	return strings.Join(names, ", ")
}

// CheckWHEPOffer tells, before a WHEP viewer joins, whether its offer can
// receive anything in a room whose participants are room: it must list a
// codec the server forwards and, when the room has tracks, one of theirs
// in a section of their kind. A viewer refused here never shows up in the
// room (no member, no session started, no webhook). The participant
// checks again, on the codecs' parameters too, when the offer is applied.
func CheckWHEPOffer(offer string, room []ParticipantInfo) error {
	d, err := parseDesc(offer)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSDP, err)
	}
	offered := map[string][]webrtc.RTPCodecCapability{} // by kind
	for _, md := range d.MediaDescriptions {
		offered[md.MediaName.Media] = append(offered[md.MediaName.Media], rtc.SectionCodecs(md)...)
	}
	if len(offered["audio"])+len(offered["video"]) == 0 {
		return fmt.Errorf("%w: the offer lists no codec Troupe forwards (%s)", ErrNoCommonCodec, forwardedCodecs())
	}
	var names []string
	for _, p := range room {
		for _, t := range p.Tracks {
			for _, c := range offered[t.Kind] {
				if strings.EqualFold(c.MimeType, t.Codec) {
					return nil
				}
			}
			if !slices.Contains(names, t.Codec) {
				names = append(names, t.Codec)
			}
		}
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: the room's tracks are in %s, and the offer lists none of them", ErrNoCommonCodec, strings.Join(names, ", "))
	}
	return nil
}

// trackCodecs names the codecs of tracks, once each, for an error.
func trackCodecs(tracks []subscribe) string {
	var names []string
	for _, a := range tracks {
		if c := a.fwd.Codec().MimeType; !slices.Contains(names, c) {
			names = append(names, c)
		}
	}
	return strings.Join(names, ", ")
}

// SkipCodecNotSupported is the reason of a SignalTrackSkipped: the
// client's answer (or offer) does not take the track's codec.
const SkipCodecNotSupported = "codec_not_supported"

// SignalTrackSkipped says that a track of the room will not be sent to
// this client, and why: it has no codec in common with it. The client's
// other tracks are not affected.
type SignalTrackSkipped struct {
	ParticipantID, TrackID, Codec, Reason string
}

func (SignalTrackSkipped) isSignal() {}

// setMuted mutes the participant's own tracks named by id or by kind.
func (p *participantActor) setMuted(ctx actor.Context, m *setMuted) error {
	found := false
	for id, t := range p.published {
		if (m.trackID != "" && id != m.trackID) || (m.trackID == "" && t.info.Kind != m.kind) {
			continue
		}
		select {
		case <-t.fwd.Done():
			continue // ended; publishedEnded is on its way
		default:
		}
		found = true
		if t.info.Muted == m.muted {
			continue
		}
		t.info.Muted = m.muted
		t.fwd.SetMuted(m.muted)
		ctx.Send(ctx.Parent(), &trackMuted{participantID: p.info.ID, trackID: id, muted: m.muted, byServer: m.byServer})
	}
	if !found && m.trackID != "" {
		return fmt.Errorf("%w: no published track %q", ErrSignalingState, m.trackID)
	}
	return nil
}
